"""HTTP load generator for ``bench_gateway.py``, run as its own process.

``python bench/_loadgen.py '<json spec>'`` prints one JSON line: the per-request samples
(seconds: the whole answer, or the time to the first content token of a stream), the
throughput, the mean number of requests in flight and the transport errors. Spec keys: url,
headers, model, stream, total, warmup, and either ``concurrency`` (closed loop: that many
clients, each sending its next request when the previous one is complete) or ``rate``
(open loop: requests arrive at that mean rate, Poisson, on a fixed seed, whatever the
answers' speed; ``concurrency`` then only sizes the connection pool).

Paired mode (``targets``: a list of {url, headers, model} instead of url/headers/model): each
client sends one request to every target per turn, in an order that rotates from turn to
turn (with ``rate``: each arrival sends to every target at once), and the output has
``pairs``: per target, its samples in turn order, so that ``pairs[k][i] - pairs[0][i]`` is the
added latency of one request pair made under the same conditions (the quantiles of those
differences are the added latency's quantiles, not differences of quantiles).

Its own process so that its CPU is not counted as the gateway's, and aiohttp (on uvloop)
rather than httpx because it costs about a quarter of the CPU per request: on a 2-core
machine every cycle the load generator spends is taken from the gateway or the upstream.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from typing import Any

import aiohttp
import uvloop

#: every request's user message is new (a per-process tag and a counter), as in real traffic:
#: a server that caches token counts or anything else by the text must not be timed on a
#: cache hit (issue #19, "cache hits are not speed")
_TAG = f"{random.getrandbits(32):08x}"
_SENT = iter(range(1 << 62))


def prompt() -> list[dict[str, str]]:
    """A short user message seen once: ``Hello, how are you today? (<tag>-<n>)``."""
    return [{"role": "user", "content": f"Hello, how are you today? ({_TAG}-{next(_SENT)})"}]


async def _one(session: aiohttp.ClientSession, spec: dict[str, Any]) -> tuple[float, float]:
    """(the sample, the whole request's duration) in seconds."""
    body = json.dumps({"model": spec["model"], "messages": prompt(), "stream": spec["stream"]})
    t0 = time.perf_counter()
    async with session.post(spec["url"], data=body, headers=spec["headers"]) as r:
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {(await r.read())[:300]!r}")
        if not spec["stream"]:
            await r.read()
            took = time.perf_counter() - t0
            return took, took
        ttft: float | None = None
        async for line in r.content:
            if ttft is None and line.startswith(b"data: {"):
                choices = json.loads(line[6:]).get("choices") or [{}]
                if (choices[0].get("delta") or {}).get("content"):
                    ttft = time.perf_counter() - t0
    if ttft is None:
        raise RuntimeError("stream without content")
    return ttft, time.perf_counter() - t0


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    conc = spec["concurrency"]
    connector = aiohttp.TCPConnector(limit=conc + 5)
    headers = {"Content-Type": "application/json", **spec["headers"]}
    spec = {**spec, "headers": headers}
    timeout = aiohttp.ClientTimeout(total=120)
    samples: list[float] = []
    busy = 0.0  # summed request durations: / elapsed = mean requests in flight
    errors = 0

    async def one() -> None:
        nonlocal busy, errors
        try:
            sample, took = await _one(session, spec)
        except aiohttp.ClientError:
            errors += 1
            return
        samples.append(sample)
        busy += took

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # open every connection of the pool, then warm the caches behind them
        await asyncio.gather(*(_one(session, spec) for _ in range(min(conc, 50))))
        for _ in range(spec.get("warmup", 20)):
            await _one(session, spec)
        t0 = time.perf_counter()
        if "rate" in spec:
            rng = random.Random(7)
            tasks = []
            at = t0
            for _ in range(spec["total"]):
                at += rng.expovariate(spec["rate"])
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
                tasks.append(asyncio.create_task(one()))
            await asyncio.gather(*tasks)
        else:

            async def worker() -> None:
                for _ in range(spec["total"] // conc):
                    await one()

            await asyncio.gather(*(worker() for _ in range(conc)))
        elapsed = time.perf_counter() - t0
    return {
        "samples": samples,
        "rps": len(samples) / elapsed,
        "in_flight": busy / elapsed,
        "errors": errors,
    }


async def run_pairs(spec: dict[str, Any]) -> dict[str, Any]:
    conc = spec["concurrency"]
    targets = [
        {
            **spec,
            "url": t["url"],
            "model": t["model"],
            "headers": {"Content-Type": "application/json", **t["headers"]},
        }
        for t in spec["targets"]
    ]
    k = len(targets)
    connector = aiohttp.TCPConnector(limit=(conc + 5) * k)
    timeout = aiohttp.ClientTimeout(total=120)
    turns: list[list[float]] = []
    errors = 0

    async def turn(n: int, together: bool) -> None:
        nonlocal errors
        order = [(n + j) % k for j in range(k)]
        got = [0.0] * k
        try:
            if together:
                res = await asyncio.gather(*(_one(session, targets[j]) for j in order))
                for j, (sample, _took) in zip(order, res, strict=True):
                    got[j] = sample
            else:
                for j in order:
                    got[j] = (await _one(session, targets[j]))[0]
        except aiohttp.ClientError:
            errors += 1
            return
        turns.append(got)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for t in targets:  # open the pools, warm the caches behind them
            await asyncio.gather(*(_one(session, t) for _ in range(min(conc, 50))))
            for _ in range(spec.get("warmup", 20)):
                await _one(session, t)
        t0 = time.perf_counter()
        if "rate" in spec:
            rng = random.Random(7)
            tasks = []
            at = t0
            for n in range(spec["total"]):
                at += rng.expovariate(spec["rate"])
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
                tasks.append(asyncio.create_task(turn(n, True)))
            await asyncio.gather(*tasks)
        else:

            async def worker(w: int) -> None:
                for i in range(spec["total"] // conc):
                    await turn(w + i * conc, False)

            await asyncio.gather(*(worker(w) for w in range(conc)))
    return {"pairs": [[t[j] for t in turns] for j in range(k)], "errors": errors}


if __name__ == "__main__":
    _spec = json.loads(sys.argv[1])
    _out = json.dumps(uvloop.run(run_pairs(_spec) if "targets" in _spec else run(_spec)))
    if "out" in _spec:  # a file: hundreds of KB of samples are not trusted to a pipe
        with open(_spec["out"], "w") as f:
            f.write(_out)
    else:
        print(_out)
