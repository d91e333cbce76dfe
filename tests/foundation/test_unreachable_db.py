"""When the database cannot be reached: /readyz answers 503 and requests answer 503, not 500."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import auth


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unreachable(db_url: str, tmp_path: Path) -> str:
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        folder = tmp_path / "a-folder-not-a-database"
        folder.mkdir()
        return f"sqlite+aiosqlite:///{folder}"
    return url.set(host="127.0.0.1", port=_closed_port(), query={}).render_as_string(
        hide_password=False
    )


@pytest.fixture
async def down_client(settings: Any, db_url: str, tmp_path: Path) -> Any:
    from gasworks.api.app import create_app
    from gasworks.wiring import build_runtime

    broken = settings.model_copy(update={"database_url": None})
    rt = build_runtime(broken)
    from gasworks.db.engine import Database

    await rt.db.dispose()
    rt.db = Database(_unreachable(db_url, tmp_path))
    rt.started = True  # nothing to migrate: the point is that the database is gone
    app = create_app(runtime=rt)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gasworks.test") as c:
        yield c
    await rt.db.dispose()


async def test_readyz_is_503_when_database_is_unreachable(down_client):
    r = await down_client.get("/readyz")
    assert r.status_code == 503
    err = r.json()["error"]
    assert err["code"] == "DATABASE_UNAVAILABLE"
    assert err["requestId"] == r.headers["x-request-id"]


async def test_healthz_stays_up_when_database_is_unreachable(down_client):
    assert (await down_client.get("/healthz")).status_code == 200


async def test_authenticated_request_is_503_not_500(down_client):
    key = "gw_" + "a" * 12 + "_" + "b" * 40
    r = await down_client.get("/api/me", headers=auth(key))
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert err["code"] == "DATABASE_UNAVAILABLE"
    assert "password" not in r.text


async def test_ping_of_a_silent_server_gives_up(tmp_path):
    """A server that accepts TCP but never answers must not hang /readyz."""
    from gasworks.db.engine import Database

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the handshake completes in the backlog; nothing is ever sent
        port = silent.getsockname()[1]
        db = Database(f"postgresql+asyncpg://u:p@127.0.0.1:{port}/x")
        try:
            assert await db.ping(within_seconds=0.5) is False
        finally:
            await db.dispose()


async def test_unrelated_errors_inside_a_session_are_not_called_unavailable(runtime):
    """Only "cannot reach the database" becomes DATABASE_UNAVAILABLE, not any OSError."""
    from sqlalchemy import text

    from gasworks.errors import DatabaseUnavailable

    with pytest.raises(FileNotFoundError):
        async with runtime.db.session():
            raise FileNotFoundError("blob missing")
    with pytest.raises(Exception) as info:
        async with runtime.db.session() as s:
            await s.execute(text("SELECT * FROM no_such_table"))
    assert not isinstance(info.value, DatabaseUnavailable)
