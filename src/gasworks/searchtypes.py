"""What callers see of search (REST, GraphQL, the CLI's --json and the SDK).

A core module: the SDK (``gasworks.client``) shares these models without importing the server.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from gasworks.apimodel import ApiModel

SearchMode = Literal["vector", "keyword", "hybrid"]
#: the most hits one search returns
MAX_K = 100
#: the largest ``min_score`` a caller may send (a cosine is at most 1; keyword scores are small)
MAX_SCORE = 1_000_000.0


class SearchRequest(ApiModel):
    query: str = Field(min_length=1, max_length=10_000, description="The text to search for.")
    k: int = Field(default=5, ge=1, le=MAX_K, description="How many hits at most.")
    mode: SearchMode = Field(default="hybrid", description="vector, keyword or hybrid (RRF).")
    min_score: float | None = Field(
        default=None,
        ge=-1.0,
        le=MAX_SCORE,
        allow_inf_nan=False,
        description="Drop candidates scoring below this (cosine / keyword score).",
    )
    documents: list[str] | None = Field(
        default=None, description="Only these document ids (narrows what you may see)."
    )
    collections: list[str] | None = Field(default=None, description="Only these collections.")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Equality on chunk metadata (a list: any of)."
    )
    model: str | None = Field(
        default=None, description="Embedding model; default: the deployment's."
    )


class CitationOut(ApiModel):
    document_id: str
    document_name: str | None = None
    chunk_id: str
    page: int | None = None
    start: int | None = None
    end: int | None = None
    heading: str | None = None


class SearchHitOut(ApiModel):
    text: str
    score: float
    citation: CitationOut
    metadata: dict[str, Any] = Field(default_factory=dict)


class SearchResponse(ApiModel):
    hits: list[SearchHitOut]
