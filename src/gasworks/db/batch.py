"""Batched inserts of new rows in one transaction: the group commit of run persistence and
of the cost ledger.

On a SQLite file the batch is written on the database's one writer thread, through its one
stdlib connection (the thread and connection of ``Database.write_batch``, see ``db/engine.py``;
or on the event loop's thread through the same connection when that thread is idle and the
write lock free, see ``Database.insert_rows``): ``BEGIN IMMEDIATE``, a few multi-row ``INSERT …
VALUES (…), (…), …`` per table (fixed sizes, see ``PreparedInsert.statements``), ``COMMIT`` —
at most one thread hand-off per batch. Not ``executemany``: it steps the statement once per
row, and each step releases the GIL and takes it back; beside a busy event loop every such
hand-back is a wait for the loop's thread to let go of the GIL and two thread switches, per
row. Through the async engine (aiosqlite under SQLAlchemy) the same batch costs a hand-off per
step (checkout, BEGIN, each statement, its cursor, COMMIT, reset), and each hand-off is a GIL
transfer between the event loop and a worker thread (issue #19).

The rows are turned into positional tuples on the event loop's thread before the hand-off
(the writer thread never touches the caller's objects), by :class:`PreparedInsert`: the
INSERT compiled once by SQLAlchemy for the dialect, and per column the bind processor Core
would apply — except three types whose processors dominated a run's or a ledger row's
cost, for which an equivalent, faster conversion is used (``tests/foundation/test_insert_rows.py``
checks each against SQLAlchemy's):

* JSON: ``orjson`` (about ten times faster than the stdlib on a run's node timings). A value orjson
  refuses (an integer beyond 64 bits, a non-string key, a subclass of a built-in, a date, a
  dataclass, nesting deeper than 254) is serialised by SQLAlchemy's own processor (the
  stdlib's ``json.dumps``), with its result or its error. The text differs from the stdlib's
  only in spacing, in non-ASCII characters kept as UTF-8 and in NaN/±Infinity written as
  ``null`` (the stdlib writes ``NaN``, which is not JSON); every value reads back equal.
* ``UTCDateTime``: our type's ``process_bind_param`` (UTC, naive on SQLite), then
  ``datetime.isoformat(" ", "microseconds")`` — the exact text of SQLAlchemy's SQLite
  ``DATETIME`` default storage format, without its ``%``-formatting of nine fields.
* ``Boolean`` (SQLite has no native boolean): one dict lookup of Core's own results for
  ``True``, ``False`` and ``None`` (what Core's strict check lets through are exactly the
  values equal to those); any other value goes to Core's processor, which refuses it.

A row is a mapping of column values, or a *record*: an object whose class names its table's
columns in ``row_fields`` and carries each as an attribute (the workflow engine's run record,
issue #19). A record's values are taken with one ``attrgetter`` call straight into the row's
tuple, with no dict built per row; wherever a mapping is needed (Core, an ORM session) it is
turned into one by :func:`as_mapping`.

Elsewhere (PostgreSQL: asyncpg is in the event loop already; in-memory SQLite) the batch is
one Core transaction and none of this applies.
"""

from __future__ import annotations

import itertools
import operator
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Dialect, Insert, Table, insert
from sqlalchemy.dialects.sqlite import DATETIME as SQLITE_DATETIME
from sqlalchemy.sql.elements import Null
from sqlalchemy.types import JSON, Boolean, TypeEngine

from gasworks.db.types import UTCDateTime

#: rows per multi-row INSERT, and host parameters per statement (SQLite's default limit
#: since 3.32; 999 before)
_MAX_ROWS_PER_STATEMENT = 500
_MAX_PARAMS = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999

#: (table, rows) pairs, parents first; every row of one table has the same keys (a mapping
#: or a record, see the module doc)
Batch = Sequence[tuple[Table, Sequence[Any]]]

#: what orjson must refuse (so the stdlib decides, as Core would): dates, dataclasses and
#: subclasses of built-ins are serialised by ``json.dumps`` or rejected by it
_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
#: SQLAlchemy's default SQLite DATETIME text, which ``isoformat(" ", "microseconds")`` equals
_SQLITE_DATETIME_FORMAT = (
    "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
)

Processor = Callable[[Any], Any]


def row_keys(row: Any) -> tuple[str, ...]:
    """The column keys of a row: a mapping's keys, or a record's ``row_fields``."""
    if isinstance(row, Mapping):
        return tuple(row)
    fields: tuple[str, ...] = type(row).row_fields
    return fields


def as_mapping(row: Any) -> Mapping[str, Any]:
    """A row as a mapping of its column values (a record's values copied into a dict)."""
    if isinstance(row, Mapping):
        return row
    fields = type(row).row_fields
    return dict(zip(fields, operator.attrgetter(*fields)(row), strict=True))


def same_kind(rows: Sequence[Any]) -> bool:
    """Whether every row is a mapping, or every row a record of one class (one getter)."""
    first = type(rows[0])
    if isinstance(rows[0], Mapping):
        return all(isinstance(r, Mapping) for r in rows)
    return all(type(r) is first for r in rows)


def fast_processor(type_: TypeEngine[Any], dialect: Dialect) -> Processor | None:
    """The bind processor Core applies to ``type_``'s values on ``dialect`` (None: values go
    as they are), or an equivalent faster one (see the module doc)."""
    impl = type_.dialect_impl(dialect)
    core = impl.bind_processor(dialect)
    if dialect.name != "sqlite" or core is None:
        return core
    if isinstance(impl, JSON) and getattr(dialect, "_json_serializer", None) is None:
        return _orjson_processor(core)
    if isinstance(impl, UTCDateTime):
        inner = impl.impl_instance.dialect_impl(dialect)
        if (
            isinstance(inner, SQLITE_DATETIME)
            and getattr(inner, "_storage_format", None) == _SQLITE_DATETIME_FORMAT
            and getattr(inner, "_reg", None) is None
        ):
            return _utc_text_processor(impl, dialect)
    if isinstance(impl, Boolean):
        return _lookup_processor(core, (True, False, None))
    return core


def _lookup_processor(core: Processor, values: tuple[Any, ...]) -> Processor:
    """``core`` as a lookup of its results for ``values`` (two Python calls less per value:
    a ledger row has two booleans); any other value (or an unhashable one) through
    ``core``, with its result or its error."""
    results = {v: core(v) for v in values}

    def process(value: Any) -> Any:
        try:
            return results[value]
        except (KeyError, TypeError):
            return core(value)

    return process


def _orjson_processor(core: Processor) -> Processor:
    dumps, options, null_sentinel = orjson.dumps, _ORJSON_OPTIONS, JSON.NULL

    def process(value: Any) -> Any:
        if value is null_sentinel or isinstance(value, Null):
            return core(value)
        try:
            return dumps(value, option=options).decode()
        except TypeError:  # orjson.JSONEncodeError: what the stdlib says (value or error)
            return core(value)

    return process


def _utc_text_processor(impl: UTCDateTime, dialect: Dialect) -> Processor:
    """UTC text of an aware datetime: for a UTC one (every ``utcnow()``) the text of its
    second, cached, and its microseconds (``datetime.isoformat`` and ``replace`` cost about
    1 µs each, twice per run row); any other through our type's ``process_bind_param`` and
    ``isoformat``."""
    to_utc = impl.process_bind_param
    seconds: dict[int, str] = {}

    def process(value: datetime | None) -> str | None:
        if value is not None and value.tzinfo is UTC:
            since = value - _EPOCH
            key = since.days * 86400 + since.seconds
            head = seconds.get(key)
            if head is None:
                if len(seconds) >= 64:
                    seconds.clear()
                head = seconds[key] = _second_text(_EPOCH + timedelta(seconds=key))
            return f"{head}.{since.microseconds:06d}"
        naive = to_utc(value, dialect)
        return None if naive is None else naive.isoformat(" ", "microseconds")

    return process


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _second_text(t: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS`` as SQLAlchemy's SQLite DATETIME format writes it (four-digit
    year: ``strftime("%Y")`` does not pad years before 1000)."""
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d} {t.hour:02d}:{t.minute:02d}:{t.second:02d}"


class PreparedInsert:
    """``INSERT INTO t (every column) VALUES (?, …)`` compiled once, with each column's bind
    processor: rows become positional tuples joined into multi-row statements (``statements``)."""

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
        #: the row's values in parameter order, taken in one C call (a mapping's, a record's)
        self._values = operator.itemgetter(*order)
        self._attrs = operator.attrgetter(*order)
        #: (position, bind processor, its result for None) of the columns whose type converts
        #: its value: a None (a nullable column's usual value) costs no call
        self._convert: list[tuple[int, Processor, Any]] = []
        for i, key in enumerate(order):
            proc = fast_processor(compiled.binds[key].type, dialect)
            if proc is not None:
                self._convert.append((i, proc, _none_result(proc)))

    def rows_sql(self, n: int) -> str | None:
        """The same INSERT with ``n`` rows in its VALUES list (qmark parameters, row after
        row), or None when its SQL does not have the one ``(?, …)`` group to repeat."""
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

    def statements(self, rows: Sequence[Any]) -> list[tuple[str, tuple[Any, ...]]]:
        """``rows`` as multi-row statements, each (sql, its parameters flattened row after
        row); without a ``(?, …)`` group to repeat, one statement per row (never the case for
        a compiled ``insert``).

        The statements have a few fixed sizes — powers of two, up to what SQLite's parameter
        limit allows (``n`` rows: ``n // 256`` statements of 256 and one per bit of the rest)
        —, so each size's SQL text is the same from batch to batch and the driver's
        statement cache prepares it once per connection. Preparing a multi-row INSERT costs
        several times what running it does (about 9 µs a row of 26 columns against 2 µs:
        a statement sized to each batch was prepared anew every batch, issue #19)."""
        params = self.params(rows)
        per = max(1, min(_MAX_ROWS_PER_STATEMENT, _MAX_PARAMS // max(1, len(self._order))))
        size = 1 << (per.bit_length() - 1)  # the largest power of two within the limit
        out: list[tuple[str, tuple[Any, ...]]] = []
        lo, total = 0, len(params)
        while lo < total:
            while size > total - lo:
                size >>= 1
            part = params[lo : lo + size]
            sql = self.rows_sql(size)
            if sql is None:
                out += [(self.sql, row) for row in part]
            else:
                out.append((sql, tuple(itertools.chain.from_iterable(part))))
            lo += size
        return out

    def params(self, rows: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Rows (all mappings, or all records of one class: ``same_kind``) as tuples."""
        values = self._values if isinstance(rows[0], Mapping) else self._attrs
        convert = self._convert
        out = []
        for row in rows:
            params = list(values(row))
            for i, proc, none in convert:
                v = params[i]
                params[i] = (proc(v) if none is _CALL else none) if v is None else proc(v)
            out.append(tuple(params))
        return out


#: ``_none_result`` of a processor whose result for None could not be taken once
_CALL: Any = object()


def _none_result(proc: Processor) -> Any:
    """What ``proc`` makes of None (taken once: bind processors are pure functions of their
    value), or ``_CALL`` when it raises or returns a mutable value (then it is called)."""
    try:
        out = proc(None)
    except Exception:
        return _CALL
    return out if out is None or type(out) in (str, int, float, bytes, bool) else _CALL
