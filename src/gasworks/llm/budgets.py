"""Spend limits per tenant and per API key, per UTC calendar day and month: reserve-then-settle.

Before a call the estimated maximum (cost and tokens) is reserved on every applicable counter
with one conditional UPDATE each (``… WHERE spent + reserved + x <= limit``), all in one
transaction: either every limit admits the call or none is touched. After the call the
reservation is swapped for the actual usage (in the same transaction that writes the ledger
row, see ``ledger.py``); a failed call settles at what it really used (usually nothing).
Because a reservation only succeeds while ``spent + reserved`` stays under the limit, spend
can exceed a limit only by what a call used beyond its own estimate — never by concurrency.

The list of limits of a tenant/key is cached per process for ``budget_cache_ttl_seconds``
(invalidated at once in the process that changes it), so callers without limits pay nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import BigInteger, Table, or_, select, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncSession

from gasworks.db.engine import Database
from gasworks.db.types import money_to_units, new_id, utcnow
from gasworks.errors import CostLimitExceeded, NotFound, TokenBudgetExceeded, ValidationFailed
from gasworks.llm.guardrail_tables import BudgetCounterRow, BudgetReservationRow, BudgetRow
from gasworks.observability.logging import get_logger
from gasworks.tenancy.context import Role, TenantContext
from gasworks.tenancy.tables import ApiKeyRow

log = get_logger("gasworks.llm.budgets")

C: Table = BudgetCounterRow.__table__  # type: ignore[assignment]
R: Table = BudgetReservationRow.__table__  # type: ignore[assignment]
BT: Table = BudgetRow.__table__  # type: ignore[assignment]


class Period(StrEnum):
    DAY = "day"
    MONTH = "month"

    @property
    def adjective(self) -> str:
        """``daily`` / ``monthly``, for messages."""
        return "daily" if self is Period.DAY else "monthly"


def period_start(period: Period | str, when: datetime) -> str:
    """The UTC calendar period containing ``when``: ``2026-11-26`` or ``2026-11``."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d") if period == Period.DAY else when.strftime("%Y-%m")


@dataclass(frozen=True, slots=True)
class Limit:
    budget_id: str
    tenant_id: str
    api_key_id: str
    period: Period
    cost_limit: Decimal | None
    token_limit: int | None


@dataclass(frozen=True, slots=True)
class Reservation:
    """What was reserved on which counters; settled (or released) exactly once."""

    id: str
    counters: tuple[tuple[str, str], ...]
    cost_units: int
    tokens: int


# --- schemas ------------------------------------------------------------------------------


class BudgetSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: Period
    api_key_id: str | None = Field(
        default=None, description="Limit one API key of the tenant; omit for the whole tenant."
    )
    cost_limit: Decimal | None = Field(default=None, ge=0, description="Money per period.")
    token_limit: int | None = Field(default=None, ge=0, description="Tokens per period.")


class BudgetOut(BaseModel):
    id: str
    tenant_id: str
    api_key_id: str | None
    period: Period
    period_start: str
    cost_limit: Decimal | None
    token_limit: int | None
    spent_cost: Decimal
    reserved_cost: Decimal
    spent_tokens: int
    reserved_tokens: int
    calls: int
    updated_at: datetime
    updated_by: str | None


# --- the per-call service -----------------------------------------------------------------


class BudgetService:
    def __init__(
        self,
        db: Database,
        *,
        cache_ttl: float = 5.0,
        reservation_ttl: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.cache_ttl = cache_ttl
        self.reservation_ttl = reservation_ttl
        self.clock = clock
        self._cache: dict[tuple[str, str], tuple[float, list[Limit]]] = {}

    def invalidate(self, tenant_id: str | None = None) -> None:
        if tenant_id is None:
            self._cache.clear()
        else:
            for k in [k for k in self._cache if k[0] == tenant_id]:
                del self._cache[k]

    async def limits_for(self, tenant_id: str, api_key_id: str | None) -> list[Limit]:
        """The tenant's own limits and those of ``api_key_id`` (cached ``cache_ttl``)."""
        key = (tenant_id, api_key_id or "")
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.cache_ttl:
            return hit[1]
        keys = [""] if not api_key_id else ["", api_key_id]
        async with self.db.session() as s:
            rows = (
                await s.execute(
                    select(BT).where(BT.c.tenant_id == tenant_id, BT.c.api_key_id.in_(keys))
                )
            ).all()
        limits = sorted(
            (
                Limit(
                    r.id,
                    r.tenant_id,
                    r.api_key_id,
                    Period(r.period),
                    r.cost_limit,
                    r.token_limit,
                )
                for r in rows
                if r.cost_limit is not None or r.token_limit is not None
            ),
            key=lambda x: x.budget_id,
        )
        self._cache[key] = (now, limits)
        return limits

    async def reserve(
        self, tenant_id: str, api_key_id: str | None, cost: Decimal, tokens: int
    ) -> Reservation | None:
        """Reserve ``cost``/``tokens`` on every applicable counter, or raise
        COST_LIMIT_EXCEEDED / TOKEN_BUDGET_EXCEEDED touching none. None: no limits apply."""
        limits = await self.limits_for(tenant_id, api_key_id)
        if not limits:
            return None
        now = self.clock()
        when = datetime.fromtimestamp(now, UTC)
        units = money_to_units(cost)
        counters: list[tuple[str, str]] = []
        rid = new_id("res")
        async with self.db.session() as s:
            for lim in limits:  # sorted by id: the same lock order in every transaction
                start = period_start(lim.period, when)
                if not await self._try_reserve(s, lim.budget_id, start, units, tokens):
                    await self._create_counter(s, lim, start)
                    if not await self._try_reserve(s, lim.budget_id, start, units, tokens):
                        await self._reject(s, lim, start, cost, tokens)
                counters.append((lim.budget_id, start))
            await s.execute(
                R.insert().values(
                    id=rid,
                    tenant_id=tenant_id,
                    counters=[list(c) for c in counters],
                    cost_units=units,
                    tokens=tokens,
                    expires_at=datetime.fromtimestamp(now + self.reservation_ttl, UTC),
                )
            )
        return Reservation(rid, tuple(counters), units, tokens)

    async def _try_reserve(
        self, s: AsyncSession, budget_id: str, start: str, units: int, tokens: int
    ) -> bool:
        spent_c = type_coerce(C.c.spent_cost, BigInteger)
        res_c = type_coerce(C.c.reserved_cost, BigInteger)
        limit_c = type_coerce(C.c.cost_limit, BigInteger)
        stmt = (
            update(C)
            .where(
                C.c.budget_id == budget_id,
                C.c.period_start == start,
                or_(limit_c.is_(None), spent_c + res_c + units <= limit_c),
                or_(
                    C.c.token_limit.is_(None),
                    C.c.spent_tokens + C.c.reserved_tokens + tokens <= C.c.token_limit,
                ),
            )
            .values(reserved_cost=res_c + units, reserved_tokens=C.c.reserved_tokens + tokens)
        )
        result = await s.execute(stmt)
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def _create_counter(self, s: AsyncSession, lim: Limit, start: str) -> None:
        await s.execute(
            self.db.dialect.insert(C)
            .values(
                budget_id=lim.budget_id,
                period_start=start,
                tenant_id=lim.tenant_id,
                cost_limit=lim.cost_limit,
                token_limit=lim.token_limit,
                spent_cost=Decimal(0),
                reserved_cost=Decimal(0),
                spent_tokens=0,
                reserved_tokens=0,
                calls=0,
            )
            .on_conflict_do_nothing()
        )

    async def _reject(
        self, s: AsyncSession, lim: Limit, start: str, cost: Decimal, tokens: int
    ) -> None:
        row = (
            await s.execute(
                select(C).where(C.c.budget_id == lim.budget_id, C.c.period_start == start)
            )
        ).one()
        scope = "API key" if lim.api_key_id else "tenant"
        details: dict[str, Any] = {
            "scope": "api_key" if lim.api_key_id else "tenant",
            "apiKeyId": lim.api_key_id or None,
            "period": lim.period.value,
            "periodStart": start,
        }
        cost_over = row.cost_limit is not None and (
            row.spent_cost + row.reserved_cost + cost > row.cost_limit
        )
        if cost_over:
            raise CostLimitExceeded(
                f"The {scope}'s {lim.period.adjective} spend limit would be exceeded "
                f"(limit {row.cost_limit}, spent {row.spent_cost}, reserved "
                f"{row.reserved_cost}, this call up to {cost}).",
                details=details
                | {
                    "limit": str(row.cost_limit),
                    "spent": str(row.spent_cost),
                    "reserved": str(row.reserved_cost),
                    "estimate": str(cost),
                },
            )
        raise TokenBudgetExceeded(
            f"The {scope}'s {lim.period.adjective} token limit would be exceeded "
            f"(limit {row.token_limit}, used {row.spent_tokens}, reserved "
            f"{row.reserved_tokens}, this call up to {tokens}).",
            details=details
            | {
                "limit": row.token_limit,
                "spent": row.spent_tokens,
                "reserved": row.reserved_tokens,
                "estimate": tokens,
            },
        )

    @staticmethod
    async def settle_in(
        s: AsyncSession, reservation: Reservation, cost: Decimal, tokens: int
    ) -> None:
        """Swap the reservation for actual usage (inside the caller's transaction). If the
        sweeper already released it (a call longer than the reservation TTL), only the
        actual usage is added."""
        open_ = await _close_reservation(s, reservation.id)
        units = money_to_units(cost)
        spent_c = type_coerce(C.c.spent_cost, BigInteger)
        res_c = type_coerce(C.c.reserved_cost, BigInteger)
        held_units = reservation.cost_units if open_ else 0
        held_tokens = reservation.tokens if open_ else 0
        for budget_id, start in reservation.counters:
            await s.execute(
                update(C)
                .where(C.c.budget_id == budget_id, C.c.period_start == start)
                .values(
                    reserved_cost=res_c - held_units,
                    spent_cost=spent_c + units,
                    reserved_tokens=C.c.reserved_tokens - held_tokens,
                    spent_tokens=C.c.spent_tokens + tokens,
                    calls=C.c.calls + 1,
                )
            )

    async def release(self, reservation: Reservation) -> None:
        """Give a reservation back unused (the call never happened)."""
        async with self.db.session() as s:
            if await _close_reservation(s, reservation.id):
                await _unreserve(
                    s, reservation.counters, reservation.cost_units, reservation.tokens
                )

    async def sweep(self, limit: int = 500) -> int:
        """Release reservations past their TTL (left by processes that died mid-call)."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        async with self.db.session() as s:
            rows = (await s.execute(select(R).where(R.c.expires_at < now).limit(limit))).all()
        released = 0
        for row in rows:
            async with self.db.session() as s:
                if await _close_reservation(s, row.id):
                    counters = tuple((str(b), str(p)) for b, p in row.counters)
                    await _unreserve(s, counters, int(row.cost_units), int(row.tokens))
                    released += 1
        if released:
            log.warning("budgets.reservations_expired", released=released)
        return released


async def _close_reservation(s: AsyncSession, reservation_id: str) -> bool:
    """Delete the open-reservation row; False when it was already settled or swept."""
    result = await s.execute(R.delete().where(R.c.id == reservation_id))
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def _unreserve(
    s: AsyncSession, counters: tuple[tuple[str, str], ...], units: int, tokens: int
) -> None:
    res_c = type_coerce(C.c.reserved_cost, BigInteger)
    for budget_id, start in counters:
        await s.execute(
            update(C)
            .where(C.c.budget_id == budget_id, C.c.period_start == start)
            .values(reserved_cost=res_c - units, reserved_tokens=C.c.reserved_tokens - tokens)
        )


# --- operator functions (API / CLI) ---------------------------------------------------------


async def set_budget(
    session: AsyncSession, ctx: TenantContext, data: BudgetSet, *, now: datetime | None = None
) -> BudgetOut | None:
    """Create, change or (both limits None) remove a limit. Current counters follow at once."""
    ctx.require(Role.ADMIN)
    key_id = data.api_key_id or ""
    if key_id:
        owner = await session.scalar(select(ApiKeyRow.tenant_id).where(ApiKeyRow.id == key_id))
        if owner != ctx.tenant_id:
            raise NotFound("API key not found.", details={"id": key_id})
    row = (
        await session.execute(
            select(BudgetRow).where(
                BudgetRow.tenant_id == ctx.tenant_id,
                BudgetRow.api_key_id == key_id,
                BudgetRow.period == data.period.value,
            )
        )
    ).scalar_one_or_none()
    if data.cost_limit is None and data.token_limit is None:
        if row is not None:
            await session.delete(row)
        return None
    if data.cost_limit is not None and data.cost_limit.as_tuple().exponent < -9:  # type: ignore[operator]
        raise ValidationFailed(
            "cost_limit has more than 9 decimal places.", details={"field": "cost_limit"}
        )
    if row is None:
        row = BudgetRow(
            id=new_id("bud"), tenant_id=ctx.tenant_id, api_key_id=key_id, period=data.period
        )
        session.add(row)
    row.cost_limit = data.cost_limit
    row.token_limit = data.token_limit
    row.updated_at = now or utcnow()
    row.updated_by = ctx.principal_id
    await session.flush()
    await session.execute(
        update(C)
        .where(C.c.budget_id == row.id)
        .values(cost_limit=data.cost_limit, token_limit=data.token_limit)
    )
    out = await list_budgets(session, ctx, now=now, budget_id=row.id)
    return out[0]


async def list_budgets(
    session: AsyncSession,
    ctx: TenantContext,
    *,
    now: datetime | None = None,
    api_key_id: str | None = None,
    budget_id: str | None = None,
) -> list[BudgetOut]:
    """The tenant's limits with the current period's spend and reservations."""
    ctx.require(Role.VIEWER)
    when = now or utcnow()
    q = select(BudgetRow).where(BudgetRow.tenant_id == ctx.tenant_id)
    if api_key_id is not None:
        q = q.where(BudgetRow.api_key_id == api_key_id)
    if budget_id is not None:
        q = q.where(BudgetRow.id == budget_id)
    rows = (await session.execute(q.order_by(BudgetRow.api_key_id, BudgetRow.period))).scalars()
    out = []
    for r in rows:
        start = period_start(r.period, when)
        c = (
            await session.execute(select(C).where(C.c.budget_id == r.id, C.c.period_start == start))
        ).first()
        out.append(
            BudgetOut(
                id=r.id,
                tenant_id=r.tenant_id,
                api_key_id=r.api_key_id or None,
                period=Period(r.period),
                period_start=start,
                cost_limit=r.cost_limit,
                token_limit=r.token_limit,
                spent_cost=c.spent_cost if c else Decimal(0),
                reserved_cost=c.reserved_cost if c else Decimal(0),
                spent_tokens=c.spent_tokens if c else 0,
                reserved_tokens=c.reserved_tokens if c else 0,
                calls=c.calls if c else 0,
                updated_at=r.updated_at,
                updated_by=r.updated_by,
            )
        )
    return out


__all__ = [
    "BudgetOut",
    "BudgetService",
    "BudgetSet",
    "Limit",
    "Period",
    "Reservation",
    "list_budgets",
    "period_start",
    "set_budget",
]
