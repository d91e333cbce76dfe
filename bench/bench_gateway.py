"""Gateway overhead: in-process calls vs LiteLLM, and HTTP added latency / TTFT.

1. In-process: ``Gateway.chat`` on the demo model against ``litellm.completion(mock_response=
   ...)`` (LiteLLM's own no-network path), and one ``/v1/chat/completions`` request through
   the ASGI app (no socket) to show what the HTTP framework and middleware cost.
2. HTTP: ``POST /v1/chat/completions`` of a real ``gasworks serve`` (its own processes) in
   front of a fake OpenAI upstream (its own process), against calling that upstream directly.
   The load generator is a third process (``_loadgen.py``). Three sets of runs:

   a. 1 concurrent request, instant upstream: the added latency / TTFT of one request.
   b. 50 concurrent streams against an upstream paced like a real model (first token after
      ``TTFT_S``, then ``TOKENS`` tokens ``TOKEN_S`` apart): the added latency / TTFT per
      stream under concurrency. The issue's target (≤ 2 ms median added) is read on (a) and
      (b).
   c. Saturation, instant upstream, 50 concurrent: requests per second, direct vs through
      gasworks with 1 and 2 workers; the latencies there are queueing, reported as such.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _adapters import bench_adapters, splice
from _common import (
    RESULTS,
    Interleaved,
    interleaved_async,
    machine_line,
    record,
)

HERE = Path(__file__).parent
PROMPT = [{"role": "user", "content": "Hello, how are you today?"}]
#: the paced upstream: first token after TTFT_S, then TOKENS tokens TOKEN_S apart
TTFT_S, TOKEN_S, TOKENS = 0.2, 0.02, 30
GATEWAY_ONLY = {"GASWORKS_GUARDRAILS_ENABLED": "false", "GASWORKS_LOG_LEVEL": "WARNING"}
DEFAULT: dict[str, str] = {}


# --- 1. in-process ---------------------------------------------------------------------------


@dataclass
class InProcess:
    """In-process gateway figures, every comparison interleaved (see bench/README.md)."""

    default: Interleaved  # default deployment (guardrails on, ledger flushed in the window)
    default_stream: Interleaved  # the same, streamed; B = the bare gateway's stream
    bare: Interleaved  # the bare gateway (no hooks, a floor) vs LiteLLM, or vs itself
    lite: bool  # whether B of ``default`` / ``bare`` is LiteLLM's mock path


async def _in_process(n: int) -> InProcess:
    from gasworks.llm.guardrails_runtime import flush_ledger
    from gasworks.llm.runtime import build_services, get_gateway
    from gasworks.modeltypes import CallScope, ChatRequest, Message
    from gasworks.settings import Settings
    from gasworks.tenancy import service as tenancy
    from gasworks.wiring import build_runtime

    bare = build_services(Settings(home=Path(tempfile.mkdtemp()))).gateway
    rt = build_runtime(Settings(home=Path(tempfile.mkdtemp()), log_level="WARNING"))
    await rt.start()
    try:
        async with rt.db.session() as s:
            tenant, _ = await tenancy.bootstrap(s, "bench")
        default = get_gateway(rt)
        assert default.hooks, "the default deployment runs the guardrail hook"
        scope = CallScope(tenant_id=tenant.id)
        req = ChatRequest(model="demo", messages=[Message("user", PROMPT[0]["content"])])

        async def default_round() -> None:
            # the sustained path: the ledger rows and lease top-ups of these calls are written
            # inside the timed window (the round ends with the flush)
            for _ in range(n):
                await default.chat(scope, req)
            await flush_ledger(rt)

        async def default_stream_round() -> None:
            for _ in range(n // 5):
                async for _ in default.stream(scope, req):
                    pass
            await flush_ledger(rt)

        async def bare_round() -> None:
            for _ in range(n):
                await bare.chat(scope, req)

        async def bare_stream_round() -> None:
            for _ in range(n // 5):
                async for _ in bare.stream(scope, req):
                    pass

        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import
        try:
            import litellm

            async def anchor_round() -> None:
                for _ in range(n // 20):
                    litellm.completion(
                        model="gpt-4o-mini", messages=PROMPT, mock_response="Hi there!"
                    )

            lite, per_b = True, n // 20
        except ImportError:
            anchor_round, lite, per_b = bare_round, False, n

        d = await interleaved_async(default_round, anchor_round, n=1, rounds=9)
        ds = await interleaved_async(default_stream_round, bare_stream_round, n=1, rounds=9)
        b = await interleaved_async(bare_round, anchor_round, n=1, rounds=9)
        return InProcess(d.scaled(n, per_b), ds.scaled(n // 5, n // 5), b.scaled(n, per_b), lite)
    finally:
        await rt.stop()


def bench_in_process() -> InProcess:
    return asyncio.run(_in_process(1000))


ASGI = """
import asyncio, json, sys, time
import uvloop
from gasworks.api.app import create_app

key, stream = sys.argv[1], sys.argv[2] == "1"
app = create_app()
body = json.dumps({"model": "demo", "stream": stream,
                   "messages": [{"role": "user", "content": "Hello, how are you today?"}]})
headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
           (b"content-length", str(len(body)).encode()),
           (b"authorization", f"Bearer {key}".encode())]

async def one():
    # spec 2.3 and a receive() that waits for the hang-up: what uvicorn gives an app
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
             "http_version": "1.1", "scheme": "http", "method": "POST", "root_path": "",
             "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
             "query_string": b"", "headers": list(headers), "server": ("127.0.0.1", 80),
             "client": ("127.0.0.1", 1), "state": {}}
    messages = [{"type": "http.request", "body": body.encode(), "more_body": False}]
    async def receive():
        if messages:
            return messages.pop()
        await asyncio.Event().wait()
    out = []
    async def send(m):
        out.append(m)
    await app(scope, receive, send)
    assert out[0]["status"] == 200, out

async def main():
    async with app.router.lifespan_context(app):
        for _ in range(300):
            await one()
        rounds = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(2000):
                await one()
            rounds.append((time.perf_counter() - t0) / 2000)
    print(sorted(rounds)[2])

uvloop.run(main())
"""


def bench_asgi() -> tuple[float, float]:
    """µs per ``/v1/chat/completions`` demo request through the ASGI app (no socket)."""
    home = Path(tempfile.mkdtemp())
    env = _env(home, GATEWAY_ONLY)
    key = _init(env)
    out = []
    for stream in ("0", "1"):
        res = subprocess.run(
            [sys.executable, "-c", ASGI, key, stream],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        out.append(float(res.stdout.strip().splitlines()[-1]) * 1e6)
    return out[0], out[1]


# --- 2. HTTP ---------------------------------------------------------------------------------

FAKE = """
import asyncio, sys
import uvloop
from gasworks.testing import FakeOpenAI

ttft, token, tokens = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])


class Paced(FakeOpenAI):
    async def handle(self, req, fault):
        if ttft and not (req.json_body or {}).get("stream"):
            await asyncio.sleep(ttft + token * (tokens - 1))
        await super().handle(req, fault)

    async def send_events(self, req, events, content_type, fault):
        await self.start_stream(req, content_type)
        await asyncio.sleep(ttft)
        content = 0
        for ev in events:
            if b'"content": "' in ev and b'"content": ""' not in ev:
                if content:
                    await asyncio.sleep(token)
                content += 1
            await self.stream_part(req, ev)
        await self.stream_part(req, b"", last=True)


asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
f = Paced()
if ttft:
    f.reply.text = " ".join(["token"] * tokens)
f.start()
print(f.port, flush=True)
sys.stdin.read()
"""


#: The floor: the least any Python proxy hop costs here. A raw ASGI app on the same server
#: stack as gasworks (uvicorn, uvloop, httptools) that forwards the request body to the
#: upstream with aiohttp and streams the answer's bytes back as they arrive: no auth, no
#: validation, no parsing, no accounting.
BARE_PROXY = """
import sys
import aiohttp, uvicorn

upstream = sys.argv[2]
session = None

async def app(scope, receive, send):
    global session
    if scope["type"] != "http":
        return
    if session is None:
        session = aiohttp.ClientSession()
    body = b""
    while True:
        m = await receive()
        body += m.get("body", b"")
        if not m.get("more_body"):
            break
    headers = {"Content-Type": "application/json"}
    async with session.post(upstream + "/chat/completions", data=body, headers=headers) as r:
        ctype = r.headers.get("Content-Type", "application/json").encode()
        await send({"type": "http.response.start", "status": r.status,
                    "headers": [(b"content-type", ctype)]})
        async for piece in r.content.iter_any():
            await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False, lifespan="off")
"""


#: CPU pinning (``servers(pinned=True)``): the load generator and the fake upstream on core
#: 0, the proxy under test (gasworks or the bare proxy) on core 1, as if clients and the
#: model provider were other machines. ``None``: every process may run on every core.
CLIENT_CORES: set[int] | None = None
PROXY_CORES: set[int] | None = None


def _pin(cores: set[int] | None) -> Any:
    """A ``preexec_fn`` that pins the child (and every thread it starts) to ``cores``."""
    if cores is None:
        return None
    return lambda: os.sched_setaffinity(0, cores)


def _tree_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live children (Linux ``/proc``)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(home: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GASWORKS_")}
    env.update(extra, GASWORKS_HOME=str(home), GASWORKS_AUTH_CACHE_TTL_SECONDS="60")
    return env


def _init(env: dict[str, str]) -> str:
    init = subprocess.run(
        [str(Path(sys.executable).parent / "gasworks"), "init", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(init.stdout[init.stdout.index("{") :])["key"])


@dataclass
class Servers:
    upstream: str  # base URL of the fake, ending in /v1
    gateway: str  # base URL of gasworks, ending in /v1
    auth: dict[str, str]
    bare: str  # base URL of the bare proxy in front of the same upstream, ending in /v1
    gateway_pid: int  # `gasworks serve` (its workers are its children when workers > 1)
    bare_pid: int

    def cpu(self) -> tuple[float, float]:
        """CPU seconds used so far by (gasworks and its workers, the bare proxy)."""
        return _tree_cpu(self.gateway_pid), _tree_cpu(self.bare_pid)


def start_fake(
    env: dict[str, str], pacing: list[str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """The fake OpenAI upstream in its own process (stop it by closing its stdin):
    (the process, its base URL ending in /v1). Unpaced unless ``pacing`` (ttft, per token,
    tokens)."""
    fake = subprocess.Popen(
        [sys.executable, "-c", FAKE, *(pacing or ["0", "0", "0"])],
        preexec_fn=_pin(CLIENT_CORES),
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert fake.stdout is not None
    return fake, f"http://127.0.0.1:{int(fake.stdout.readline())}/v1"


@contextlib.contextmanager
def servers(
    extra_env: dict[str, str], *, workers: int = 1, paced: bool = False
) -> Iterator[Servers]:
    """The fake upstream and ``gasworks serve``, each in its own process(es)."""
    home = Path(tempfile.mkdtemp())
    env = _env(home, extra_env)
    pacing = [str(TTFT_S), str(TOKEN_S), str(TOKENS)] if paced else ["0", "0", "0"]
    fake, upstream = start_fake(env, pacing)
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
    env.update(GASWORKS_MODELS_FILE=str(home / "models.yaml"), BENCH_FAKE_KEY="sk-fake")
    key = _init(env)
    bare_port = _free_port()
    bare = subprocess.Popen(
        [sys.executable, "-c", BARE_PROXY, str(bare_port), upstream],
        preexec_fn=_pin(PROXY_CORES),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port = _free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gasworks"),
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_pin(PROXY_CORES),
    )
    try:
        for url in (f"http://127.0.0.1:{port}/readyz", f"http://127.0.0.1:{bare_port}/"):
            for _ in range(400):
                try:
                    httpx.get(url, timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.05)
        yield Servers(
            upstream,
            f"http://127.0.0.1:{port}/v1",
            {"Authorization": f"Bearer {key}"},
            f"http://127.0.0.1:{bare_port}/v1",
            server.pid,
            bare.pid,
        )
    finally:
        for proc in (server, bare):
            proc.terminate()
            proc.wait(20)
        assert fake.stdin is not None
        fake.stdin.close()
        fake.terminate()
        fake.wait(10)


@dataclass
class Load:
    samples: list[float]
    rps: float
    in_flight: float  # mean requests open at once
    errors: int

    def q(self, p: float) -> float:
        """Quantile ``p`` (0.5 = median) in milliseconds."""
        if p == 0.5:
            return statistics.median(self.samples) * 1000
        return statistics.quantiles(self.samples, n=100)[round(p * 100) - 1] * 1000


def load(
    url: str,
    headers: dict[str, str],
    model: str,
    *,
    stream: bool,
    concurrency: int,
    total: int,
    rate: float | None = None,
) -> Load:
    spec: dict[str, Any] = {
        "url": f"{url}/chat/completions",
        "headers": headers,
        "model": model,
        "stream": stream,
        "concurrency": concurrency,
        "total": total,
        "warmup": 20 if concurrency == 1 else 0,
    }
    if rate is not None:
        spec["rate"] = rate
    res = subprocess.run(
        [sys.executable, str(HERE / "_loadgen.py"), json.dumps(spec)],
        preexec_fn=_pin(CLIENT_CORES),
        capture_output=True,
        text=True,
        check=True,
    )
    out: dict[str, Any] = json.loads(res.stdout)
    return Load(out["samples"], out["rps"], out["in_flight"], out["errors"])


@contextlib.contextmanager
def litellm_proxy(upstream: str) -> Iterator[tuple[str, dict[str, str], int] | str]:
    """LiteLLM's proxy (``litellm[proxy]``, the bench extra) in front of ``upstream``: its base
    URL, auth headers and pid — or why it could not run."""
    exe = Path(sys.executable).parent / "litellm"
    if not exe.exists():
        yield "LiteLLM's proxy is not installed (`pip install 'gasworks[bench]'`)"
        return
    home = Path(tempfile.mkdtemp())
    (home / "config.yaml").write_text(
        "model_list:\n"
        "  - model_name: upstream\n"
        "    litellm_params:\n"
        "      model: openai/fake\n"
        f"      api_base: {upstream}\n"
        "      api_key: sk-fake\n"
    )
    master = "sk-bench-" + os.urandom(12).hex()
    env = dict(
        os.environ,
        LITELLM_MASTER_KEY=master,
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # no network at start
        LITELLM_LOG="ERROR",
    )
    port = _free_port()
    proc = subprocess.Popen(
        [
            str(exe),
            "--config",
            str(home / "config.yaml"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_pin(PROXY_CORES),
    )
    try:
        for _ in range(1200):  # it imports a lot: up to a minute on a loaded machine
            try:
                httpx.get(f"http://127.0.0.1:{port}/health/liveliness", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            yield "LiteLLM's proxy did not start within 2 minutes"
            return
        yield f"http://127.0.0.1:{port}/v1", {"Authorization": f"Bearer {master}"}, proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def section_litellm(total: int = 200, rounds: int = 3) -> list[str]:
    """gasworks serve (default deployment) and LiteLLM's proxy in front of the same fake
    upstream, driven by the same load generator, in alternating rounds."""
    out = [
        "## HTTP: gasworks serve beside LiteLLM's proxy",
        "",
    ]
    with contextlib.ExitStack() as stack:
        s = stack.enter_context(servers(DEFAULT))
        lite = stack.enter_context(litellm_proxy(s.upstream))
        if isinstance(lite, str):
            return [*out, f"Not measured: {lite}."]
        lite_url, lite_auth, lite_pid = lite
        out += [
            f"Same fake upstream, same load generator (`_loadgen.py`), {rounds} alternating "
            f"rounds of {total} requests per side and setting (direct, gasworks, LiteLLM; the "
            "order rotates each round); figures are medians over the rounds. `added` = the "
            "side's median minus the direct median of the same round (each side's own "
            "quantiles are given, not differences of quantiles). CPU per request = the "
            "proxy's process tree CPU over the round ÷ requests. gasworks runs its default "
            f"deployment; LiteLLM {_version('litellm')} its proxy with a master key and no "
            "database.",
            "",
            "| concurrency | stream | side | median ms | p90 ms | p99 ms | added median ms "
            "| requests/s | CPU ms per request | load |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for concurrency in (1, 20):
            for stream in (False, True):
                acc: dict[str, list[tuple[float, float, float, float, float, float]]] = {}
                for r in range(rounds):
                    sides = [
                        ("direct", s.upstream, {}, None, "fake"),
                        ("gasworks", s.gateway, s.auth, s.gateway_pid, "upstream"),
                        ("LiteLLM proxy", lite_url, lite_auth, lite_pid, "upstream"),
                    ]
                    sides = sides[r % 3 :] + sides[: r % 3]
                    direct_med = 0.0
                    got: dict[str, tuple[float, float, float, float, float]] = {}
                    for name, url, auth, pid, model in sides:
                        c0 = _tree_cpu(pid) if pid else 0.0
                        ld = load(
                            url, auth, model, stream=stream, concurrency=concurrency, total=total
                        )
                        cpu = (_tree_cpu(pid) - c0) / max(1, total) * 1000 if pid else 0.0
                        got[name] = (ld.q(0.5), ld.q(0.9), ld.q(0.99), ld.rps, cpu)
                        if ld.errors:
                            got[name] = (*got[name][:4], float("nan"))
                    direct_med = got["direct"][0]
                    for name, (m, p90, p99, rps, cpu) in got.items():
                        acc.setdefault(name, []).append((m, p90, p99, m - direct_med, rps, cpu))
                load_now = os.getloadavg()[0]
                for name in ("direct", "gasworks", "LiteLLM proxy"):
                    cols = [statistics.median(x[i] for x in acc[name]) for i in range(6)]
                    added = "—" if name == "direct" else f"{cols[3]:.2f}"
                    cpu = "—" if name == "direct" else f"{cols[5]:.2f}"
                    out.append(
                        f"| {concurrency} | {'yes' if stream else 'no'} | {name} | "
                        f"{cols[0]:.2f} | {cols[1]:.2f} | {cols[2]:.2f} | {added} | "
                        f"{cols[4]:.0f} | {cpu} | {load_now:.1f} |"
                    )
    return out


def _version(dist: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _measure(what: str) -> str:
    return "TTFT (stream)" if what == "stream" else "latency (no stream)"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _added(direct: Load, via: Load, q: float) -> str:
    return f"{via.q(q) - direct.q(q):+.2f} ms"


def _three(s: Servers, model: str, **kw: Any) -> tuple[Load, Load, Load, float, float]:
    """Direct, through the bare proxy, through gasworks; CPU ms per request of each proxy."""
    direct = load(s.upstream, {}, "fake", **kw)
    b0 = s.cpu()[1]
    bare = load(s.bare, {}, "fake", **kw)
    b1, g0 = s.cpu()[1], s.cpu()[0]
    via = load(s.gateway, s.auth, model, **kw)
    g1 = s.cpu()[0]
    for run in (direct, bare, via):
        ERRORS["errors"] = ERRORS.get("errors", 0) + run.errors
    conc = kw["concurrency"]
    n = kw["total"] + min(conc, 50) + (20 if conc == 1 else 0)  # with _loadgen's warm-up
    return direct, bare, via, (b1 - b0) / n * 1000, (g1 - g0) / n * 1000


def section_single() -> list[str]:
    rows = []
    for label, env, models in (
        (
            "gateway only",
            GATEWAY_ONLY,
            (("openai_compatible", "upstream"), ("openai", "upstream-sdk")),
        ),
        ("default deployment", DEFAULT, (("openai_compatible", "upstream"),)),
    ):
        with servers(env) as s:
            for what in ("latency", "stream"):
                for provider, model in models:
                    direct, bare, via, bare_cpu, gw_cpu = _three(
                        s, model, stream=what == "stream", concurrency=1, total=1000
                    )
                    rows.append(
                        _row(
                            [
                                label,
                                f"`{provider}`",
                                _measure(what),
                                f"{direct.q(0.5):.2f} ms",
                                f"{via.q(0.5):.2f} ms",
                                f"**{_added(direct, via, 0.5)}**",
                                _added(direct, via, 0.9),
                                _added(direct, via, 0.99),
                                _added(direct, bare, 0.5),
                                f"{bare_cpu:.2f} / {gw_cpu:.2f} ms",
                            ]
                        )
                    )
    return rows


#: mean arrival rate that keeps STREAMS paced streams open at once (Little's law)
STREAMS = 50
RATE = STREAMS / (TTFT_S + TOKEN_S * (TOKENS - 1))


#: (server label, environment, workers, pinned) of the concurrent runs
LAYOUTS = [
    ("gateway only", GATEWAY_ONLY, 1, True),
    ("gateway only", GATEWAY_ONLY, 1, False),
    ("gateway only", GATEWAY_ONLY, 2, False),
    ("default deployment", DEFAULT, 1, True),
    ("default deployment", DEFAULT, 1, False),
    ("default deployment", DEFAULT, 2, False),
]


@contextlib.contextmanager
def _layout(env: dict[str, str], workers: int, pinned: bool, paced: bool) -> Iterator[Servers]:
    global CLIENT_CORES, PROXY_CORES
    cores = os.sched_getaffinity(0)
    if pinned and len(cores) >= 2:
        first, second = sorted(cores)[:2]
        CLIENT_CORES, PROXY_CORES = {first}, {second}
    try:
        with servers(env, workers=workers, paced=paced) as s:
            yield s
    finally:
        CLIENT_CORES = PROXY_CORES = None


def _where(workers: int, pinned: bool) -> str:
    return "1, own core" if pinned else f"{workers}, shared cores"


#: runs of each paced row on the own-core layout (the target's row); samples are pooled
REPEATS = 5


def _pooled(runs: list[Load]) -> Load:
    return Load(
        [x for r in runs for x in r.samples],
        statistics.fmean(r.rps for r in runs),
        statistics.fmean(r.in_flight for r in runs),
        sum(r.errors for r in runs),
    )


def section_paced() -> list[str]:
    rows = []
    for label, env, workers, pinned in LAYOUTS:
        with _layout(env, workers, pinned, paced=True) as s:
            for what in ("latency", "stream"):
                runs = [
                    _three(
                        s,
                        "upstream",
                        stream=what == "stream",
                        concurrency=STREAMS,
                        total=600,
                        rate=RATE,
                    )
                    for _ in range(REPEATS if pinned else 1)
                ]
                direct = _pooled([r[0] for r in runs])
                bare = _pooled([r[1] for r in runs])
                via = _pooled([r[2] for r in runs])
                per_run = ", ".join(f"{r[2].q(0.5) - r[0].q(0.5):+.2f}" for r in runs)
                rows.append(
                    _row(
                        [
                            label,
                            _where(workers, pinned),
                            _measure(what),
                            f"{direct.q(0.5):.1f} ms",
                            f"**{_added(direct, via, 0.5)}**",
                            per_run if len(runs) > 1 else "",
                            _added(direct, via, 0.9),
                            _added(direct, via, 0.99),
                            _added(direct, bare, 0.5),
                            f"{statistics.fmean(r[3] for r in runs):.2f} / "
                            f"{statistics.fmean(r[4] for r in runs):.2f} ms",
                            f"{via.in_flight:.0f}",
                        ]
                    )
                )
    return rows


def section_saturation() -> list[str]:
    rows = []
    for label, env, workers, pinned in LAYOUTS:
        with _layout(env, workers, pinned, paced=False) as s:
            for what in ("latency", "stream"):
                direct, bare, via, bare_cpu, gw_cpu = _three(
                    s, "upstream", stream=what == "stream", concurrency=50, total=2000
                )
                rows.append(
                    _row(
                        [
                            label,
                            _where(workers, pinned),
                            _measure(what),
                            f"{direct.rps:.0f}",
                            f"{bare.rps:.0f}",
                            f"{via.rps:.0f}",
                            f"{bare_cpu:.2f} / {gw_cpu:.2f} ms",
                            f"{via.q(0.5):.1f} ms",
                        ]
                    )
                )
    return rows


#: transport errors per run (connections dropped under load), reported with the results
ERRORS: dict[str, int] = {}


def _in_process_rows(ip: InProcess) -> list[str]:
    anchor = "`litellm.completion(mock_response=…)`" if ip.lite else "(LiteLLM not installed)"
    return [
        "Interleaved: 9 alternating rounds of each pair in one process; µs per call are medians "
        "of per-round means, the ratio is the median of the per-round ratios, with the load "
        "average beside it. The headline is the default deployment (guardrail hook on: breaker, "
        "budget lease, a ledger row per call) with the ledger flush and lease top-ups inside the "
        "timed window; the bare gateway (no hooks) is a floor.",
        "",
        "| call | µs per call (CPU µs) | anchor (same rounds) | anchor µs | anchor ÷ gasworks "
        "| load |",
        "|---|---|---|---|---|---|",
        f"| **gasworks `Gateway.chat`, default deployment** (demo, sustained) | "
        f"{ip.default.a_us:.1f} ({ip.default.a_cpu_us:.1f}) | {anchor} | {ip.default.b_us:.1f} | "
        f"{ip.default.inverse:.1f}x | {ip.default.load[0]:.1f} → {ip.default.load[1]:.1f} |",
        f"| gasworks `Gateway.chat`, no hooks (floor) | {ip.bare.a_us:.1f} "
        f"({ip.bare.a_cpu_us:.1f}) | {anchor} | "
        f"{ip.bare.b_us:.1f} | {ip.bare.inverse:.1f}x | "
        f"{ip.bare.load[0]:.1f} → {ip.bare.load[1]:.1f} |",
        f"| gasworks `Gateway.stream`, default deployment (demo, ~40 chunks, sustained) | "
        f"{ip.default_stream.a_us:.1f} ({ip.default_stream.a_cpu_us:.1f}) | "
        "the same stream, no hooks | "
        f"{ip.default_stream.b_us:.1f} | (default ÷ no hooks: {ip.default_stream.ratio:.2f}x) | "
        f"{ip.default_stream.load[0]:.1f} → {ip.default_stream.load[1]:.1f} |",
    ]


def main() -> str:
    load_before = os.getloadavg()[0]
    ip = bench_in_process()
    asgi_us, asgi_stream_us = bench_asgi()
    adapters = bench_adapters()
    single = section_single()
    paced = section_paced()
    saturation = section_saturation()
    versus_litellm = section_litellm()
    lines = [
        f"Load average at start: {load_before:.1f} (2 cores shared with other jobs; the load "
        "generator, gasworks and the fake upstream all run on them).",
        "",
        "## In-process",
        "",
        *_in_process_rows(ip),
    ]
    lines += [
        f"| `POST /v1/chat/completions` (demo) through the ASGI app, no socket | "
        f"{asgi_us:.0f} µs | auth, validation, routing, middleware, JSON |",
        f"| the same, streamed (~40 SSE events) | {asgi_stream_us:.0f} µs | |",
        "",
        *adapters,
        "",
        "## HTTP: `/v1/chat/completions` in front of a fake upstream vs the upstream directly",
        "",
        "A real `gasworks serve` and the fake OpenAI upstream each in their own processes on "
        "127.0.0.1; the load generator (aiohttp) is a third process. `added` = through gasworks "
        "minus direct, at the median (the target) and at p90 / p99. TTFT = time to the first "
        "content token of a stream.",
        "",
        "`gateway only`: `GASWORKS_GUARDRAILS_ENABLED=false`, `GASWORKS_LOG_LEVEL=WARNING` "
        "(auth, validation, registry, provider adapter, accounting, metrics, SSE). "
        "`default deployment`: every setting at its default — guardrails on (breaker, "
        "budget lease, one ledger row per call, group-committed to SQLite) and one INFO "
        "access-log line per request.",
        "",
        "### (a) One request at a time, instant upstream (target: ≤ 2 ms median added)",
        "",
        "1000 requests after warm-up, 1 worker. Provider `openai_compatible` is plain aiohttp, "
        "`openai` the official SDK (over its aiohttp transport). `bare proxy` is the floor: "
        "the least a Python proxy hop on the same server stack costs here (a raw ASGI app "
        "on uvicorn + uvloop + httptools that forwards the body with aiohttp and streams the "
        "bytes back; no auth, validation, parsing or accounting). CPU = the proxy process's "
        "CPU time per request.",
        "",
        "| server | provider | measure | direct | through gasworks | added (median) "
        "| added p90 | added p99 | bare proxy added (median) | CPU per request bare / gasworks |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *single,
        "",
        "### (b) 50 concurrent streams, upstream paced like a model (target: ≤ 2 ms median added)",
        "",
        f"The fake upstream answers like a hosted model: first token after {TTFT_S * 1000:.0f} "
        f"ms, then {TOKENS} tokens {TOKEN_S * 1000:.0f} ms apart (a non-streamed answer comes "
        f"after the same {(TTFT_S + TOKEN_S * (TOKENS - 1)) * 1000:.0f} ms). Requests arrive "
        f"open-loop at {RATE:.0f}/s (Poisson, fixed seed, the same schedule for direct, bare "
        "proxy and gasworks), the rate that keeps 50 streams open on average (last column, "
        "measured); 600 requests per row, provider `openai_compatible`. Open loop because 50 "
        "closed-loop clients whose answers all take the same time stay in lock-step: all 50 "
        "requests arrive within a millisecond or two, and the figure becomes the time to "
        "work through that burst rather than the cost per stream. This is the per-stream "
        "cost of gasworks with 50 streams open, the figure the issue's target applies to at "
        "50 concurrent.",
        "",
        "Workers: `1, own core` pins gasworks (and, for its column, the bare proxy) to one "
        "core and the load generator and the fake upstream to the other, as if clients and "
        f"the model provider were other machines: this is the row the target is read on, run "
        f"{REPEATS} times with the samples pooled (`added per run`: each run's own median). "
        "`shared cores`: every process may run on both cores, so gasworks also waits for the "
        "CPU the fake upstream and the load generator are using (and the other jobs of the "
        "machine).",
        "",
        "| server | workers | measure | direct | added (median) | added per run "
        "| added p90 | added p99 | bare proxy added (median) | CPU per request bare / gasworks "
        "| streams open |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *paced,
        "",
        "### (c) Saturation: 50 concurrent, instant upstream",
        "",
        "Every client sends its next request as soon as the previous one is answered, so this "
        "measures how many requests per second the 2 shared cores get through, not a latency "
        "(the median is queueing time). 2000 requests per row; with shared cores the load "
        "generator and the fake upstream take their share of the same 2 cores, with `own "
        "core` one worker has one core to itself (its req/s is the throughput of one worker "
        "on one core of this machine).",
        "",
        "| server | workers | measure | req/s direct | req/s bare proxy | req/s gasworks "
        "| CPU per request bare / gasworks | median through gasworks |",
        "|---|---|---|---|---|---|---|---|",
        *saturation,
        "",
        *versus_litellm,
    ]
    errors = {k: v for k, v in ERRORS.items() if v}
    if errors:
        lines += ["", f"Transport errors (dropped connections, not counted): {errors}"]
    return record("gateway", "\n".join(lines))


def main_adapters() -> str:
    """Only the provider-adapter section, written into the existing results file."""
    section = bench_adapters()
    section[1:1] = ["", f"Machine: {machine_line()}"]
    path = RESULTS / "gateway.md"
    path.write_text(splice(path.read_text(), section))
    return "\n".join(section)


def main_partial(which: str) -> str:
    """One section (``adapters``, ``litellm``, ``in-process``), written into the existing
    results file in place of its previous version (or appended)."""
    if which == "adapters":
        return main_adapters()
    if which == "litellm":
        section = section_litellm()
    else:
        ip = bench_in_process()
        section = ["## In-process (interleaved)", "", *_in_process_rows(ip)]
    section[1:1] = ["", f"Machine: {machine_line()}, load average {os.getloadavg()[0]:.1f}"]
    path = RESULTS / "gateway.md"
    text = path.read_text() if path.exists() else "# gateway\n"
    path.write_text(_replace_section(text, section))
    return "\n".join(section)


def _replace_section(text: str, section: list[str]) -> str:
    lines = text.rstrip("\n").split("\n")
    heading = section[0]
    if heading in lines:
        start = lines.index(heading)
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        lines = lines[:start] + section + [""] + lines[end:]
    else:
        lines += ["", *section]
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(main_partial(sys.argv[1]) if sys.argv[1:] else main())
