"""GraphQL: ``search`` (the same service as ``POST /api/search``)."""

from __future__ import annotations

from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from gasworks.api.graphql.context import GqlContext
from gasworks.retrieval import service
from gasworks.retrieval.schemas import SearchHitOut, SearchRequest
from gasworks.validation import validated


@strawberry.type(name="Citation")
class CitationType:
    document_id: str
    document_name: str | None
    chunk_id: str
    page: int | None
    start: int | None
    end: int | None
    heading: str | None


@strawberry.type(name="SearchHit")
class SearchHitType:
    text: str
    score: float
    citation: CitationType
    metadata: JSON

    @staticmethod
    def of(h: SearchHitOut) -> SearchHitType:
        return SearchHitType(
            text=h.text,
            score=h.score,
            citation=CitationType(**h.citation.model_dump()),
            metadata=cast(JSON, h.metadata),
        )


@strawberry.type
class SearchQuery:
    @strawberry.field
    async def search(
        self,
        info: strawberry.Info[GqlContext, None],
        query: str,
        k: int = 5,
        mode: str = "hybrid",
        min_score: float | None = None,
        documents: list[str] | None = None,
        collections: list[str] | None = None,
        metadata: JSON | None = None,
        model: str | None = None,
    ) -> list[SearchHitType]:
        """Search what you may see: at most k hits, best first, with citations."""
        body: dict[str, Any] = {
            "query": query,
            "k": k,
            "mode": mode,
            "minScore": min_score,
            "documents": documents,
            "collections": collections,
            "metadata": metadata or {},
            "model": model,
        }
        req = validated(SearchRequest, body)
        out = await service.search(info.context.runtime, info.context.ctx, req)
        return [SearchHitType.of(h) for h in out.hits]
