"""`gasworks serve` keeps an idle client connection for GASWORKS_SERVER_KEEPALIVE_SECONDS
(uvicorn's own default is 5 s; gasworks' 75 s), then closes it."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.s3server import free_port


def _get(conn: http.client.HTTPConnection) -> int:
    conn.request("GET", "/healthz")
    r = conn.getresponse()
    r.read()
    return r.status


def test_idle_client_connection_is_closed_after_the_server_keepalive(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).with_name("gasworks"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GASWORKS_")}
    env |= {"GASWORKS_HOME": str(tmp_path / "home"), "GASWORKS_SERVER_KEEPALIVE_SECONDS": "1"}
    port = free_port()
    proc = subprocess.Popen(
        [exe, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            assert _get(conn) == 200
            sock = conn.sock
            assert _get(conn) == 200 and conn.sock is sock  # kept alive between requests
            # then idle: the server closes it (an orderly close: recv returns no bytes) before
            # the 30 s socket timeout, which the 75 s default would hit (no timing is asserted)
            assert sock is not None and sock.recv(1) == b""
        finally:
            conn.close()
    finally:
        proc.terminate()
        proc.wait(30)
