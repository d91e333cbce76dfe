"""Mixed-load generator for ``bench_scaleout.py``, run as its own process.

``python bench/_soakgen.py '<json spec>'`` prints one JSON line: per kind of request the
latencies (seconds) and the errors by HTTP status, the throughput and the elapsed time.
Spec keys: bases (API base URLs, used round-robin: the load balancer), headers, total,
concurrency (closed loop), seed, mix ({kind: weight}).

Kinds: ``chat`` (POST /v1/chat/completions), ``stream`` (the same, streamed, to its last
byte), ``resolve`` (POST /api/prompts/resolve), ``run`` (POST /api/workflows/demo-chatbot/runs,
not streamed), ``search`` (POST /api/search, keyword mode) and ``upload`` (one small text
document, POST /api/documents; ingestion happens in the worker process, not timed here).
aiohttp on uvloop, as ``_loadgen.py``, for the same reason: on two cores every cycle the
generator spends is taken from the processes under test.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import sys
import time
from typing import Any

import aiohttp
import uvloop
from _loadgen import prompt  # a never-seen user message per request (no timed cache hits)


async def _one(
    session: aiohttp.ClientSession, base: str, kind: str, headers: dict[str, str], n: int
) -> int:
    """Send one request of ``kind``; its HTTP status."""
    if kind in ("chat", "stream"):
        body = {"model": "upstream", "messages": prompt(), "stream": kind == "stream"}
        async with session.post(f"{base}/v1/chat/completions", json=body, headers=headers) as r:
            await r.read()
            return r.status
    if kind == "resolve":
        body = {"model": "upstream", "workflowId": "soak"}
        async with session.post(f"{base}/api/prompts/resolve", json=body, headers=headers) as r:
            await r.read()
            return r.status
    if kind == "run":
        body = {"input": {"message": "hello"}, "stream": False}
        url = f"{base}/api/workflows/demo-chatbot/runs"
        async with session.post(url, json=body, headers=headers) as r:
            await r.read()
            return r.status
    if kind == "search":
        body = {"query": "gas works pressure", "mode": "keyword", "k": 5}
        async with session.post(f"{base}/api/search", json=body, headers=headers) as r:
            await r.read()
            return r.status
    if kind == "upload":
        form = aiohttp.FormData()
        text = f"soak document {n}\n\nabout gas works and their pressure {n}"
        form.add_field("files", text.encode(), filename=f"soak{n}.txt", content_type="text/plain")
        async with session.post(f"{base}/api/documents", data=form, headers=headers) as r:
            await r.read()
            return r.status
    raise ValueError(kind)


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    conc = int(spec["concurrency"])
    total = int(spec["total"])
    headers = dict(spec["headers"])
    kinds = list(spec["mix"])
    weights = [float(spec["mix"][k]) for k in kinds]
    rng = random.Random(spec.get("seed", 7))
    plan = rng.choices(kinds, weights, k=total)  # the same sequence for every configuration
    bases = itertools.cycle(spec["bases"])
    latencies: dict[str, list[float]] = {k: [] for k in kinds}
    errors: dict[str, dict[str, int]] = {k: {} for k in kinds}
    counter = itertools.count()
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=conc + 5)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for kind in kinds:  # warm every path once on every base
            for base in spec["bases"]:
                await _one(session, base, kind, headers, -1)

        async def worker() -> None:
            while True:
                i = next(counter)
                if i >= total:
                    return
                kind = plan[i]
                t0 = time.perf_counter()
                try:
                    status = await _one(session, next(bases), kind, headers, i)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status = type(exc).__name__  # type: ignore[assignment]
                took = time.perf_counter() - t0
                if status in (200, 201):
                    latencies[kind].append(took)
                else:
                    errors[kind][str(status)] = errors[kind].get(str(status), 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        elapsed = time.perf_counter() - t0
    served = sum(len(v) for v in latencies.values())
    return {
        "latencies": latencies,
        "errors": errors,
        "rps": served / elapsed,
        "elapsed": elapsed,
    }


if __name__ == "__main__":
    print(json.dumps(uvloop.run(run(json.loads(sys.argv[1])))))
