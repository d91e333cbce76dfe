"""The numeric limits of the edge, as plain constants (``gasworks.bounds`` builds the
validated types from them; the CLI reads them without loading pydantic)."""

from __future__ import annotations

#: what a 64-bit integer column holds (SQLite INTEGER, PostgreSQL BIGINT)
MAX_INT64 = 2**63 - 1
#: the largest integer every JSON client reads exactly (a double's 53-bit mantissa): the
#: bound of counts and offsets, far below what the columns hold
MAX_SAFE_INT = 2**53 - 1
#: what a 32-bit integer column holds (PostgreSQL INTEGER): version and sequence numbers
MAX_INT32 = 2**31 - 1
#: money is stored as BIGINT nano-units (``db.types.Money``)
MONEY_PLACES = 9
#: a retention period, in days
MAX_DAYS = 36_500
