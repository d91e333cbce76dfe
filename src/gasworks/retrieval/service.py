"""The one service function the adapters (REST, GraphQL, CLI) call."""

from __future__ import annotations

from gasworks.modeltypes import CallScope
from gasworks.retrieval.runtime import get_retrieval
from gasworks.retrieval.schemas import SearchRequest, SearchResponse, hit_out
from gasworks.retrieval.search import SearchQuery
from gasworks.runtime import Runtime
from gasworks.tenancy.context import Role, TenantContext


async def search(
    rt: Runtime, ctx: TenantContext, req: SearchRequest, *, request_id: str | None = None
) -> SearchResponse:
    """Search what ``ctx``'s caller may see in their tenant (viewers and above)."""
    ctx.require(Role.VIEWER)
    scope = CallScope(tenant_id=ctx.tenant_id, api_key_id=ctx.api_key_id, request_id=request_id)
    hits = await get_retrieval(rt).search.search(
        scope, SearchQuery.of(req), principal_id=ctx.principal_id
    )
    return SearchResponse(hits=[hit_out(h) for h in hits])
