"""Documents tables: documents, collections, membership, grants, events (status + audit)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gasworks.db.base import Base
from gasworks.db.types import JSONType, UTCDateTime, utcnow


class DocumentRow(Base):
    """One uploaded file. ``generation`` is the active (searchable) generation, ``None`` until
    the first one is complete; ``pending_generation`` is the one being built."""

    __tablename__ = "documents"
    __table_args__ = (Index("ix_documents_tenant_hash", "tenant_id", "content_hash"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40), index=True)
    name: Mapped[str] = mapped_column(String(300))
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(300))
    #: queued extracting ocr chunking embedding indexing ready failed deleting
    status: Mapped[str] = mapped_column(String(16), default="queued")
    generation: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pending_generation: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: per stage: {"started": iso, "finished": iso, "attempts": n}
    stages: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    pages: Mapped[int | None] = mapped_column(Integer, nullable=True)
    chunks: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: set when a delete was asked: the document is invisible from then on
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CollectionRow(Base):
    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40), index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    owner_id: Mapped[str] = mapped_column(String(40))
    chunk_tokens: Mapped[int] = mapped_column(Integer, default=400)
    chunk_overlap: Mapped[int] = mapped_column(Integer, default=50)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CollectionDocumentRow(Base):
    __tablename__ = "collection_documents"

    collection_id: Mapped[str] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True
    )
    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    tenant_id: Mapped[str] = mapped_column(String(40))


class CollectionGrantRow(Base):
    """Who may read a collection besides its owner and tenant admins: a ``user`` (principal
    id), a ``role`` (that role and above) or the whole ``tenant`` -- the workflows' model."""

    __tablename__ = "collection_grants"
    __table_args__ = (UniqueConstraint("collection_id", "kind", "subject"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    collection_id: Mapped[str] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DocumentEventRow(Base):
    """Status changes and audit events of documents (what the event stream replays)."""

    __tablename__ = "document_events"
    __table_args__ = (Index("ix_document_events_doc", "tenant_id", "document_id", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    document_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    kind: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str | None] = mapped_column(String(40), nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OrphanSuspectRow(Base):
    """Something the reconciler found without its counterpart, and when it first did: it is
    removed only once it has stayed an orphan for the grace period (an upload writes its blob
    moments before its row)."""

    __tablename__ = "document_orphans"

    ref: Mapped[str] = mapped_column(String(400), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    what: Mapped[str] = mapped_column(String(16))
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
