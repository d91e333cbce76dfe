"""Documents: upload, the durable ingestion pipeline, collections and access, cascade delete.

The domain hooks into the runtime here (until ``gasworks.wiring`` lists domains as objects,
this is the one place that does).
"""

from __future__ import annotations

from gasworks.runtime import SHUTDOWN_HOOKS, STARTUP_HOOKS, Runtime


async def _startup(rt: Runtime) -> None:
    from gasworks.documents.domain import DocumentsDomain

    domain = DocumentsDomain()
    rt.services["documents.domain"] = domain
    await domain.start(rt)


async def _shutdown(rt: Runtime) -> None:
    domain = rt.services.pop("documents.domain", None)
    if domain is not None:
        await domain.stop(rt)


if _startup not in STARTUP_HOOKS:
    STARTUP_HOOKS.append(_startup)
    SHUTDOWN_HOOKS.append(_shutdown)
