"""Budget transactions on the counter rows: reserve (a call or a lease), settle a batch, sweep.

Every transaction that changes counters first locks all the counters it will touch with one
``SELECT … ORDER BY budget_id, period_start FOR UPDATE`` (SQLite: the write transaction
already serialises), decides in Python against the locked values, then writes relative
updates. Counters are always locked first and in key order, so transactions of different
processes can wait for each other but never deadlock; reservation/lease rows are only
touched after that.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Table, func, select, tuple_, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from gasworks.db.dialects import DialectOps
from gasworks.db.engine import OnLoop
from gasworks.db.types import new_id, units_to_money
from gasworks.errors import CostLimitExceeded, TokenBudgetExceeded
from gasworks.llm.budgets.leases import Charge, Lease, LeasePolicy, ScopeKey
from gasworks.llm.guardrail_tables import (
    BudgetCounterRow,
    BudgetReservationRow,
    BudgetRow,
    LedgerRow,
)

C: Table = BudgetCounterRow.__table__  # type: ignore[assignment]
R: Table = BudgetReservationRow.__table__  # type: ignore[assignment]
L: Table = LedgerRow.__table__  # type: ignore[assignment]
B: Table = BudgetRow.__table__  # type: ignore[assignment]

Key = tuple[str, str]

#: ledger ``status`` of the rows charging what an abandoned lease / reservation held
LEASE_EXPIRED = "lease_expired"
RESERVATION_EXPIRED = "reservation_expired"


def _units(col: Any) -> Any:
    return type_coerce(col, BigInteger)


@dataclass(slots=True)
class CounterDelta:
    """This transaction's changes to one counter row (money in integer units)."""

    spent_cost: int = 0
    spent_tokens: int = 0
    reserved_cost: int = 0
    reserved_tokens: int = 0
    leased_cost: int = 0
    leased_tokens: int = 0
    calls: int = 0

    def __bool__(self) -> bool:
        return any(
            (
                self.spent_cost,
                self.spent_tokens,
                self.reserved_cost,
                self.reserved_tokens,
                self.leased_cost,
                self.leased_tokens,
                self.calls,
            )
        )


@dataclass(slots=True)
class CounterState:
    """A locked counter row (money in integer units) and this transaction's changes to it."""

    key: Key
    tenant_id: str
    cost_limit: int | None
    token_limit: int | None
    spent_cost: int
    reserved_cost: int
    spent_tokens: int
    reserved_tokens: int
    d: CounterDelta = field(default_factory=CounterDelta)

    def headroom(self) -> tuple[int | None, int | None]:
        d = self.d
        c = None
        if self.cost_limit is not None:
            used = self.spent_cost + d.spent_cost + self.reserved_cost + d.reserved_cost
            c = self.cost_limit - used
        t = None
        if self.token_limit is not None:
            used = self.spent_tokens + d.spent_tokens + self.reserved_tokens + d.reserved_tokens
            t = self.token_limit - used
        return c, t

    def fits(self, cost: int, tokens: int) -> bool:
        c, t = self.headroom()
        return (c is None or cost <= c) and (t is None or tokens <= t)

    def hold(self, cost: int, tokens: int, *, lease: bool) -> None:
        self.d.reserved_cost += cost
        self.d.reserved_tokens += tokens
        if lease:
            self.d.leased_cost += cost
            self.d.leased_tokens += tokens

    def charge(self, cost: int, tokens: int, calls: int = 1) -> None:
        self.d.spent_cost += cost
        self.d.spent_tokens += tokens
        self.d.calls += calls

    def statement(self) -> Any:
        spent_c, res_c, leased_c = (
            _units(C.c.spent_cost),
            _units(C.c.reserved_cost),
            _units(C.c.leased_cost),
        )
        d = self.d
        return (
            update(C)
            .where(C.c.budget_id == self.key[0], C.c.period_start == self.key[1])
            .values(
                spent_cost=spent_c + d.spent_cost,
                spent_tokens=C.c.spent_tokens + d.spent_tokens,
                reserved_cost=res_c + d.reserved_cost,
                reserved_tokens=C.c.reserved_tokens + d.reserved_tokens,
                leased_cost=leased_c + d.leased_cost,
                leased_tokens=C.c.leased_tokens + d.leased_tokens,
                calls=C.c.calls + d.calls,
            )
        )


def joint_headroom(states: Iterable[CounterState]) -> tuple[int | None, int | None]:
    """The smallest headroom per dimension over ``states`` (None: no limit in it)."""
    cost: int | None = None
    tokens: int | None = None
    for st in states:
        c, t = st.headroom()
        if c is not None:
            cost = c if cost is None else min(cost, c)
        if t is not None:
            tokens = t if tokens is None else min(tokens, t)
    return cost, tokens


async def lock_counters(s: AsyncSession, keys: Iterable[Key]) -> dict[Key, CounterState]:
    return await s.run_sync(lock_counters_in, list(keys))


def lock_counters_in(s: Session, keys: Iterable[Key]) -> dict[Key, CounterState]:
    """Lock the counter rows of ``keys`` (in key order) and read them (synchronous session:
    ``Database.write_batch``, or ``AsyncSession.run_sync``)."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    q = (
        select(
            C.c.budget_id,
            C.c.period_start,
            C.c.tenant_id,
            _units(C.c.cost_limit),
            C.c.token_limit,
            _units(C.c.spent_cost),
            _units(C.c.reserved_cost),
            C.c.spent_tokens,
            C.c.reserved_tokens,
        )
        .where(tuple_(C.c.budget_id, C.c.period_start).in_(wanted))
        .order_by(C.c.budget_id, C.c.period_start)
        .with_for_update()
    )
    out: dict[Key, CounterState] = {}
    for r in s.execute(q).all():
        key = (str(r[0]), str(r[1]))
        out[key] = CounterState(
            key,
            r[2],
            None if r[3] is None else int(r[3]),
            None if r[4] is None else int(r[4]),
            int(r[5]),
            int(r[6]),
            int(r[7]),
            int(r[8]),
        )
    return out


async def write_counters(s: AsyncSession, states: dict[Key, CounterState]) -> None:
    await s.run_sync(write_counters_in, states)


def write_counters_in(s: Session, states: dict[Key, CounterState]) -> None:
    for key in sorted(states):
        st = states[key]
        if st.d:
            s.execute(st.statement())


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


# --- rejections ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CounterInfo:
    """What a rejection message says about a counter's limit."""

    api_key_id: str
    period: str  # "day" | "month"
    cost_limit: int | None
    token_limit: int | None


def rejection(st: CounterInfo, state: CounterState, start: str, cost: int, tokens: int) -> Any:
    adjective = "daily" if st.period == "day" else "monthly"
    scope = "API key" if st.api_key_id else "tenant"
    details: dict[str, Any] = {
        "scope": "api_key" if st.api_key_id else "tenant",
        "apiKeyId": st.api_key_id or None,
        "period": st.period,
        "periodStart": start,
    }
    head_c, _ = state.headroom()
    if head_c is not None and cost > head_c:
        limit = units_to_money(state.cost_limit)
        spent = units_to_money(state.spent_cost + state.d.spent_cost)
        reserved = units_to_money(state.reserved_cost + state.d.reserved_cost)
        est = units_to_money(cost)
        return CostLimitExceeded(
            f"The {scope}'s {adjective} spend limit would be exceeded (limit {limit}, spent "
            f"{spent}, reserved {reserved}, this call up to {est}).",
            details=details
            | {
                "limit": str(limit),
                "spent": str(spent),
                "reserved": str(reserved),
                "estimate": str(est),
            },
        )
    used = state.spent_tokens + state.d.spent_tokens
    held = state.reserved_tokens + state.d.reserved_tokens
    return TokenBudgetExceeded(
        f"The {scope}'s {adjective} token limit would be exceeded (limit {state.token_limit}, "
        f"used {used}, reserved {held}, this call up to {tokens}).",
        details=details
        | {"limit": state.token_limit, "spent": used, "reserved": held, "estimate": tokens},
    )


# --- reserving ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Grant:
    """What a reserving transaction did; applied to memory only after it commits."""

    #: a per-call reservation row (exact mode)
    reservation_id: str | None = None
    #: the lease the call draws from (new, or the existing one) and what was added to it
    lease: Lease | None = None
    added: tuple[int, int] = (0, 0)
    #: the existing lease's row was gone (swept): it holds nothing any more
    lost: Lease | None = None
    #: free capacity taken out of the existing lease (already out of memory: restore on failure)
    shrunk: tuple[Lease, int, int] | None = None

    def commit(self) -> None:
        if self.lost is not None:
            _mark_lost(self.lost)
        if self.lease is not None:
            self.lease.held_cost += self.added[0]
            self.lease.held_tokens += self.added[1]

    def rollback(self) -> None:
        if self.shrunk is not None:
            lease, c, t = self.shrunk
            lease.held_cost += c
            lease.held_tokens += t


def _mark_lost(lease: Lease) -> None:
    lease.lost = True
    lease.retired = True
    lease.held_cost = lease.held_tokens = 0


@dataclass(slots=True)
class ReserveRequest:
    key: ScopeKey
    #: per counter (same order as key[2]): its limit, for messages and counter creation
    infos: Sequence[CounterInfo]
    cost: int
    tokens: int
    owner: str
    now: float
    reservation_ttl: float


async def ledger_spend(
    s: AsyncSession, tenant_id: str, api_key_id: str | None, start: str
) -> tuple[Decimal, int, int]:
    """(cost, tokens, calls) the ledger holds for a budget's scope in the period starting
    ``start`` (``2026-11-26`` or ``2026-11``): what a counter starts from, so a limit set in
    the middle of a period counts the whole period's spend, whenever it was set."""
    q = select(
        func.coalesce(func.sum(L.c.cost), 0),
        func.coalesce(func.sum(L.c.input_tokens + L.c.output_tokens), 0),
        func.count(),
    ).where(L.c.tenant_id == tenant_id, L.c.day.startswith(start, autoescape=True))
    if api_key_id:
        q = q.where(L.c.api_key_id == api_key_id)
    cost, tokens, calls = (await s.execute(q)).one()
    return Decimal(cost), int(tokens), int(calls)


async def _lock_or_create(
    s: AsyncSession, dialect: DialectOps, req: ReserveRequest
) -> dict[Key, CounterState]:
    keys = req.key[2]
    states = await lock_counters(s, keys)
    missing = [(k, i) for k, i in zip(keys, req.infos, strict=True) if k not in states]
    if missing:
        # the caller's list of limits is cached (GASWORKS_BUDGET_CACHE_TTL_SECONDS): a limit
        # another process removed since has no row, and gets no counter (it limits nothing).
        # FOR SHARE (PostgreSQL) keeps it from being removed until this transaction ends.
        alive = set(
            (
                await s.scalars(
                    select(B.c.id)
                    .where(B.c.id.in_({k[0] for k, _ in missing}))
                    .with_for_update(read=True)
                )
            ).all()
        )
        missing = [(k, i) for k, i in missing if k[0] in alive]
    if missing:
        # a new counter starts from what the ledger already holds for its period
        spend = [await ledger_spend(s, req.key[0], i.api_key_id, k[1]) for k, i in missing]
        await s.execute(
            dialect.insert(C)
            .values(
                [
                    {
                        "budget_id": k[0],
                        "period_start": k[1],
                        "tenant_id": req.key[0],
                        "cost_limit": None
                        if i.cost_limit is None
                        else units_to_money(i.cost_limit),
                        "token_limit": i.token_limit,
                        "spent_cost": spent[0],
                        "reserved_cost": 0,
                        "spent_tokens": spent[1],
                        "reserved_tokens": 0,
                        "leased_cost": 0,
                        "leased_tokens": 0,
                        "calls": spent[2],
                    }
                    for (k, i), spent in zip(missing, spend, strict=True)
                ]
            )
            .on_conflict_do_nothing()
        )
        states = await lock_counters(s, keys)
    return states


def _resize(lease_id: str, change: tuple[int, int], expires: datetime | None = None) -> Any:
    """Add ``change`` (cost units, tokens) to a lease row's amounts; renew it to ``expires``."""
    values: dict[str, Any] = {
        "cost_units": R.c.cost_units + change[0],
        "tokens": R.c.tokens + change[1],
    }
    if expires is not None:
        values["expires_at"] = expires
    return update(R).where(R.c.id == lease_id).values(**values)


async def _resize_row(
    s: AsyncSession, lease_id: str, change: tuple[int, int], expires: datetime | None = None
) -> None:
    await s.execute(_resize(lease_id, change, expires))


async def _lease_row_exists(s: AsyncSession, lease_id: str) -> bool:
    return (await s.scalar(select(R.c.id).where(R.c.id == lease_id))) is not None


async def reserve_in(
    s: AsyncSession,
    dialect: DialectOps,
    req: ReserveRequest,
    *,
    lease: Lease | None,
    policy: LeasePolicy | None,
    grant: Grant,
) -> None:
    """Reserve one call's estimate: from a new or grown lease when ``policy`` allows one at
    the current headroom, else exactly (a per-call row). Raises COST_LIMIT_EXCEEDED /
    TOKEN_BUDGET_EXCEEDED when a limit cannot admit it (the caller rolls back)."""
    states = await _lock_or_create(s, dialect, req)
    rows = [states[k] for k in req.key[2] if k in states]
    if lease is not None and not lease.lost and not await _lease_row_exists(s, lease.id):
        grant.lost, lease = lease, None
    cost_limited = any(st.cost_limit is not None for st in rows)
    token_limited = any(st.token_limit is not None for st in rows)
    if lease is not None and (
        lease.cost_limited != cost_limited or lease.token_limited != token_limited
    ):
        lease = None  # the limits changed shape: a new lease (the old one is retired)
    own = lease.free() if lease is not None and not lease.retired else (0, 0)
    head = joint_headroom(rows)
    if policy is not None:
        est = (
            max(req.cost, lease.est_cost if lease else 0),
            max(req.tokens, lease.est_tokens if lease else 0),
        )
        avail = (
            None if head[0] is None else head[0] + own[0],
            None if head[1] is None else head[1] + own[1],
        )
        target = policy.free_target(avail, est)
        if target is not None:
            add = (
                max(max(target[0], req.cost) - own[0], 0) if cost_limited else 0,
                max(max(target[1], req.tokens) - own[1], 0) if token_limited else 0,
            )
            if all(st.fits(*add) for st in rows):
                for st in rows:
                    st.hold(*add, lease=True)
                expires = _dt(req.now + policy.ttl)
                if lease is not None and not lease.retired:
                    await _resize_row(s, lease.id, add, expires)
                else:
                    lease = Lease(new_id("lse"), req.key, cost_limited, token_limited)
                    await s.execute(
                        R.insert().values(
                            id=lease.id,
                            tenant_id=req.key[0],
                            api_key_id=req.key[1] or None,
                            counters=[list(k) for k in req.key[2]],
                            cost_units=add[0],
                            tokens=add[1],
                            expires_at=expires,
                            lease=True,
                            owner=req.owner,
                        )
                    )
                lease.target_cost, lease.target_tokens = target
                grant.lease, grant.added = lease, add
                await write_counters(s, states)
                return
    if lease is not None and not lease.retired:
        # too close to a limit for a lease: hand its free capacity back, reserve exactly
        free_c, free_t = lease.free()
        if free_c or free_t:
            lease.held_cost -= free_c
            lease.held_tokens -= free_t
            grant.shrunk = (lease, free_c, free_t)
            for st in rows:
                st.hold(-free_c, -free_t, lease=True)
            await _resize_row(s, lease.id, (-free_c, -free_t))
        lease.target_cost = lease.target_tokens = 0
    for key, info in zip(req.key[2], req.infos, strict=True):
        found = states.get(key)
        if found is not None and not found.fits(req.cost, req.tokens):
            raise rejection(info, found, key[1], req.cost, req.tokens)
    for st in rows:
        st.hold(req.cost, req.tokens, lease=False)
    rid = new_id("res")
    await s.execute(
        R.insert().values(
            id=rid,
            tenant_id=req.key[0],
            api_key_id=req.key[1] or None,
            counters=[list(k) for k in req.key[2]],
            cost_units=req.cost,
            tokens=req.tokens,
            expires_at=_dt(req.now + req.reservation_ttl),
            lease=False,
            owner=req.owner,
        )
    )
    grant.reservation_id = rid
    await write_counters(s, states)


# --- settling a batch ------------------------------------------------------------------------


@dataclass(slots=True)
class FlushPlan:
    """Memory changes of one settling transaction: applied after it commits, undone if not."""

    pending: dict[Lease, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    held: dict[Lease, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    #: amounts already taken out of memory before the transaction (restored on failure)
    taken: dict[Lease, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    returned: list[tuple[Lease, bool]] = field(default_factory=list)
    lost: list[Lease] = field(default_factory=list)
    checked: list[Lease] = field(default_factory=list)
    touched: list[Lease] = field(default_factory=list)

    def commit(self) -> None:
        for lease, (c, t) in self.pending.items():
            lease.pending_cost -= c
            lease.pending_tokens -= t
        for lease, (c, t) in self.held.items():
            lease.held_cost += c
            lease.held_tokens += t
        for lease in self.lost:
            _mark_lost(lease)
        for lease, _ in self.returned:
            lease.held_cost = lease.held_tokens = 0
        for lease in self.checked:
            lease.draws = 0

    def rollback(self) -> None:
        for lease, (c, t) in self.taken.items():
            lease.held_cost += c
            lease.held_tokens += t
        for lease, was_retired in self.returned:
            lease.retired = was_retired


@dataclass(slots=True)
class _LeaseStep:
    """What settling one lease writes: its row resized by ``change``, or deleted (``change``
    None: the lease is returned; ``released``: the settled usage released from it)."""

    lease_id: str
    change: tuple[int, int] | None
    released: tuple[int, int] = (0, 0)


def settle_in(
    s: Session,
    on_loop: OnLoop,
    charges: Sequence[Charge],
    leases: Iterable[Lease],
    *,
    policy: LeasePolicy,
    now: float,
    full_check: bool,
    plan: FlushPlan,
) -> None:
    """Move settled usage into ``spent`` and give back what per-call reservations held;
    resize, renew or return ``leases`` (and those of the charges). ``full_check``: the
    periodic check — a lease with no draw since the previous one is returned. Memory
    changes are collected in ``plan`` (commit or roll it back with the transaction).

    Synchronous, in the caller's transaction (``Database.write_batch``): the reads, then the
    decisions on the leases' memory — through ``on_loop``, on the event loop's thread, where
    calls draw on the same leases — then the writes."""
    touched: dict[Lease, None] = dict.fromkeys(leases)
    for ch in charges:
        if ch.reservation.lease is not None:
            touched[ch.reservation.lease] = None
    keys: set[Key] = set()
    for ch in charges:
        keys.update(ch.reservation.counters)
    for lease in touched:
        keys.update(lease.counters)
    states = lock_counters_in(s, keys)
    plan.touched = list(touched)

    exact = [ch.reservation.id for ch in charges if ch.reservation.lease is None]
    open_ids: set[str] = set()
    if exact:
        deleted = s.execute(R.delete().where(R.c.id.in_(exact)).returning(R.c.id))
        open_ids = {str(r[0]) for r in deleted.all()}
    # ``lost`` only changes under the budgets' lease lock, which the caller holds
    live_ids = [lease.id for lease in touched if not lease.lost]
    #: the live lease rows and what they hold (locked: a returned one is deleted as read)
    present: dict[str, tuple[int, int]] = {}
    if live_ids:
        found = s.execute(
            select(R.c.id, R.c.cost_units, R.c.tokens)
            .where(R.c.id.in_(live_ids))
            .order_by(R.c.id)
            .with_for_update()
        )
        present = {str(r[0]): (int(r[1]), int(r[2])) for r in found.all()}

    def decide() -> list[_LeaseStep]:
        spent: dict[Lease, list[int]] = defaultdict(lambda: [0, 0])
        for ch in charges:
            r = ch.reservation
            targets = [states[k] for k in r.counters if k in states]
            if r.lease is None:
                if r.id in open_ids:
                    for st in targets:
                        st.hold(-r.cost_units, -r.tokens, lease=False)
            else:
                p = plan.pending[r.lease]
                p[0] += ch.cost_units
                p[1] += ch.tokens
                if ch.counted:
                    sp = spent[r.lease]
                    sp[0] += ch.cost_units
                    sp[1] += ch.tokens
            if ch.counted:
                for st in targets:
                    st.charge(ch.cost_units, ch.tokens)
        steps: list[_LeaseStep] = []
        for lease in touched:
            if lease.lost:
                continue
            if lease.id not in present:
                plan.lost.append(lease)
                continue
            sp = spent.get(lease, [0, 0])
            step = _settle_lease(lease, states, plan, sp, policy, full_check)
            if step.change is None:  # returned: what the row holds leaves the counters
                held = present[lease.id]  # (memory may lag a grant in flight)
                rel_c, rel_t = step.released
                for k in lease.counters:
                    if k in states:
                        states[k].hold(-(held[0] - rel_c), -(held[1] - rel_t), lease=True)
            steps.append(step)
        return steps

    steps = on_loop(decide)
    expires = _dt(now + policy.ttl)
    returned = [step.lease_id for step in steps if step.change is None]
    if returned:
        s.execute(R.delete().where(R.c.id.in_(returned)))
    for step in steps:
        if step.change is not None:
            s.execute(_resize(step.lease_id, step.change, expires))
    write_counters_in(s, states)


def _settle_lease(
    lease: Lease,
    states: dict[Key, CounterState],
    plan: FlushPlan,
    spent: list[int],
    policy: LeasePolicy,
    full_check: bool,
) -> _LeaseStep:
    """Settle, resize or return one lease (memory only, on the event loop's thread): what
    its row needs."""
    rows = [states[k] for k in lease.counters if k in states]
    # settled usage leaves the lease (it is now spent), up to what the lease held
    rel_c, rel_t = min(spent[0], lease.held_cost), min(spent[1], lease.held_tokens)
    for st in rows:
        st.hold(-rel_c, -rel_t, lease=True)
    pend = plan.pending.get(lease, [0, 0])
    busy_after = bool(
        lease.inflight_cost
        or lease.inflight_tokens
        or lease.pending_cost - pend[0]
        or lease.pending_tokens - pend[1]
    )
    if full_check:
        plan.checked.append(lease)
    if not busy_after and (lease.retired or (full_check and lease.draws == 0)):
        plan.returned.append((lease, lease.retired))
        lease.retired = True  # no draw may use it from now on
        return _LeaseStep(lease.id, None, (rel_c, rel_t))
    free_c = lease.held_cost - rel_c - lease.inflight_cost - (lease.pending_cost - pend[0])
    free_t = lease.held_tokens - rel_t - lease.inflight_tokens - (lease.pending_tokens - pend[1])
    free_c = max(free_c, 0) if lease.cost_limited else 0
    free_t = max(free_t, 0) if lease.token_limited else 0
    target: tuple[int, int] | None = None
    if not lease.retired:
        head = joint_headroom(rows)
        avail = (
            None if head[0] is None else head[0] + free_c,
            None if head[1] is None else head[1] + free_t,
        )
        target = policy.free_target(avail, lease.estimate())
    add, shrink = (0, 0), (0, 0)
    if target is None:  # retired, or too close to a limit: hand back all free capacity
        shrink = (free_c, free_t)
        lease.target_cost = lease.target_tokens = 0
    else:
        lease.target_cost, lease.target_tokens = target
        if (lease.cost_limited and 2 * free_c < target[0]) or (
            lease.token_limited and 2 * free_t < target[1]
        ):
            want = (max(target[0] - free_c, 0), max(target[1] - free_t, 0))
            if all(st.fits(*want) for st in rows):
                add = want
        elif free_c > 2 * target[0] or free_t > 2 * target[1]:
            shrink = (max(free_c - target[0], 0), max(free_t - target[1], 0))
    for st in rows:
        st.hold(add[0] - shrink[0], add[1] - shrink[1], lease=True)
    if shrink != (0, 0):
        # out of memory now (no draw may use it), out of the database at commit
        lease.held_cost -= shrink[0]
        lease.held_tokens -= shrink[1]
        taken = plan.taken[lease]
        taken[0] += shrink[0]
        taken[1] += shrink[1]
    mem = plan.held[lease]
    mem[0] += add[0] - rel_c
    mem[1] += add[1] - rel_t
    change = (add[0] - rel_c - shrink[0], add[1] - rel_t - shrink[1])
    return _LeaseStep(lease.id, change)


# --- sweeping what dead processes left -------------------------------------------------------

#: ``model`` / ``provider`` of ledger adjustment rows (not a model call)
ADJUSTMENT_MODEL = "budget-adjustment"
ADJUSTMENT_PROVIDER = "gasworks"


async def sweep_in(s: AsyncSession, row_id: str, now: float) -> bool:
    """Charge an expired reservation or lease as spent — what it held may have been used by
    calls whose settlement died with its process — and record that in the ledger as an
    estimated adjustment row. False: it was settled, renewed or swept meanwhile."""
    row = (await s.execute(select(R.c.counters).where(R.c.id == row_id))).first()
    if row is None:
        return False
    states = await lock_counters(s, ((str(b), str(p)) for b, p in row[0]))
    gone = (
        await s.execute(
            R.delete()
            .where(R.c.id == row_id, R.c.expires_at < _dt(now))
            .returning(R.c.cost_units, R.c.tokens, R.c.lease, R.c.tenant_id, R.c.api_key_id)
        )
    ).first()
    if gone is None:
        return False
    cost, tokens, lease = int(gone[0]), int(gone[1]), bool(gone[2])
    if not states or not (cost or tokens):
        return True  # the budget is gone, or nothing was held: nothing to charge
    for st in states.values():
        st.hold(-cost, -tokens, lease=lease)
        st.charge(cost, tokens)
    when = _dt(now)
    await s.execute(
        L.insert().values(
            id=new_id("adj"),
            tenant_id=gone[3],
            created_at=when,
            day=when.strftime("%Y-%m-%d"),
            api_key_id=gone[4],
            model=ADJUSTMENT_MODEL,
            provider=ADJUSTMENT_PROVIDER,
            input_tokens=0,
            output_tokens=tokens,
            cached_input_tokens=0,
            cost=units_to_money(cost),
            latency_ms=0.0,
            status=LEASE_EXPIRED if lease else RESERVATION_EXPIRED,
            estimated=True,
            streamed=False,
        )
    )
    await write_counters(s, states)
    return True


async def expired_ids(s: AsyncSession, now: float, limit: int) -> list[str]:
    q = select(R.c.id).where(R.c.expires_at < _dt(now)).order_by(R.c.expires_at).limit(limit)
    return [str(r[0]) for r in (await s.execute(q)).all()]


__all__ = [
    "ADJUSTMENT_MODEL",
    "LEASE_EXPIRED",
    "RESERVATION_EXPIRED",
    "CounterInfo",
    "CounterState",
    "FlushPlan",
    "Grant",
    "ReserveRequest",
    "expired_ids",
    "lock_counters",
    "reserve_in",
    "settle_in",
    "sweep_in",
]
