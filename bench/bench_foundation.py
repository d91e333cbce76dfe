"""Foundation: what one authenticated request costs, with and without the auth cache.

Measures ``GET /api/me`` through the full ASGI stack (middleware, auth, routing, JSON) in
process on the embedded SQLite database: with the in-process auth cache (default TTL) and
with the cache disabled (TTL 0: a database lookup per request), plus the bare ``/healthz`` as
the floor of the stack. Both deployments run side by side in one process and event loop, and
every side is timed in each round, the order rotating, so load on a shared
machine moves both sides of every ratio alike; the load average is recorded beside them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from _common import median_us, record
from opentelemetry.sdk.trace import TracerProvider

from gasworks.api.app import create_app
from gasworks.settings import Settings
from gasworks.tenancy import service
from gasworks.wiring import build_runtime

N = 300
ROUNDS = 9

Call = Callable[[], Awaitable[None]]


@contextlib.asynccontextmanager
async def _deployment(home: Path, ttl: float) -> AsyncIterator[tuple[Call, Call]]:
    """(``GET /api/me``, ``GET /healthz``) against a fresh deployment with this auth cache TTL."""
    settings = Settings(home=home, auth_cache_ttl_seconds=ttl, log_level="WARNING")
    rt = build_runtime(settings)
    await rt.start()
    try:
        async with rt.db.session() as s:
            _, created = await service.bootstrap(s, "bench")
        key = created.key if created else ""
        app = create_app(runtime=rt, tracer_provider=TracerProvider())
        headers = {"Authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:

            async def me() -> None:
                r = await c.get("/api/me", headers=headers)
                assert r.status_code == 200

            async def health() -> None:
                r = await c.get("/healthz")
                assert r.status_code == 200

            yield me, health
    finally:
        await rt.stop()


async def _rounds(sides: list[Call], n: int, rounds: int) -> tuple[list[Side], tuple[float, float]]:
    """Every side timed in each round (``n`` calls), the order rotating from round to round,
    so load on a shared machine moves every side alike; and the load average before/after."""
    for fn in sides:
        await fn()
    out = [Side([], []) for _ in sides]
    load0 = os.getloadavg()[0]
    for r in range(rounds):
        for i in [(r + k) % len(sides) for k in range(len(sides))]:
            c0, t0 = time.process_time(), time.perf_counter()
            for _ in range(n):
                await sides[i]()
            out[i].wall.append((time.perf_counter() - t0) / n)
            out[i].cpu.append((time.process_time() - c0) / n)
    return out, (load0, os.getloadavg()[0])


@dataclass
class Side:
    wall: list[float]
    cpu: list[float]

    def ratio_to(self, other: Side) -> float:
        return statistics.median(x / y for x, y in zip(self.wall, other.wall, strict=True))


async def _measure(a: Path, b: Path) -> str:
    async with _deployment(a, ttl=5.0) as (me, health), _deployment(b, ttl=0.0) as (me_nc, _):
        (hit, miss, floor), load = await _rounds([me, me_nc, health], n=N, rounds=ROUNDS)
    rows = "\n".join(
        f"| {case} | {median_us(side.wall):.0f} | {median_us(side.cpu):.0f} | "
        f"{side.ratio_to(hit):.2f}x |"
        for case, side in (
            ("`/healthz` (no auth, no database: the stack's floor)", floor),
            ("`/api/me`, auth cache hit (default, TTL 5 s)", hit),
            ("`/api/me`, cache disabled (a key lookup per request)", miss),
        )
    )
    saved = median_us(miss.wall) - median_us(hit.wall)
    return f"""
`GET /api/me` in process (httpx ASGI transport), SQLite. {ROUNDS} rounds of {N} requests per
side, every side in each round (the order rotating), in one process and event loop with the
two deployments side by side; µs are medians of the rounds, the ratio is the median of the
per-round ratios, CPU is this process's CPU time per request. Load average
{load[0]:.1f} → {load[1]:.1f} on {os.cpu_count()} cores.

| case | µs / request | CPU µs / request | ratio to the cache hit |
|---|---|---|---|
{rows}

The cache saves {saved:.0f} µs per authenticated request on the embedded
database (more on a PostgreSQL across a network); its price is that a key revoked in another
process keeps working for up to `GASWORKS_AUTH_CACHE_TTL_SECONDS`.
"""


def main() -> str:
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        body = asyncio.run(_measure(Path(a), Path(b)))
    return record("foundation", body)


if __name__ == "__main__":
    print(main())
