"""Guardrail tables: breaker state and window buckets, breaker events, budgets, the ledger.

Breakers are platform-wide (one per model / provider deployment, shared by every tenant), so
their tables carry no ``tenant_id``; budgets, counters and ledger rows are tenant-owned.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from gasworks.db.base import Base
from gasworks.db.types import JSONType, Money, UTCDateTime, utcnow


class BreakerRow(Base):
    """The shared state of one circuit breaker (compare-and-set on ``version``)."""

    __tablename__ = "llm_breakers"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    #: bumped whenever the window restarts (closing, reset): older counts no longer apply
    generation: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=0)
    state_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    probes_issued: Mapped[int] = mapped_column(Integer, default=0)
    probe_successes: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    changed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class BreakerBucketRow(Base):
    """Call/failure counts of one breaker for one time bucket (summed by every process)."""

    __tablename__ = "llm_breaker_buckets"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    slow: Mapped[int] = mapped_column(Integer, default=0)


class BreakerEventRow(Base):
    """Every transition of every breaker; manual ones carry the actor and the reason."""

    __tablename__ = "llm_breaker_events"
    __table_args__ = (Index("ix_llm_breaker_events_key_at", "key", "at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    #: the breaker's version after this transition (orders events of one breaker)
    version: Mapped[int] = mapped_column(Integer)
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    stats: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BudgetRow(Base):
    """A spend limit of a tenant (``api_key_id`` = "") or one of its API keys, per period."""

    __tablename__ = "llm_budgets"
    __table_args__ = (UniqueConstraint("tenant_id", "api_key_id", "period"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    api_key_id: Mapped[str] = mapped_column(String(40), default="")
    period: Mapped[str] = mapped_column(String(8))  # day | month (UTC calendar)
    cost_limit: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    token_limit: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class BudgetCounterRow(Base):
    """Spent and reserved amounts of one budget in one period (reservations are atomic
    conditional UPDATEs on this row; the limits are copied here so the check is one row)."""

    __tablename__ = "llm_budget_counters"

    budget_id: Mapped[str] = mapped_column(
        ForeignKey("llm_budgets.id", ondelete="CASCADE"), primary_key=True
    )
    period_start: Mapped[str] = mapped_column(String(10), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    cost_limit: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    token_limit: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    spent_cost: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    reserved_cost: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    spent_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    #: the part of ``reserved`` held by processes' leases (blocks they reserve from memory)
    leased_cost: Mapped[Decimal] = mapped_column(
        Money, default=Decimal(0), server_default=text("0")
    )
    leased_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    calls: Mapped[int] = mapped_column(Integer, default=0)


class BudgetReservationRow(Base):
    """An open reservation of one call, or a process's lease (``lease``: a block its calls
    reserve from in memory, resized and renewed while the process lives). Deleted when
    settled, released or returned; one left behind by a process that died is charged as
    spent by the sweeper once it expires (with a ledger adjustment row), never released."""

    __tablename__ = "llm_budget_reservations"
    __table_args__ = (Index("ix_llm_budget_reservations_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    #: [[budget_id, period_start], ...]
    counters: Mapped[list[list[str]]] = mapped_column(JSONType)
    cost_units: Mapped[int] = mapped_column(BigInteger)
    tokens: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    api_key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    lease: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: host:pid:nonce of the process holding it (for operators; expiry decides abandonment)
    owner: Mapped[str | None] = mapped_column(String(120), nullable=True)


#: the condition of the ledger's partial prompt-version index, as SQL (see ``LedgerRow``)
HAS_PROMPT_VERSION_SQL = "prompt_version_id IS NOT NULL"


class LedgerRow(Base):
    """One model call, recorded exactly once (the primary key is the call id). The
    prompt-version index holds only rows with a prompt version: most calls have none, and
    each index is one more B-tree every call's insert updates (issue #19)."""

    __tablename__ = "llm_ledger"
    __table_args__ = (
        Index("ix_llm_ledger_tenant_day", "tenant_id", "day"),
        Index("ix_llm_ledger_tenant_model", "tenant_id", "model"),
        Index(
            "ix_llm_ledger_tenant_prompt_version",
            "tenant_id",
            "prompt_version_id",
            sqlite_where=text(HAS_PROMPT_VERSION_SQL),
            postgresql_where=text(HAS_PROMPT_VERSION_SQL),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: UTC calendar day (YYYY-MM-DD), stored so grouping is the same on every dialect
    day: Mapped[str] = mapped_column(String(10))
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    api_key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    workflow_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    node_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model: Mapped[str] = mapped_column(String(200))
    requested_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    provider: Mapped[str] = mapped_column(String(64))
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cached_input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(64))
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    streamed: Mapped[bool] = mapped_column(Boolean, default=False)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: "chat" or "embedding"
    kind: Mapped[str] = mapped_column(String(16), default="chat", server_default="chat")
    #: what an embedding call served (``{"documentId": ..}``, ``{"runId": ..}``)
    served: Mapped[dict[str, str] | None] = mapped_column(JSONType, nullable=True)
    #: the provider attempt of its call (1 = the first: a request; more = gateway retries)
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    #: the prompt version the call was made with (prompted chat, workflow model nodes)
    prompt_version_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
