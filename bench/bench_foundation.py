"""Foundation: what one authenticated request costs, with and without the auth cache.

Measures ``GET /api/me`` through the full ASGI stack (middleware, auth, routing, JSON) in
process on the embedded SQLite database: once with the in-process auth cache (default TTL)
and once with the cache disabled (TTL 0: a database lookup per request), plus the bare
``/healthz`` as the floor of the stack.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import httpx
from _common import median_us, per_call_async, record
from opentelemetry.sdk.trace import TracerProvider

from gasworks.api.app import create_app
from gasworks.settings import Settings
from gasworks.tenancy import service
from gasworks.wiring import build_runtime

N = 300


async def _measure(home: Path, ttl: float) -> tuple[float, float]:
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
                await c.get("/healthz")

            return (
                median_us(await per_call_async(me, n=N)),
                median_us(await per_call_async(health, n=N)),
            )
    finally:
        await rt.stop()


def main() -> str:
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        cached, floor = asyncio.run(_measure(Path(a), ttl=5.0))
        uncached, _ = asyncio.run(_measure(Path(b), ttl=0.0))
    body = f"""
`GET /api/me` in process (httpx ASGI transport), SQLite, median of 7 rounds x {N} requests.

| case | µs / request | ratio |
|---|---|---|
| `/healthz` (no auth, no database: the stack's floor) | {floor:.0f} | {floor / cached:.2f}x |
| `/api/me`, auth cache hit (default, TTL 5 s) | {cached:.0f} | 1.00x |
| `/api/me`, cache disabled (a key lookup per request) | {uncached:.0f} | {uncached / cached:.2f}x |

The cache saves {uncached - cached:.0f} µs per authenticated request on the embedded database
(more on a PostgreSQL across a network); its price is that a key revoked in another process
keeps working for up to `GASWORKS_AUTH_CACHE_TTL_SECONDS`.
"""
    return record("foundation", body)


if __name__ == "__main__":
    print(main())
