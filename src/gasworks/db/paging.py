"""A page of a list: ``limit`` rows after ``offset``, applied to an ordered query.

List queries order by a unique key (or a tie-broken one), so consecutive pages neither repeat
nor skip rows while the list does not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select

S = TypeVar("S", bound=Select[Any])
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page:
    limit: int | None = None
    offset: int = 0

    def apply(self, query: S) -> S:
        if self.offset:
            query = query.offset(self.offset)
        return query if self.limit is None else query.limit(self.limit)

    def window(self, items: Sequence[T]) -> list[T]:
        """The same page of a list already in memory (for sources that are not a query)."""
        end = None if self.limit is None else self.offset + self.limit
        return list(items[self.offset : end])


#: every row (the CLI and in-process callers)
ALL = Page()
