"""Prompt resolution: cached and uncached, on the embedded default (SQLite) and PostgreSQL.

Targets (issues #5, #19): cached resolve ≤ 5 µs median; uncached resolve ≤ 250 µs on the
embedded default and ≤ 1 ms on PostgreSQL. The uncached headline is the cold path (cache
cleared before every call). Anchor measured in the same run, interleaved: the same resolver
reading through a transaction on the async engine (the read path before issue #19); the
Langfuse figure is quoted (its published network fetch), not measured. Also measured:
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

from _common import interleaved_async, median_us, per_call, per_call_async, record

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

        new_db = res.db
        old_db = _AsyncTransactionRead(new_db)

        async def uncached_before() -> Any:
            res.db = old_db
            try:
                return await uncached()
            finally:
                res.db = new_db

        cmp = await interleaved_async(uncached_before, uncached, n=200, rounds=9)
        out = {
            "cached_us": median_us(await per_call_async(cached, n=20_000)),
            "cached_cpu_us": await _cpu_per_call(cached, 20_000),
            "uncached_us": cmp.b_us,
            "uncached_cpu_us": cmp.b_cpu_us,
            "before_us": cmp.a_us,
            "before_cpu_us": cmp.a_cpu_us,
            "speedup": cmp.ratio,
            "load0": cmp.load[0],
            "load1": cmp.load[1],
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


async def _cpu_per_call(fn: Any, n: int, rounds: int = 7) -> float:
    """Median CPU µs per call of ``fn`` (this process) over ``rounds`` rounds of ``n``."""
    out = []
    for _ in range(rounds):
        c0 = time.process_time()
        for _ in range(n):
            await fn()
        out.append((time.process_time() - c0) / n)
    return statistics.median(out) * 1e6


class _AsyncTransactionRead:
    """The read path before issue #19, for the same-run anchor: a read-only transaction on
    the async engine (aiosqlite's thread hand-offs; BEGIN, SELECT, ROLLBACK on asyncpg, with
    the pool's pre-ping and reset on return)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    async def read_first(self, statement: Any, params: Any) -> Any:
        async with self.db.read_connection() as conn:
            return (await conn.execute(statement, params)).first()


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
        try:
            pg = asyncio.run(_measure(pg_url, tmp / "pg-home")) if pg_url else None
        finally:
            if server is not None:
                server.cleanup()  # the server this benchmark started is stopped

    def row(name: str, m: dict[str, float]) -> str:
        return (
            f"| {name} | {m['uncached_us']:.0f} µs ({m['uncached_cpu_us']:.0f} µs CPU) | "
            f"{m['before_us']:.0f} µs ({m['before_cpu_us']:.0f} µs CPU) | "
            f"{m['speedup']:.1f}x | {m['load0']:.1f} → {m['load1']:.1f} | "
            f"{m['cached_us']:.2f} µs ({m['cached_cpu_us']:.2f} µs CPU; cache hit) | "
            f"{m['render_us']:.1f} µs | "
            f"{m['propagation_ms']:.0f} ms |"
        )

    def verdict(m: dict[str, float], target: float, server: bool = False) -> str:
        wall, cpu = m["uncached_us"], m["uncached_cpu_us"]
        if wall <= target:
            return f"met ({wall:.0f} µs wall, {cpu:.0f} µs CPU)"
        if cpu <= target and server:
            return (
                f"not shown: this process's CPU is {cpu:.0f} µs, but the server's CPU is not "
                f"in it and the wall time ({wall:.0f} µs) is load-bound (load "
                f"{m['load0']:.1f} on {os.cpu_count()} cores)"
            )
        if cpu <= target:
            return (
                f"met in CPU ({cpu:.0f} µs), wall {wall:.0f} µs is load-bound "
                f"(load {m['load0']:.1f} on {os.cpu_count()} cores: waiting for a core)"
            )
        return f"NOT met ({wall:.0f} µs wall, {cpu:.0f} µs CPU)"

    if lite["cached_us"] <= 5:
        cached_verdict = f"met ({lite['cached_us']:.2f} µs)"
    elif lite["cached_cpu_us"] <= 5:
        cached_verdict = (
            f"met in CPU ({lite['cached_cpu_us']:.2f} µs), wall {lite['cached_us']:.2f} µs "
            "is load-bound"
        )
    else:
        cached_verdict = f"NOT met ({lite['cached_us']:.2f} µs, {lite['cached_cpu_us']:.2f} µs CPU)"
    lines = [
        f"The machine is shared with other work ({os.cpu_count()} cores); the load average "
        "is given beside each row. Uncached rows are interleaved: 9 alternating rounds of 200 "
        "cold resolutions through each read path in one process; the ratio is the median of "
        "the per-round ratios (of wall time). CPU is this process's CPU time per call (all "
        "its threads; on PostgreSQL the server's CPU is not in it): under load the wall time "
        "also holds the time spent waiting for a core, so where the load average is above the "
        "core count the CPU figure is the one that says what a resolution costs.",
        "",
        "Resolution of a tenant+workflow+model pointer (one indexed query joining pointer and "
        "version, SHA-256 verified, compiled).",
        "",
        "| database | uncached resolve (headline, cold) | before #19 (async transaction, same "
        "run) | speed-up (median per round) | load average | cached resolve | render to "
        "messages | move seen by another process |",
        "|---|---|---|---|---|---|---|---|",
        row("SQLite (embedded default)", lite),
    ]
    if pg is not None:
        lines.append(row("PostgreSQL 16 (local, pgserver)", pg))
    lines += [
        "",
        f"Targets: uncached ≤ 250 µs on SQLite — {verdict(lite, 250)}; ≤ 1 ms on PostgreSQL — "
        + (verdict(pg, 1000, server=True) if pg is not None else "not measured")
        + f"; cached ≤ 5 µs — {cached_verdict} (a cache hit: not a speed claim about the "
        "store).",
        "",
        f"Quoted, not measured: Langfuse's published median for an uncached prompt fetch over "
        f"its API is {LANGFUSE_UNCACHED_MS:.0f} ms (a network round trip); gasworks resolves "
        "in-process against its own database, so the two are different deployment shapes and "
        "no ratio is claimed. Propagation is bounded by GASWORKS_PROMPT_INVALIDATION_POLL_SECONDS "
        "(0.2 s) plus one query; the issue's bound is 1 s.",
    ]
    return record("prompts", "\n".join(lines))


if __name__ == "__main__":
    print(main())
