"""``?limit=&offset=`` on the REST list routes (default 100 rows, at most 500)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from gasworks.db.paging import Page

DEFAULT_LIMIT = 100
MAX_LIMIT = 500


async def page_params(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="Rows to return (the page size).")
    ] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, description="Rows to skip (earlier pages).")] = 0,
) -> Page:
    return Page(limit, offset)


PageDep = Annotated[Page, Depends(page_params)]
