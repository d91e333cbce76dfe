"""Scale-out soak (issue 15): a mixed load against 1 API process, then 2, on PostgreSQL.

One deployment for the whole run: PostgreSQL (pgserver, or GASWORKS_BENCH_POSTGRES_URL), two
``gasworks serve --no-worker`` processes and one ``gasworks worker`` sharing it (and one
GASWORKS_HOME: file blobs, one master key), the fake OpenAI upstream in its own process
(unpaced: the gateway's own cost is what is measured), and the load generator
(``_soakgen.py``) in another. "1 process" sends every request to the first API process; "2
processes" alternates between both (the load generator is the load balancer). The two
configurations are interleaved round by round (1 2, 2 1, 1 2, ...) and the figure is the
median of the per-round throughput ratios, with the load average beside it.

The mix (fixed seed, the same sequence in every round): chat, streamed chat, prompt resolve,
workflow runs (the demo chatbot on the demo model), keyword searches and small uploads.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from base64 import b64encode
from pathlib import Path
from typing import Any

import httpx
from _common import record
from bench_gateway import _free_port, _init, start_fake
from bench_prompts import _postgres_url

HERE = Path(__file__).parent
#: what the figure can and cannot say (printed with every result)
NOTE = (
    "A second API process can only add throughput where there is a free core for it. Here "
    "every process of the run (the API processes, the worker, PostgreSQL, the fake upstream, "
    "the load generator) shares the machine's cores with each other and with whatever else "
    "runs on it (the load average above: on a 2-core machine anything over 2 means the cores "
    "were already saturated before this benchmark's own processes). Under those conditions "
    "the ratio measures contention, not scaling; the ≥ 1.7x target is for API processes with "
    "their own cores (PostgreSQL, the upstream and the clients elsewhere), which this machine "
    "cannot provide. The absolute figures move with the load from round to round; the error "
    "column (no failed request in either configuration) is the part that does not."
)
EXE = str(Path(sys.executable).parent / "gasworks")
MIX = {"chat": 40, "stream": 20, "resolve": 15, "run": 10, "search": 10, "upload": 5}
CONCURRENCY = 32
TOTAL = 800
ROUNDS = 6


def _wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{base} exited"
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{base} not ready")


def _seed(base: str, headers: dict[str, str]) -> None:
    """The demo chatbot workflow, a deployed prompt, a few searchable documents."""
    sys.path.insert(0, str(HERE.parent / "src"))
    from gasworks.workflows.demos import demo_document

    with httpx.Client(base_url=base, headers=headers, timeout=60) as c:
        c.post("/api/workflows", json=demo_document("chatbot")).raise_for_status()
        v = c.post(
            "/api/prompts/versions",
            json={"name": "soak", "content": {"system": "You are the soak bot."}},
        )
        v.raise_for_status()
        c.post(
            "/api/prompts/pointer/move",
            json={
                "scope": {"model": "upstream", "workflowId": "soak"},
                "versionId": v.json()["id"],
                "expectedVersion": 0,
            },
        ).raise_for_status()
        files = [
            ("files", (f"seed{i}.txt", f"gas works pressure note {i}".encode())) for i in range(20)
        ]
        c.post("/api/documents", files=files).raise_for_status()


def _soak(bases: list[str], headers: dict[str, str]) -> dict[str, Any]:
    spec = {
        "bases": bases,
        "headers": headers,
        "total": TOTAL,
        "concurrency": CONCURRENCY,
        "seed": 7,
        "mix": MIX,
    }
    res = subprocess.run(
        [sys.executable, str(HERE / "_soakgen.py"), json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
    )
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def _quantile(xs: list[float], p: float) -> float:
    if len(xs) < 2:
        return xs[0] * 1000 if xs else float("nan")
    return statistics.quantiles(xs, n=100)[round(p * 100) - 1] * 1000


def measure(url: str, home: Path) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GASWORKS_")}
    fake, upstream = start_fake(env)
    home.mkdir(parents=True, exist_ok=True)
    models = home / "models.yaml"
    models.write_text(
        "models:\n"
        "  - id: upstream\n"
        "    provider: openai_compatible\n"
        "    provider_model_id: fake\n"
        f"    base_url: {upstream}\n"
        "  - id: emb\n"
        "    provider: openai_compatible\n"
        "    kind: embedding\n"
        f"    base_url: {upstream}\n"
        "    embedding: {dimensions: 8, max_input_tokens: 2000, max_batch: 64}\n"
    )
    env |= {
        "GASWORKS_HOME": str(home),
        "GASWORKS_DATABASE_URL": url,
        "GASWORKS_MASTER_KEY": b64encode(os.urandom(32)).decode(),
        "GASWORKS_MODELS_FILE": str(models),
        "GASWORKS_EMBEDDING_MODEL": "emb",
        "GASWORKS_AUTH_CACHE_TTL_SECONDS": "60",
        "GASWORKS_LOG_LEVEL": "WARNING",
    }
    key = _init(env)
    headers = {"Authorization": f"Bearer {key}"}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        bases = []
        for _ in range(2):
            port = _free_port()
            procs.append(
                subprocess.Popen(
                    [EXE, "serve", "--no-worker", "--port", str(port)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            bases.append(f"http://127.0.0.1:{port}")
        procs.append(
            subprocess.Popen(
                [EXE, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
        for base, proc in zip(bases, procs, strict=False):
            _wait_ready(base, proc)
        _seed(bases[0], headers)
        rounds = []
        for r in range(ROUNDS):
            row: dict[str, Any] = {"load": [os.getloadavg()[0]]}
            for n in (1, 2) if r % 2 == 0 else (2, 1):
                row[n] = _soak(bases[:n], headers)
            row["load"].append(os.getloadavg()[0])
            rounds.append(row)
            print(
                f"round {r}: 1={row[1]['rps']:.0f}/s 2={row[2]['rps']:.0f}/s "
                f"load {row['load'][0]:.1f}-{row['load'][1]:.1f}",
                file=sys.stderr,
            )
        return rounds
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        assert fake.stdin is not None
        fake.stdin.close()
        fake.terminate()
        fake.wait(10)


def report(rounds: list[dict[str, Any]]) -> str:
    ratios = [row[2]["rps"] / row[1]["rps"] for row in rounds]
    loads = [x for row in rounds for x in row["load"]]
    lines = [
        f"Mixed load ({', '.join(f'{k} {v}%' for k, v in MIX.items())}), {CONCURRENCY} "
        f"concurrent clients (closed loop), {TOTAL} requests per run, {ROUNDS} interleaved "
        "rounds; PostgreSQL 16 (pgserver) on the same machine; 1 `gasworks worker` ingests the "
        "uploads; fake OpenAI upstream (unpaced) and the load generator in their own processes.",
        "",
        f"**Scaling ratio (2 processes / 1, median of per-round throughput ratios): "
        f"{statistics.median(ratios):.2f}x** (per round: "
        f"{', '.join(f'{x:.2f}' for x in ratios)}); 1-minute load average during the rounds "
        f"{min(loads):.1f} to {max(loads):.1f} on {os.cpu_count()} cores. Target ≥ 1.7x.",
        "",
        NOTE,
        "",
        "| API processes | throughput (req/s, median of rounds) | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|",
    ]
    for n in (1, 2):
        rps = statistics.median(row[n]["rps"] for row in rounds)
        every = [x for row in rounds for xs in row[n]["latencies"].values() for x in xs]
        errs: dict[str, int] = {}
        for row in rounds:
            for kind, by in row[n]["errors"].items():
                for status, count in by.items():
                    errs[f"{kind} {status}"] = errs.get(f"{kind} {status}", 0) + count
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(errs.items())) or "0"
        lines.append(
            f"| {n} | {rps:.0f} | {_quantile(every, 0.5):.1f} | {_quantile(every, 0.99):.1f} "
            f"| {shown} |"
        )
    lines += ["", "| kind | p50 ms (1 / 2 processes) | p99 ms (1 / 2 processes) |", "|---|---|---|"]
    for kind in MIX:
        one = [x for row in rounds for x in row[1]["latencies"][kind]]
        two = [x for row in rounds for x in row[2]["latencies"][kind]]
        lines.append(
            f"| {kind} | {_quantile(one, 0.5):.1f} / {_quantile(two, 0.5):.1f} "
            f"| {_quantile(one, 0.99):.1f} / {_quantile(two, 0.99):.1f} |"
        )
    return "\n".join(lines)


def main() -> str:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        url, server = _postgres_url(tmp)
        if url is None:
            return record("scaleout", "PostgreSQL not available (pgserver not installed).")
        try:
            rounds = measure(url, tmp / "home")
        finally:
            if server is not None:
                server.cleanup()
    return record("scaleout", report(rounds))


if __name__ == "__main__":
    print(main())
