"""Tenants, principals and API keys."""

from __future__ import annotations

from fastapi import Request, status

from gasworks.api.deps import ContextDep, SessionDep
from gasworks.api.paging import PageDep
from gasworks.api.routing import router as guarded_router
from gasworks.tenancy import service
from gasworks.tenancy.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    PrincipalCreate,
    PrincipalOut,
    TenantCreate,
    TenantOut,
)

router = guarded_router(prefix="/api", tags=["tenancy"])


@router.get("/me", summary="Who the caller is")
async def me(ctx: ContextDep) -> dict[str, object]:
    return {
        "tenantId": ctx.tenant_id,
        "tenantName": ctx.tenant_name,
        "principalId": ctx.principal_id,
        "role": ctx.role.value,
        "isPlatformAdmin": ctx.is_platform_admin,
        "apiKeyId": ctx.api_key_id,
    }


@router.get("/tenants", summary="Tenants the caller can see")
async def list_tenants(ctx: ContextDep, session: SessionDep, page: PageDep) -> list[TenantOut]:
    return await service.list_tenants(session, ctx, page)


@router.post("/tenants", status_code=status.HTTP_201_CREATED, summary="Create a tenant")
async def create_tenant(body: TenantCreate, ctx: ContextDep, session: SessionDep) -> TenantOut:
    return await service.create_tenant(session, ctx, body)


@router.get("/tenants/{tenant_id}", summary="One tenant")
async def get_tenant(tenant_id: str, ctx: ContextDep, session: SessionDep) -> TenantOut:
    return await service.get_tenant(session, ctx, tenant_id)


@router.get("/principals", summary="Users and service accounts of the caller's tenant")
async def list_principals(
    ctx: ContextDep, session: SessionDep, page: PageDep
) -> list[PrincipalOut]:
    return await service.list_principals(session, ctx, page)


@router.post("/principals", status_code=status.HTTP_201_CREATED, summary="Create a principal")
async def create_principal(
    body: PrincipalCreate, ctx: ContextDep, session: SessionDep
) -> PrincipalOut:
    return await service.create_principal(session, ctx, body)


@router.get("/keys", summary="API keys of the caller's tenant")
async def list_keys(ctx: ContextDep, session: SessionDep, page: PageDep) -> list[ApiKeyOut]:
    return await service.list_api_keys(session, ctx, page)


@router.post(
    "/keys",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (the key is shown once, in this response)",
)
async def create_key(body: ApiKeyCreate, ctx: ContextDep, session: SessionDep) -> ApiKeyCreated:
    return await service.create_api_key(session, ctx, body)


@router.get("/keys/{key_id}", summary="One API key")
async def get_key(key_id: str, ctx: ContextDep, session: SessionDep) -> ApiKeyOut:
    return await service.get_api_key(session, ctx, key_id)


@router.post("/keys/{key_id}/revoke", summary="Revoke an API key")
async def revoke_key(
    key_id: str, ctx: ContextDep, session: SessionDep, request: Request
) -> ApiKeyOut:
    out = await service.revoke_api_key(session, ctx, key_id)
    request.app.state.authenticator.forget(key_id)
    return out
