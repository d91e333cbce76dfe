"""The chunk store (text, citations, metadata, keyword index) and the ``SourceWriter``.

Keyword search is the dialect's own full-text engine, behind one small class each:

* SQLite: the FTS5 table ``retrieval_chunks_fts`` (``unicode61``, diacritics folded), written
  in the same transaction as the chunk rows; score ``bm25``;
* PostgreSQL: ``to_tsvector('simple', text)`` with its GIN index; score ``ts_rank_cd``.

Both use no stemming and no stop words (``simple`` / ``unicode61``): documents come in any
language. The query's words are matched with OR (any word), ranked by the engine; scores are
mapped to ``[0, 1)`` (``s / (1 + s)``) so ``minScore`` means the same on both.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from gasworks.db.engine import Database
from gasworks.db.types import utcnow
from gasworks.errors import ValidationFailed
from gasworks.retrieval.tables import ChunkRow
from gasworks.retrieval.types import (
    RUN_DOCUMENT_PREFIX,
    Chunk,
    Space,
    VectorIndex,
    VectorRecord,
)

_WORD = re.compile(r"\w+", re.UNICODE)
#: the most words of a keyword query that are matched (longer queries are cut)
MAX_QUERY_WORDS = 64


@dataclass(slots=True, frozen=True)
class KeywordMatch:
    chunk_id: str
    source_id: str
    score: float


def query_words(query: str) -> list[str]:
    seen: dict[str, None] = {}
    for w in _WORD.findall(query.lower()):
        seen.setdefault(w, None)
    return list(seen)[:MAX_QUERY_WORDS]


class _Keywords:
    def write(self, s: Session, tenant_id: str, chunks: Sequence[Chunk]) -> None:
        """Index ``chunks`` (their rows are already written)."""

    def delete(self, s: Session, tenant_id: str, chunk_ids: Sequence[str]) -> None:
        """Forget ``chunk_ids`` (called before their rows are deleted or rewritten)."""

    async def delete_tenant(self, s: AsyncSession, tenant_id: str) -> None:
        """Forget every chunk of the tenant."""

    async def search(
        self, s: AsyncSession, tenant_id: str, words: list[str], sources: list[str], k: int
    ) -> list[KeywordMatch]:
        raise NotImplementedError


class _Fts5Keywords(_Keywords):
    def write(self, s: Session, tenant_id: str, chunks: Sequence[Chunk]) -> None:
        s.execute(
            text(
                "INSERT INTO retrieval_chunks_fts (chunk_id, tenant_id, source_id, text) "
                "VALUES (:c, :t, :s, :x)"
            ),
            [{"c": c.chunk_id, "t": tenant_id, "s": c.source_id, "x": c.text} for c in chunks],
        )

    def delete(self, s: Session, tenant_id: str, chunk_ids: Sequence[str]) -> None:
        s.execute(
            text(
                "DELETE FROM retrieval_chunks_fts WHERE tenant_id = :t AND chunk_id IN "
                "(SELECT value FROM json_each(:ids))"
            ),
            {"t": tenant_id, "ids": json.dumps(list(chunk_ids))},
        )

    async def delete_tenant(self, s: AsyncSession, tenant_id: str) -> None:
        await s.execute(
            text("DELETE FROM retrieval_chunks_fts WHERE tenant_id = :t"), {"t": tenant_id}
        )

    async def search(
        self, s: AsyncSession, tenant_id: str, words: list[str], sources: list[str], k: int
    ) -> list[KeywordMatch]:
        match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        rows = await s.execute(
            text(
                "SELECT chunk_id, source_id, -bm25(retrieval_chunks_fts) AS r "
                "FROM retrieval_chunks_fts WHERE retrieval_chunks_fts MATCH :m "
                "AND tenant_id = :t AND source_id IN (SELECT value FROM json_each(:src)) "
                "ORDER BY r DESC, chunk_id LIMIT :k"
            ),
            {"m": match, "t": tenant_id, "src": json.dumps(sources), "k": k},
        )
        return [KeywordMatch(r[0], r[1], _unit(float(r[2]))) for r in rows]


class _PgKeywords(_Keywords):
    async def search(
        self, s: AsyncSession, tenant_id: str, words: list[str], sources: list[str], k: int
    ) -> list[KeywordMatch]:
        rows = await s.execute(
            text(
                "SELECT chunk_id, source_id, ts_rank_cd(to_tsvector('simple', text), q) AS r "
                "FROM retrieval_chunks, to_tsquery('simple', :q) q "
                "WHERE tenant_id = :t AND source_id = ANY(:src) "
                "AND to_tsvector('simple', text) @@ q ORDER BY r DESC, chunk_id LIMIT :k"
            ),
            {"q": " | ".join(_pg_lexeme(w) for w in words), "t": tenant_id, "src": sources, "k": k},
        )
        return [KeywordMatch(r[0], r[1], _unit(float(r[2]))) for r in rows]


def _pg_lexeme(word: str) -> str:
    return "'" + word.replace("'", "''").replace("\\", "\\\\") + "'"


def _unit(raw: float) -> float:
    raw = max(raw, 0.0)
    return raw / (1.0 + raw)


class ChunkStore:
    """The ``retrieval_chunks`` table and its keyword index, in the deployment's database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.keywords: _Keywords = _Fts5Keywords() if db.dialect.name == "sqlite" else _PgKeywords()

    def write(self, s: Session, tenant_id: str, chunks: Sequence[Chunk]) -> None:
        """Store ``chunks`` (idempotent: a chunk id written again is replaced), in a
        synchronous session: a ``Database.write_batch`` function (on a SQLite file one
        hand-off to the writer thread for the whole write)."""
        last = {c.chunk_id: c for c in chunks}
        ids = sorted(last)
        self.keywords.delete(s, tenant_id, ids)
        s.connection().execute(
            delete(ChunkRow).where(ChunkRow.tenant_id == tenant_id, ChunkRow.chunk_id.in_(ids))
        )
        # Core, one statement for every row (the ORM's unit of work costs several times
        # the driver's own time for the same rows)
        now = utcnow()
        s.connection().execute(
            _INSERT_CHUNKS,
            [
                {
                    "tenant_id": tenant_id,
                    "chunk_id": c.chunk_id,
                    "source_id": c.source_id,
                    "document_id": c.document_id,
                    "ordinal": c.ordinal,
                    "text": c.text,
                    "page": c.page,
                    "start_offset": c.start,
                    "end_offset": c.end,
                    "heading": c.heading,
                    "metadata": dict(c.metadata),
                    "created_at": now,
                }
                for c in (last[i] for i in ids)
            ],
        )
        self.keywords.write(s, tenant_id, [last[i] for i in ids])

    async def delete_sources(
        self, s: AsyncSession, tenant_id: str, source_ids: Collection[str]
    ) -> int:
        ids = list(
            (
                await s.scalars(
                    select(ChunkRow.chunk_id).where(
                        ChunkRow.tenant_id == tenant_id, ChunkRow.source_id.in_(list(source_ids))
                    )
                )
            ).all()
        )
        if not ids:
            return 0
        await s.run_sync(self.keywords.delete, tenant_id, ids)
        await s.execute(
            delete(ChunkRow).where(
                ChunkRow.tenant_id == tenant_id, ChunkRow.source_id.in_(list(source_ids))
            )
        )
        return len(ids)

    async def delete_tenant(self, s: AsyncSession, tenant_id: str) -> int:
        """Every chunk of the tenant (the tenant's cascade delete calls this before removing
        the tenant row: SQLite's FTS5 table is not reached by foreign-key cascades)."""
        await self.keywords.delete_tenant(s, tenant_id)
        result = await s.execute(delete(ChunkRow).where(ChunkRow.tenant_id == tenant_id))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def get(
        self, s: AsyncSession, tenant_id: str, chunk_ids: Collection[str]
    ) -> dict[str, ChunkRow]:
        if not chunk_ids:
            return {}
        rows = await s.scalars(
            select(ChunkRow).where(
                ChunkRow.tenant_id == tenant_id, ChunkRow.chunk_id.in_(list(chunk_ids))
            )
        )
        return {r.chunk_id: r for r in rows}

    async def sources_of(
        self,
        s: AsyncSession,
        tenant_id: str,
        document_ids: Collection[str] | None,
        collections: Collection[str] | None = None,
    ) -> dict[str, tuple[str, str | None]]:
        """``source id -> (document id, collection label)`` of the tenant's chunks (all, or
        of ``document_ids`` / of chunks labelled with one of ``collections``)."""
        label = ChunkRow.meta["collection"].as_string()
        q = select(ChunkRow.source_id, ChunkRow.document_id, label).where(
            ChunkRow.tenant_id == tenant_id
        )
        if document_ids is not None:
            q = q.where(ChunkRow.document_id.in_(list(document_ids)))
        if collections is not None:
            q = q.where(label.in_(list(collections)))
        return {r[0]: (r[1], r[2]) for r in (await s.execute(q.distinct())).all()}

    async def keyword_search(
        self,
        s: AsyncSession,
        tenant_id: str,
        query: str,
        *,
        allowed_sources: Collection[str],
        k: int,
    ) -> list[KeywordMatch]:
        words = query_words(query)
        if not words or not allowed_sources or k <= 0:
            return []
        return await self.keywords.search(s, tenant_id, words, sorted(allowed_sources), k)


#: ``ChunkStore.write``'s INSERT, built once
_INSERT_CHUNKS = insert(ChunkRow.__table__)  # type: ignore[arg-type]


def _one_vector_each(chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> None:
    if len(chunks) != len(vectors):
        raise ValidationFailed(
            f"{len(chunks)} chunks but {len(vectors)} vectors: give one vector per chunk.",
            details={"chunks": len(chunks), "vectors": len(vectors)},
        )


class IndexWriter:
    """The ``SourceWriter``: chunks into the chunk store, vectors into the vector index.

    The chunk rows are written in one transaction, then the vectors; both steps are idempotent
    by chunk id, so a retried write (after a crash between the two) completes it. A vector
    whose chunk row is missing is never shown: search reads the text from the chunk store.
    """

    def __init__(self, db: Database, chunks: ChunkStore, index: VectorIndex) -> None:
        self.db = db
        self.chunks = chunks
        self.index = index

    async def write_source(
        self,
        tenant_id: str,
        space: Space,
        chunks: Sequence[Chunk],
        vectors: Sequence[Sequence[float]],
    ) -> None:
        _one_vector_each(chunks, vectors)
        if not chunks:
            return
        await self.db.write_batch(lambda s, _: self.chunks.write(s, tenant_id, chunks))
        await self.write_vectors(tenant_id, space, chunks, vectors)

    async def write_vectors(
        self,
        tenant_id: str,
        space: Space,
        chunks: Sequence[Chunk],
        vectors: Sequence[Sequence[float]],
    ) -> None:
        """The vectors half of ``write_source`` (``StagedSourceWriter``)."""
        _one_vector_each(chunks, vectors)
        if not chunks:
            return
        records = [
            VectorRecord(c.chunk_id, c.source_id, v) for c, v in zip(chunks, vectors, strict=True)
        ]
        await self.index.upsert(tenant_id, space, records)

    def write_chunks(self, session: Session, tenant_id: str, chunks: Sequence[Chunk]) -> None:
        """The chunk rows half of ``write_source``, in the caller's transaction
        (``StagedSourceWriter``)."""
        if chunks:
            self.chunks.write(session, tenant_id, chunks)

    async def sources(self, tenant_id: str) -> AsyncIterator[str]:
        """Every indexed source but VectorWrite's (``run:`` documents): what the documents
        reconciler compares with its rows."""
        async for sid in self.index.sources(tenant_id):
            if not sid.startswith(RUN_DOCUMENT_PREFIX):
                yield sid

    async def delete_sources(self, tenant_id: str, source_ids: Collection[str]) -> int:
        """Remove the chunks and vectors of ``source_ids``; returns how many chunks."""
        if not source_ids:
            return 0
        await self.index.delete_sources(tenant_id, source_ids)
        async with self.db.session() as s:
            return await self.chunks.delete_sources(s, tenant_id, source_ids)

    async def delete_tenant(self, tenant_id: str) -> int:
        """Remove every chunk and vector of the tenant; returns how many chunks."""
        await self.index.delete_tenant(tenant_id)
        async with self.db.session() as s:
            return await self.chunks.delete_tenant(s, tenant_id)


def chunk_metadata_matches(meta: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Equality on each key of ``wanted`` (a list value means "any of")."""
    for key, value in wanted.items():
        have = meta.get(key)
        if isinstance(value, list):
            if have not in value:
                return False
        elif have != value:
            return False
    return True
