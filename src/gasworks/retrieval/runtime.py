"""Wires retrieval into the process ``Runtime``: the vector index chosen from settings, the
chunk store, the writer (``SourceWriter``), the search service and its source scope.

``RetrievalDomain`` is its entry in ``gasworks.wiring``; ``get_retrieval(rt)`` is the typed
accessor. Services other domains may put in
``rt.services`` before start: ``EMBEDDER_OVERRIDE`` (an ``Embedder``; default: the model
gateway once it has ``embed``) and ``SCOPE_OVERRIDE`` (a ``SourceScope``, tests). With the
documents domain, ``gasworks.wiring.RetrievalDocumentsJoin`` replaces the fallback scope by
the grant-based one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from gasworks.errors import ConfigurationError
from gasworks.observability.logging import get_logger
from gasworks.retrieval.chunks import ChunkStore, IndexWriter
from gasworks.retrieval.search import SearchService, SourceScope, TenantSources
from gasworks.retrieval.types import Embedder, VectorIndex
from gasworks.runtime import Runtime

SERVICE = "retrieval"
EMBEDDER_OVERRIDE = "retrieval.embedder"
SCOPE_OVERRIDE = "retrieval.scope"
log = get_logger("gasworks.retrieval")


@dataclass(slots=True)
class RetrievalServices:
    index: VectorIndex
    backend: str
    chunks: ChunkStore
    writer: IndexWriter
    search: SearchService


async def open_vector_index(rt: Runtime) -> tuple[VectorIndex, str]:
    """The configured backend (``GASWORKS_VECTOR_INDEX``)."""
    s = rt.settings
    choice = s.vector_index
    if choice == "auto":
        choice = "embedded"
        if rt.db.dialect.name == "postgresql":
            async with rt.db.engine.connect() as conn:
                found = (
                    await conn.execute(text("SELECT to_regclass('retrieval_vectors')"))
                ).scalar()
            choice = "pgvector" if found else "embedded"
    if choice == "pgvector":
        if rt.db.dialect.name != "postgresql":
            raise ConfigurationError(
                "GASWORKS_VECTOR_INDEX=pgvector needs a PostgreSQL database "
                "(GASWORKS_DATABASE_URL=postgresql://...).",
            )
        from gasworks.retrieval.pgvector import PgVectorIndex

        ef = {} if s.vector_ef_search is None else {"ef_search": s.vector_ef_search}
        pg = PgVectorIndex(rt.db, exact_max_rows=s.vector_exact_max_rows, **ef)
        await pg.version()  # fails now, with the fix in the message, if the extension is missing
        return pg, "pgvector"
    from gasworks.retrieval.embedded import EmbeddedVectorIndex  # numpy: only when used

    return (
        EmbeddedVectorIndex(
            s.home / "vectors",
            ann_min_rows=s.vector_ann_min_rows,
            exact_max_rows=s.vector_exact_max_rows,
            **({} if s.vector_ef_search is None else {"ef_search": s.vector_ef_search}),
        ),
        "embedded",
    )


def _embedder(rt: Runtime) -> Embedder | None:
    override = rt.services.get(EMBEDDER_OVERRIDE)
    if isinstance(override, Embedder):
        return override
    from gasworks.llm.runtime import SERVICE as MODELS
    from gasworks.llm.runtime import get_gateway

    if MODELS in rt.services:
        gateway = get_gateway(rt)
        if isinstance(gateway, Embedder):
            return gateway
    return None


async def _start(rt: Runtime) -> None:
    index, backend = await open_vector_index(rt)
    chunks = ChunkStore(rt.db)
    scope = rt.services.get(SCOPE_OVERRIDE)
    if not isinstance(scope, SourceScope):
        scope = TenantSources(rt.db, chunks)
    search = SearchService(rt.db, chunks, index, _embedder(rt), scope)
    rt.services[SERVICE] = RetrievalServices(
        index, backend, chunks, IndexWriter(rt.db, chunks, index), search
    )
    log.info("retrieval.ready", vector_index=backend)


async def _stop(rt: Runtime) -> None:
    svc: RetrievalServices | None = rt.services.pop(SERVICE, None)
    if svc is not None:
        close = getattr(svc.index, "aclose", None)
        if close is not None:
            await close()


def get_retrieval(rt: Runtime) -> RetrievalServices:
    svc: RetrievalServices | None = rt.services.get(SERVICE)
    if svc is None:
        raise ConfigurationError("Retrieval is not started (Runtime.start() first).")
    return svc


class RetrievalDomain:
    """The vector index, chunk store, writer and search service (``get_retrieval(rt)``)."""

    name = SERVICE

    async def start(self, rt: Runtime) -> None:
        await _start(rt)

    async def stop(self, rt: Runtime) -> None:
        await _stop(rt)
