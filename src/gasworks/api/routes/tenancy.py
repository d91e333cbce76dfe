"""Tenants, principals and API keys."""

from __future__ import annotations

from fastapi import status

from gasworks.api.deps import ContextDep, RuntimeDep
from gasworks.api.paging import PageDep
from gasworks.api.routing import router as guarded_router
from gasworks.tenancy.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    PrincipalCreate,
    PrincipalOut,
    TenantCreate,
    TenantOut,
)
from gasworks.tenancy.service import tenancy_service

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
async def list_tenants(ctx: ContextDep, rt: RuntimeDep, page: PageDep) -> list[TenantOut]:
    return await tenancy_service(rt).list_tenants(ctx, page)


@router.post("/tenants", status_code=status.HTTP_201_CREATED, summary="Create a tenant")
async def create_tenant(body: TenantCreate, ctx: ContextDep, rt: RuntimeDep) -> TenantOut:
    return await tenancy_service(rt).create_tenant(ctx, body)


@router.get("/tenants/{tenant_id}", summary="One tenant")
async def get_tenant(tenant_id: str, ctx: ContextDep, rt: RuntimeDep) -> TenantOut:
    return await tenancy_service(rt).get_tenant(ctx, tenant_id)


@router.get("/principals", summary="Users and service accounts of the caller's tenant")
async def list_principals(ctx: ContextDep, rt: RuntimeDep, page: PageDep) -> list[PrincipalOut]:
    return await tenancy_service(rt).list_principals(ctx, page)


@router.post("/principals", status_code=status.HTTP_201_CREATED, summary="Create a principal")
async def create_principal(body: PrincipalCreate, ctx: ContextDep, rt: RuntimeDep) -> PrincipalOut:
    return await tenancy_service(rt).create_principal(ctx, body)


@router.get("/keys", summary="API keys of the caller's tenant")
async def list_keys(ctx: ContextDep, rt: RuntimeDep, page: PageDep) -> list[ApiKeyOut]:
    return await tenancy_service(rt).list_api_keys(ctx, page)


@router.post(
    "/keys",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (the key is shown once, in this response)",
)
async def create_key(body: ApiKeyCreate, ctx: ContextDep, rt: RuntimeDep) -> ApiKeyCreated:
    return await tenancy_service(rt).create_api_key(ctx, body)


@router.get("/keys/{key_id}", summary="One API key")
async def get_key(key_id: str, ctx: ContextDep, rt: RuntimeDep) -> ApiKeyOut:
    return await tenancy_service(rt).get_api_key(ctx, key_id)


@router.post("/keys/{key_id}/revoke", summary="Revoke an API key")
async def revoke_key(key_id: str, ctx: ContextDep, rt: RuntimeDep) -> ApiKeyOut:
    return await tenancy_service(rt).revoke_api_key(ctx, key_id)
