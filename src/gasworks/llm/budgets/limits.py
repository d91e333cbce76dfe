"""Spend limits per tenant and per API key, per UTC calendar day and month: reserve-then-settle.

Before a call its estimated maximum (cost and tokens) is reserved on every applicable
counter; after it the reservation is swapped for the actual usage; a failed call settles at
what it really used (usually nothing). A reservation is only admitted while
``spent + reserved`` stays within every limit, so spend can exceed a limit only by what a
call used beyond its own estimate — never by concurrency, in any number of processes.

Two ways to reserve, chosen per scope (tenant + API key) from the headroom left:

* **leased** (far from the limits): the process reserves a *block* in the database (a lease,
  see ``leases.py``) and serves each call's reservation and settlement from memory;
* **exact** (close to a limit, or leases off): one transaction per call locks the counters and
  reserves exactly the estimate (a per-call row of ``llm_budget_reservations``).

Settlements are written by the ledger's batches (``ledger.py``), in the same transaction as
the calls' ledger rows. The list of limits of a tenant/key is cached per process for
``budget_cache_ttl_seconds`` (invalidated at once in the process that changes it), so callers
without limits pay nothing.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from pydantic import ConfigDict, Field
from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from gasworks.apimodel import ApiModel
from gasworks.bounds import Count, Money
from gasworks.db.engine import Database, OnLoop
from gasworks.db.paging import ALL, Page
from gasworks.db.types import money_to_units, new_id, utcnow
from gasworks.errors import NotFound, ValidationFailed
from gasworks.llm.budgets import store
from gasworks.llm.budgets.leases import Charge, Lease, LeasePolicy, Reservation, ScopeKey
from gasworks.llm.guardrail_metrics import BUDGET_RESERVATIONS
from gasworks.llm.guardrail_tables import BudgetCounterRow, BudgetRow
from gasworks.llm.vocab import Period as Period
from gasworks.observability.logging import get_logger
from gasworks.singleflight import SingleFlight
from gasworks.tenancy.context import Role, TenantContext
from gasworks.tenancy.tables import ApiKeyRow

log = get_logger("gasworks.llm.budgets.limits")

C: Table = BudgetCounterRow.__table__  # type: ignore[assignment]
BT: Table = BudgetRow.__table__  # type: ignore[assignment]

_LEASED = BUDGET_RESERVATIONS.labels(mode="lease")
_EXACT = BUDGET_RESERVATIONS.labels(mode="exact")


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


# --- schemas ------------------------------------------------------------------------------


class BudgetSet(ApiModel):
    model_config = ConfigDict(extra="forbid")

    period: Period
    api_key_id: str | None = Field(
        default=None, description="Limit one API key of the tenant; omit for the whole tenant."
    )
    cost_limit: Money | None = Field(default=None, description="Money per period.")
    token_limit: Count | None = Field(default=None, description="Tokens per period.")


class BudgetOut(ApiModel):
    id: str
    tenant_id: str
    api_key_id: str | None
    period: Period
    period_start: str
    cost_limit: Decimal | None
    token_limit: int | None
    spent_cost: Decimal = Field(
        description="Settled spend. Lags the calls by at most the ledger flush interval; "
        "until then their amount is part of reserved_cost."
    )
    reserved_cost: Decimal = Field(
        description="Held for calls in flight and by processes' leases (includes leased_cost)."
    )
    leased_cost: Decimal = Field(description="The part of reserved_cost held by leases.")
    spent_tokens: int
    reserved_tokens: int = Field(description="Includes leased_tokens.")
    leased_tokens: int
    calls: int
    updated_at: datetime
    updated_by: str | None


# --- the per-call service -----------------------------------------------------------------


@dataclass(slots=True)
class _Scope:
    limits: list[Limit]
    #: epoch second at which the calendar periods change (the next UTC midnight)
    until: float
    key: ScopeKey
    infos: tuple[store.CounterInfo, ...]


def process_owner() -> str:
    """host:pid:nonce, recorded on lease rows for operators."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class BudgetService:
    def __init__(
        self,
        db: Database,
        *,
        cache_ttl: float = 5.0,
        reservation_ttl: float = 3600.0,
        leases: LeasePolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.cache_ttl = cache_ttl
        self.reservation_ttl = reservation_ttl
        self.policy = leases if leases is not None else LeasePolicy()
        self.clock = clock
        self.owner = process_owner()
        #: the lease each scope draws from
        self.leases: dict[ScopeKey, Lease] = {}
        #: retired leases still holding capacity (returned by the next flush once idle)
        self.retiring: list[Lease] = []
        #: serialises every transaction that changes a lease (reserving, flushing)
        self.lease_lock = asyncio.Lock()
        #: called when a lease is taken or retired (the ledger writer starts / wakes)
        self.on_lease_change: Callable[[], None] | None = None
        self.last_check = time.monotonic()
        self._cache: dict[tuple[str, str], tuple[float, list[Limit]]] = {}
        #: the load of a scope's limits in progress (requests that miss together share it)
        self._loading: SingleFlight[tuple[str, str], list[Limit]] = SingleFlight()
        #: bumped by ``invalidate``: a load that raced with it is not cached
        self._generation = 0
        self._scopes: dict[tuple[str, str], _Scope] = {}
        self._no_lease_until: dict[ScopeKey, float] = {}

    def invalidate(self, tenant_id: str | None = None) -> None:
        """Forget cached limits and retire the leases of ``tenant_id`` (every tenant: None):
        a changed limit applies to this process's next call."""
        self._generation += 1
        if tenant_id is None:
            self._cache.clear()
            self._scopes.clear()
            self._no_lease_until.clear()
        else:
            for k in [k for k in self._cache if k[0] == tenant_id]:
                del self._cache[k]
            for k in [k for k in self._scopes if k[0] == tenant_id]:
                del self._scopes[k]
            for sk in [sk for sk in self._no_lease_until if sk[0] == tenant_id]:
                del self._no_lease_until[sk]
        for lease in list(self.leases.values()):
            if tenant_id is None or lease.tenant_id == tenant_id:
                self.retire(lease)

    def retire(self, lease: Lease) -> None:
        lease.retired = True
        if self.leases.get(lease.key) is lease:
            del self.leases[lease.key]
        if not lease.lost and lease not in self.retiring:
            self.retiring.append(lease)
        if self.on_lease_change is not None:
            self.on_lease_change()

    def no_limits_now(self, tenant_id: str, api_key_id: str | None) -> bool:
        """True when the cached limits of the tenant and key are fresh and there are none:
        ``reserve`` would return None without reading or reserving anything."""
        hit = self._cache.get((tenant_id, api_key_id or ""))
        return hit is not None and not hit[1] and time.monotonic() - hit[0] < self.cache_ttl

    async def limits_for(self, tenant_id: str, api_key_id: str | None) -> list[Limit]:
        """The tenant's own limits and those of ``api_key_id`` (cached ``cache_ttl``)."""
        key = (tenant_id, api_key_id or "")
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.cache_ttl:
            return hit[1]
        # one load per scope at a time: when the cached limits of a busy scope run out (after
        # a few idle seconds), a burst of requests shares one read instead of one each
        return await self._loading.run(key, lambda: self._load_limits(key, now))

    async def _load_limits(self, key: tuple[str, str], now: float) -> list[Limit]:
        tenant_id, api_key_id = key
        generation = self._generation
        keys = [""] if not api_key_id else ["", api_key_id]
        async with self.db.read_session() as s:
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
        if generation == self._generation:  # no invalidation while it was read
            self._cache[key] = (now, limits)
        return limits

    def _scope(self, tenant_id: str, api_key_id: str, limits: list[Limit], now: float) -> _Scope:
        """The counters a call charges now, and the lease scope they form (cached until the
        calendar periods change or the limits are reloaded)."""
        hit = self._scopes.get((tenant_id, api_key_id))
        if hit is not None and hit.limits is limits and now < hit.until:
            return hit
        when = datetime.fromtimestamp(now, UTC)
        counters = tuple((lim.budget_id, period_start(lim.period, when)) for lim in limits)
        own = api_key_id if any(lim.api_key_id for lim in limits) else ""
        infos = tuple(
            store.CounterInfo(
                lim.api_key_id,
                lim.period.value,
                None if lim.cost_limit is None else money_to_units(lim.cost_limit),
                lim.token_limit,
            )
            for lim in limits
        )
        scope = _Scope(limits, (now // 86400 + 1) * 86400, (tenant_id, own, counters), infos)
        self._scopes[(tenant_id, api_key_id)] = scope
        return scope

    async def reserve(
        self, tenant_id: str, api_key_id: str | None, cost: Decimal, tokens: int
    ) -> Reservation | None:
        """Reserve ``cost``/``tokens`` on every applicable counter, or raise
        COST_LIMIT_EXCEEDED / TOKEN_BUDGET_EXCEEDED touching none. None: no limits apply."""
        limits = await self.limits_for(tenant_id, api_key_id)
        if not limits:
            return None
        scope = self._scope(tenant_id, api_key_id or "", limits, self.clock())
        units = money_to_units(cost)
        lease = self.leases.get(scope.key)
        if lease is not None and lease.try_draw(units, tokens):
            _LEASED.inc()
            if not lease.wanted and lease.low():  # top it up in the background
                lease.wanted = True
                if self.on_lease_change is not None:
                    self.on_lease_change()
            return Reservation("", scope.key[2], units, tokens, lease)
        if not self.policy.enabled or time.monotonic() < self._no_lease_until.get(scope.key, 0):
            return await self._reserve_in_db(scope, units, tokens, None)
        async with self.lease_lock:
            lease = self.leases.get(scope.key)  # another call may have topped it up meanwhile
            if lease is not None and lease.try_draw(units, tokens):
                _LEASED.inc()
                return Reservation("", scope.key[2], units, tokens, lease)
            return await self._reserve_in_db(scope, units, tokens, lease)

    async def _reserve_in_db(
        self, scope: _Scope, units: int, tokens: int, lease: Lease | None
    ) -> Reservation:
        """One transaction: grow or take a lease (``lease`` given or None with leases on) or
        reserve exactly. With ``lease`` None and leases on, a new lease may be taken."""
        use_lease = self.policy.enabled and (
            lease is not None or time.monotonic() >= self._no_lease_until.get(scope.key, 0)
        )
        grant = store.Grant()
        req = store.ReserveRequest(
            scope.key, scope.infos, units, tokens, self.owner, self.clock(), self.reservation_ttl
        )
        try:
            async with self.db.session() as s:
                await store.reserve_in(
                    s,
                    self.db.dialect,
                    req,
                    lease=lease if use_lease else None,
                    policy=self.policy if use_lease else None,
                    grant=grant,
                )
        except BaseException:
            grant.rollback()
            raise
        grant.commit()
        if grant.lost is not None:
            self.retire(grant.lost)
        got = grant.lease
        if got is not None:
            old = self.leases.get(scope.key)
            if old is not got:
                if old is not None:
                    self.retire(old)
                self.leases[scope.key] = got
                if self.on_lease_change is not None:
                    self.on_lease_change()
            if got.try_draw(units, tokens):
                _LEASED.inc()
                return Reservation("", scope.key[2], units, tokens, got)
        if grant.reservation_id is None:  # pragma: no cover - a grant always fits its call
            raise RuntimeError("budget reservation granted nothing")
        if use_lease:
            self._no_lease_until[scope.key] = time.monotonic() + self.policy.interval
        _EXACT.inc()
        return Reservation(grant.reservation_id, scope.key[2], units, tokens)

    # --- settling (memory now, the database in the ledger's next batch) ---------------------

    @staticmethod
    def settle(reservation: Reservation, cost: Decimal, tokens: int) -> Charge | None:
        """Swap the reservation for the actual usage; the returned charge goes to the ledger
        writer with the call's row. None: already settled or released."""
        if reservation.done:
            return None
        reservation.done = True
        units = money_to_units(cost)
        if reservation.lease is not None:
            reservation.lease.settle(reservation.cost_units, reservation.tokens, units, tokens)
        return Charge(reservation, units, tokens)

    @staticmethod
    def release(reservation: Reservation) -> Charge | None:
        """Give a reservation back unused (the call never happened). A leased one is back in
        the lease at once; a per-call row is released by the returned charge."""
        if reservation.done:
            return None
        reservation.done = True
        if reservation.lease is not None:
            reservation.lease.release(reservation.cost_units, reservation.tokens)
            return None
        return Charge(reservation, 0, 0, counted=False)

    def check_due(self) -> bool:
        return time.monotonic() - self.last_check >= self.policy.interval

    def leases_to_check(self, full: bool) -> list[Lease]:
        out = list(self.retiring)
        out.extend(lease for lease in self.leases.values() if full or lease.low())
        return out

    def settle_in(
        self,
        s: Session,
        on_loop: OnLoop,
        charges: list[Charge],
        leases: list[Lease],
        plan: store.FlushPlan,
        *,
        full: bool,
    ) -> None:
        """Write ``charges`` and maintain ``leases`` (``leases_to_check``, taken on the event
        loop) inside the caller's transaction, a ``Database.write_batch`` (hold
        ``lease_lock``); then ``after_flush(plan)`` once it commits, ``plan.rollback()`` if
        it does not."""
        store.settle_in(
            s,
            on_loop,
            charges,
            leases,
            policy=self.policy,
            now=self.clock(),
            full_check=full,
            plan=plan,
        )

    def after_flush(self, plan: store.FlushPlan, *, full: bool) -> None:
        plan.commit()
        for lease in plan.touched:
            lease.wanted = False
        done = {id(x) for x, _ in plan.returned} | {id(x) for x in plan.lost}
        for lease in [x for x, _ in plan.returned] + plan.lost:
            if self.leases.get(lease.key) is lease:
                del self.leases[lease.key]
        self.retiring = [x for x in self.retiring if id(x) not in done]
        if full:
            self.last_check = time.monotonic()

    def shutting_down(self) -> None:
        """Retire every lease: the next flush returns what they hold."""
        for lease in list(self.leases.values()):
            self.retire(lease)

    async def sweep(self, limit: int = 500) -> int:
        """Charge reservations and leases past their expiry (left by processes that died):
        what they held counts as spent, with an estimated ledger adjustment row each."""
        now = self.clock()
        async with self.db.read_session() as s:
            ids = await store.expired_ids(s, now, limit)
        charged = 0
        for rid in ids:
            async with self.db.session() as s:
                charged += await store.sweep_in(s, rid, now)
        if charged:
            log.warning("budgets.expired_charged", charged=charged)
        return charged


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
    page: Page = ALL,
) -> list[BudgetOut]:
    """The tenant's limits with the current period's spend and reservations (one page of
    them, paged in SQL: the spend is read per budget of the page only)."""
    ctx.require(Role.VIEWER)
    when = now or utcnow()
    q = select(BudgetRow).where(BudgetRow.tenant_id == ctx.tenant_id)
    if api_key_id is not None:
        q = q.where(BudgetRow.api_key_id == api_key_id)
    if budget_id is not None:
        q = q.where(BudgetRow.id == budget_id)
    q = q.order_by(BudgetRow.api_key_id, BudgetRow.period, BudgetRow.id)
    rows = (await session.execute(page.apply(q))).scalars()
    out = []
    for r in rows:
        start = period_start(r.period, when)
        c = (
            await session.execute(select(C).where(C.c.budget_id == r.id, C.c.period_start == start))
        ).first()
        if c is None:  # no call since the limit was set: what the ledger holds for the period
            cost, tokens, calls = await store.ledger_spend(
                session, r.tenant_id, r.api_key_id or None, start
            )
        else:
            cost, tokens, calls = c.spent_cost, c.spent_tokens, c.calls
        out.append(
            BudgetOut(
                id=r.id,
                tenant_id=r.tenant_id,
                api_key_id=r.api_key_id or None,
                period=Period(r.period),
                period_start=start,
                cost_limit=r.cost_limit,
                token_limit=r.token_limit,
                spent_cost=cost,
                reserved_cost=c.reserved_cost if c else Decimal(0),
                leased_cost=c.leased_cost if c else Decimal(0),
                spent_tokens=tokens,
                reserved_tokens=c.reserved_tokens if c else 0,
                leased_tokens=c.leased_tokens if c else 0,
                calls=calls,
                updated_at=r.updated_at,
                updated_by=r.updated_by,
            )
        )
    return out


__all__ = [
    "BudgetOut",
    "BudgetService",
    "BudgetSet",
    "Charge",
    "Lease",
    "LeasePolicy",
    "Limit",
    "Period",
    "Reservation",
    "list_budgets",
    "period_start",
    "set_budget",
]
