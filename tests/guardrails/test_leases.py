"""Budget leases: calls reserved and settled from memory, on both dialects and across processes.

Each ``BudgetService`` + ``Ledger`` pair stands for one process; the ledger writers are driven
by hand (``flush``; ``check_leases=True`` is the periodic lease check).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gasworks.errors import CostLimitExceeded, DatabaseUnavailable, TokenBudgetExceeded
from gasworks.llm.budgets.ledger import Ledger
from gasworks.llm.budgets.limits import BudgetService, BudgetSet, LeasePolicy, Period, set_budget
from gasworks.llm.budgets.store import LEASE_EXPIRED
from gasworks.llm.guardrail_tables import BudgetReservationRow, LedgerRow
from gasworks.tenancy.context import TenantContext
from tests.guardrails import _lease_worker
from tests.guardrails.fakes import FakeClock
from tests.guardrails.race import race
from tests.guardrails.test_budgets import budget, entry, tenant

ROOT = Path(__file__).resolve().parents[2]
#: lease checks only when a test asks (``flush(check_leases=True)``)
POLICY = LeasePolicy(calls=64, min_headroom_calls=100, fraction=0.1, interval=3600)
CENT = Decimal("0.01")


def process(runtime, policy: LeasePolicy = POLICY, **kw: object) -> tuple[BudgetService, Ledger]:
    """The budgets and ledger writer of one (simulated) process, flushed by hand."""
    svc = BudgetService(runtime.db, leases=policy, **kw)  # type: ignore[arg-type]
    return svc, Ledger(runtime.db, svc, flush_interval=3600, background=False)


async def limit(runtime, ctx: TenantContext, cost: str | None, tokens: int | None = None) -> None:
    async with runtime.db.session() as s:
        await set_budget(
            s,
            ctx,
            BudgetSet(
                period=Period.DAY,
                cost_limit=None if cost is None else Decimal(cost),
                token_limit=tokens,
            ),
        )


async def lease_rows(runtime) -> int:
    async with runtime.db.session() as s:
        q = select(func.count()).select_from(BudgetReservationRow).where(BudgetReservationRow.lease)
        return int(await s.scalar(q) or 0)


async def ledger_total(runtime) -> Decimal:
    async with runtime.db.session() as s:
        return sum((await s.execute(select(LedgerRow.cost))).scalars().all(), Decimal(0))


async def test_calls_are_served_from_a_lease_and_settled_in_batches(runtime) -> None:
    ctx = await tenant(runtime)
    await limit(runtime, ctx, "100")
    svc, ledger = process(runtime)
    held = []
    for _ in range(64):  # one lease of 64 estimates (far from the limit: 10,000 fit)
        r = await svc.reserve(ctx.tenant_id, None, CENT, 100)
        assert r is not None and r.lease is not None
        held.append(r)
    assert len({id(r.lease) for r in held}) == 1 and await lease_rows(runtime) == 1
    b = await budget(runtime, ctx)
    assert (b.reserved_cost, b.leased_cost, b.spent_cost) == (Decimal("0.64"), Decimal("0.64"), 0)
    assert (b.reserved_tokens, b.leased_tokens) == (0, 0)  # no token limit: nothing to hold

    for r in held[:10]:
        await ledger.record(entry(ctx, "0.004", 40), r)
    b = await budget(runtime, ctx)
    assert (b.spent_cost, b.reserved_cost) == (0, Decimal("0.64"))  # settled, not yet written
    assert await ledger.flush() == 10
    b = await budget(runtime, ctx)
    # written usage left the lease; the lease, low (54 calls in flight), got a fresh block
    assert (b.spent_cost, b.reserved_cost, b.leased_cost) == (
        Decimal("0.04"),
        Decimal("0.54") + Decimal("0.64"),
        Decimal("1.18"),
    )
    assert (b.spent_tokens, b.calls) == (400, 10)
    assert await ledger_total(runtime) == b.spent_cost

    for r in held[10:]:
        await ledger.release(r)  # refused by a later hook: back into the lease, no write
    await ledger.flush(check_leases=True)  # used since the last check: kept
    assert await lease_rows(runtime) == 1
    await ledger.flush(check_leases=True)  # unused for a whole interval: returned
    assert await lease_rows(runtime) == 0 and not svc.leases
    b = await budget(runtime, ctx)
    assert (b.spent_cost, b.reserved_cost, b.leased_cost, b.reserved_tokens) == (
        Decimal("0.04"),
        0,
        0,
        0,
    )


@pytest.mark.parametrize("dimension", ["cost", "tokens"])
async def test_one_process_serves_exactly_its_limit_leased_then_exact(runtime, dimension) -> None:
    """Far from the limit calls come from a lease; near it the lease hands its free part back
    and calls reserve exactly, so nothing is refused that the limit admits."""
    ctx = await tenant(runtime)
    if dimension == "cost":
        await limit(runtime, ctx, "3")  # 300 calls of 0.01
    else:
        await limit(runtime, ctx, None, tokens=30_000)  # 300 calls of 100 tokens
    svc, ledger = process(runtime)
    modes = {"lease": 0, "exact": 0}
    served = 0
    with pytest.raises((CostLimitExceeded, TokenBudgetExceeded)) as info:
        while True:
            r = await svc.reserve(ctx.tenant_id, None, CENT, 100)
            assert r is not None
            modes["lease" if r.lease else "exact"] += 1
            await ledger.record(entry(ctx, "0.01", 100), r)  # every call costs its estimate
            served += 1
            if served % 25 == 0:
                await ledger.flush()
    assert info.value.code == (
        "COST_LIMIT_EXCEEDED" if dimension == "cost" else "TOKEN_BUDGET_EXCEEDED"
    )
    assert served == 300
    assert modes["lease"] > 150 and modes["exact"] > 0
    await ledger.close()
    b = await budget(runtime, ctx)
    assert (b.spent_cost, b.spent_tokens, b.calls) == (Decimal(3), 30_000, 300)
    assert (b.reserved_cost, b.reserved_tokens, b.leased_cost) == (0, 0, 0)
    assert await ledger_total(runtime) == b.spent_cost


async def test_a_lowered_limit_applies_here_at_once_and_elsewhere_within_a_lease_check(
    runtime,
) -> None:
    ctx = await tenant(runtime)
    await limit(runtime, ctx, "100")
    here, here_ledger = process(runtime)
    there, there_ledger = process(runtime, cache_ttl=3600)  # never re-reads the limits list
    for svc, ledger in ((here, here_ledger), (there, there_ledger)):
        r = await svc.reserve(ctx.tenant_id, None, CENT, 100)
        assert r is not None and r.lease is not None
        await ledger.record(entry(ctx, "0.01", 100), r)
        await ledger.flush()

    await limit(runtime, ctx, "0.07")  # 5 more calls, far less than each lease holds
    here.invalidate(ctx.tenant_id)  # what PUT /api/budgets does in its process ...
    await here_ledger.flush()  # ... and its writer returns the retired lease at once
    # the other process may still draw on its lease until its next check (the bound) ...
    r = await there.reserve(ctx.tenant_id, None, CENT, 100)
    assert r is not None and r.lease is not None
    await there_ledger.release(r)
    with pytest.raises(CostLimitExceeded):  # ... and meanwhile its lease crowds out others
        await here.reserve(ctx.tenant_id, None, CENT, 100)
    await there_ledger.flush(check_leases=True)  # the check re-reads the limit: lease emptied
    admitted = 0
    with pytest.raises(CostLimitExceeded):
        for svc, ledger in [(here, here_ledger), (there, there_ledger)] * 10:
            r = await svc.reserve(ctx.tenant_id, None, CENT, 100)
            assert r is not None and r.lease is None  # this close to the limit: exact
            await ledger.record(entry(ctx, "0.01", 100), r)
            await ledger.flush()
            admitted += 1
    assert admitted == 5
    for ledger in (here_ledger, there_ledger):
        await ledger.close()
    b = await budget(runtime, ctx)
    assert (b.spent_cost, b.reserved_cost, b.leased_cost) == (Decimal("0.07"), 0, 0)


async def test_capacity_in_an_idle_lease_elsewhere_is_returned_by_its_next_checks(
    runtime,
) -> None:
    """The false-refusal window: a call refused while another process holds unused capacity
    in a lease is admitted once that lease has been unused for a whole lease interval."""
    ctx = await tenant(runtime)
    await limit(runtime, ctx, "1")
    idle, idle_ledger = process(runtime)
    busy, _ = process(runtime)
    r = await idle.reserve(ctx.tenant_id, None, Decimal("0.001"), 1)  # lease of 0.064
    assert r is not None and r.lease is not None
    await idle_ledger.release(r)
    with pytest.raises(CostLimitExceeded):  # 0.95 of the remaining 0.936 (exact: too close)
        await busy.reserve(ctx.tenant_id, None, Decimal("0.95"), 1)
    await idle_ledger.flush(check_leases=True)  # drawn on since the previous check: kept
    await idle_ledger.flush(check_leases=True)  # unused for an interval: returned
    assert await busy.reserve(ctx.tenant_id, None, Decimal("0.95"), 1) is not None


async def test_leased_calls_go_on_while_the_database_is_unreachable(runtime, monkeypatch) -> None:
    """Budgets fail closed — except that a lease already held keeps serving (within the
    limit by construction); rows wait in memory and are written once it is back."""
    ctx = await tenant(runtime)
    await limit(runtime, ctx, "100")
    svc, ledger = process(runtime)
    first = await svc.reserve(ctx.tenant_id, None, CENT, 100)
    assert first is not None and first.lease is not None

    def down() -> object:
        raise DatabaseUnavailable("The database is unreachable; try again shortly.")

    async def down_batch(fn: object) -> object:
        raise DatabaseUnavailable("The database is unreachable; try again shortly.")

    monkeypatch.setattr(runtime.db, "session", down)
    monkeypatch.setattr(runtime.db, "write_batch", down_batch)
    served = [first]
    while (r := await svc.reserve(ctx.tenant_id, None, CENT, 100)) is not None:
        served.append(r)
        if len(served) == 64:
            break
    for r in served:
        await ledger.record(entry(ctx, "0.01", 100), r)
    with pytest.raises(DatabaseUnavailable):
        await ledger.flush()
    assert ledger.pending == 64
    with pytest.raises(DatabaseUnavailable):  # the lease is used up: fail closed
        await svc.reserve(ctx.tenant_id, None, CENT, 100)
    monkeypatch.undo()  # the database is back
    assert await ledger.flush() == 64
    b = await budget(runtime, ctx)
    assert (b.spent_cost, b.calls) == (Decimal("0.64"), 64)
    assert await ledger_total(runtime) == b.spent_cost


async def test_a_killed_process_never_makes_budgets_or_ledger_undercount(runtime) -> None:
    """SIGKILL after 5 written and 5 unwritten calls: the written rows are there, the lease
    is charged in full by the sweeper once it expires (an estimated ledger row)."""
    ctx = await tenant(runtime)
    await limit(runtime, ctx, "100")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.guardrails._lease_worker",
            runtime.settings.resolved_database_url,
            ctx.tenant_id,
            "5",
            "5",
        ],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        while line and not line.startswith('{"written"'):  # start-up log lines come first
            line = await asyncio.to_thread(proc.stdout.readline)
        assert line, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 60)
    ids = json.loads(line)
    actual = _lease_worker.ACTUAL
    async with runtime.db.session() as s:
        rows = set((await s.execute(select(LedgerRow.id))).scalars().all())
    assert rows == set(ids["written"])
    b = await budget(runtime, ctx)
    assert b.spent_cost == 5 * actual  # written
    assert b.reserved_cost == b.leased_cost >= 5 * actual  # the rest is still held

    sweeper = BudgetService(runtime.db, clock=FakeClock(time.time() + _lease_worker.POLICY.ttl + 1))
    assert await sweeper.sweep() == 1
    b = await budget(runtime, ctx)
    lease_cap = _lease_worker.POLICY.calls * _lease_worker.ESTIMATE
    assert 10 * actual <= b.spent_cost <= 5 * actual + lease_cap  # never under, bounded over
    assert (b.reserved_cost, b.leased_cost, b.calls) == (0, 0, 6)
    async with runtime.db.session() as s:
        adj = (
            await s.execute(select(LedgerRow).where(LedgerRow.status == LEASE_EXPIRED))
        ).scalar_one()
    assert adj.estimated and adj.api_key_id is None
    assert await ledger_total(runtime) == b.spent_cost
    assert await sweeper.sweep() == 0


@pytest.mark.slow
async def test_many_calls_from_4_processes_in_lease_mode_never_overspend(
    db_url, tmp_path, monkeypatch
) -> None:
    """Leases far from the limit, exact reservations near it, 4 processes of 40 concurrent
    calls against a limit admitting 120: never over, the ledger equals the spend."""
    for k in list(os.environ):
        if k.startswith("GASWORKS_") and k != "GASWORKS_TEST_POSTGRES_URL":
            monkeypatch.delenv(k)
    lease_calls = 8
    monkeypatch.setenv("GASWORKS_BUDGET_LEASE_CALLS", str(lease_calls))
    monkeypatch.setenv("GASWORKS_BUDGET_LEASE_MIN_HEADROOM_CALLS", "16")
    monkeypatch.setenv("GASWORKS_BUDGET_LEASE_FRACTION", "0.25")
    r = await race(db_url, tmp_path, admits=120, per_process=[40, 40, 40, 40])
    assert len(r.results) == 160
    assert set(r.results) <= {"served:lonely", "COST_LIMIT_EXCEEDED", "TOKEN_BUDGET_EXCEEDED"}
    served = r.results.count("served:lonely")
    assert r.modes["lease"] > 0 and r.modes["exact"] > 0
    # refusals while other processes still held unused lease capacity: at most one lease each
    assert 120 - 4 * lease_calls <= served <= 120
    assert r.provider_requests == served
    b = r.budget
    assert b.spent_cost == r.per_call * served <= r.limit
    assert (b.reserved_cost, b.leased_cost, b.reserved_tokens) == (0, 0, 0)  # all returned
    assert len(r.ledger_costs) == served == b.calls
    assert sum(r.ledger_costs, Decimal(0)) == b.spent_cost


async def test_shutdown_writes_every_queued_row_and_returns_the_leases(settings) -> None:
    from gasworks.db.engine import Database
    from gasworks.llm.guardrails_runtime import get_guardrails
    from gasworks.modeltypes import CallScope
    from gasworks.wiring import build_runtime
    from tests.guardrails import _budget_worker as worker
    from tests.guardrails.fakes import FakeModel, ok

    settings = settings.model_copy(update={"ledger_flush_interval_ms": 60_000})
    rt = build_runtime(settings)
    await rt.start(migrate=False)
    try:
        ctx = await tenant(rt)
        await limit(rt, ctx, "1000")
        g = get_guardrails(rt)
        model = FakeModel()
        scope = CallScope(tenant_id=ctx.tenant_id, api_key_id=ctx.api_key_id)
        for _ in range(20):
            token = await g.before_call(scope, model, worker.request())
            await g.after_call(token, scope, model, ok(model, 20, 50))
        assert g.ledger.pending == 20 and g.budgets.leases
    finally:
        await rt.stop()
    db = Database(settings.resolved_database_url)
    try:
        async with db.session() as s:
            costs = (await s.execute(select(LedgerRow.cost))).scalars().all()
            leases = await s.scalar(select(func.count()).select_from(BudgetReservationRow))
    finally:
        await db.dispose()
    assert len(costs) == 20 and leases == 0
