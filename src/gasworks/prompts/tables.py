"""Prompt tables: versions, pointers, pointer history, audit, dead letters, invalidations.

Scope columns use ``''`` (not NULL) for "any tenant" / "any workflow" so that the unique
constraint on ``(scope_tenant, scope_workflow, model)`` holds on both dialects.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gasworks.db.base import Base
from gasworks.db.types import JSONType, UTCDateTime, utcnow
from gasworks.tenancy import tables as _tenancy_tables  # noqa: F401 - FK targets in metadata


class PromptVersionRow(Base):
    __tablename__ = "prompt_versions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", "content_hash", name="uq_prompt_versions_hash"),
        UniqueConstraint("tenant_id", "name", "number", name="uq_prompt_versions_number"),
        Index("ix_prompt_versions_archived", "archived_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    number: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    storage: Mapped[str] = mapped_column(String(8))  # inline | blob
    content: Mapped[str | None] = mapped_column(Text, nullable=True)
    blob_key: Mapped[str | None] = mapped_column(String(400), nullable=True)
    author: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PromptPointerRow(Base):
    __tablename__ = "prompt_pointers"
    __table_args__ = (
        UniqueConstraint(
            "scope_tenant", "scope_workflow", "model", name="uq_prompt_pointers_scope"
        ),
        Index("ix_prompt_pointers_tenant", "tenant_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    #: the tenant owning the pointer (for a platform-wide scope: the operator's tenant)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    scope_tenant: Mapped[str] = mapped_column(String(40))  # '' = every tenant
    scope_workflow: Mapped[str] = mapped_column(String(200))  # '' = any workflow
    model: Mapped[str] = mapped_column(String(200))
    active_version_id: Mapped[str] = mapped_column(
        ForeignKey("prompt_versions.id", ondelete="RESTRICT")
    )
    previous_version_id: Mapped[str | None] = mapped_column(
        ForeignKey("prompt_versions.id", ondelete="RESTRICT"), nullable=True
    )
    canary_version_id: Mapped[str | None] = mapped_column(
        ForeignKey("prompt_versions.id", ondelete="RESTRICT"), nullable=True
    )
    canary_percent: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200))


class PromptPointerHistoryRow(Base):
    """Append-only: one row per successful move, ``seq`` equal to the pointer version it made."""

    __tablename__ = "prompt_pointer_history"
    __table_args__ = (UniqueConstraint("pointer_id", "seq", name="uq_prompt_pointer_history_seq"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    pointer_id: Mapped[str] = mapped_column(ForeignKey("prompt_pointers.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    from_version_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    to_version_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    canary_version_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    canary_percent: Mapped[int] = mapped_column(Integer, default=0)
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PromptAuditRow(Base):
    __tablename__ = "prompt_audit"
    __table_args__ = (Index("ix_prompt_audit_tenant_at", "tenant_id", "at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(40))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PromptDeadLetterRow(Base):
    __tablename__ = "prompt_dead_letters"
    __table_args__ = (Index("ix_prompt_dead_letters_tenant", "tenant_id", "status"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    operation: Mapped[str] = mapped_column(String(32))
    request: Mapped[dict[str, Any]] = mapped_column(JSONType)
    actor: Mapped[str] = mapped_column(String(200))
    reason_code: Mapped[str] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|replayed
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


class PromptInvalidationRow(Base):
    """One row per pointer change, polled by every process to drop cached resolutions."""

    __tablename__ = "prompt_invalidations"
    __table_args__ = (Index("ix_prompt_invalidations_at", "at"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope_tenant: Mapped[str] = mapped_column(String(40))
    scope_workflow: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
