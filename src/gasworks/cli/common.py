"""Shared CLI plumbing: a started runtime and tenant lookup by name."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from gasworks.errors import NotFound

if TYPE_CHECKING:  # the server stack is imported by the commands that run, not by --help
    from gasworks.runtime import Runtime
    from gasworks.tenancy.context import TenantContext


@contextlib.asynccontextmanager
async def runtime() -> AsyncIterator[Runtime]:
    from gasworks.settings import Settings
    from gasworks.wiring import build_runtime

    rt = build_runtime(Settings(documents_run_workers=False))  # commands run no ingestion
    await rt.start()
    try:
        yield rt
    finally:
        await rt.stop()


async def tenant_context(rt: Runtime, tenant_name: str) -> TenantContext:
    """An operator context inside the named tenant (the CLI acts as the platform operator)."""
    from gasworks.tenancy import service
    from gasworks.tenancy.context import TenantContext

    async with rt.db.session() as s:
        tenant = await service.find_tenant_by_name(s, tenant_name)
    if tenant is None:
        raise NotFound(
            f"No tenant named '{tenant_name}'. List them with `gasworks tenants list`.",
            details={"tenant": tenant_name},
        )
    return TenantContext.system(tenant.id, tenant.name)
