"""Fixtures shared by every test: network guard, databases on both dialects, an API client."""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import netguard
from tests.dbtemplates import DIALECTS

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


@pytest.fixture(params=DIALECTS)
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
    from gasworks.wiring import build_runtime

    rt = build_runtime(settings)
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


# --- per-dialect summary: shows the same suites passing on SQLite and PostgreSQL ----------

_DIALECT_ID = re.compile(r"\[(?:[^\]]*-)?(sqlite|postgres)(?:-[^\]]*)?\]$")
_BY_SUITE: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    match = _DIALECT_ID.search(report.nodeid)
    if match is None:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        parts = report.nodeid.split("::")[0].split("/")
        suite = "/".join(parts[:2])  # tests/<domain> or tests/<file>
        _BY_SUITE[(suite, match.group(1))][report.outcome] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _BY_SUITE:
        return
    terminalreporter.section("database suites by dialect")
    for suite in sorted({s for s, _ in _BY_SUITE}):
        cells = []
        for dialect in ("sqlite", "postgres"):
            counts = _BY_SUITE.get((suite, dialect), Counter())
            cells.append(
                f"{dialect}: " + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "-")
            )
        terminalreporter.write_line(f"{suite:<28} " + " | ".join(cells))
