"""Prompt resolution: cached and uncached, on the embedded default (SQLite) and PostgreSQL.

Targets (issue #5): cached resolve ≤ 5 µs median; uncached resolve on the embedded default
≤ 1 ms median. Anchor: Langfuse's published uncached prompt fetch, 37 ms median (a network
round trip to its API; gasworks resolves in-process against its own database). Also measured:
rendering a resolved prompt into messages, and how long a pointer move takes to reach another
process's cache through the invalidation table (poll interval 200 ms).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import median_us, per_call, per_call_async, record

LANGFUSE_UNCACHED_MS = 37.0
TENANT_MODEL = "demo"


async def _setup(url: str | None, home: Path) -> tuple[Any, Any, Any, str]:
    from gasworks.prompts.content import PromptContent
    from gasworks.prompts.schemas import MoveRequest, ScopeIn, VersionCreate
    from gasworks.prompts.service import PromptService
    from gasworks.settings import Settings
    from gasworks.tenancy import service as tenancy
    from gasworks.tenancy.context import TenantContext
    from gasworks.wiring import build_runtime

    settings = Settings(home=home, database_url=url, log_level="WARNING")
    rt = build_runtime(settings)
    await rt.start()
    async with rt.db.session() as s:
        tenant, _ = await tenancy.bootstrap(s, "default")
    ctx = TenantContext.system(tenant.id)
    svc = PromptService(rt)
    content = PromptContent(
        system="You are the support assistant of ${slots.company}. Be precise and kind. "
        "Context:\n${retrieve.output.text}",
        user="${inputs.user_prompt}",
        parameters={"temperature": 0.2, "max_tokens": 512},
    )
    v = await svc.create_version(ctx, VersionCreate(name="support", content=content))
    await svc.move(
        ctx,
        MoveRequest(
            scope=ScopeIn(model=TENANT_MODEL, workflow_id="wf"), version_id=v.id, expected_version=0
        ),
    )
    return rt, svc, ctx, v.id


async def _measure(url: str | None, home: Path) -> dict[str, float]:
    rt, svc, ctx, vid = await _setup(url, home)
    res = svc.resolver
    t = ctx.tenant_id
    try:
        r = await res.resolve(tenant_id=t, model=TENANT_MODEL, workflow_id="wf")
        assert r.version_id == vid, r

        async def cached() -> Any:
            return await res.resolve(tenant_id=t, model=TENANT_MODEL, workflow_id="wf")

        async def uncached() -> Any:
            res.cache.clear()
            return await res.resolve(tenant_id=t, model=TENANT_MODEL, workflow_id="wf")

        out = {
            "cached_us": median_us(await per_call_async(cached, n=20_000)),
            "uncached_us": median_us(await per_call_async(uncached, n=300)),
        }
        assert (await uncached()).source == "store"
        values = {
            "inputs": {"user_prompt": "Where is my order #1234?"},
            "slots": {"company": "Acme Bikes"},
            "retrieve": {"output": {"text": "Orders ship within 2 days. " * 20}},
        }
        resolved = await cached()
        out["render_us"] = median_us(per_call(lambda: resolved.format(values), n=20_000))
        out["propagation_ms"] = await _propagation(rt, svc, ctx)
        return out
    finally:
        await rt.stop()


async def _propagation(rt: Any, svc: Any, ctx: Any) -> float:
    """Median time from a committed move in one runtime to another runtime serving it."""
    from gasworks.prompts.schemas import MoveRequest, ScopeIn, VersionCreate
    from gasworks.prompts.service import PromptService
    from gasworks.wiring import build_runtime

    other_rt = build_runtime(rt.settings)
    other = PromptService(other_rt)
    other.resolver.start()
    scope = ScopeIn(model="prop-model")
    samples = []
    try:
        for i in range(8):
            v = await svc.create_version(
                ctx, VersionCreate(name="prop", content={"system": f"version {i}"})
            )
            await other.resolver.resolve(tenant_id=ctx.tenant_id, model="prop-model")
            await asyncio.sleep(0.25)  # let the observer's poller settle
            move = MoveRequest(scope=scope, version_id=v.id, expected_version=i)
            await svc.move(ctx, move)
            t0 = time.perf_counter()
            while True:
                r = await other.resolver.resolve(tenant_id=ctx.tenant_id, model="prop-model")
                if r.version_id == v.id:
                    break
                await asyncio.sleep(0.002)
            samples.append((time.perf_counter() - t0) * 1000)
    finally:
        await other.resolver.stop()
        await other_rt.db.dispose()
    return statistics.median(samples)


def _postgres_url(tmp: Path) -> tuple[str | None, Any]:
    url = os.environ.get("GASWORKS_BENCH_POSTGRES_URL")
    if url:
        return url, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        return None, None
    server = pgserver.get_server(tmp / "pg", cleanup_mode="stop")
    return server.get_uri(), server


def main() -> str:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        lite = asyncio.run(_measure(None, tmp / "sqlite-home"))
        pg_url, server = _postgres_url(tmp)
        pg = asyncio.run(_measure(pg_url, tmp / "pg-home")) if pg_url else None
        if server is not None:
            server.cleanup()

    def row(name: str, m: dict[str, float]) -> str:
        ratio = LANGFUSE_UNCACHED_MS * 1000 / m["uncached_us"]
        return (
            f"| {name} | {m['cached_us']:.2f} µs | {m['uncached_us']:.0f} µs | "
            f"{ratio:,.0f}x faster | {m['render_us']:.1f} µs | {m['propagation_ms']:.0f} ms |"
        )

    load = os.getloadavg()[0]
    lines = [
        f"1-minute load average at the end of the run: {load:.1f} on {os.cpu_count()} cores "
        "(the machine is shared; aiosqlite's thread hops suffer most from contention).",
        "",
        "Resolution of a tenant+workflow+model pointer (one indexed query joining pointer and "
        "version, SHA-256 verified, compiled), medians of 7 rounds.",
        "",
        "| database | cached resolve | uncached resolve | vs Langfuse uncached (37 ms) "
        "| render to messages | move seen by another process |",
        "|---|---|---|---|---|---|",
        row("SQLite (embedded default)", lite),
    ]
    if pg is not None:
        lines.append(row("PostgreSQL 16 (local, pgserver)", pg))
    lines += [
        "",
        f"Targets: cached ≤ 5 µs — {'met' if lite['cached_us'] <= 5 else 'NOT met'} "
        f"({lite['cached_us']:.2f} µs); uncached on the embedded default ≤ 1 ms — "
        f"{'met' if lite['uncached_us'] <= 1000 else 'NOT met'} ({lite['uncached_us']:.0f} µs).",
        "",
        "The Langfuse figure is its published median for an uncached prompt fetch over its API "
        "(network round trip included); gasworks resolves in-process against its own database, "
        "so the ratio compares deployment shapes as much as code. Propagation is bounded by "
        "GASWORKS_PROMPT_INVALIDATION_POLL_SECONDS (0.2 s) plus one query; the issue's bound is "
        "1 s.",
    ]
    return record("prompts", "\n".join(lines))


if __name__ == "__main__":
    print(main())
