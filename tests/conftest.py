"""Fixtures shared by every test: network guard, databases on both dialects, an API client."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import netguard

netguard.install()  # before anything else imports a client library


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    """Every test: connections outside loopback raise NetworkBlocked."""
    netguard.install()
    yield


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.dbtemplates import SQLiteTemplate

    return SQLiteTemplate(tmp_path_factory.mktemp("sqlite"))


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[Any]:
    from tests.dbtemplates import PostgresTemplate

    tpl = PostgresTemplate()
    yield tpl
    tpl.close()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, migrated database: each test using it runs once per dialect."""
    tpl = request.getfixturevalue(f"{request.param}_template")
    url = tpl.new()
    yield url
    tpl.drop(url)


@pytest.fixture
def settings(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    from gasworks.settings import Settings

    for key in list(os.environ):
        if key.startswith("GASWORKS_") and key != "GASWORKS_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    return Settings(home=tmp_path / "home", database_url=db_url, auth_cache_ttl_seconds=0)


@pytest.fixture
async def runtime(settings: Any) -> AsyncIterator[Any]:
    from gasworks.runtime import Runtime

    rt = Runtime(settings)
    await rt.start(migrate=False)
    yield rt
    await rt.stop()


@pytest.fixture
async def app(runtime: Any) -> Any:
    from gasworks.api.app import create_app

    return create_app(runtime=runtime)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gasworks.test") as c:
        yield c


@pytest.fixture
async def admin_key(runtime: Any) -> str:
    """A platform-admin key of tenant 'default' (what `gasworks init` prints)."""
    from gasworks.tenancy import service

    async with runtime.db.session() as s:
        _, created = await service.bootstrap(s, "default")
    assert created is not None
    return created.key


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
