"""Alembic, driven programmatically over the async engine, under a cross-process lock.

Each domain keeps its own migration branch rooted at ``0001_foundation`` (revision ids
``NNNN_<domain>_…``, ``branch_labels=("<domain>",)``); the schema is upgraded to ``heads``.
A domain that needs another's tables names it in ``depends_on``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncEngine

    from gasworks.db.dialects import DialectOps


class Migratable(Protocol):
    """What migrating needs of a database: its engine and its dialect's migration lock
    (``db.engine.Database``, which calls ``upgrade`` from its own ``upgrade``)."""

    @property
    def engine(self) -> AsyncEngine: ...

    @property
    def dialect(self) -> DialectOps: ...


MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    return ",".join(sorted(heads))


def _current(conn: Connection) -> str | None:
    heads = MigrationContext.configure(conn).get_current_heads()
    return ",".join(sorted(heads)) if heads else None


def _run_upgrade(conn: Connection, target: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, target)


async def upgrade(db: Migratable, target: str = "heads") -> str:
    async with db.engine.connect() as conn:  # noqa: SIM117 - lock scope is explicit
        # The lock is taken on its own connection, committed so that SQLite's BEGIN IMMEDIATE
        # of the migration connection does not deadlock with it.
        async with db.dialect.migration_lock(conn):
            await conn.commit()
            async with db.engine.connect() as mconn:
                await mconn.run_sync(_run_upgrade, target)
                await mconn.commit()
                current: Any = await mconn.run_sync(_current)
            await conn.commit()
    return str(current)


async def current_revision(db: Migratable) -> str | None:
    async with db.engine.connect() as conn:
        rev: str | None = await conn.run_sync(_current)
        return rev
