"""Tenancy: the query functions (each takes an explicit session, one transaction, and the
caller's context) and ``TenancyService``, which composes them for the adapters
(``tenancy_service(rt)``)."""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gasworks.db.paging import ALL, Page
from gasworks.db.types import new_id, utcnow
from gasworks.errors import AlreadyExists, Forbidden, LastOwnerKey, NotFound, ValidationFailed
from gasworks.tenancy import keys
from gasworks.tenancy.context import Role, TenantContext
from gasworks.tenancy.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    PrincipalCreate,
    PrincipalOut,
    TenantCreate,
    TenantOut,
)
from gasworks.tenancy.tables import ApiKeyRow, PrincipalRow, TenantRow

if TYPE_CHECKING:
    from gasworks.db.engine import Database
    from gasworks.runtime import Runtime

# --- tenants ------------------------------------------------------------------------------


async def create_tenant(session: AsyncSession, ctx: TenantContext, data: TenantCreate) -> TenantOut:
    ctx.require_platform_admin()
    return await _insert_tenant(session, data)


async def _insert_tenant(session: AsyncSession, data: TenantCreate) -> TenantOut:
    existing = await session.scalar(select(TenantRow.id).where(TenantRow.name == data.name))
    if existing is not None:
        raise AlreadyExists(
            f"A tenant named '{data.name}' already exists.", details={"name": data.name}
        )
    row = TenantRow(id=new_id("ten"), name=data.name, display_name=data.display_name or data.name)
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise AlreadyExists(
            f"A tenant named '{data.name}' already exists.", details={"name": data.name}
        ) from exc
    return TenantOut.model_validate(row)


async def get_tenant(session: AsyncSession, ctx: TenantContext, tenant_id: str) -> TenantOut:
    if tenant_id != ctx.tenant_id and not ctx.is_platform_admin:
        raise NotFound("Tenant not found.", details={"id": tenant_id})
    row = await session.get(TenantRow, tenant_id)
    if row is None:
        raise NotFound("Tenant not found.", details={"id": tenant_id})
    return TenantOut.model_validate(row)


async def list_tenants(
    session: AsyncSession, ctx: TenantContext, page: Page = ALL
) -> list[TenantOut]:
    query = select(TenantRow).order_by(TenantRow.created_at, TenantRow.name)
    if not ctx.is_platform_admin:
        query = query.where(TenantRow.id == ctx.tenant_id)
    return [TenantOut.model_validate(r) for r in (await session.scalars(page.apply(query))).all()]


async def has_tenants(session: AsyncSession) -> bool:
    """Whether any tenant exists (first-run detection; not exposed to tenant callers)."""
    return (await session.scalar(select(TenantRow.id).limit(1))) is not None


async def find_tenant_by_name(session: AsyncSession, name: str) -> TenantOut | None:
    """Operator lookup by name (CLI). Not exposed to tenant callers."""
    row = await session.scalar(select(TenantRow).where(TenantRow.name == name))
    return None if row is None else TenantOut.model_validate(row)


# --- principals ---------------------------------------------------------------------------


async def create_principal(
    session: AsyncSession,
    ctx: TenantContext,
    data: PrincipalCreate,
    *,
    is_platform_admin: bool = False,
) -> PrincipalOut:
    ctx.require(Role.ADMIN)
    _check_can_grant(ctx, data.role)
    if is_platform_admin:
        ctx.require_platform_admin()
    dup = await session.scalar(
        select(PrincipalRow.id).where(
            PrincipalRow.tenant_id == ctx.tenant_id, PrincipalRow.name == data.name
        )
    )
    if dup is not None:
        raise AlreadyExists(
            f"A principal named '{data.name}' already exists in this tenant.",
            details={"name": data.name},
        )
    row = PrincipalRow(
        id=new_id("prn"),
        tenant_id=ctx.tenant_id,
        name=data.name,
        kind=data.kind,
        role=data.role.value,
        is_platform_admin=is_platform_admin,
    )
    session.add(row)
    await session.flush()
    return PrincipalOut.model_validate(row)


async def list_principals(
    session: AsyncSession, ctx: TenantContext, page: Page = ALL
) -> list[PrincipalOut]:
    rows = await session.scalars(
        page.apply(
            select(PrincipalRow)
            .where(PrincipalRow.tenant_id == ctx.tenant_id)
            .order_by(PrincipalRow.created_at, PrincipalRow.name, PrincipalRow.id)
        )
    )
    return [PrincipalOut.model_validate(r) for r in rows.all()]


async def principal_names(
    session: AsyncSession, ctx: TenantContext, ids: Iterable[str]
) -> dict[str, str]:
    """Names of the principals among ``ids``, in one query: the caller's tenant's (a platform
    admin's: any tenant's, as the breakers they act on are shared). Ids the caller may not see
    or that do not exist are simply absent."""
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    query = select(PrincipalRow.id, PrincipalRow.name).where(PrincipalRow.id.in_(wanted))
    if not ctx.is_platform_admin:
        query = query.where(PrincipalRow.tenant_id == ctx.tenant_id)
    return {pid: name for pid, name in (await session.execute(query)).all()}


async def _get_principal_row(
    session: AsyncSession, ctx: TenantContext, principal_id: str
) -> PrincipalRow:
    row = await session.scalar(
        select(PrincipalRow).where(
            PrincipalRow.id == principal_id, PrincipalRow.tenant_id == ctx.tenant_id
        )
    )
    if row is None:
        raise NotFound("Principal not found.", details={"id": principal_id})
    return row


def _check_can_grant(ctx: TenantContext, role: Role) -> None:
    if not ctx.is_platform_admin and role.rank > ctx.role.rank:
        raise Forbidden(
            f"You cannot grant the '{role.value}' role: it is above your own ('{ctx.role.value}').",
            details={"role": role.value},
        )


# --- API keys -----------------------------------------------------------------------------


async def create_api_key(
    session: AsyncSession, ctx: TenantContext, data: ApiKeyCreate
) -> ApiKeyCreated:
    ctx.require(Role.ADMIN)
    if data.expires_at is not None:
        if data.expires_at.tzinfo is None:
            raise ValidationFailed(
                "expires_at must include a timezone (e.g. 2027-01-01T00:00:00Z).",
                details={"field": "expires_at"},
            )
        if data.expires_at <= utcnow():
            raise ValidationFailed("expires_at is in the past.", details={"field": "expires_at"})
    if data.principal_id is not None:
        principal = await _get_principal_row(session, ctx, data.principal_id)
        _check_can_grant(ctx, Role(principal.role))
        principal_out = PrincipalOut.model_validate(principal)
    else:
        principal_out = await create_principal(
            session,
            ctx,
            PrincipalCreate(
                name=f"{data.name} ({new_id('svc')[-8:]})", kind="service", role=data.role
            ),
        )
    material = keys.generate()
    row = ApiKeyRow(
        id=new_id("key"),
        tenant_id=ctx.tenant_id,
        principal_id=principal_out.id,
        name=data.name,
        prefix=material.prefix,
        key_hash=material.hash,
        expires_at=data.expires_at,
    )
    session.add(row)
    await session.flush()
    return ApiKeyCreated(
        key=material.plaintext, api_key=ApiKeyOut.model_validate(row), principal=principal_out
    )


async def list_api_keys(
    session: AsyncSession, ctx: TenantContext, page: Page = ALL
) -> list[ApiKeyOut]:
    ctx.require(Role.ADMIN)
    rows = await session.scalars(
        page.apply(
            select(ApiKeyRow)
            .where(ApiKeyRow.tenant_id == ctx.tenant_id)
            .order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        )
    )
    return [ApiKeyOut.model_validate(r) for r in rows.all()]


async def get_api_key(session: AsyncSession, ctx: TenantContext, key_id: str) -> ApiKeyOut:
    ctx.require(Role.ADMIN)
    row = await session.scalar(
        select(ApiKeyRow).where(ApiKeyRow.id == key_id, ApiKeyRow.tenant_id == ctx.tenant_id)
    )
    if row is None:
        raise NotFound("API key not found.", details={"id": key_id})
    return ApiKeyOut.model_validate(row)


async def revoke_api_key(
    session: AsyncSession, ctx: TenantContext, key_id: str, *, allow_last_owner: bool = False
) -> ApiKeyOut:
    """Revoke a key (idempotent: revoking a revoked key keeps its first revocation time).

    The tenant's last usable owner key is not revoked (``LAST_OWNER_KEY``): that would lock
    the tenant out of everything only an owner may do. The operator's CLI may, with
    ``allow_last_owner`` (``gasworks keys revoke --force``)."""
    ctx.require(Role.ADMIN)
    row = await session.scalar(
        select(ApiKeyRow).where(ApiKeyRow.id == key_id, ApiKeyRow.tenant_id == ctx.tenant_id)
    )
    if row is None:
        raise NotFound("API key not found.", details={"id": key_id})
    holder_role = await session.scalar(
        select(PrincipalRow.role).where(PrincipalRow.id == row.principal_id)
    )
    _check_can_grant(ctx, Role(holder_role or Role.OWNER.value))  # no revoking your betters
    if row.revoked_at is None and holder_role == Role.OWNER.value and not allow_last_owner:
        now = utcnow()
        others = await session.scalar(
            select(func.count())
            .select_from(ApiKeyRow)
            .join(PrincipalRow, PrincipalRow.id == ApiKeyRow.principal_id)
            .where(
                ApiKeyRow.tenant_id == ctx.tenant_id,
                ApiKeyRow.id != row.id,
                ApiKeyRow.revoked_at.is_(None),
                or_(ApiKeyRow.expires_at.is_(None), ApiKeyRow.expires_at > now),
                PrincipalRow.role == Role.OWNER.value,
            )
        )
        if not others:
            raise LastOwnerKey(
                "This is the tenant's last usable owner key; create another owner key "
                "before revoking it.",
                details={"id": key_id},
            )
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.flush()
    return ApiKeyOut.model_validate(row)


# --- authentication -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifiedKey:
    """A key that passed verification: the caller's context and when the key expires."""

    ctx: TenantContext
    expires_at: datetime | None


async def verify_key(session: AsyncSession, plaintext: str) -> VerifiedKey | None:
    """A valid, unrevoked, unexpired key's context and expiry; None otherwise."""
    prefix = keys.parse_prefix(plaintext)
    if prefix is None:
        return None
    result = await session.execute(_KEY_BY_PREFIX, {"prefix": prefix})
    return _verified(plaintext, result.first())


async def lookup_key(db: Database, plaintext: str) -> VerifiedKey | None:
    """``verify_key`` through the database's hot read path (``Database.read_first``: one
    statement, no transaction or session; on a SQLite file no thread hand-off): what the API's
    authenticator runs when a key's cached verdict is missing or out of date."""
    prefix = keys.parse_prefix(plaintext)
    if prefix is None:
        return None
    return _verified(plaintext, await db.read_first(_KEY_BY_PREFIX, {"prefix": prefix}))


#: the key with this prefix, its principal and its tenant's name (columns by name)
_KEY_BY_PREFIX = (
    select(
        ApiKeyRow.id.label("api_key_id"),
        ApiKeyRow.tenant_id,
        ApiKeyRow.key_hash,
        ApiKeyRow.revoked_at,
        ApiKeyRow.expires_at,
        PrincipalRow.id.label("principal_id"),
        PrincipalRow.role,
        PrincipalRow.is_platform_admin,
        TenantRow.name.label("tenant_name"),
    )
    .join(PrincipalRow, PrincipalRow.id == ApiKeyRow.principal_id)
    .join(TenantRow, TenantRow.id == ApiKeyRow.tenant_id)
    .where(ApiKeyRow.prefix == bindparam("prefix"))
)


def _verified(plaintext: str, row: Any) -> VerifiedKey | None:
    """The verdict on ``plaintext`` given the row ``_KEY_BY_PREFIX`` found (or None)."""
    if row is None:
        return None
    if not keys.matches(plaintext, row.key_hash) or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None
    ctx = TenantContext(
        tenant_id=row.tenant_id,
        principal_id=row.principal_id,
        role=Role(row.role),
        is_platform_admin=row.is_platform_admin,
        api_key_id=row.api_key_id,
        tenant_name=row.tenant_name,
    )
    return VerifiedKey(ctx=ctx, expires_at=row.expires_at)


def key_context(key: ApiKeyRow, principal: PrincipalRow, tenant_name: str) -> TenantContext:
    """The context a key acts with (its principal's role, in its tenant)."""
    return TenantContext(
        tenant_id=key.tenant_id,
        principal_id=principal.id,
        role=Role(principal.role),
        is_platform_admin=principal.is_platform_admin,
        api_key_id=key.id,
        tenant_name=tenant_name,
    )


async def authenticate(session: AsyncSession, plaintext: str) -> TenantContext | None:
    """The context of a valid, unrevoked, unexpired key; None otherwise."""
    verified = await verify_key(session, plaintext)
    return None if verified is None else verified.ctx


async def touch_key(session: AsyncSession, key_id: str, when: datetime) -> None:
    await session.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(last_used_at=when))


# --- first run ----------------------------------------------------------------------------


async def bootstrap(
    session: AsyncSession, tenant_name: str = "default", admin_name: str = "admin"
) -> tuple[TenantOut, ApiKeyCreated | None]:
    """Create the first tenant, a platform-admin owner and a key. Idempotent: when the tenant
    already has a platform admin, nothing is created and no key is returned."""
    tenant = await find_tenant_by_name(session, tenant_name)
    if tenant is None:
        tenant = await _insert_tenant(session, TenantCreate(name=tenant_name))
    ctx = TenantContext.system(tenant.id, tenant.name)
    admin = await session.scalar(
        select(PrincipalRow).where(
            PrincipalRow.tenant_id == tenant.id, PrincipalRow.is_platform_admin.is_(True)
        )
    )
    if admin is not None:
        return tenant, None
    principal = await create_principal(
        session,
        ctx,
        PrincipalCreate(name=admin_name, kind="user", role=Role.OWNER),
        is_platform_admin=True,
    )
    created = await create_api_key(
        session, ctx, ApiKeyCreate(name="initial admin key", principal_id=principal.id)
    )
    return tenant, created


async def create_platform_admin_key(
    session: AsyncSession, ctx: TenantContext, data: ApiKeyCreate
) -> ApiKeyCreated:
    """A new key of the tenant's platform-admin principal (made if it has none): how an
    operator, who holds the database, recovers from a lost admin key. Local CLI only."""
    admin = await session.scalar(
        select(PrincipalRow)
        .where(PrincipalRow.tenant_id == ctx.tenant_id, PrincipalRow.is_platform_admin.is_(True))
        .order_by(PrincipalRow.created_at, PrincipalRow.id)
        .limit(1)
    )
    if admin is None:
        principal_id = (
            await create_principal(
                session,
                ctx,
                PrincipalCreate(name="admin", kind="user", role=Role.OWNER),
                is_platform_admin=True,
            )
        ).id
    else:
        principal_id = admin.id
    return await create_api_key(
        session, ctx, data.model_copy(update={"principal_id": principal_id})
    )


# --- the service ----------------------------------------------------------------------------


class KeyCache(Protocol):
    """A cache of verified keys (the API's ``Authenticator``) that a revocation must reach."""

    def forget(self, api_key_id: str) -> None: ...


class TenancyService:
    """Tenants, principals and API keys: the service every adapter calls (REST, GraphQL, CLI,
    console). Each method is one short transaction over the query functions above; a key
    revoked here is dropped at once from the key caches of this runtime (``add_key_cache``;
    other processes: their cache TTL)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._key_caches: weakref.WeakSet[Any] = weakref.WeakSet()

    def add_key_cache(self, cache: KeyCache) -> None:
        """Let revocations made through this service drop keys from ``cache`` (kept while the
        cache lives: an app's authenticator)."""
        self._key_caches.add(cache)

    # tenants
    async def list_tenants(self, ctx: TenantContext, page: Page = ALL) -> list[TenantOut]:
        async with self.db.read_session() as s:
            return await list_tenants(s, ctx, page)

    async def create_tenant(self, ctx: TenantContext, data: TenantCreate) -> TenantOut:
        async with self.db.session() as s:
            return await create_tenant(s, ctx, data)

    async def get_tenant(self, ctx: TenantContext, tenant_id: str) -> TenantOut:
        async with self.db.read_session() as s:
            return await get_tenant(s, ctx, tenant_id)

    async def has_tenants(self) -> bool:
        async with self.db.read_session() as s:
            return await has_tenants(s)

    async def find_tenant(self, name: str) -> TenantOut | None:
        """The operator's lookup by name (the CLI's ``--tenant``)."""
        async with self.db.read_session() as s:
            return await find_tenant_by_name(s, name)

    async def bootstrap(
        self, tenant_name: str = "default", admin_name: str = "admin"
    ) -> tuple[TenantOut, ApiKeyCreated | None]:
        async with self.db.session() as s:
            return await bootstrap(s, tenant_name, admin_name)

    # principals
    async def list_principals(self, ctx: TenantContext, page: Page = ALL) -> list[PrincipalOut]:
        async with self.db.read_session() as s:
            return await list_principals(s, ctx, page)

    async def create_principal(self, ctx: TenantContext, data: PrincipalCreate) -> PrincipalOut:
        async with self.db.session() as s:
            return await create_principal(s, ctx, data)

    async def principal_names(self, ctx: TenantContext, ids: Iterable[str]) -> dict[str, str]:
        async with self.db.read_session() as s:
            return await principal_names(s, ctx, ids)

    # API keys
    async def list_api_keys(self, ctx: TenantContext, page: Page = ALL) -> list[ApiKeyOut]:
        async with self.db.read_session() as s:
            return await list_api_keys(s, ctx, page)

    async def create_api_key(self, ctx: TenantContext, data: ApiKeyCreate) -> ApiKeyCreated:
        async with self.db.session() as s:
            return await create_api_key(s, ctx, data)

    async def create_platform_admin_key(
        self, ctx: TenantContext, data: ApiKeyCreate
    ) -> ApiKeyCreated:
        async with self.db.session() as s:
            return await create_platform_admin_key(s, ctx, data)

    async def get_api_key(self, ctx: TenantContext, key_id: str) -> ApiKeyOut:
        async with self.db.read_session() as s:
            return await get_api_key(s, ctx, key_id)

    async def revoke_api_key(
        self, ctx: TenantContext, key_id: str, *, allow_last_owner: bool = False
    ) -> ApiKeyOut:
        async with self.db.session() as s:
            out = await revoke_api_key(s, ctx, key_id, allow_last_owner=allow_last_owner)
        for cache in list(self._key_caches):
            cache.forget(out.id)
        return out


SERVICE = "tenancy"


def tenancy_service(runtime: Runtime) -> TenancyService:
    """The runtime's tenancy service (stateless but for the key caches it reaches; built on
    first use, so every runtime has one without a domain to start)."""
    svc = runtime.services.get(SERVICE)
    if not isinstance(svc, TenancyService):
        svc = TenancyService(runtime.db)
        runtime.services[SERVICE] = svc
    return svc
