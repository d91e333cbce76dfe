"""Search: the allowed sources come from the server, never from the request.

``search(tenant_id, principal, SearchQuery)``:

1. a ``SourceScope`` computes what the caller may search (``AllowedSources``: source ids and
   the names of their documents). The request may only *narrow* it (``documents``,
   ``collections``); an empty set finds nothing;
2. ``vector``: the query is embedded through the ``Embedder`` (``Gateway.embed``: budgets,
   breakers, ledger) and the ``VectorIndex`` searched with the allowed sources inside the query;
   ``keyword``: the chunk store's full-text index, with the same sources inside the SQL;
   ``hybrid``: both, fused by reciprocal rank (``1 / (60 + rank)`` summed);
3. hits are read back from the chunk store (text, citation, metadata), metadata filters and
   ``minScore`` applied, and cut to ``k``.

With the documents domain (the default wiring) the scope is ``DocumentsAndRunOutputs``
(collections and their grants, plus VectorWrite outputs of readable collections); without it,
``TenantSources`` (every source of the tenant's chunk table, narrowed by an explicit document
filter).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from gasworks.db.engine import Database
from gasworks.errors import ValidationFailed
from gasworks.modeltypes import CallScope
from gasworks.retrieval.chunks import ChunkStore, chunk_metadata_matches
from gasworks.retrieval.schemas import MAX_K, SearchRequest
from gasworks.retrieval.types import (
    RUN_DOCUMENT_PREFIX,
    AllowedSources,
    Citation,
    Embedder,
    EmbedRequest,
    SearchHit,
    SearchMode,
    SourceScope,
    VectorIndex,
)

__all__ = [
    "AllowedSources",
    "DocumentsAndRunOutputs",
    "SearchQuery",
    "SearchService",
    "SourceScope",
    "TenantSources",
    "fuse",
]

RRF_K = 60
#: how many candidates each side of a hybrid search (or a metadata-filtered one) fetches per hit
OVERSAMPLE = 4
MODES: tuple[SearchMode, ...] = ("vector", "keyword", "hybrid")


class TenantSources:
    """Until the documents domain brings collections and grants: every source in the tenant's
    chunk table, narrowed by ``documents``; a *collection* is the ``collection`` label of a
    chunk's metadata (what VectorWrite sets). A collection with no chunks is unknown
    (``VALIDATION_FAILED``), never silently "everything"."""

    def __init__(self, db: Database, chunks: ChunkStore) -> None:
        self.db = db
        self.chunks = chunks

    async def allowed(
        self,
        tenant_id: str,
        principal_id: str | None,
        *,
        collections: Sequence[str] | None = None,
        documents: Sequence[str] | None = None,
    ) -> AllowedSources:
        async with self.db.read_session() as s:
            found = await self.chunks.sources_of(s, tenant_id, documents, collections)
        if collections:
            unknown = sorted(set(collections) - {c for _, c in found.values()})
            if unknown:
                raise ValidationFailed(
                    f"Unknown collection {unknown[0]!r}.", details={"collections": unknown}
                )
        return AllowedSources(frozenset(found), {src: doc for src, (doc, _) in found.items()})


@runtime_checkable
class ReadableCollections(Protocol):
    async def readable_collections(self, tenant_id: str, principal_id: str | None) -> set[str]:
        """Ids and names of the collections the principal may read."""
        ...


class DocumentsAndRunOutputs:
    """The scope when the documents domain is present: its grant-based sources (active
    generations of documents in collections the caller may read), plus what VectorWrite stored
    (documents ``run:<run>:<node>``) labelled with a collection, by name or id, that the caller
    may read. A VectorWrite into a name that is no collection is searchable by nobody. A
    ``collections`` narrowing that names a collection the caller cannot read (or that does not
    exist) is ``VALIDATION_FAILED``, the same answer either way."""

    def __init__(
        self,
        documents: SourceScope,
        collections: ReadableCollections,
        db: Database,
        chunks: ChunkStore,
    ) -> None:
        self.documents = documents
        self.collections = collections
        self.db = db
        self.chunks = chunks

    async def allowed(
        self,
        tenant_id: str,
        principal_id: str | None,
        *,
        collections: Sequence[str] | None = None,
        documents: Sequence[str] | None = None,
    ) -> AllowedSources:
        found = await self.documents.allowed(
            tenant_id, principal_id, collections=collections, documents=documents
        )
        labels = await self.collections.readable_collections(tenant_id, principal_id)
        if collections is not None:
            # an unreadable collection answers exactly like a missing one
            unknown = sorted(set(collections) - labels)
            if unknown:
                raise ValidationFailed(
                    f"Unknown collection {unknown[0]!r}.", details={"collections": unknown}
                )
            labels &= set(collections)
        if not labels:
            return found
        async with self.db.read_session() as s:
            labelled = await self.chunks.sources_of(s, tenant_id, documents, labels)
        outputs = {
            src: doc for src, (doc, _) in labelled.items() if doc.startswith(RUN_DOCUMENT_PREFIX)
        }
        return found.united(AllowedSources(frozenset(outputs), outputs))


@dataclass(slots=True)
class SearchQuery:
    query: str
    k: int = 5
    mode: SearchMode = "hybrid"
    min_score: float | None = None
    documents: list[str] | None = None
    collections: list[str] | None = None
    #: equality per key on the chunk's metadata (a list means "any of")
    metadata: dict[str, Any] = field(default_factory=dict)
    #: embedding model (registry id); None: the deployment's default
    model: str | None = None

    @classmethod
    def of(cls, req: SearchRequest) -> SearchQuery:
        return cls(
            query=req.query,
            k=req.k,
            mode=req.mode,
            min_score=req.min_score,
            documents=req.documents,
            collections=req.collections,
            metadata=dict(req.metadata),
            model=req.model,
        )

    def validate(self) -> None:
        if not self.query or not self.query.strip():
            raise ValidationFailed(
                "query is empty: give the text to search for.", details={"field": "query"}
            )
        if not 1 <= self.k <= MAX_K:
            raise ValidationFailed(
                f"k must be between 1 and {MAX_K}; got {self.k}.", details={"field": "k"}
            )
        if self.mode not in MODES:
            raise ValidationFailed(
                f"mode must be one of {', '.join(MODES)}; got {self.mode!r}.",
                details={"field": "mode"},
            )


class SearchService:
    def __init__(
        self,
        db: Database,
        chunks: ChunkStore,
        index: VectorIndex,
        embedder: Embedder | None,
        scope: SourceScope,
    ) -> None:
        self.db = db
        self.chunks = chunks
        self.index = index
        self.embedder = embedder
        self.scope = scope

    async def search(
        self,
        call: CallScope,
        q: SearchQuery,
        *,
        principal_id: str | None = None,
        allowed: AllowedSources | None = None,
    ) -> list[SearchHit]:
        """Search within what ``principal_id`` may see (or within ``allowed``, computed by
        the server beforehand, e.g. by the workflow engine at run start)."""
        q.validate()
        if allowed is None:
            allowed = await self.scope.allowed(
                call.tenant_id, principal_id, collections=q.collections, documents=q.documents
            )
        sources = allowed.sources
        if q.documents is not None:  # narrows; a scope that names no documents allows none
            wanted = set(q.documents)
            sources = frozenset(s for s in sources if allowed.documents.get(s) in wanted)
        if not sources:
            return []
        fetch = q.k * OVERSAMPLE if (q.metadata or q.mode == "hybrid") else q.k
        fetch = min(fetch, MAX_K * OVERSAMPLE)
        vector: list[tuple[str, float]] = []
        keyword: list[tuple[str, float]] = []
        # hybrid without an embedding model is keyword search (vector mode is an error)
        if q.mode == "vector" or (q.mode == "hybrid" and self.embedder is not None):
            vector = await self._vector(call, q, sources, fetch)
        if q.mode in ("keyword", "hybrid"):
            async with self.db.read_session() as s:
                found = await self.chunks.keyword_search(
                    s, call.tenant_id, q.query, allowed_sources=sources, k=fetch
                )
            keyword = [(m.chunk_id, m.score) for m in found]
        if q.min_score is not None:
            vector = [v for v in vector if v[1] >= q.min_score]
            keyword = [v for v in keyword if v[1] >= q.min_score]
        ranked = fuse(vector, keyword) if q.mode == "hybrid" else (vector or keyword)
        return await self._hits(call.tenant_id, q, ranked, sources, allowed)

    async def _vector(
        self, call: CallScope, q: SearchQuery, sources: Collection[str], k: int
    ) -> list[tuple[str, float]]:
        if self.embedder is None:
            raise ValidationFailed(
                "Vector search needs an embedding model; none is configured. Use "
                "mode 'keyword' or configure an embedding model.",
                details={"field": "mode"},
            )
        result = await self.embedder.embed(
            call, EmbedRequest(model=q.model, inputs=[q.query], purpose="query")
        )
        matches = await self.index.search(
            call.tenant_id, result.space, result.vectors[0], allowed_sources=sources, k=k
        )
        return [(m.chunk_id, m.score) for m in matches]

    async def _hits(
        self,
        tenant_id: str,
        q: SearchQuery,
        ranked: list[tuple[str, float]],
        sources: frozenset[str],
        allowed: AllowedSources,
    ) -> list[SearchHit]:
        async with self.db.read_session() as s:
            rows = await self.chunks.get(s, tenant_id, [cid for cid, _ in ranked])
        hits: list[SearchHit] = []
        for cid, score in ranked:
            row = rows.get(cid)
            # defence in depth: a chunk outside the allowed sources is never shown
            if row is None or row.source_id not in sources:
                continue
            if q.metadata and not chunk_metadata_matches(row.meta, q.metadata):
                continue
            hits.append(
                SearchHit(
                    text=row.text,
                    score=score,
                    citation=Citation(
                        document_id=row.document_id,
                        document_name=allowed.names.get(row.document_id),
                        chunk_id=row.chunk_id,
                        page=row.page,
                        start=row.start_offset,
                        end=row.end_offset,
                        heading=row.heading,
                    ),
                    metadata=dict(row.meta),
                )
            )
            if len(hits) == q.k:
                break
        return hits


def fuse(*rankings: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: each list adds ``1 / (60 + rank)`` (rank from 1) to an id."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, (cid, _) in enumerate(ranking, start=1):
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))
