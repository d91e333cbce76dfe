"""Graceful shutdown of a real `gasworks serve` process on SIGTERM: readiness fails first, an
open stream ends with a final SERVER_SHUTTING_DOWN event, the process exits within its grace
period and the cut call's ledger row is written."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import text

from gasworks.db.engine import Database
from tests.s3server import free_port

GRACE = 3.0
DELAY = 1.0


def _env(db_url: str, home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GASWORKS_") or k == "GASWORKS_TEST_POSTGRES_URL"
    }
    return env | {
        "GASWORKS_DATABASE_URL": db_url,
        "GASWORKS_HOME": str(home),
        "GASWORKS_DEMO_STREAM_DELAY_MS": "250",
        "GASWORKS_SHUTDOWN_GRACE_SECONDS": str(GRACE),
        "GASWORKS_SHUTDOWN_READINESS_DELAY_SECONDS": str(DELAY),
    }


async def test_sigterm_during_a_stream(db_url: str, tmp_path: Path) -> None:
    exe = str(Path(sys.executable).with_name("gasworks"))
    env = _env(db_url, tmp_path / "home")
    init = subprocess.run(
        [exe, "init", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert init.returncode == 0, init.stderr
    key = json.loads(init.stdout)["key"]
    port = free_port()
    proc = subprocess.Popen(
        [exe, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server did not start"
                await asyncio.sleep(0.1)

            body = {
                "model": "demo",
                "stream": True,
                "messages": [{"role": "user", "content": "tell me about gas works"}],
            }
            events: list[str] = []
            async with client.stream(
                "POST",
                "/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
            ) as r:
                assert r.status_code == 200, await r.aread()
                lines = r.aiter_lines()
                async for line in lines:
                    if line.startswith("data: "):
                        events.append(line[6:])
                        break
                proc.send_signal(signal.SIGTERM)
                sent = time.monotonic()
                # readiness fails first, while the stream goes on and new requests are served
                async with httpx.AsyncClient(base_url=base, timeout=5) as probe:
                    ready = await probe.get("/readyz")
                    assert ready.status_code == 503
                    assert ready.json()["error"]["code"] == "SERVER_SHUTTING_DOWN"
                    assert ready.headers["retry-after"] == "1"
                    assert (await probe.get("/healthz")).status_code == 200
                async for line in lines:
                    if line.startswith("data: "):
                        events.append(line[6:])
            ended = time.monotonic() - sent
        assert len(events) > 2
        last = json.loads(events[-1])
        assert last["error"]["code"] == "SERVER_SHUTTING_DOWN", events[-3:]
        assert all("error" not in json.loads(e) for e in events[:-1])
        assert DELAY <= ended <= DELAY + GRACE + 2  # cut a second before the grace ends
        code = await asyncio.to_thread(proc.wait, DELAY + GRACE + 30)
        assert code in (0, -signal.SIGTERM), proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    db = Database(db_url)
    try:  # the cut call was accounted for before the process exited (ledger flushed)
        async with db.read_session() as s:
            rows = (await s.execute(text("SELECT count(*) FROM llm_ledger"))).scalar_one()
        assert rows == 1
    finally:
        await db.dispose()
