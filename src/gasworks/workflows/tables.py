"""Workflow tables: workflows, immutable versions, shares, runs, run events, conversations."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from gasworks.db.base import Base
from gasworks.db.types import JSONType, Money, UTCDateTime, utcnow


class WorkflowRow(Base):
    __tablename__ = "workflows"
    __table_args__ = (UniqueConstraint("tenant_id", "slug"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    owner_id: Mapped[str] = mapped_column(String(40))
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkflowVersionRow(Base):
    """A published version: never updated, never deleted while its workflow exists."""

    __tablename__ = "workflow_versions"
    __table_args__ = (UniqueConstraint("workflow_id", "version"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    workflow_id: Mapped[str] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JSONType)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkflowShareRow(Base):
    """Who besides the owner (and tenant admins) may see and run a workflow."""

    __tablename__ = "workflow_shares"
    __table_args__ = (UniqueConstraint("workflow_id", "kind", "subject"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    workflow_id: Mapped[str] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # user | role | tenant
    subject: Mapped[str] = mapped_column(String(64))  # principal id | role name | "*"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


#: the condition of the partial lease index, as SQL (see ``WorkflowRunRow``)
RUNNING_SQL = "status = 'running'"


class WorkflowRunRow(Base):
    __tablename__ = "workflow_runs"
    __table_args__ = (
        Index("ix_workflow_runs_tenant_workflow", "tenant_id", "workflow_id", "started_at"),
        # running runs only (migration 0009_run_indexes): a run inserted finished never
        # enters it; the queries it serves name the literal (``leases.RUNNING``)
        Index(
            "ix_workflow_runs_running_lease",
            "lease_expires_at",
            sqlite_where=text(RUNNING_SQL),
            postgresql_where=text(RUNNING_SQL),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    workflow_id: Mapped[str] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    principal_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    conversation_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # running|succeeded|failed|cancelled
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONType)
    output: Mapped[Any] = mapped_column(JSONType, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    node_timings: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    steps: Mapped[int] = mapped_column(Integer, default=0)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    duration_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: the process executing the run (its engine's owner id) while the run is ``running``
    owner_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    #: renewed by the owner's heartbeat; once past, the sweeper marks the run RUN_INTERRUPTED
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: the prompt version that answered: that of the run's last model call that resolved a
    #: stored version (each call's own is on its ledger row); None for the neutral prompt
    prompt_version_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


class WorkflowRunEventRow(Base):
    """Events of a run (what SSE sent), kept so a reconnecting client resumes without loss."""

    __tablename__ = "workflow_run_events"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("workflow_runs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)


class ConversationRow(Base):
    """One conversation of one workflow and one principal. ``id`` is the stored key
    (``service.conversation_key``); ``client_id`` is the id the caller chose."""

    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_client", "tenant_id", "client_id", "principal_id"),)

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(40))
    client_id: Mapped[str] = mapped_column(String(100))
    principal_id: Mapped[str] = mapped_column(String(40))
    turn: Mapped[int] = mapped_column(Integer, default=0)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConversationMessageRow(Base):
    __tablename__ = "conversation_messages"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
