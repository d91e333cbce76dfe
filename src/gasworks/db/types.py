"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from decimal import Decimal
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
    random bits as 32 hex digits, like a UUID4's hex without building a ``UUID``)."""
    return f"{prefix}_{secrets.token_hex(16)}"


def new_ordered_id(prefix: str) -> str:
    """Like ``new_id`` (32 hex digits), but time-ordered, for rows written at a high rate
    into a table whose key is indexed (the cost ledger): 48 bits of the UTC time in
    milliseconds, then 80 random bits (unguessable still), as a UUIDv7 orders them. A new
    key lands at the end of the key's index, so a batch of rows dirties a page or two of it
    instead of one random page per row (on SQLite, one WAL frame per dirtied page)."""
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


def money_to_units(value: Decimal) -> int:
    return int((value * MONEY_SCALE).to_integral_value())


def units_to_money(units: Any) -> Decimal:
    return (Decimal(int(units or 0)) / MONEY_SCALE).normalize()
