"""Search schemas: the core models (``gasworks.searchtypes``) and the mapping from a hit."""

from __future__ import annotations

from gasworks.retrieval.types import SearchHit
from gasworks.searchtypes import (
    MAX_K,
    CitationOut,
    SearchHitOut,
    SearchRequest,
    SearchResponse,
)


def hit_out(hit: SearchHit) -> SearchHitOut:
    return SearchHitOut(
        text=hit.text,
        score=hit.score,
        citation=CitationOut.model_validate(hit.citation, from_attributes=True),
        metadata=dict(hit.metadata),
    )


__all__ = ["MAX_K", "CitationOut", "SearchHitOut", "SearchRequest", "SearchResponse", "hit_out"]
