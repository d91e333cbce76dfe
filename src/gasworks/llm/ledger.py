"""The cost ledger: every model call recorded exactly once, and its aggregates.

A call's ledger row and the settlement of its budget reservation are written in ONE
transaction, keyed by the call id: a retried write inserts nothing and settles nothing, so the
ledger total always equals what the budgets were charged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import BigInteger, Table, case, func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from gasworks.db.engine import Database
from gasworks.db.types import units_to_money
from gasworks.errors import ValidationFailed
from gasworks.llm.budgets import BudgetService, Reservation
from gasworks.llm.guardrail_metrics import USAGE_CALLS, USAGE_COST, USAGE_TOKENS
from gasworks.llm.guardrail_tables import LedgerRow
from gasworks.tenancy.context import Role, TenantContext

L: Table = LedgerRow.__table__  # type: ignore[assignment]


@dataclass(slots=True)
class LedgerEntry:
    id: str
    tenant_id: str
    model: str
    provider: str
    status: str
    created_at: datetime
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost: Decimal = Decimal(0)
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    estimated: bool = False
    streamed: bool = False
    request_id: str | None = None
    api_key_id: str | None = None
    workflow_id: str | None = None
    node_id: str | None = None
    run_id: str | None = None
    requested_model: str | None = None
    error_code: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "created_at": self.created_at,
            "day": self.created_at.astimezone(UTC).strftime("%Y-%m-%d"),
            "request_id": self.request_id,
            "api_key_id": self.api_key_id,
            "workflow_id": self.workflow_id,
            "node_id": self.node_id,
            "run_id": self.run_id,
            "model": self.model,
            "requested_model": self.requested_model,
            "provider": self.provider,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cost": self.cost,
            "latency_ms": self.latency_ms,
            "ttft_ms": self.ttft_ms,
            "status": self.status,
            "estimated": self.estimated,
            "streamed": self.streamed,
            "error_code": self.error_code,
        }


class Ledger:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, entry: LedgerEntry, reservation: Reservation | None) -> bool:
        """Write the call and settle its reservation, once. False: it was already recorded."""
        async with self.db.session() as s:
            res = await s.execute(
                self.db.dialect.insert(L).values(**entry.row()).on_conflict_do_nothing()
            )
            if res.rowcount != 1:  # type: ignore[attr-defined]
                return False
            if reservation is not None:
                tokens = entry.input_tokens + entry.output_tokens
                await BudgetService.settle_in(s, reservation, entry.cost, tokens)
        USAGE_CALLS.labels(model=entry.model, status=entry.status).inc()
        USAGE_TOKENS.labels(model=entry.model, kind="input").inc(entry.input_tokens)
        USAGE_TOKENS.labels(model=entry.model, kind="output").inc(entry.output_tokens)
        USAGE_TOKENS.labels(model=entry.model, kind="cached_input").inc(entry.cached_input_tokens)
        USAGE_COST.labels(model=entry.model).inc(float(entry.cost))
        return True


# --- aggregates -----------------------------------------------------------------------------


class GroupBy(StrEnum):
    DAY = "day"
    MODEL = "model"
    WORKFLOW = "workflow"
    API_KEY = "api_key"
    PROVIDER = "provider"
    STATUS = "status"


_COLUMNS = {
    GroupBy.DAY: L.c.day,
    GroupBy.MODEL: L.c.model,
    GroupBy.WORKFLOW: L.c.workflow_id,
    GroupBy.API_KEY: L.c.api_key_id,
    GroupBy.PROVIDER: L.c.provider,
    GroupBy.STATUS: L.c.status,
}


class UsageRow(BaseModel):
    group: dict[str, str | None]
    calls: int
    failed_calls: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost: Decimal
    estimated_calls: int


class UsageReport(BaseModel):
    since: date | None
    until: date | None
    group_by: list[GroupBy]
    rows: list[UsageRow]
    total: UsageRow


async def usage(
    session: AsyncSession,
    ctx: TenantContext,
    *,
    group_by: list[GroupBy] | None = None,
    since: date | None = None,
    until: date | None = None,
    model: str | None = None,
    workflow_id: str | None = None,
    api_key_id: str | None = None,
) -> UsageReport:
    """Calls, tokens and cost of the caller's tenant, grouped (days are UTC, inclusive)."""
    ctx.require(Role.VIEWER)
    groups = list(dict.fromkeys(group_by or [GroupBy.DAY]))
    if since and until and since > until:
        raise ValidationFailed("since is after until.", details={"since": str(since)})
    cols = [_COLUMNS[g] for g in groups]
    measures = [
        func.count(),
        func.coalesce(func.sum(case((L.c.status != "ok", 1), else_=0)), 0),
        func.coalesce(func.sum(L.c.input_tokens), 0),
        func.coalesce(func.sum(L.c.output_tokens), 0),
        func.coalesce(func.sum(L.c.cached_input_tokens), 0),
        func.coalesce(func.sum(type_coerce(L.c.cost, BigInteger)), 0),
        func.coalesce(func.sum(case((L.c.estimated, 1), else_=0)), 0),
    ]
    conds = [L.c.tenant_id == ctx.tenant_id]
    if since:
        conds.append(L.c.day >= since.isoformat())
    if until:
        conds.append(L.c.day <= until.isoformat())
    if model:
        conds.append(L.c.model == model)
    if workflow_id:
        conds.append(L.c.workflow_id == workflow_id)
    if api_key_id:
        conds.append(L.c.api_key_id == api_key_id)
    q = select(*cols, *measures).where(*conds).group_by(*cols).order_by(*cols)
    rows = [
        _usage_row(
            dict(zip([g.value for g in groups], r[: len(cols)], strict=True)), r[len(cols) :]
        )
        for r in (await session.execute(q)).all()
    ]
    total_q = select(*measures).where(*conds)
    total = _usage_row({}, (await session.execute(total_q)).one())
    return UsageReport(since=since, until=until, group_by=groups, rows=rows, total=total)


def _usage_row(group: dict[str, Any], m: Any) -> UsageRow:
    return UsageRow(
        group={k: None if v is None else str(v) for k, v in group.items()},
        calls=int(m[0]),
        failed_calls=int(m[1] or 0),
        input_tokens=int(m[2]),
        output_tokens=int(m[3]),
        cached_input_tokens=int(m[4]),
        cost=units_to_money(m[5]),
        estimated_calls=int(m[6]),
    )


class LedgerCallOut(BaseModel):
    """One recorded model call (a provider attempt)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    created_at: datetime
    request_id: str | None
    api_key_id: str | None
    workflow_id: str | None
    node_id: str | None
    run_id: str | None
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost: Decimal
    latency_ms: float
    ttft_ms: float | None
    status: str
    estimated: bool
    streamed: bool
    error_code: str | None


async def list_calls(
    session: AsyncSession, ctx: TenantContext, *, limit: int = 50, model: str | None = None
) -> list[LedgerCallOut]:
    """The most recent calls of the tenant (newest first)."""
    ctx.require(Role.VIEWER)
    q = select(LedgerRow).where(LedgerRow.tenant_id == ctx.tenant_id)
    if model:
        q = q.where(LedgerRow.model == model)
    rows = (await session.execute(q.order_by(LedgerRow.created_at.desc()).limit(limit))).scalars()
    return [LedgerCallOut.model_validate(r) for r in rows]
