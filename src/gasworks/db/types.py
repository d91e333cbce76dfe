"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from os import urandom
from time import time_ns
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

#: Money is stored as an integer count of nano-units (1e-9 of the currency unit): exact,
#: summable in SQL on every dialect, range ±9.2 billion.
MONEY_SCALE = Decimal("1000000000")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every dialect (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    """Exact money amounts (``Decimal``) stored as BigInteger nano-units."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | int | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return int((Decimal(value) * MONEY_SCALE).to_integral_value())

    def process_result_value(self, value: int | None, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return (Decimal(value) / MONEY_SCALE).normalize()


#: JSON that is JSONB on PostgreSQL.
JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """Opaque, prefixed ids (``ten_…``, ``key_…``): readable in logs, unguessable (128
    random bits as 32 hex digits, like a UUID4's hex without building a ``UUID``): the
    operating system's CSPRNG, as ``secrets.token_hex`` reads it, without its two calls."""
    return f"{prefix}_{urandom(16).hex()}"


def new_ordered_id(prefix: str) -> str:
    """An id like ``new_id``'s (prefix, 32 hex digits) whose first 12 digits are the time in
    milliseconds, the other 20 random (80 bits: still unguessable): ids made later sort
    later, so a table keyed by them grows at the end of its primary-key index. For rows
    written at a high rate (workflow runs): with random keys, every row of a batch lands on
    another leaf page of the index, and a group commit of 100 runs wrote about 90 SQLite
    pages instead of about 50 (more as the table grows; PostgreSQL's B-tree alike)."""
    return f"{prefix}_{time_ns() // 1_000_000:012x}{urandom(10).hex()}"


def money_to_units(value: Decimal) -> int:
    return int((value * MONEY_SCALE).to_integral_value())


def units_to_money(units: Any) -> Decimal:
    return (Decimal(int(units or 0)) / MONEY_SCALE).normalize()
