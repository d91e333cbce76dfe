"""Burst load generator for ``bench_gateway.py burst``, run as its own process.

``python bench/_burstgen.py '<json spec>'`` prints one JSON line. Spec keys: ``targets`` (a list
of {url, headers, model, pid}: a server's chat URL, its auth, the model, the server's pid),
``upstream_stats`` (the fake upstream's ``/stats`` URL), ``burst`` (requests sent at once),
``idle`` (seconds), ``rounds``.

Each round, for every target in an order that rotates from round to round: a warm-up burst
(not measured: it opens the connections), then a *back-to-back* burst right after it, then
``idle`` seconds of nothing, then an *after idle* burst. A burst is ``burst`` requests sent at
once on one long-lived client session; the session keeps idle connections for 60 s, longer
than the idle, so a connection the client opens anew is one the server (or something
between) closed. Per burst: its wall time, the server's CPU over the burst (the sum of its
threads' on-CPU nanoseconds from ``/proc/<pid>/task/*/schedstat``: the idle seconds before it
are not counted, and the figure does not have the 10 ms grain of ``/proc/<pid>/stat``), the
connections this client opened to the server during the burst (aiohttp's connection-create
trace), and the connections the server opened to the upstream (the fake's count of client
ports it saw during the burst).

Its own process so that its CPU is not counted as the server's; one process for all the
targets so that their rounds interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from typing import Any

import aiohttp
import uvloop
from _loadgen import prompt  # a never-seen user message per request (no timed cache hits)


def _cpu_ns(pid: int) -> int:
    """On-CPU nanoseconds of every thread of ``pid`` so far."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            continue
    return total


async def _burst(
    session: aiohttp.ClientSession,
    stats: aiohttp.ClientSession,
    target: dict[str, Any],
    spec: dict[str, Any],
    opened: list[int],
) -> dict[str, float]:
    headers = {"Content-Type": "application/json", **target["headers"]}
    errors = 0

    async def one() -> None:
        nonlocal errors
        body = json.dumps({"model": target["model"], "messages": prompt()})
        try:
            async with session.post(target["url"], data=body, headers=headers) as r:
                await r.read()
                if r.status != 200:
                    errors += 1
        except aiohttp.ClientError:
            errors += 1

    async with stats.post(spec["upstream_stats"] + "?reset=1") as r:
        await r.read()
    opened[0] = 0
    cpu0, t0 = _cpu_ns(target["pid"]), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(spec["burst"])))
    elapsed = time.perf_counter() - t0
    cpu = (_cpu_ns(target["pid"]) - cpu0) / 1e9
    async with stats.get(spec["upstream_stats"]) as r:
        upstream = int(await r.text())
    n = spec["burst"]
    return {
        "rps": n / elapsed,
        "cpu_ms": cpu / n * 1000,
        "client_conns": opened[0],
        "upstream_conns": upstream,
        "errors": errors,
        "load": os.getloadavg()[0],
    }


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    targets = spec["targets"]
    k = len(targets)
    opened = [0]

    async def on_create(*_args: Any) -> None:
        opened[0] += 1

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(on_create)
    out: list[list[dict[str, Any]]] = [[] for _ in targets]
    timeout = aiohttp.ClientTimeout(total=120)
    async with contextlib.AsyncExitStack() as stack:
        # one session per target (each its own pool, idle connections kept 60 s), and one
        # (not traced) for the upstream's /stats
        sessions = [
            await stack.enter_async_context(
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=spec["burst"] + 5, keepalive_timeout=60),
                    timeout=timeout,
                    trace_configs=[trace],
                )
            )
            for _ in targets
        ]
        stats = await stack.enter_async_context(aiohttp.ClientSession(timeout=timeout))
        for r in range(spec["rounds"]):
            for j in [(r + i) % k for i in range(k)]:
                session, target = sessions[j], targets[j]
                await _burst(session, stats, target, spec, opened)  # warm-up: opens the pools
                hot = await _burst(session, stats, target, spec, opened)
                await asyncio.sleep(spec["idle"])
                cold = await _burst(session, stats, target, spec, opened)
                out[j].append({"round": r, "back_to_back": hot, "after_idle": cold})
    return {"rounds": out}


if __name__ == "__main__":
    print(json.dumps(uvloop.run(run(json.loads(sys.argv[1])))))
