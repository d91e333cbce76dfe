"""Code run in child processes by the concurrency tests (importable, no pytest)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any


def _service(db_url: str, home: str) -> Any:
    from gasworks.prompts.service import PromptService
    from gasworks.settings import Settings
    from gasworks.wiring import build_runtime

    rt = build_runtime(Settings(home=Path(home), database_url=db_url))
    return rt, PromptService(rt)


def mover(
    db_url: str, home: str, tenant_id: str, version_ids: list[str], barrier: Any, out: Any
) -> None:
    """Race ``len(version_ids)`` concurrent moves, all expecting pointer version 1."""
    from gasworks.errors import GasworksError
    from gasworks.prompts.schemas import MoveRequest, ScopeIn
    from gasworks.tenancy.context import TenantContext

    async def main() -> list[Any]:
        rt, svc = _service(db_url, home)
        ctx = TenantContext.system(tenant_id)
        scope = ScopeIn(model="gpt-4o")
        # open the connections first, so the race is on the moves, not on connecting
        await asyncio.gather(*(rt.db.ping() for _ in version_ids))
        await asyncio.to_thread(barrier.wait)

        async def one(vid: str) -> Any:
            try:
                p = await svc.move(
                    ctx, MoveRequest(scope=scope, version_id=vid, expected_version=1)
                )
                return ["ok", p.active_version_id, p.version]
            except GasworksError as exc:
                return ["error", exc.code, exc.status]

        try:
            return list(await asyncio.gather(*(one(v) for v in version_ids)))
        finally:
            await rt.db.dispose()

    out.put(asyncio.run(main()))


def observer(db_url: str, home: str, tenant_id: str, conn: Any) -> None:
    """Resolve continuously; report when the resolved version changes, with the time seen."""

    async def main() -> None:
        rt, svc = _service(db_url, home)
        svc.resolver.start()
        try:
            first = await svc.resolver.resolve(tenant_id=tenant_id, model="gpt-4o")
            while svc.resolver._last_seq is None:
                await asyncio.sleep(0.01)
            # the first poll empties the cache (entries from before it are not trusted)
            await svc.resolver.resolve(tenant_id=tenant_id, model="gpt-4o")
            again = await svc.resolver.resolve(tenant_id=tenant_id, model="gpt-4o")
            conn.send(["ready", first.version_id, again.source])
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                r = await svc.resolver.resolve(tenant_id=tenant_id, model="gpt-4o")
                if r.version_id != first.version_id:
                    conn.send(["changed", r.version_id, time.time()])
                    return
                await asyncio.sleep(0.005)
            conn.send(["timeout", None, time.time()])
        finally:
            await svc.resolver.stop()
            await rt.db.dispose()

    asyncio.run(main())
