"""Shared CLI plumbing: a started runtime, tenant lookup by name, local-or-remote dispatch."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from gasworks.errors import NotFound, NotInitialized, OperatorOnly

if TYPE_CHECKING:  # the server stack is imported by the commands that run, not by --help
    from gasworks.client import AsyncGasworks
    from gasworks.runtime import Runtime
    from gasworks.settings import Settings
    from gasworks.tenancy.context import TenantContext

T = TypeVar("T")


def where(settings: Settings) -> str:
    """The home and database a command uses, as a user would look for them."""
    from gasworks.settings import redact_url

    return (
        f"home {settings.home.resolve()} (GASWORKS_HOME), "
        f"database {redact_url(settings.resolved_database_url)}"
    )


def require_database(settings: Settings) -> None:
    """Commands other than ``init``, ``serve`` and ``db upgrade`` never create a database: an
    embedded SQLite file that does not exist means the wrong folder or GASWORKS_HOME."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    if not Path(url.database).exists():
        raise NotInitialized(
            f"No gasworks database here ({where(settings)}). Run `gasworks init` to create "
            "one, or point GASWORKS_HOME / GASWORKS_DATABASE_URL at the one you initialised "
            "(a relative GASWORKS_HOME is relative to the current folder).",
            details={"home": str(settings.home.resolve()), "database": url.database},
        )


@contextlib.asynccontextmanager
async def runtime(*, create: bool = False) -> AsyncIterator[Runtime]:
    """A started runtime on the configured database; ``create``: may create it (``init``)."""
    from gasworks.settings import Settings
    from gasworks.wiring import build_runtime

    settings = Settings(documents_run_workers=False)  # commands run no ingestion workers
    if not create:
        require_database(settings)
    rt = build_runtime(settings)
    await rt.start()
    try:
        yield rt
    finally:
        await rt.stop()


async def tenant_context(rt: Runtime, tenant_name: str) -> TenantContext:
    """An operator context inside the named tenant (the CLI acts as the platform operator)."""
    from gasworks.tenancy.context import TenantContext
    from gasworks.tenancy.service import tenancy_service

    tenant = await tenancy_service(rt).find_tenant(tenant_name)
    if tenant is None:
        raise NotFound(
            f"No tenant named '{tenant_name}'. List them with `gasworks tenants list`.",
            details={"tenant": tenant_name},
        )
    return TenantContext.system(tenant.id, tenant.name)


async def on_target(
    server: str | None,
    api_key: str | None,
    *,
    local: Callable[[Runtime], Awaitable[T]],
    remote: Callable[[AsyncGasworks], Awaitable[T]],
) -> T:
    """The one place a command's target is decided: with ``--server`` (``GASWORKS_URL``) it acts
    on that server through the SDK as the key's tenant, otherwise on the local database as the
    operator. A command gives both halves; neither half tests for the other."""
    if server:
        from gasworks.client import AsyncGasworks

        async with AsyncGasworks(server, api_key) as gw:
            return await remote(gw)
    async with runtime() as rt:
        return await local(rt)


def operator_only(server: str | None, command: str) -> None:
    """Refuse ``--server`` on a command that needs the operator's database."""
    if server:
        raise OperatorOnly(
            f"`gasworks {command}` is an operator command: it acts on the local database and "
            "cannot go through --server / GASWORKS_URL. Run it where the database is, without "
            "--server (unset GASWORKS_URL).",
            details={"command": command, "server": server},
        )


async def now(value: T) -> T:
    """``value`` as an awaitable: a local half whose answer needs no I/O (the registry)."""
    return value
