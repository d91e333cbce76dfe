"""The contract between retrieval, the documents pipeline and the workflow nodes.

Three roles meet here:

* ``Embedder`` -- ``Gateway.embed``: an embedding call that goes through the same registry,
  breakers, budgets (reserve, then settle) and ledger as chat.
* ``VectorIndex`` -- where vectors live (the embedded on-disk index, pgvector; later Pinecone or
  Qdrant). Every call is scoped by tenant and by *space* (one embedding model at one
  dimension: vectors of different spaces never meet). A search is always restricted to an
  explicit set of *source ids* that the server computed from what the caller may see; an empty
  set finds nothing, it never means "no filter".
* ``ChunkStore`` -- the text, citations and keyword index of every chunk (a database table
  owned by retrieval), so keyword and hybrid search and citations work on every backend.

A *source* is one generation of one document (``source_id(document_id, generation)``) or one
VectorWrite target; re-ingesting a document writes a new source and switches to it in one step,
so a search never sees a half-indexed document.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

# the embedding shapes are core types: the gateway (``llm``, a lower layer), the /v1 route
# and the SDK share them
from gasworks.errors import GasworksError
from gasworks.modeltypes import (
    CallScope,
    EmbedInputLimit,
    EmbedPurpose,
    EmbedRequest,
    EmbedResult,
    Space,
)

__all__ = [
    "RUN_DOCUMENT_PREFIX",
    "AllowedSources",
    "CallScope",
    "Chunk",
    "Citation",
    "EmbedInputLimit",
    "EmbedLimits",
    "EmbedPurpose",
    "EmbedRequest",
    "EmbedResult",
    "Embedder",
    "SearchHit",
    "SearchMode",
    "SourceScope",
    "SourceWriter",
    "Space",
    "VectorIndex",
    "VectorMatch",
    "VectorRecord",
    "source_id",
]

SearchMode = Literal["vector", "keyword", "hybrid"]


def source_id(document_id: str, generation: int) -> str:
    """The source id of one generation of one document."""
    return f"{document_id}@{generation}"


@runtime_checkable
class Embedder(Protocol):
    async def embed(self, scope: CallScope, req: EmbedRequest) -> EmbedResult: ...


@runtime_checkable
class BatchEmbedder(Protocol):
    """An ``Embedder`` that embeds several requests in shared provider calls, one outcome per
    request (``Gateway.embed_many``): the documents pipeline's cross-document batches."""

    async def embed_many(
        self, scope: CallScope, reqs: Sequence[EmbedRequest]
    ) -> list[EmbedResult | GasworksError]: ...


@runtime_checkable
class EmbedLimits(Protocol):
    """An ``Embedder`` that tells how long an input may be (``Gateway``); the documents
    chunker sizes chunks by it. An embedder without it (a test double) takes any length."""

    def embedding_input_limit(self, model: str | None = None) -> EmbedInputLimit: ...


@dataclass(slots=True, frozen=True)
class VectorRecord:
    chunk_id: str
    source_id: str
    vector: Sequence[float]


@dataclass(slots=True, frozen=True)
class VectorMatch:
    chunk_id: str
    source_id: str
    #: cosine similarity in [-1, 1], higher is closer
    score: float


@runtime_checkable
class VectorIndex(Protocol):
    """Vectors by tenant and space. Implementations are safe for concurrent use.

    * ``upsert`` is idempotent by ``chunk_id`` (the same id twice is one vector);
    * ``search`` returns at most ``k`` matches among ``allowed_sources`` only, best first, and
      ``min(k, vectors in allowed_sources)`` of them however selective the filter is;
      ``allowed_sources`` empty returns ``[]``;
    * ``delete_sources`` removes every vector of those sources and returns how many;
    * everything written survives a process restart.
    """

    async def upsert(
        self, tenant_id: str, space: Space, records: Sequence[VectorRecord]
    ) -> None: ...

    async def search(
        self,
        tenant_id: str,
        space: Space,
        query: Sequence[float],
        *,
        allowed_sources: Collection[str],
        k: int,
    ) -> list[VectorMatch]: ...

    async def delete_sources(self, tenant_id: str, source_ids: Collection[str]) -> int: ...

    async def delete_tenant(self, tenant_id: str) -> int: ...

    def sources(self, tenant_id: str) -> AsyncIterator[str]:
        """Every source id that has at least one vector (for the reconciler)."""
        ...

    async def count(self, tenant_id: str, source_ids: Collection[str] | None = None) -> int: ...


@dataclass(slots=True)
class Chunk:
    """A piece of text to index, with what a citation needs."""

    chunk_id: str
    source_id: str
    document_id: str
    ordinal: int
    text: str
    page: int | None = None
    start: int | None = None
    end: int | None = None
    heading: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Citation:
    document_id: str
    document_name: str | None
    chunk_id: str
    page: int | None = None
    start: int | None = None
    end: int | None = None
    heading: str | None = None


@dataclass(slots=True)
class SearchHit:
    text: str
    score: float
    citation: Citation
    metadata: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class SourceWriter(Protocol):
    """What the documents pipeline (indexing stage) and the VectorWrite node call.

    ``write_source`` stores the chunks' text and citations (``ChunkStore``) and their vectors
    (``VectorIndex``); it is idempotent (same chunk ids, same result), so a retried or
    duplicated stage never creates duplicates. Which source of a document is *active* is the
    documents domain's state (switched in one transaction after the new source is complete);
    ``delete_sources`` removes chunks and vectors of old or deleted sources.
    """

    async def write_source(
        self,
        tenant_id: str,
        space: Space,
        chunks: Sequence[Chunk],
        vectors: Sequence[Sequence[float]],
    ) -> None: ...

    async def delete_sources(self, tenant_id: str, source_ids: Collection[str]) -> int: ...


@runtime_checkable
class StagedSourceWriter(SourceWriter, Protocol):
    """A ``SourceWriter`` whose two halves the documents pipeline calls apart: the vectors
    first (``write_vectors``), then the chunk rows inside the index stage's own commit
    (``write_chunks``, a synchronous session of ``Database.write_batch``), so that a
    document's chunks, its switch to the new generation and its job's completion are one
    transaction. Both halves are idempotent by chunk id, like ``write_source``; a vector
    whose chunk row is missing is never shown (search reads the text from the chunk rows)."""

    async def write_vectors(
        self,
        tenant_id: str,
        space: Space,
        chunks: Sequence[Chunk],
        vectors: Sequence[Sequence[float]],
    ) -> None: ...

    def write_chunks(self, session: Any, tenant_id: str, chunks: Sequence[Chunk]) -> None: ...


#: the document id prefix of what VectorWrite stores (``run:<run id>:<node id>``): not a
#: document of the documents domain, so its reconciler leaves these sources alone
RUN_DOCUMENT_PREFIX = "run:"


@dataclass(slots=True, frozen=True)
class AllowedSources:
    """What one caller may search: source ids, and the name of each source's document."""

    sources: frozenset[str]
    #: source id -> document id
    documents: Mapping[str, str] = field(default_factory=dict)
    #: document id -> display name (for citations)
    names: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def nothing(cls) -> AllowedSources:
        return cls(frozenset())

    def narrowed(self, other: AllowedSources) -> AllowedSources:
        """What both allow (a node's collections inside the run caller's set)."""
        keep = self.sources & other.sources
        return AllowedSources(
            keep,
            {s: d for s, d in self.documents.items() if s in keep},
            dict(self.names),
        )

    def united(self, other: AllowedSources) -> AllowedSources:
        """What either allows."""
        return AllowedSources(
            self.sources | other.sources,
            {**self.documents, **other.documents},
            {**self.names, **other.names},
        )

    def document_ids(self) -> list[str]:
        return sorted(set(self.documents.values()))


@runtime_checkable
class SourceScope(Protocol):
    """The ONE access scope that search (REST, GraphQL, CLI, SDK) and the VectorSearch node ask
    before any vector or keyword query: the source ids the caller may retrieve, with each
    source's document and each document's name (for citations). Computed on the server (the
    documents domain: active generations of documents in collections the caller may read);
    never taken from the request. ``collections`` / ``documents`` only narrow the answer; an
    empty answer means "nothing", never "no filter". A principal that does not exist in the
    tenant may retrieve nothing."""

    async def allowed(
        self,
        tenant_id: str,
        principal_id: str | None,
        *,
        collections: Sequence[str] | None = None,
        documents: Sequence[str] | None = None,
    ) -> AllowedSources: ...
