"""GraphQL types and resolvers for tenancy."""

from __future__ import annotations

from datetime import datetime

import strawberry

from gasworks.api.graphql.context import GqlContext
from gasworks.api.graphql.paging import DEFAULT_LIMIT, Limit, Offset, checked_page
from gasworks.tenancy.schemas import ApiKeyCreate, ApiKeyOut, PrincipalOut, TenantOut
from gasworks.tenancy.service import tenancy_service
from gasworks.validation import validated

Info = strawberry.Info[GqlContext, None]


@strawberry.type(name="Tenant")
class TenantType:
    id: str
    name: str
    display_name: str
    created_at: datetime

    @staticmethod
    def of(t: TenantOut) -> TenantType:
        return TenantType(
            id=t.id, name=t.name, display_name=t.display_name, created_at=t.created_at
        )


@strawberry.type(name="Principal")
class PrincipalType:
    id: str
    name: str
    kind: str
    role: str
    is_platform_admin: bool
    created_at: datetime

    @staticmethod
    def of(p: PrincipalOut) -> PrincipalType:
        return PrincipalType(
            id=p.id,
            name=p.name,
            kind=p.kind,
            role=p.role.value,
            is_platform_admin=p.is_platform_admin,
            created_at=p.created_at,
        )


@strawberry.type(name="ApiKey")
class ApiKeyType:
    id: str
    name: str
    prefix: str
    principal_id: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @staticmethod
    def of(k: ApiKeyOut) -> ApiKeyType:
        return ApiKeyType(
            id=k.id,
            name=k.name,
            prefix=k.prefix,
            principal_id=k.principal_id,
            created_at=k.created_at,
            expires_at=k.expires_at,
            revoked_at=k.revoked_at,
            last_used_at=k.last_used_at,
        )


@strawberry.type(name="CreatedApiKey")
class CreatedApiKeyType:
    key: str = strawberry.field(description="Shown once; store it now.")
    api_key: ApiKeyType


@strawberry.type(name="Me")
class MeType:
    tenant_id: str
    principal_id: str
    role: str
    is_platform_admin: bool


@strawberry.type
class TenancyQuery:
    @strawberry.field
    def me(self, info: strawberry.Info[GqlContext, None]) -> MeType:
        c = info.context.ctx
        return MeType(
            tenant_id=c.tenant_id,
            principal_id=c.principal_id,
            role=c.role.value,
            is_platform_admin=c.is_platform_admin,
        )

    @strawberry.field
    async def tenants(
        self, info: Info, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> list[TenantType]:
        svc = tenancy_service(info.context.runtime)
        items = await svc.list_tenants(info.context.ctx, checked_page(limit, offset))
        return [TenantType.of(t) for t in items]

    @strawberry.field
    async def principals(
        self, info: Info, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> list[PrincipalType]:
        svc = tenancy_service(info.context.runtime)
        items = await svc.list_principals(info.context.ctx, checked_page(limit, offset))
        return [PrincipalType.of(p) for p in items]

    @strawberry.field
    async def api_keys(
        self, info: Info, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> list[ApiKeyType]:
        svc = tenancy_service(info.context.runtime)
        items = await svc.list_api_keys(info.context.ctx, checked_page(limit, offset))
        return [ApiKeyType.of(k) for k in items]


@strawberry.type
class TenancyMutation:
    @strawberry.mutation
    async def create_api_key(
        self, info: strawberry.Info[GqlContext, None], name: str, role: str = "viewer"
    ) -> CreatedApiKeyType:
        data = validated(ApiKeyCreate, {"name": name, "role": role})
        created = await tenancy_service(info.context.runtime).create_api_key(info.context.ctx, data)
        return CreatedApiKeyType(key=created.key, api_key=ApiKeyType.of(created.api_key))

    @strawberry.mutation
    async def revoke_api_key(self, info: strawberry.Info[GqlContext, None], id: str) -> ApiKeyType:
        revoked = await tenancy_service(info.context.runtime).revoke_api_key(info.context.ctx, id)
        return ApiKeyType.of(revoked)
