"""Batched inserts of new rows in one transaction: the group commit of run persistence and
of the cost ledger.

On a SQLite file the batch is written by the stdlib driver on one thread of the ``Database``'s
own (a single worker, so one connection, created in that thread): ``BEGIN IMMEDIATE``, one
multi-row ``INSERT … VALUES (…), (…), …`` per table (up to 500 rows each), ``COMMIT`` — one
thread hand-off per batch. Not ``executemany``: it steps the statement once per row, and each
step releases the GIL and takes it back; beside a busy event loop every such hand-back is a
wait for the loop's thread to let go of the GIL and two thread switches, per row. Through
the async engine (aiosqlite under SQLAlchemy) the same batch costs a hand-off per step
(checkout, BEGIN, each statement, its cursor, COMMIT, reset), and each hand-off is a GIL
transfer between the event loop and a worker thread; with that machinery a batch of 100
finished runs cost about 65 µs of CPU per run against about 10 µs for the ``executemany``
itself (issue #19).

The values are exactly what ``Connection.execute(insert(table), rows)`` would send: SQLAlchemy
compiles the INSERT for the dialect and supplies every column type's bind processor (JSON,
UTC datetimes, money), applied on the event loop's thread before the hand-off (the worker
never touches the caller's objects). Elsewhere (PostgreSQL: asyncpg is in the event loop
already; in-memory SQLite) the batch is one Core transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Dialect, Insert, Table, insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

#: rows per multi-row INSERT, and host parameters per statement (SQLite's default limit
#: since 3.32; 999 before)
_MAX_ROWS_PER_STATEMENT = 500
_MAX_PARAMS = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999

#: (table, rows) pairs, parents first; every row of one table has the same keys
Batch = Sequence[tuple[Table, Sequence[Mapping[str, Any]]]]


class PreparedInsert:
    """``INSERT INTO t (every column) VALUES (?, …)`` compiled once, with each column's bind
    processor: rows become positional tuples ready for the driver's ``executemany``."""

    @classmethod
    def of(
        cls, table: Table, keys: tuple[str, ...], dialect: Dialect, stmt: Insert | None = None
    ) -> PreparedInsert | None:
        """The prepared form of ``stmt`` (default: a plain ``insert(table)``; e.g. one with
        ``on_conflict_do_nothing()``), or None unless ``keys`` names every column of
        ``table`` (a column left out may have a default only SQLAlchemy's execution
        applies)."""
        if set(keys) != {c.key for c in table.columns}:
            return None
        stmt = insert(table) if stmt is None else stmt
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
        order = tuple(compiled.positiontup or ())
        if set(order) != set(keys):  # bind names are not the column keys: not this path
            return None
        return cls(str(compiled), order, compiled, dialect)

    def __init__(self, sql: str, order: tuple[str, ...], compiled: Any, dialect: Dialect) -> None:
        self.sql = sql
        self._order = order
        self._rows_sql: dict[int, str] = {}
        #: the row's values in parameter order, taken in one C call
        self._values = operator.itemgetter(*order)
        #: (position, bind processor) of the columns whose type converts its value
        self._convert: list[tuple[int, Callable[[Any], Any]]] = []
        for i, key in enumerate(order):
            proc = compiled.binds[key].type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                self._convert.append((i, proc))

    def rows_sql(self, n: int) -> str | None:
        """The same INSERT with ``n`` rows in its VALUES list (qmark parameters, row after
        row), or None when its SQL does not have the one ``(?, …)`` group to repeat. One
        statement is one step of the driver: ``executemany`` steps once per row, and every
        step gives up the GIL and takes it back (beside a busy event loop, a wait of up to a
        switch interval and two thread switches per row)."""
        sql = self._rows_sql.get(n)
        if sql is None:
            group = "(" + ", ".join(["?"] * len(self._order)) + ")"
            if self.sql.count(group) != 1:
                return None
            head, _, tail = self.sql.partition(group)
            sql = head + ", ".join([group] * n) + tail
            if len(self._rows_sql) < 1024:
                self._rows_sql[n] = sql
        return sql

    def statements(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[Any]]]:
        """``rows`` as few multi-row statements as SQLite's parameter limit allows, each
        (sql, its parameters flattened row after row); without a ``(?, …)`` group to
        repeat, one statement per row (never the case for a compiled ``insert``)."""
        params = self.params(rows)
        per = max(1, min(_MAX_ROWS_PER_STATEMENT, _MAX_PARAMS // max(1, len(self._order))))
        out: list[tuple[str, list[Any]]] = []
        for lo in range(0, len(params), per):
            part = params[lo : lo + per]
            sql = self.rows_sql(len(part))
            if sql is None:
                out += [(self.sql, row) for row in part]
            else:
                out.append((sql, [v for row in part for v in row]))
        return out

    def params(self, rows: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
        values, convert = self._values, self._convert
        out = []
        for row in rows:
            params = list(values(row))
            for i, proc in convert:
                params[i] = proc(params[i])
            out.append(params)
        return out


class SQLiteBatchWriter:
    """One worker thread with one stdlib connection to the SQLite file (see the module doc).

    ``connect`` opens it (in the worker thread: a ``sqlite3`` connection stays on its
    thread) with the PRAGMAs of the engine's connections. After any error the connection is
    closed and the next batch opens a new one, so a failed batch never leaves a transaction
    open."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], dialect: Dialect) -> None:
        self._connect = connect
        self._dialect = dialect
        self._conn: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gasworks-sqlite")
        self._prepared: dict[tuple[Table, tuple[str, ...], bool], PreparedInsert | None] = {}

    def prepared(
        self, table: Table, keys: tuple[str, ...], *, skip_existing: bool = False
    ) -> PreparedInsert | None:
        """The compiled INSERT of ``table`` for rows with ``keys``; ``skip_existing``: with
        ``ON CONFLICT DO NOTHING`` (a row whose key exists is skipped)."""
        key = (table, keys, skip_existing)
        if key not in self._prepared:
            stmt = sqlite_insert(table).on_conflict_do_nothing() if skip_existing else None
            self._prepared[key] = PreparedInsert.of(table, keys, self._dialect, stmt)
        return self._prepared[key]

    async def write(self, statements: list[tuple[str, list[Any]]]) -> None:
        """Run each (sql, parameters) statement (``PreparedInsert.statements``) in one
        transaction on the worker thread: all the Python work was done by the caller, the
        worker takes the GIL a few times per batch, not once per row."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._write, statements)

    def _write(self, statements: list[tuple[str, list[Any]]]) -> None:
        sql = "BEGIN IMMEDIATE"
        try:
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            conn.execute(sql)
            for sql, params in statements:
                conn.execute(sql, params)
            sql = "COMMIT"
            conn.execute(sql)
        except sqlite3.Error as exc:
            self._drop()
            raise DBAPIError.instance(sql, None, exc, sqlite3.Error, dialect=self._dialect) from exc
        except BaseException:
            self._drop()
            raise

    def _drop(self) -> None:
        """Close the connection (an open transaction rolls back with it)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._drop)
        self._executor.shutdown(wait=False)
