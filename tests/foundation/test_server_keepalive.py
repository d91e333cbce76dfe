"""`gasworks serve` keeps an idle client connection for GASWORKS_SERVER_KEEPALIVE_SECONDS
(uvicorn's own default is 5 s; gasworks' 75 s), then closes it."""

from __future__ import annotations

import http.client
from pathlib import Path
from urllib.parse import urlsplit

from gasworks.testing.fuzz import server


def _get(conn: http.client.HTTPConnection) -> int:
    conn.request("GET", "/healthz")
    r = conn.getresponse()
    r.read()
    return r.status


def test_idle_client_connection_is_closed_after_the_server_keepalive(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    db_url = f"sqlite+aiosqlite:///{home / 'gasworks.db'}"
    keepalive = {"GASWORKS_SERVER_KEEPALIVE_SECONDS": "1"}
    with server(home, db_url, key="unused", extra_env=keepalive) as (base, _key):
        url = urlsplit(base)
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
        try:
            assert _get(conn) == 200
            sock = conn.sock
            assert _get(conn) == 200 and conn.sock is sock  # kept alive between requests
            # then idle: the server closes it (an orderly close: recv returns no bytes) before
            # the 30 s socket timeout, which the 75 s default would hit (no timing is asserted)
            assert sock is not None and sock.recv(1) == b""
        finally:
            conn.close()
