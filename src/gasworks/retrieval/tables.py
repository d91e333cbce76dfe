"""Retrieval tables: the chunks (text, citations, metadata) of every indexed source.

Declared here (and compared with the migrations by the test suite); the dialect-specific
pieces live only in the migration ``0006_retrieval`` and are not part of the declared metadata:

* SQLite: ``retrieval_chunks_fts``, an FTS5 table (chunk id, tenant, source, text);
* PostgreSQL: a GIN index on ``to_tsvector('simple', text)``, and, where the ``vector``
  extension is available, ``retrieval_vectors`` (the pgvector backend's table).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gasworks.db.base import Base
from gasworks.db.types import JSONType, UTCDateTime, utcnow


class ChunkRow(Base):
    __tablename__ = "retrieval_chunks"
    __table_args__ = (Index("ix_retrieval_chunks_tenant_source", "tenant_id", "source_id"),)

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    chunk_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(300))
    document_id: Mapped[str] = mapped_column(String(200))
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    page: Mapped[int | None] = mapped_column(Integer, nullable=True)
    start_offset: Mapped[int | None] = mapped_column(Integer, nullable=True)
    end_offset: Mapped[int | None] = mapped_column(Integer, nullable=True)
    heading: Mapped[str | None] = mapped_column(Text, nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
