"""Gateway overhead: in-process call vs LiteLLM, and HTTP added latency / TTFT.

1. In-process: ``Gateway.chat`` on the demo model (registry lookup, capability check,
   provider call, usage accounting with Decimal cost, metrics) against
   ``litellm.completion(mock_response=...)`` — LiteLLM's own no-network path — in the same run.
2. HTTP: ``POST /v1/chat/completions`` of a gasworks server (its own process) in front of a
   fake OpenAI upstream (its own process), against calling that upstream directly, at 1 and
   50 concurrent requests: added median latency (non-streaming) and added median
   time-to-first-token (streaming).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _common import median_us, per_call, per_call_async, record

PROMPT = [{"role": "user", "content": "Hello, how are you today?"}]


# --- 1. in-process ---------------------------------------------------------------------------


def bench_in_process() -> tuple[float, float, float | None]:
    from gasworks.llm.runtime import build_services
    from gasworks.llm.types import CallScope, ChatRequest, Message
    from gasworks.settings import Settings

    gateway = build_services(Settings(home=Path(tempfile.mkdtemp()))).gateway
    scope = CallScope(tenant_id="bench")
    req = ChatRequest(model="demo", messages=[Message("user", PROMPT[0]["content"])])

    async def chat() -> None:
        await gateway.chat(scope, req)

    async def stream() -> None:
        async for _ in gateway.stream(scope, req):
            pass

    async def run() -> tuple[list[float], list[float]]:
        return (
            await per_call_async(chat, n=5000, rounds=7),
            await per_call_async(stream, n=1000, rounds=7),
        )

    chat_s, stream_s = asyncio.run(run())
    lite: float | None = None
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import
    try:
        import litellm

        def lite_call() -> None:
            litellm.completion(model="gpt-4o-mini", messages=PROMPT, mock_response="Hi there!")

        lite = median_us(per_call(lite_call, n=300, rounds=5))
    except ImportError:
        pass
    return median_us(chat_s), median_us(stream_s), lite


# --- 2. HTTP ---------------------------------------------------------------------------------

FAKE = """
import sys, time
from gasworks.testing import FakeOpenAI
f = FakeOpenAI().start()
print(f.port, flush=True)
sys.stdin.read()
"""


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        args,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


async def _one(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], model: str, stream: bool
) -> float:
    body = {"model": model, "messages": PROMPT, "stream": stream}
    t0 = time.perf_counter()
    if not stream:
        r = await client.post(url, json=body, headers=headers)
        r.raise_for_status()
        return time.perf_counter() - t0
    ttft: float | None = None
    async with client.stream("POST", url, json=body, headers=headers) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if ttft is None and line.startswith("data: {"):
                choices = json.loads(line[6:]).get("choices") or [{}]
                if (choices[0].get("delta") or {}).get("content"):
                    ttft = time.perf_counter() - t0
    if ttft is None:
        raise RuntimeError("stream without content")
    return ttft


async def _load(
    url: str, headers: dict[str, str], model: str, stream: bool, concurrency: int, total: int
) -> tuple[list[float], float]:
    """Per-request samples (latency or TTFT) and the throughput in requests per second."""
    limits = httpx.Limits(
        max_connections=concurrency + 5, max_keepalive_connections=concurrency + 5
    )
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        for _ in range(20):  # warm up connections and caches
            await _one(client, url, headers, model, stream)
        samples: list[float] = []
        per_worker = total // concurrency

        async def worker() -> None:
            for _ in range(per_worker):
                try:
                    samples.append(await _one(client, url, headers, model, stream))
                except httpx.TransportError:
                    ERRORS[url] = ERRORS.get(url, 0) + 1  # reported under the table

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return samples, len(samples) / (time.perf_counter() - t0)


Row = tuple[str, int, float, float, float, float]
#: transport errors per URL (connections dropped under load), reported with the results
ERRORS: dict[str, int] = {}


@contextlib.contextmanager
def servers(extra_env: dict[str, str]) -> Iterator[tuple[str, str, dict[str, str], int]]:
    """The fake upstream and a gasworks server, each in its own process.

    Yields (upstream base URL, gasworks /v1 base URL, auth headers, gasworks pid).
    """
    home = Path(tempfile.mkdtemp())
    env = {k: v for k, v in os.environ.items() if not k.startswith("GASWORKS_")}
    env.update(extra_env)
    fake = _spawn([sys.executable, "-c", FAKE], env)
    assert fake.stdout is not None
    fake_port = int(fake.stdout.readline())
    upstream = f"http://127.0.0.1:{fake_port}/v1"
    (home / "models.yaml").write_text(
        "models:\n"
        "  - id: upstream\n"
        "    provider: openai_compatible\n"
        "    provider_model_id: fake\n"
        f"    base_url: {upstream}\n"
        "  - id: upstream-sdk\n"
        "    provider: openai\n"
        "    provider_model_id: fake\n"
        f"    base_url: {upstream}\n"
        "    api_key_env: BENCH_FAKE_KEY\n"
    )
    env.update(
        GASWORKS_HOME=str(home),
        GASWORKS_MODELS_FILE=str(home / "models.yaml"),
        GASWORKS_LOG_LEVEL="WARNING",
        GASWORKS_AUTH_CACHE_TTL_SECONDS="60",
        BENCH_FAKE_KEY="sk-fake-upstream",
    )
    init = subprocess.run(
        [str(Path(sys.executable).parent / "gasworks"), "init", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = json.loads(init.stdout[init.stdout.index("{") :])["key"]
    # bind the port ourselves and hand it to uvicorn as a file descriptor
    sock = socket.socket()
    # uvicorn sets TCP_NODELAY only on sockets it binds itself; accepted ones inherit this
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    gw_port = sock.getsockname()[1]
    sock.set_inheritable(True)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "gasworks.api.app:create_app",
            "--fd",
            str(sock.fileno()),
            "--log-level",
            "warning",
            "--no-access-log",
            "--timeout-keep-alive",
            "75",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(sock.fileno(),),
    )
    sock.close()
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{gw_port}/healthz", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    try:
        yield (
            upstream,
            f"http://127.0.0.1:{gw_port}/v1",
            {"Authorization": f"Bearer {key}"},
            server.pid,
        )
    finally:
        server.terminate()
        server.wait(10)
        assert fake.stdin is not None
        fake.stdin.close()
        fake.terminate()
        fake.wait(10)


def bench_http(extra_env: dict[str, str]) -> list[Row]:
    out = []
    with servers(extra_env) as (upstream, gateway, auth, _):
        for stream in (False, True):
            for conc, total in ((1, 300), (50, 1000)):
                direct, direct_rps = asyncio.run(
                    _load(f"{upstream}/chat/completions", {}, "fake", stream, conc, total)
                )
                via, via_rps = asyncio.run(
                    _load(f"{gateway}/chat/completions", auth, "upstream", stream, conc, total)
                )
                out.append(
                    (
                        "TTFT (stream)" if stream else "latency (no stream)",
                        conc,
                        statistics.median(direct) * 1000,
                        statistics.median(via) * 1000,
                        direct_rps,
                        via_rps,
                    )
                )
    return out


def main() -> str:
    load_before = os.getloadavg()[0]
    chat_us, stream_us, lite_us = bench_in_process()
    lines = [
        f"Load average at start: {load_before:.1f} (2-core machine shared with other jobs; the "
        "50-concurrent rows put the load generator, gasworks and the upstream on 2 cores, so "
        "they measure CPU contention as much as gasworks).",
        "",
        "## In-process gateway call (demo model) vs LiteLLM mock completion",
        "",
        "| call | median per call | |",
        "|---|---|---|",
        f"| gasworks `Gateway.chat` (demo) | {chat_us:.1f} µs | target ≤ 100 µs |",
        f"| gasworks `Gateway.stream` (demo, ~40 chunks) | {stream_us:.1f} µs | |",
    ]
    if lite_us is not None:
        lines.append(
            f"| `litellm.completion(mock_response=…)` | {lite_us:.1f} µs | "
            f"gasworks is **{lite_us / chat_us:.0f}x less** |"
        )
    else:
        lines.append("| litellm | not installed (`pip install 'gasworks[bench]'`) | |")
    lines += [
        "",
        "## HTTP: `/v1/chat/completions` in front of a fake upstream vs the upstream directly",
        "",
        "Gateway and fake upstream each in their own process on 127.0.0.1; medians over "
        "300 (1 concurrent) / 1000 (50 concurrent) requests after warm-up.",
        "",
        "`gateway only`: `GASWORKS_GUARDRAILS_ENABLED=false` (auth, validation, registry, "
        "openai_compatible adapter over httpx, accounting, SSE); `with guardrails`: the "
        "default deployment (breaker, budgets, one ledger row per call in SQLite).",
        "",
        "Closed loop: each of the N workers sends its next request when the previous one is "
        "complete, so at 50 concurrent a slower gateway also spaces requests out (a TTFT can "
        "then look better than direct); the req/s columns show the throughput.",
        "",
        "| server | measure | concurrent | upstream direct | through gasworks "
        "| added (median) | req/s direct | req/s gasworks |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, env in (
        ("gateway only", {"GASWORKS_GUARDRAILS_ENABLED": "false"}),
        ("with guardrails", {}),
    ):
        for what, conc, direct, via, d_rps, v_rps in bench_http(env):
            lines.append(
                f"| {label} | {what} | {conc} | {direct:.2f} ms | {via:.2f} ms "
                f"| {via - direct:+.2f} ms | {d_rps:.0f} | {v_rps:.0f} |"
            )
    lines += [
        "",
        "Where the added time goes (measured separately on this machine, 1 concurrent): the "
        "gateway itself ~10-20 µs (first table); a `/v1` demo call through the ASGI app "
        "in-process ~0.55 ms (the OpenTelemetry FastAPI instrumentation, ~0.3 ms more, now runs "
        "only when spans are exported); the rest is the second HTTP hop — a loopback round trip "
        "costs ~1 ms on this VM, as the `upstream direct` column shows. The `openai` SDK adds "
        "~0.6 ms per call over plain httpx (the `openai` provider uses it, `openai_compatible` "
        "does not).",
    ]
    if ERRORS:
        lines += ["", f"Transport errors (dropped connections, not counted): {ERRORS}"]
    return record("gateway", "\n".join(lines))


if __name__ == "__main__":
    print(main())
