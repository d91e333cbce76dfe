"""`gasworks init`, `gasworks tenants …`, `gasworks keys …`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from gasworks.cli.common import runtime, tenant_context, where
from gasworks.cli.output import JsonOpt, console, emit_json, esc, run, table

if TYPE_CHECKING:  # imported where used: `gasworks --help` loads none of the server
    from gasworks.tenancy.schemas import ApiKeyCreated, ApiKeyOut, TenantOut

from gasworks.tenancy.context import Role, TenantContext

if TYPE_CHECKING:  # imported where used: `gasworks --help` loads none of the server
    pass


tenants_app = typer.Typer(rich_markup_mode=None, help="Manage tenants.", no_args_is_help=True)
keys_app = typer.Typer(rich_markup_mode=None, help="Manage API keys.", no_args_is_help=True)

TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="Tenant name.")]


def init(
    tenant: Annotated[str, typer.Option(help="Name of the first tenant.")] = "default",
    as_json: JsonOpt = False,
) -> None:
    """Create the first tenant and a platform-admin key (idempotent)."""
    from gasworks.tenancy import service

    async def body() -> tuple[TenantOut, ApiKeyCreated | None]:
        async with runtime(create=True) as rt, rt.db.session() as s:
            return await service.bootstrap(s, tenant)

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
    as_json: JsonOpt = False,
) -> None:
    """Create a tenant."""
    from gasworks.tenancy import service
    from gasworks.tenancy.schemas import TenantCreate
    from gasworks.validation import validated

    async def body() -> TenantOut:
        data = validated(TenantCreate, {"name": name, "display_name": display_name})
        async with runtime() as rt, rt.db.session() as s:
            return await service.create_tenant(s, TenantContext.system("-"), data)

    t = run(body, as_json)
    if as_json:
        emit_json(t)
    else:
        console.print(f"Created tenant [bold]{t.name}[/] ({t.id}).")


@tenants_app.command("list")
def tenants_list(as_json: JsonOpt = False) -> None:
    """List every tenant."""
    from gasworks.tenancy import service

    async def body() -> list[TenantOut]:
        async with runtime() as rt, rt.db.session() as s:
            return await service.list_tenants(s, TenantContext.system("-"))

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
    tenant: TenantOpt,
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
            "the operator recovers a lost admin key. Ignores --role.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create an API key; the key is printed once."""
    from datetime import UTC

    from gasworks.tenancy import service
    from gasworks.tenancy.schemas import ApiKeyCreate
    from gasworks.validation import validated

    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)

    async def body() -> ApiKeyCreated:
        async with runtime() as rt:
            ctx = await tenant_context(rt, tenant)
            async with rt.db.session() as s:
                data = validated(
                    ApiKeyCreate, {"name": name, "role": role, "expires_at": expires_at}
                )
                if platform_admin:
                    return await service.create_platform_admin_key(s, ctx, data)
                return await service.create_api_key(s, ctx, data)

    created = run(body, as_json)
    if as_json:
        emit_json(created)
        return
    what = "platform-admin" if platform_admin else role.value
    console.print(
        f"Created key [bold]{created.api_key.id}[/] ({what}) for tenant [bold]{tenant}[/]:"
    )
    console.print(f"\n  [bold green]{created.key}[/]\n")
    console.print("It is shown only once: store it now.")


@keys_app.command("list")
def keys_list(tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """List a tenant's API keys (never their secrets)."""
    from gasworks.tenancy import service

    async def body() -> list[ApiKeyOut]:
        async with runtime() as rt:
            ctx = await tenant_context(rt, tenant)
            async with rt.db.session() as s:
                return await service.list_api_keys(s, ctx)

    items = run(body, as_json)
    if as_json:
        emit_json(items)
        return
    table(
        f"API keys of {tenant}",
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
    tenant: TenantOpt,
    force: Annotated[
        bool, typer.Option("--force", help="Also the tenant's last usable owner key.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Revoke an API key (takes effect within the auth cache TTL everywhere)."""
    from gasworks.tenancy import service

    async def body() -> ApiKeyOut:
        async with runtime() as rt:
            ctx = await tenant_context(rt, tenant)
            async with rt.db.session() as s:
                return await service.revoke_api_key(s, ctx, key_id, allow_last_owner=force)

    k = run(body, as_json)
    if as_json:
        emit_json(k)
    else:
        console.print(f"Revoked key [bold]{k.id}[/] at {k.revoked_at}.")
