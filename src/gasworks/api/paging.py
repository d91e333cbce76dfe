"""``?limit=&offset=`` on the REST list routes and ``limit:`` / ``offset:`` on the GraphQL
list fields: default 100 rows, at most 500, the same bounds on both."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query
from pydantic import BaseModel, Field

from gasworks.bounds import Offset
from gasworks.db.paging import Page
from gasworks.validation import validated

DEFAULT_LIMIT = 100
MAX_LIMIT = 500


async def page_params(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="Rows to return (the page size).")
    ] = DEFAULT_LIMIT,
    offset: Annotated[Offset, Query(description="Rows to skip (earlier pages).")] = 0,
) -> Page:
    return Page(limit, offset)


PageDep = Annotated[Page, Depends(page_params)]


class _PageIn(BaseModel):
    limit: int = Field(ge=1, le=MAX_LIMIT)
    offset: Offset


def checked_page(limit: int, offset: int) -> Page:
    """A page from arguments FastAPI did not parse (GraphQL): the bounds of ``page_params``;
    an out-of-range value is ``VALIDATION_FAILED`` naming the argument."""
    p = validated(_PageIn, {"limit": limit, "offset": offset})
    return Page(p.limit, p.offset)
