"""Search: ``POST /api/search`` (within what the caller may see in their tenant)."""

from __future__ import annotations

from gasworks.api.deps import ContextDep, RuntimeDep
from gasworks.api.routing import router as guarded_router
from gasworks.observability.request_id import current_request_id
from gasworks.retrieval import service
from gasworks.retrieval.schemas import SearchRequest, SearchResponse

router = guarded_router("/api/search", tags=["search"])


@router.post("", summary="Search documents (vector, keyword or hybrid) with citations")
async def search(body: SearchRequest, ctx: ContextDep, runtime: RuntimeDep) -> SearchResponse:
    return await service.search(runtime, ctx, body, request_id=current_request_id())
