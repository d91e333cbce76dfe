"""Bounded numbers for every edge (REST, GraphQL, the CLI): the one place their limits live.

An unbounded ``int`` or ``Decimal`` taken from a caller reaches the database, where SQLite
raises ``OverflowError`` above 2**63 - 1 and PostgreSQL refuses a 32-bit column's overflow:
a 500 for what is the caller's mistake. Every integer or decimal a caller sends is therefore
one of these types; out of range is ``VALIDATION_FAILED`` naming the field (pydantic does
it in request bodies, FastAPI in paths, queries and headers, ``validation.validated`` in
GraphQL and the CLI). The limits also appear in the OpenAPI document (``minimum`` /
``maximum``), so a client generator or a fuzzer knows them.
"""

from __future__ import annotations

import math
import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from annotated_types import Ge, Le
from pydantic import BeforeValidator, Field, Strict, WithJsonSchema

from gasworks.limits import MAX_DAYS, MAX_INT32, MAX_INT64, MAX_SAFE_INT, MONEY_PLACES

#: the largest amount: a round number below what BIGINT nano-units hold (9.22e9)
MAX_MONEY = Decimal(9_000_000_000)
assert MAX_MONEY * 10**MONEY_PLACES <= MAX_INT64

#: rows to skip in a list
Offset = Annotated[int, Ge(0), Le(MAX_SAFE_INT)]
#: a count of things (tokens per period) that fits a 64-bit column; in a body a JSON integer
#: (not ``"5"`` or ``5.0``)
Count = Annotated[int, Strict(), Ge(0), Le(MAX_SAFE_INT)]
#: a number of tokens asked for (a model's output limit): positive, 32-bit
TokenCount = Annotated[int, Ge(1), Le(MAX_INT32)]
#: a token id (refused later where text is expected, but bounded like every number)
TokenId = Annotated[int, Ge(0), Le(MAX_INT32)]
#: a version or sequence number (1, 2, ...) stored in a 32-bit column
VersionNumber = Annotated[int, Ge(1), Le(MAX_INT32)]
#: a compare-and-set expectation: 0 means "not created yet"
ExpectedVersion = Annotated[int, Ge(0), Le(MAX_INT32)]
#: an event sequence number to resume after (0: from the start)
EventSeq = Annotated[int, Ge(0), Le(MAX_INT32)]
#: a number of days back from now (a retention period)
Days = Annotated[int, Ge(0), Le(MAX_DAYS)]


def _money_in(value: Any) -> Any:
    # a JSON number is a binary float: rounded to the stored precision (0.1 + 0.2 is 0.3)
    if isinstance(value, float) and math.isfinite(value):
        return round(Decimal(repr(value)), MONEY_PLACES)
    return value


_MONEY_PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,9})?$"

#: an amount of money: finite, non-negative, at most nine decimal places; a decimal string
#: (exact) or a JSON number (rounded to nine places)
Money = Annotated[
    Decimal,
    BeforeValidator(_money_in),
    Field(ge=0, le=MAX_MONEY, decimal_places=MONEY_PLACES, allow_inf_nan=False),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _MONEY_PATTERN},
                {"type": "number", "minimum": 0, "maximum": int(MAX_MONEY)},
            ]
        }
    ),
]


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_date_only(value: Any) -> Any:
    # pydantic's lax date also takes a number of seconds since 1970 (``until=0``)
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("expected a date as YYYY-MM-DD")
    if isinstance(value, int | float):
        raise ValueError("expected a date as YYYY-MM-DD")
    return value


#: a calendar day, written YYYY-MM-DD (and nothing else)
IsoDate = Annotated[date, BeforeValidator(_iso_date_only)]
