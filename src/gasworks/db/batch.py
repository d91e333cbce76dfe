"""Batched inserts of new rows in one transaction: the group commit of run persistence.

On a SQLite file the batch is written on the database's one writer thread, through its one
stdlib connection (the thread and connection of ``Database.write_batch``, see
``db/engine.py``): ``BEGIN IMMEDIATE``, one ``executemany`` per table, ``COMMIT`` — one thread
hand-off per batch. Through the async engine (aiosqlite under SQLAlchemy) the same batch costs
a hand-off per step (checkout, BEGIN, each statement, its cursor, COMMIT, reset), and each
hand-off is a GIL transfer between the event loop and a worker thread (issue #19).

The rows are turned into positional tuples on the event loop's thread before the hand-off
(the writer thread never touches the caller's objects), by :class:`PreparedInsert`: the
INSERT compiled once by SQLAlchemy for the dialect, and per column the bind processor Core
would apply — except two types whose processors dominated a run's cost, for which an
equivalent, faster conversion is used (``tests/foundation/test_insert_rows.py`` checks each
against SQLAlchemy's):

* JSON: ``orjson`` (about ten times faster than the stdlib on a run's node timings). A value orjson
  refuses (an integer beyond 64 bits, a non-string key, a subclass of a built-in, a date, a
  dataclass, nesting deeper than 254) is serialised by SQLAlchemy's own processor (the
  stdlib's ``json.dumps``), with its result or its error. The text differs from the stdlib's
  only in spacing, in non-ASCII characters kept as UTF-8 and in NaN/±Infinity written as
  ``null`` (the stdlib writes ``NaN``, which is not JSON); every value reads back equal.
* ``UTCDateTime``: our type's ``process_bind_param`` (UTC, naive on SQLite), then
  ``datetime.isoformat(" ", "microseconds")`` — the exact text of SQLAlchemy's SQLite
  ``DATETIME`` default storage format, without its ``%``-formatting of nine fields.

Elsewhere (PostgreSQL: asyncpg is in the event loop already; in-memory SQLite) the batch is
one Core transaction and none of this applies.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Dialect, Table, insert
from sqlalchemy.dialects.sqlite import DATETIME as SQLITE_DATETIME
from sqlalchemy.sql.elements import Null
from sqlalchemy.types import JSON, TypeEngine

from gasworks.db.types import UTCDateTime

#: (table, rows) pairs, parents first; every row of one table has the same keys
Batch = Sequence[tuple[Table, Sequence[Mapping[str, Any]]]]

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
    return core


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
    to_utc = impl.process_bind_param

    def process(value: datetime | None) -> str | None:
        naive = to_utc(value, dialect)
        return None if naive is None else naive.isoformat(" ", "microseconds")

    return process


class PreparedInsert:
    """``INSERT INTO t (every column) VALUES (?, …)`` compiled once, with each column's bind
    processor: rows become positional tuples ready for the driver's ``executemany``."""

    @classmethod
    def of(cls, table: Table, keys: tuple[str, ...], dialect: Dialect) -> PreparedInsert | None:
        """The prepared form, or None unless ``keys`` names every column of ``table`` (a
        column left out may have a default only SQLAlchemy's execution applies)."""
        if set(keys) != {c.key for c in table.columns}:
            return None
        compiled = insert(table).compile(dialect=dialect, column_keys=list(keys))
        order = tuple(compiled.positiontup or ())
        if set(order) != set(keys):  # bind names are not the column keys: not this path
            return None
        return cls(str(compiled), order, compiled, dialect)

    def __init__(self, sql: str, order: tuple[str, ...], compiled: Any, dialect: Dialect) -> None:
        self.sql = sql
        #: the row's values in parameter order, taken in one C call
        self._values = operator.itemgetter(*order)
        #: (position, bind processor) of the columns whose type converts its value
        self._convert: list[tuple[int, Processor]] = []
        for i, key in enumerate(order):
            proc = fast_processor(compiled.binds[key].type, dialect)
            if proc is not None:
                self._convert.append((i, proc))

    def params(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        values, convert = self._values, self._convert
        out = []
        for row in rows:
            params = list(values(row))
            for i, proc in convert:
                params[i] = proc(params[i])
            out.append(tuple(params))
        return out
