"""The async engine, sessions and schema upgrade of one deployment."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
import threading
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine, Select, Table, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from gasworks.db.batch import Batch, PreparedInsert, as_mapping, row_keys, same_kind
from gasworks.db.dialects import READ_ONLY_OPTION, DialectOps, dialect_for
from gasworks.db.pgreads import NOT_HERE, PgReadPool
from gasworks.errors import DatabaseBusy, DatabaseUnavailable, MissingDependency

#: how long a poller's synchronous SQLite read may wait for a lock (see ``read_now``)
POLL_BUSY_TIMEOUT_MS = 100

T = TypeVar("T")
R = TypeVar("R")


class OnLoop(Protocol):
    """Runs a function on the event loop's thread and returns its result: what a
    ``write_batch`` function uses for work that must not run beside the event loop (reading
    or changing memory that the loop's code also changes)."""

    def __call__(self, fn: Callable[[], R]) -> R: ...


def _here(fn: Callable[[], R]) -> R:
    return fn()


class _OnLoopOf:
    """``OnLoop`` for a thread other than the loop's: the call is scheduled on ``loop`` and
    the thread waits for its result."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def __call__(self, fn: Callable[[], R]) -> R:
        done: concurrent.futures.Future[R] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:
                done.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return done.result()


#: a write batch: synchronous statements on the session, in one transaction
WriteBatch = Callable[[Session, OnLoop], T]


class Database:
    """Engine + session factory + dialect pieces. One per process, shared by everything."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        parsed = make_url(url)
        self.url = url
        self.dialect: DialectOps = dialect_for(parsed)
        try:
            self.engine: AsyncEngine = create_async_engine(
                parsed, echo=echo, **self.dialect.engine_kwargs(parsed, pool_size)
            )
        except ImportError as exc:  # the URL's driver is not installed (asyncpg)
            driver = getattr(exc, "name", None) or parsed.get_driver_name()
            raise MissingDependency.package(
                f"The database URL {parsed.render_as_string(hide_password=True)}",
                driver,
                "postgres",
            ) from exc
        self.dialect.on_engine(self.engine)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        #: the same pool, marked read-only: on SQLite its transactions take no write lock
        self.read_engine: AsyncEngine = self.engine.execution_options(**{READ_ONLY_OPTION: True})
        self.read_sessionmaker = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self._poll_engine: Engine | None = None
        #: ``read_first`` on a SQLite file: each thread's query-only stdlib connection and the
        #: statements compiled for it (see ``_PreparedRead``)
        self._raw_reads = threading.local()
        self._prepared: dict[Select[Any], _PreparedRead | None] = {}
        #: one statement, no transaction: a single SELECT is its own consistent snapshot on
        #: both dialects, so short reads skip BEGIN/ROLLBACK (two round trips on PostgreSQL).
        #: PostgreSQL only (the SQLite connections manage their own BEGIN, see dialects.py):
        #: asyncpg's own small pool, whose checkout and return send nothing (``db/pgreads.py``)
        self._pg_reads: PgReadPool | None = None
        #: ``write_batch`` and ``insert_rows`` on a SQLite file: one stdlib connection and the
        #: one thread using it (the executor's queue is the one queue of both, FIFO)
        self._write_engine: Engine | None = None
        self._writer: concurrent.futures.ThreadPoolExecutor | None = None
        #: jobs handed to the writer thread and not finished (``_insert_here`` runs only
        #: while there are none: the thread and the event loop never share the connection)
        self._writer_jobs = 0
        #: the writer's stdlib connection and its busy timeout (``_insert_here``)
        self._write_raw: sqlite3.Connection | None = None
        self._write_busy_ms = 0
        self._write_autocheckpoint = 1000
        #: batches written by ``_insert_here`` since the writer thread last took one
        self._here_batches = 0
        if self.dialect.name == "postgresql":
            connect_args = self.dialect.engine_kwargs(parsed, pool_size).get("connect_args", {})
            self._pg_reads = PgReadPool(self.engine, max(2, pool_size // 2), connect_args)
        #: ``insert_rows`` and ``insert_in`` on a SQLite file: the INSERTs prepared per
        #: (table, keys, skip_existing)
        self._inserts: dict[tuple[Table, tuple[str, ...], bool], PreparedInsert | None] = {}

    async def insert_rows(self, batch: Batch, *, skip_existing: bool = False) -> None:
        """New rows of a few tables (parents first), in one transaction: the group commit
        of run persistence (``workflows/writer.py``). ``skip_existing``: a row whose key
        exists already is skipped (``ON CONFLICT DO NOTHING``), not an error.

        On a SQLite file the transaction runs on the writer thread of ``write_batch`` — the
        same thread, connection and queue, so batches of both kinds are committed one after the
        other in the order they were handed over: BEGIN IMMEDIATE, a few multi-row INSERTs per
        table, COMMIT —, or, when nothing waits for that thread and the write lock is free at
        once, on the event loop's thread through the same connection (``_insert_here``: the
        order is the same, since nothing was handed over before). The rows become positional
        tuples here, on the event loop's thread (``db/batch.py``); a table whose rows do not
        give every column is inserted through Core on that thread instead (its column defaults
        applied), from a copy of each row made here. Elsewhere (PostgreSQL, in-memory SQLite),
        one Core transaction on the async engine. The caller must not change the rows' values
        until it returns."""
        batch = [(table, rows) for table, rows in batch if rows]
        if not batch:
            return
        engine = self._write_engine_now()
        with self.unavailable_as_error():
            if engine is None:
                async with self.engine.begin() as aconn:
                    for table, rows in batch:
                        await aconn.execute(
                            self._insert_stmt(table, skip_existing), [as_mapping(r) for r in rows]
                        )
                return
            driver_steps: list[tuple[str, tuple[Any, ...]]] = []
            core_steps: list[tuple[Table, list[Mapping[str, Any]]]] = []
            for table, rows in batch:
                prepared = None
                if same_kind(rows):
                    keys = row_keys(rows[0])
                    prepared = self._prepared_insert(table, keys, engine, skip_existing)
                if prepared is None or core_steps:  # keep the tables' order
                    core_steps.append((table, [dict(as_mapping(r)) for r in rows]))
                else:
                    driver_steps += prepared.statements(rows)

            if not core_steps and self._insert_here(driver_steps):
                return

            def run_inserts() -> None:
                with engine.begin() as conn:  # BEGIN IMMEDIATE (the dialect's "begin" hook)
                    driver_conn = conn.connection.driver_connection
                    if driver_conn is not self._write_raw:  # first use, or the pool's new one
                        self._know_raw(driver_conn)
                    if driver_steps:
                        # the driver itself: SQLAlchemy's execution of one statement (its
                        # context, parameter checks, cursor wrapper) costs more than binding
                        # and stepping a row; its errors are raised as Core raises them
                        driver: Any = conn.connection.dbapi_connection
                        for sql, params in driver_steps:
                            try:
                                driver.execute(sql, params)
                            except sqlite3.Error as exc:
                                raise DBAPIError.instance(
                                    sql, params, exc, sqlite3.Error, dialect=engine.dialect
                                ) from exc
                    for table, rows in core_steps:
                        conn.execute(self._insert_stmt(table, skip_existing), rows)

            await self._on_writer(run_inserts)

    def _insert_here(
        self,
        steps: Sequence[tuple[str, tuple[Any, ...]]],
    ) -> bool:
        """The INSERTs of ``insert_rows`` on the event loop's thread, through the writer's
        connection, when nothing waits for the writer thread and no other connection holds
        the write lock (``BEGIN IMMEDIATE`` with a busy timeout of 0: never a wait). False:
        not written (the lock is taken, the writer thread is busy, or any error — rolled
        back, so the writer thread's path writes the batch instead and reports its errors as
        always).

        Why (issue #19): the batch is a few statements whose SQLite work is a few µs a row,
        but on the writer thread each statement hands the GIL back and forth with a busy
        event loop, and every hand-off wakes the other thread — a futex wake and a context
        switch, which on a virtual machine cost more than the rows themselves (``perf``: a
        quarter of the default deployment's extra CPU per request was waking threads).
        On the loop's own thread nobody else wants the GIL. The loop is held for the batch
        (about 2 ms for 250 ledger rows); a batch that finds the lock taken waits on the
        writer thread as before, so the loop never waits for a lock.

        Nor for the disk: in WAL mode with ``synchronous=NORMAL`` a commit does not sync,
        but the commit that finds the log past ``wal_autocheckpoint`` pages runs the
        checkpoint, which syncs the log and the database file. Here automatic checkpoints
        are off for the loop's commit, and every ``_HERE_EVERY``-th batch is left to the
        writer thread, whose commit runs the checkpoint when one is due: the log stays
        bounded, and the sync happens off the event loop."""
        if self._writer_jobs:
            return False
        raw = self._write_raw
        if raw is None:  # the writer thread has not opened the connection yet
            return False
        self._here_batches += 1
        if self._here_batches >= _HERE_EVERY:
            self._here_batches = 0
            return False  # the writer thread's turn (and its automatic checkpoint)
        try:
            with _pragma(raw, "busy_timeout", 0, self._write_busy_ms):
                raw.execute("BEGIN IMMEDIATE")
        except sqlite3.Error:
            return False  # locked by another connection (or unusable): the writer thread
        try:
            for sql, params in steps:
                raw.execute(sql, params)
            with _pragma(raw, "wal_autocheckpoint", 0, self._write_autocheckpoint):
                raw.execute("COMMIT")
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                raw.execute("ROLLBACK")
            return False
        return True

    def _insert_stmt(self, table: Table, skip_existing: bool) -> Any:
        if skip_existing:
            return self.dialect.insert(table).on_conflict_do_nothing()
        return insert(table)

    def _prepared_insert(
        self, table: Table, keys: tuple[str, ...], engine: Engine, skip_existing: bool
    ) -> PreparedInsert | None:
        key = (table, keys, skip_existing)
        if key not in self._inserts:
            stmt = self._insert_stmt(table, skip_existing)
            self._inserts[key] = PreparedInsert.of(table, keys, engine.dialect, stmt)
        return self._inserts[key]

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on any error."""
        with self.unavailable_as_error():
            async with self.sessionmaker() as session, session.begin():
                yield session

    async def write_batch(self, fn: WriteBatch[T]) -> T:
        """``fn(session, on_loop)`` in one write transaction of synchronous statements
        (committed when it returns, rolled back when it raises): for the background writers
        that batch many small writes (the cost ledger and its budget settlements).

        On a SQLite file the whole transaction — BEGIN IMMEDIATE, the statements, COMMIT —
        runs in ONE hand-off to a writer thread, through one stdlib connection: the async
        driver hands every statement, cursor and commit to its own thread and back (about ten
        hand-offs per batch, each costing the event loop CPU and a contended GIL). ``fn``
        runs on that thread: the memory it shares with the event loop's code goes through
        ``on_loop``. Elsewhere (PostgreSQL: asyncpg is in the event loop; in-memory SQLite)
        it runs through ``AsyncSession.run_sync`` in one transaction of ``session()``, and
        ``on_loop`` calls directly.

        Cancelling the caller does not cut the transaction short on the writer thread: the
        caller waits for its outcome, gets the result, and the cancellation is delivered at
        its next await (so memory that follows the commit stays in step with the database).
        """
        engine = self._write_engine_now()
        if engine is None:
            async with self.session() as s:
                return await s.run_sync(fn, _here)
        on_loop = _OnLoopOf(asyncio.get_running_loop())

        def run_batch() -> T:
            with Session(engine) as session, session.begin():
                return fn(session, on_loop)

        with self.unavailable_as_error():
            return await self._on_writer(run_batch)

    async def _on_writer(self, fn: Callable[[], T]) -> T:
        """``fn`` on the writer thread (after what was handed to it before), its outcome
        delivered even to a caller cancelled meanwhile (see ``write_batch``)."""
        assert self._writer is not None
        future = asyncio.get_running_loop().run_in_executor(self._writer, fn)
        self._writer_jobs += 1
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.cancelled():  # never started: nothing was written
                raise
            # the batch runs to its end: wait for its outcome, then deliver the cancel
            while not future.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({future})
            task = asyncio.current_task()
            if task is not None:
                task.cancel()
            return future.result()
        finally:
            if future.done():
                self._writer_jobs -= 1
            else:  # cancelled before it started: counted down when the executor drops it
                future.add_done_callback(self._writer_job_done)

    def _know_raw(self, driver: Any) -> None:
        """(On the writer thread, in a transaction.) The writer's stdlib connection, for
        ``_insert_here``; its busy timeout first, so that the loop never sees one without
        the other."""
        if isinstance(driver, sqlite3.Connection):
            self._write_busy_ms = int(driver.execute("PRAGMA busy_timeout").fetchone()[0])
            self._write_autocheckpoint = int(
                driver.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
            )
            self._write_raw = driver

    def _writer_job_done(self, _: Any) -> None:
        self._writer_jobs -= 1

    def insert_in(
        self, s: Session, table: Table, rows: Sequence[Any], *, skip_existing: bool
    ) -> None:
        """INSERT ``rows`` (mappings, or records as in ``db/batch.py``; each giving every
        column, the same keys) inside a ``write_batch``
        function; ``skip_existing``: a row whose key exists already is skipped (``ON
        CONFLICT DO NOTHING``).

        On the SQLite writer thread the statement SQLAlchemy compiles for them runs through
        the driver with each column's bind processor, several rows per statement
        (``PreparedInsert.statements``, as ``insert_rows``): Core's execution of the same
        INSERT costs an execution context and a parameter dict built per row, about three
        times the driver's own time for a ledger row (issue #19). Elsewhere, and for rows that
        leave a column out, Core."""
        if not rows:
            return
        engine = self._write_engine
        if engine is not None and s.get_bind() is engine:
            prepared = self._prepared_insert(table, row_keys(rows[0]), engine, skip_existing)
            if prepared is not None and same_kind(rows):
                driver: Any = s.connection().connection.dbapi_connection
                for sql, params in prepared.statements(rows):  # multi-row: see db/batch.py
                    driver.execute(sql, params)
                return
        s.execute(self._insert_stmt(table, skip_existing), [as_mapping(r) for r in rows])

    def _write_engine_now(self) -> Engine | None:
        if self._writer is None:
            engine = self.dialect.write_engine()
            if engine is None:
                return None
            self._write_engine = engine
            self._writer = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="gasworks-db-writer"
            )
        return self._write_engine

    @contextlib.asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only. On SQLite it begins DEFERRED, so frequent readers
        (authentication, pollers, resolvers) never take or wait for the write lock; on
        PostgreSQL it is an ordinary transaction. Writing through it is a bug (on SQLite it
        may fail with "database is locked" under concurrency)."""
        with self.unavailable_as_error():
            async with self.read_sessionmaker() as session, session.begin():
                yield session

    @contextlib.asynccontextmanager
    async def read_connection(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection for reads only (see ``read_session``)."""
        with self.unavailable_as_error():
            async with self.read_engine.connect() as conn:
                yield conn

    async def read_now(
        self, *statements: Any, params: Mapping[str, Any] | None = None
    ) -> list[Sequence[Any]]:
        """The rows of a few small reads, in one read-only snapshot: for pollers. ``params``:
        the values of the statements' bound parameters (each takes the ones it names), so
        that a poller's statements can be built once.

        On a SQLite file they run synchronously on this thread, through a query-only
        connection of the stdlib driver: in WAL mode a reader never waits for a writer, so an
        indexed read takes tens of microseconds, where the async driver's thread hand-offs
        cost about 0.8 ms of CPU per poll and contend with the event loop. A reader waits
        for a lock only while another process recovers the WAL after a crash, and then at
        most ``POLL_BUSY_TIMEOUT_MS``. On PostgreSQL (asyncpg is already in the event loop)
        and in-memory SQLite they go through ``read_connection``.
        """
        engine = self._poll_sync_engine()
        if engine is None:
            async with self.read_connection() as conn:
                try:
                    return [(await conn.execute(stmt, params)).all() for stmt in statements]
                finally:
                    await conn.rollback()  # reads only: nothing is ever committed here
        with self.unavailable_as_error(), engine.connect() as conn:
            conn.exec_driver_sql("BEGIN")
            try:
                return [conn.execute(stmt, params).all() for stmt in statements]
            finally:
                conn.exec_driver_sql("ROLLBACK")

    async def read_first(self, statement: Any, params: Mapping[str, Any]) -> Sequence[Any] | None:
        """The first row of one short indexed read (the hot reads: prompt resolution, run
        lookups), in the fewest round trips the dialect allows.

        On a SQLite file: the synchronous path of ``read_now`` without BEGIN/ROLLBACK (one
        statement is its own snapshot), on this thread; SQLAlchemy's compiled-statement cache
        and the stdlib driver's prepared-statement cache make a repeat cost one
        ``sqlite3_step``. On PostgreSQL: one autocommit statement through asyncpg's own pool
        (``db/pgreads.py``), asyncpg preparing and caching it per connection (no BEGIN, no
        ROLLBACK, nothing sent at checkout or return: one round trip instead of three).
        In-memory SQLite (tests): ``read_connection``. Only a ``SELECT``
        is accepted: an autocommit statement on PostgreSQL would keep a write.
        """
        if not isinstance(statement, Select):
            raise TypeError("read_first takes a SELECT statement only")
        engine = self._poll_sync_engine()
        if engine is not None:
            with self.unavailable_as_error():
                return self._sqlite_read_first(engine, statement, params)
        if self._pg_reads is not None:
            with self.unavailable_as_error():
                return await self._pg_read_first(self._pg_reads, statement, params)
        return await self._core_read_first(statement, params)

    async def _pg_read_first(
        self, reads: PgReadPool, statement: Select[Any], params: Mapping[str, Any]
    ) -> Sequence[Any] | None:
        """One autocommit statement on asyncpg: compiled once (``_PreparedRead``), run with
        the driver's ``fetchrow`` on a connection of asyncpg's own pool (``db/pgreads.py``):
        SQLAlchemy's async execution (a greenlet hop, an execution context and a result per
        call) and its pool's checkout and return cost more client CPU than the read itself.
        A statement the plain path cannot take, a driver error (a connection the server
        dropped included: the pool replaces it) and another event loop than the pool's read
        through Core instead, so an error surfaces exactly as Core raises it."""
        prepared = self._prepared_read(statement, self.engine.sync_engine)
        if prepared is not None:
            try:
                raw = await reads.fetchrow(prepared.sql, prepared.args(params))
            except Exception:  # noqa: S110 - repeated through Core below, which raises it
                pass
            else:
                if raw is not NOT_HERE:
                    row: Sequence[Any] | None = None if raw is None else prepared.row(raw)
                    return row
        return await self._core_read_first(statement, params)

    async def _core_read_first(
        self, statement: Select[Any], params: Mapping[str, Any]
    ) -> Sequence[Any] | None:
        """Through Core, on a read connection whose transaction is rolled back."""
        async with self.read_connection() as rconn:
            try:
                first: Sequence[Any] | None = (await rconn.execute(statement, params)).first()
                return first
            finally:
                await rconn.rollback()

    def _prepared_read(self, statement: Select[Any], engine: Engine) -> _PreparedRead | None:
        if statement not in self._prepared:
            if len(self._prepared) >= _PREPARED_MAX:  # hot reads are module constants
                self._prepared.clear()
            self._prepared[statement] = _PreparedRead.of(statement, engine)
        return self._prepared[statement]

    def _sqlite_read_first(
        self, engine: Engine, statement: Select[Any], params: Mapping[str, Any]
    ) -> Sequence[Any] | None:
        prepared = self._prepared_read(statement, engine)
        if prepared is None:  # a statement the plain path cannot take: through Core
            with engine.connect() as core:
                return core.execute(statement, params).first()
        conn: sqlite3.Connection | None = getattr(self._raw_reads, "conn", None)
        if conn is None:
            # the pool's connection of this thread (SingletonThreadPool: PRAGMAs applied, closed
            # by ``dispose``), held checked out for the thread's later reads
            try:
                self._raw_reads.fairy = engine.raw_connection()
            except sqlite3.Error as exc:  # the pool raises the driver's error as it is
                raise DBAPIError.instance(
                    "connect", None, exc, sqlite3.Error, dialect=engine.dialect
                ) from exc
            conn = self._raw_reads.conn = self._raw_reads.fairy.dbapi_connection
        assert conn is not None
        args = prepared.args(params)
        try:
            cursor = conn.execute(prepared.sql, args)
            try:
                raw = cursor.fetchone()
            finally:
                cursor.close()  # resets the statement: its read snapshot ends here
        except sqlite3.Error as exc:
            raise DBAPIError.instance(
                prepared.sql, args, exc, sqlite3.Error, dialect=engine.dialect
            ) from exc
        return None if raw is None else prepared.row(raw)

    def _poll_sync_engine(self) -> Engine | None:
        if self._poll_engine is None:
            self._poll_engine = self.dialect.poll_engine(POLL_BUSY_TIMEOUT_MS)
        return self._poll_engine

    @contextlib.contextmanager
    def unavailable_as_error(self) -> Iterator[None]:
        """Translate "cannot reach the database" failures into ``DatabaseUnavailable`` (503),
        and a transaction the database aborted to break a deadlock or a serialization
        conflict into ``DatabaseBusy`` (503: nothing was applied, the request may be sent
        again)."""
        try:
            yield
        except (DBAPIError, OSError, TimeoutError) as exc:
            if self.dialect.is_unavailable(exc):
                raise DatabaseUnavailable(
                    "The database is unreachable; try again shortly.",
                    details={"dialect": self.dialect.name},
                ) from exc
            if self.dialect.is_contention(exc):
                raise DatabaseBusy(
                    "The database aborted this change because concurrent work held the same "
                    "rows; nothing was applied. Send the request again.",
                    details={"dialect": self.dialect.name, "retryAfterSeconds": 1},
                ) from exc
            raise

    async def ping(self, within_seconds: float = 3.0) -> bool:
        """Whether the database answers ``SELECT 1`` within ``within_seconds``."""
        try:
            async with asyncio.timeout(within_seconds), self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def upgrade(self) -> str:
        """Bring the schema to the newest revision; safe when many processes start at once."""
        from gasworks.db.migrate import upgrade

        with self.unavailable_as_error():
            return await upgrade(self)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._pg_reads is not None:
            await self._pg_reads.close()
        self._prepared.clear()
        self._raw_reads = threading.local()
        if self._poll_engine is not None:
            self._poll_engine.dispose()
            self._poll_engine = None
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await asyncio.to_thread(writer.shutdown)  # a batch under way finishes first
            self._write_raw = None
            if self._write_engine is not None:
                self._write_engine.dispose()
                self._write_engine = None


#: compiled hot reads kept per ``Database`` (they are module-level statements: a handful)
_PREPARED_MAX = 64


@contextlib.contextmanager
def _pragma(raw: sqlite3.Connection, name: str, value: int, restore: int) -> Iterator[None]:
    """A connection setting changed for the statements inside, restored whatever happens."""
    raw.execute(f"PRAGMA {name}={value}")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA {name}={restore}")


#: ``Database._insert_here``: one batch in this many is left to the writer thread, whose
#: commit runs the automatic WAL checkpoint when one is due (the loop's commits never do)
_HERE_EVERY = 16


class _PreparedRead:
    """One ``SELECT`` compiled once for the driver (stdlib sqlite3, asyncpg): its SQL text,
    the order of its positional parameters with their bind processors, and a row class naming
    its columns with their result processors.

    Why not ``Connection.execute`` (SQLAlchemy Core, already compiled and cached): its
    per-call machinery (checkout, execution context, result object) costs about 60 µs of CPU
    around a 15 µs indexed read, most of an uncached prompt resolution. SQLAlchemy still
    compiles the statement and supplies every type's processors, so the SQL, the parameter
    binding and the values are exactly what ``Connection.execute`` would produce.
    """

    @classmethod
    def of(cls, statement: Select[Any], engine: Engine) -> _PreparedRead | None:
        """The prepared form, or None for a statement whose SQL is only final at execution
        (expanding ``IN``, literal-execute parameters) or whose column names are not unique
        identifiers: those go through ``Connection.execute``."""
        compiled = statement.compile(dialect=engine.dialect)
        names = [c.key for c in statement.selected_columns]
        plain_names = all(
            isinstance(n, str) and n.isidentifier() and not n.startswith("_") for n in names
        )
        if "POSTCOMPILE" in str(compiled) or not plain_names or len(set(names)) != len(names):
            return None
        return cls(statement, compiled, engine)

    def __init__(self, statement: Select[Any], compiled: Any, engine: Engine) -> None:
        dialect = engine.dialect
        self.sql = str(compiled)
        self._compiled = compiled
        self._order: tuple[str, ...] = tuple(compiled.positiontup or ())
        #: positional parameters in order, each with its type's bind processor (or None)
        self._bind: list[tuple[str, Callable[[Any], Any] | None]] = [
            (key, compiled.binds[key].type.dialect_impl(dialect).bind_processor(dialect))
            for key in self._order
        ]
        columns = list(statement.selected_columns)
        names = [str(c.key) for c in columns]  # ``of`` checked they are identifiers
        self._row_class: Any = namedtuple("Row", names)  # type: ignore[misc]
        self._results: list[Callable[[Any], Any] | None] = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
        ]
        self._plain = all(p is None for p in self._results)

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        values = self._compiled.construct_params(params)
        return tuple(values[key] if proc is None else proc(values[key]) for key, proc in self._bind)

    def row(self, raw: Sequence[Any]) -> Sequence[Any]:
        if self._plain:
            return self._row_class._make(raw)  # type: ignore[no-any-return]
        return self._row_class._make(  # type: ignore[no-any-return]
            v if p is None else p(v) for v, p in zip(raw, self._results, strict=True)
        )
