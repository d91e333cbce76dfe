"""`gasworks init`, `gasworks tenants …`, `gasworks keys …`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from gasworks.cli.common import on_target, operator_only, runtime, tenant_context, where
from gasworks.cli.models import KeyOpt, OperatorServerOpt, ServerOpt
from gasworks.cli.output import JsonOpt, console, emit_json, esc, run, table
from gasworks.errors import BadRequest
from gasworks.tenancy.context import Role, TenantContext

if TYPE_CHECKING:  # imported where used: `gasworks --help` loads none of the server
    from gasworks.client import AsyncGasworks
    from gasworks.runtime import Runtime
    from gasworks.tenancy.schemas import ApiKeyCreated, ApiKeyOut, TenantOut


tenants_app = typer.Typer(rich_markup_mode=None, help="Manage tenants.", no_args_is_help=True)
keys_app = typer.Typer(rich_markup_mode=None, help="Manage API keys.", no_args_is_help=True)

KeyTenantOpt = Annotated[
    str | None,
    typer.Option(
        "--tenant", "-t", help="Tenant name (required locally; with --server: the key's tenant)."
    ),
]


async def _key_tenant(rt: Runtime, tenant: str | None) -> TenantContext:
    """The operator's context in ``--tenant`` (the local half of a `keys` command)."""
    if tenant is None:
        raise BadRequest(
            "Give --tenant: locally the CLI acts as the operator of every tenant "
            "(with --server the key's own tenant is used).",
            details={"option": "--tenant"},
        )
    return await tenant_context(rt, tenant)


def init(
    tenant: Annotated[str, typer.Option(help="Name of the first tenant.")] = "default",
    server: OperatorServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create the first tenant and a platform-admin key (idempotent)."""
    from gasworks.tenancy.service import tenancy_service

    operator_only(server, "init")

    async def body() -> tuple[TenantOut, ApiKeyCreated | None]:
        async with runtime(create=True) as rt:
            return await tenancy_service(rt).bootstrap(tenant)

    t, created = run(body, as_json)
    if as_json:
        emit_json(
            {
                "tenant": t,
                "created": created is not None,
                "key": created.key if created else None,
                "apiKey": created.api_key if created else None,
            }
        )
        return
    if created is None:
        console.print(f"Tenant [bold]{t.name}[/] already has an administrator; nothing to do.")
        console.print(
            f"Create another key with `gasworks keys create --tenant {t.name} --role admin`."
        )
        return
    console.print(f"Created tenant [bold]{t.name}[/] ({t.id}) and a platform-admin key:")
    console.print(f"\n  [bold green]{created.key}[/]\n")
    console.print("It is shown only once: store it now.")
    from gasworks.settings import Settings

    console.print(f"[dim]{esc(where(Settings()))}[/]", highlight=False)


@tenants_app.command("create")
def tenants_create(
    name: Annotated[str, typer.Argument(help="Lower-case slug.")],
    display_name: Annotated[str | None, typer.Option(help="Human-readable name.")] = None,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a tenant (with --server: a platform-admin key)."""
    from gasworks.tenancy.schemas import TenantCreate
    from gasworks.tenancy.schemas import TenantOut as Out
    from gasworks.validation import validated

    data = validated(TenantCreate, {"name": name, "display_name": display_name})

    async def local(rt: Runtime) -> TenantOut:
        from gasworks.tenancy.service import tenancy_service

        return await tenancy_service(rt).create_tenant(TenantContext.system("-"), data)

    async def remote(gw: AsyncGasworks) -> TenantOut:
        return Out.model_validate(await gw.create_tenant(data.name, data.display_name))

    async def body() -> TenantOut:
        return await on_target(server, api_key, local=local, remote=remote)

    t = run(body, as_json)
    if as_json:
        emit_json(t)
    else:
        console.print(f"Created tenant [bold]{t.name}[/] ({t.id}).")


@tenants_app.command("list")
def tenants_list(
    server: ServerOpt = None, api_key: KeyOpt = None, as_json: JsonOpt = False
) -> None:
    """List every tenant (with --server: those the key can see)."""
    from gasworks.tenancy.schemas import TenantOut as Out

    async def local(rt: Runtime) -> list[TenantOut]:
        from gasworks.tenancy.service import tenancy_service

        return await tenancy_service(rt).list_tenants(TenantContext.system("-"))

    async def remote(gw: AsyncGasworks) -> list[TenantOut]:
        return [Out.model_validate(t) for t in await gw.tenants()]

    async def body() -> list[TenantOut]:
        return await on_target(server, api_key, local=local, remote=remote)

    items = run(body, as_json)
    if as_json:
        emit_json(items)
    else:
        table(
            "Tenants",
            ["id", "name", "display name", "created"],
            [(t.id, t.name, t.display_name, t.created_at.isoformat()) for t in items],
        )


@keys_app.command("create")
def keys_create(
    tenant: KeyTenantOpt = None,
    role: Annotated[Role, typer.Option(help="Role of the key's service account.")] = Role.VIEWER,
    name: Annotated[str, typer.Option(help="A label for the key.")] = "cli key",
    expires_at: Annotated[
        datetime | None, typer.Option(help="Expiry (ISO 8601, UTC assumed).")
    ] = None,
    platform_admin: Annotated[
        bool,
        typer.Option(
            "--platform-admin",
            help="A key of the tenant's platform administrator (owner of every tenant): how "
            "the operator recovers a lost admin key (operator only: not with --server). "
            "Ignores --role.",
        ),
    ] = False,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API key; the key is printed once (with --server: in the key's tenant)."""
    from datetime import UTC

    from gasworks.tenancy.schemas import ApiKeyCreate
    from gasworks.tenancy.schemas import ApiKeyCreated as Out
    from gasworks.validation import validated

    if platform_admin:
        operator_only(server, "keys create --platform-admin")
    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    data = validated(ApiKeyCreate, {"name": name, "role": role, "expires_at": expires_at})

    async def local(rt: Runtime) -> ApiKeyCreated:
        from gasworks.tenancy.service import tenancy_service

        ctx = await _key_tenant(rt, tenant)
        if platform_admin:
            return await tenancy_service(rt).create_platform_admin_key(ctx, data)
        return await tenancy_service(rt).create_api_key(ctx, data)

    async def remote(gw: AsyncGasworks) -> ApiKeyCreated:
        expires = data.expires_at.isoformat() if data.expires_at else None
        return Out.model_validate(
            await gw.create_key(name=data.name, role=data.role.value, expires_at=expires)
        )

    async def body() -> ApiKeyCreated:
        return await on_target(server, api_key, local=local, remote=remote)

    created = run(body, as_json)
    if as_json:
        emit_json(created)
        return
    what = "platform-admin" if platform_admin else role.value
    console.print(
        f"Created key [bold]{created.api_key.id}[/] ({what}) for tenant "
        f"[bold]{esc(tenant or 'of --api-key')}[/]:"
    )
    console.print(f"\n  [bold green]{created.key}[/]\n")
    console.print("It is shown only once: store it now.")


@keys_app.command("list")
def keys_list(
    tenant: KeyTenantOpt = None,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List a tenant's API keys (never their secrets)."""
    from gasworks.tenancy.schemas import ApiKeyOut as Out

    async def local(rt: Runtime) -> list[ApiKeyOut]:
        from gasworks.tenancy.service import tenancy_service

        ctx = await _key_tenant(rt, tenant)
        return await tenancy_service(rt).list_api_keys(ctx)

    async def remote(gw: AsyncGasworks) -> list[ApiKeyOut]:
        return [Out.model_validate(k) for k in await gw.keys()]

    async def body() -> list[ApiKeyOut]:
        return await on_target(server, api_key, local=local, remote=remote)

    items = run(body, as_json)
    if as_json:
        emit_json(items)
        return
    table(
        f"API keys of {tenant or 'the tenant of --api-key'}",
        ["id", "name", "prefix", "created", "last used", "state"],
        [
            (
                k.id,
                k.name,
                k.prefix,
                k.created_at.isoformat(timespec="seconds"),
                k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else "never",
                "revoked" if k.revoked_at else "active",
            )
            for k in items
        ],
    )


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_…).")],
    tenant: KeyTenantOpt = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Also the tenant's last usable owner key (operator only: no --server)."
        ),
    ] = False,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke an API key (takes effect within the auth cache TTL everywhere)."""
    from gasworks.tenancy.schemas import ApiKeyOut as Out

    if force:
        operator_only(server, "keys revoke --force")

    async def local(rt: Runtime) -> ApiKeyOut:
        from gasworks.tenancy.service import tenancy_service

        ctx = await _key_tenant(rt, tenant)
        return await tenancy_service(rt).revoke_api_key(ctx, key_id, allow_last_owner=force)

    async def remote(gw: AsyncGasworks) -> ApiKeyOut:
        return Out.model_validate(await gw.revoke_key(key_id))

    async def body() -> ApiKeyOut:
        return await on_target(server, api_key, local=local, remote=remote)

    k = run(body, as_json)
    if as_json:
        emit_json(k)
    else:
        console.print(f"Revoked key [bold]{k.id}[/] at {k.revoked_at}.")
