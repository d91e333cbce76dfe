"""``limit`` / ``offset`` arguments of the GraphQL list fields (the REST bounds)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from gasworks.api.paging import DEFAULT_LIMIT, MAX_LIMIT, checked_page

__all__ = ["DEFAULT_LIMIT", "Limit", "Offset", "checked_page"]


Limit = Annotated[
    int, strawberry.argument(description=f"Rows to return (the page size), 1 to {MAX_LIMIT}.")
]
Offset = Annotated[int, strawberry.argument(description="Rows to skip (earlier pages), >= 0.")]
