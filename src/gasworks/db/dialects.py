"""Everything that differs between SQLite and PostgreSQL, behind one small interface.

Code elsewhere asks ``db.dialect`` for these pieces; there are no ``if sqlite:`` branches
outside this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import SingletonThreadPool, StaticPool

from gasworks.home import private_file

#: execution option marking a connection's transactions as read-only (see Database.read_session)
READ_ONLY_OPTION = "gasworks_read_only"

#: advisory lock id used for schema migrations (any stable 64-bit number)
MIGRATION_LOCK_ID = 7_261_455_001

#: SQLite errors that mean "the file cannot be used now", not "your query is wrong"
_SQLITE_UNAVAILABLE = ("unable to open database file", "disk i/o error", "database is locked")
#: asyncpg errors (by class name: asyncpg is an optional extra) for an unusable server
_PG_UNAVAILABLE = frozenset(
    {
        "CannotConnectNowError",
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "TooManyConnectionsError",
        "AdminShutdownError",
        "CrashShutdownError",
        "InvalidCatalogNameError",
        "InvalidPasswordError",
        "InvalidAuthorizationSpecificationError",
    }
)


#: SQLSTATEs of a transaction PostgreSQL aborted to settle a conflict: deadlock_detected,
#: serialization_failure
_PG_CONTENTION = frozenset({"40P01", "40001"})


class DialectOps(Protocol):
    name: str

    def engine_kwargs(self, url: URL, pool_size: int) -> dict[str, Any]: ...

    def on_engine(self, engine: AsyncEngine) -> None: ...

    def insert(self, table: Table) -> Any:
        """An INSERT supporting ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
        ...

    def migration_lock(self, conn: AsyncConnection) -> contextlib.AbstractAsyncContextManager[None]:
        """Held while migrations run, so concurrent starts never migrate twice."""
        ...

    def is_unavailable(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the database cannot be reached (→ 503, retryable)."""
        ...

    def is_contention(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the transaction was aborted for a deadlock or a
        serialization conflict (nothing applied; the same change may be retried → 503)."""
        ...

    def poll_engine(self, busy_timeout_ms: int) -> Engine | None:
        """A synchronous, query-only engine for pollers' small reads (``Database.read_now``),
        or None where the async engine serves them as well."""
        ...

    def write_engine(self) -> Engine | None:
        """A synchronous engine of one connection for ``Database.write_batch`` (run on one
        writer thread), or None where the async engine serves batches as well."""
        ...

    def batch_connector(self) -> Callable[[], sqlite3.Connection] | None:
        """Opens a stdlib connection for batched inserts on a worker thread
        (``db/batch.py``), or None where the async engine writes batches itself."""
        ...


def _is_connection_failure(exc: BaseException) -> bool:
    """Network-level failures (refused, reset, unresolvable host, connect timeout) and
    connections SQLAlchemy has invalidated. Other ``OSError``s (a missing file) are not."""
    network = (ConnectionError, socket.gaierror, TimeoutError)
    if isinstance(exc, network):
        return True
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated) or isinstance(exc.orig, network)
    return False


#: every writing SQLite connection's settings (the engine's and the batch writer's)
_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA busy_timeout=30000",
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=NORMAL",
)


def _sqlite_connect(dbapi_conn: Any, _: Any) -> None:
    # Take over transaction control so that BEGIN IMMEDIATE can be issued: every transaction
    # takes the write lock up front and waits (busy_timeout) instead of failing with
    # "database is locked" when it later upgrades a read lock.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cur.execute(pragma)
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # Read-only work (Database.read_session / read_connection) begins DEFERRED: in WAL mode
    # readers never wait for, nor block, a writer.
    if conn.get_execution_options().get(READ_ONLY_OPTION):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class SQLiteOps:
    name = "sqlite"

    def __init__(self, url: URL) -> None:
        self.path = Path(url.database) if url.database and url.database != ":memory:" else None

    def engine_kwargs(self, url: URL, pool_size: int) -> dict[str, Any]:
        return {"connect_args": {"timeout": 30}}

    def poll_engine(self, busy_timeout_ms: int) -> Engine | None:
        """On a file, the stdlib driver on the caller's thread (see ``Database.read_now``)."""
        if self.path is None:
            return None
        engine = create_engine(f"sqlite:///{self.path}", poolclass=SingletonThreadPool)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _: Any) -> None:
            dbapi_conn.isolation_level = None  # BEGIN / ROLLBACK are the caller's
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
            cur.execute("PRAGMA query_only=ON")
            cur.close()

        return engine

    def write_engine(self) -> Engine | None:
        """On a file, one stdlib connection with the async engine's PRAGMAs and BEGIN
        IMMEDIATE, used only by the writer thread of ``Database.write_batch``."""
        if self.path is None:
            return None
        engine = create_engine(
            f"sqlite:///{self.path}",
            poolclass=StaticPool,
            # only the writer thread uses it; ``dispose`` may close it from another
            connect_args={"timeout": 30, "check_same_thread": False},
        )
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine

    def batch_connector(self) -> Callable[[], sqlite3.Connection] | None:
        """On a file, a writing connection with the PRAGMAs of the engine's connections."""
        path = self.path
        if path is None:
            return None

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            try:
                for pragma in _SQLITE_PRAGMAS:
                    conn.execute(pragma)
            except BaseException:
                conn.close()
                raise
            return conn

        return connect

    def on_engine(self, engine: AsyncEngine) -> None:
        if self.path is not None:
            # 0600 before SQLite opens it: its -wal and -shm files take the same mode
            private_file(self.path)

        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)

    def insert(self, table: Table) -> Any:
        return sqlite.insert(table)

    def is_unavailable(self, exc: BaseException) -> bool:
        if isinstance(exc, OperationalError):
            msg = str(exc.orig).lower()
            return any(m in msg for m in _SQLITE_UNAVAILABLE)
        return False

    def is_contention(self, exc: BaseException) -> bool:
        return False  # one writer at a time: a busy lock waits (busy_timeout), never a cycle

    @contextlib.asynccontextmanager
    async def migration_lock(self, conn: AsyncConnection) -> AsyncIterator[None]:
        if self.path is None:
            yield
            return
        lock_path = self.path.with_suffix(self.path.suffix + ".migrate.lock")
        private_file(lock_path)
        fd = os.open(lock_path, os.O_RDWR)
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class PostgresOps:
    name = "postgresql"

    def engine_kwargs(self, url: URL, pool_size: int) -> dict[str, Any]:
        return {
            "pool_size": pool_size,
            "max_overflow": pool_size,
            "pool_pre_ping": True,
            # fail a connection attempt to a silent server instead of hanging for a minute
            "connect_args": {"timeout": 10},
        }

    def on_engine(self, engine: AsyncEngine) -> None:
        return None

    def poll_engine(self, busy_timeout_ms: int) -> Engine | None:
        return None  # asyncpg already runs in the event loop

    def write_engine(self) -> Engine | None:
        return None  # asyncpg already runs in the event loop

    def batch_connector(self) -> Callable[[], sqlite3.Connection] | None:
        return None  # asyncpg already runs in the event loop

    def insert(self, table: Table) -> Any:
        return postgresql.insert(table)

    def is_unavailable(self, exc: BaseException) -> bool:
        if _is_connection_failure(exc):
            return True
        orig = exc.orig if isinstance(exc, DBAPIError) else exc
        return type(orig).__name__ in _PG_UNAVAILABLE or type(exc).__name__ in _PG_UNAVAILABLE

    def is_contention(self, exc: BaseException) -> bool:
        orig = exc.orig if isinstance(exc, DBAPIError) else exc
        state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if state is None:  # SQLAlchemy's asyncpg adapter keeps the driver's error as __cause__
            state = getattr(getattr(orig, "__cause__", None), "sqlstate", None)
        return state in _PG_CONTENTION

    @contextlib.asynccontextmanager
    async def migration_lock(self, conn: AsyncConnection) -> AsyncIterator[None]:
        await conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        try:
            yield
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})


def dialect_for(url: str | URL) -> DialectOps:
    parsed = make_url(url) if isinstance(url, str) else url
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return SQLiteOps(parsed)
    if backend == "postgresql":
        return PostgresOps()
    from gasworks.errors import ConfigurationError

    raise ConfigurationError(
        f"Unsupported database '{backend}'. Use a sqlite:/// or postgresql:// URL.",
        details={"backend": backend},
    )
