"""Job queue tables: jobs (queued, running, dead), per-tenant service times."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gasworks.db.base import Base
from gasworks.db.types import JSONType, UTCDateTime, utcnow


class JobRow(Base):
    """One unit of work. A finished job is deleted; a job out of attempts stays as a dead
    letter (``status='dead'``) until replayed or discarded.

    ``tenant_id`` has no foreign key on purpose: a tenant's delete job outlives the tenant row.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_ready", "status", "run_at"),
        Index("ix_jobs_tenant_ready", "tenant_id", "status", "run_at"),
        Index("ix_jobs_kind_status", "kind", "status"),
        Index("ix_jobs_subject", "tenant_id", "subject"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(64))
    #: what the job is about (a document id), so it can be found and cancelled
    subject: Mapped[str | None] = mapped_column(String(80), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: queued | running | dead
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_token: Mapped[str | None] = mapped_column(String(40), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(80), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: at most one live job per key (a stage of one document generation)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), nullable=True, unique=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: one entry per failed attempt: {attempt, code, message, at, worker}
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class JobTenantRow(Base):
    """When each tenant was last served: claims go to the tenant served least recently."""

    __tablename__ = "job_tenants"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_served_at: Mapped[datetime] = mapped_column(UTCDateTime)
