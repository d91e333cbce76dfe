"""``limit`` / ``offset`` arguments of the GraphQL list fields (the REST bounds)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from gasworks.api.graphql.context import GqlContext
from gasworks.api.paging import DEFAULT_LIMIT, MAX_LIMIT, checked_page
from gasworks.db.paging import Page
from gasworks.tenancy.context import TenantContext

__all__ = ["DEFAULT_LIMIT", "Limit", "Offset", "checked_page", "page_of"]

T = TypeVar("T")

Limit = Annotated[
    int, strawberry.argument(description=f"Rows to return (the page size), 1 to {MAX_LIMIT}.")
]
Offset = Annotated[int, strawberry.argument(description="Rows to skip (earlier pages), >= 0.")]

Fetch = Callable[[AsyncSession, TenantContext, Page], Awaitable[list[T]]]


async def page_of(
    info: strawberry.Info[GqlContext, None], limit: int, offset: int, fetch: Fetch[T]
) -> list[T]:
    """One page of a service's list, in one session, after the bounds are checked."""
    page = checked_page(limit, offset)
    async with info.context.runtime.db.session() as s:
        return await fetch(s, info.context.ctx, page)
