"""Spend limits: reserve-then-settle on both dialects, across processes."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from gasworks.db.types import new_id, new_ordered_id, utcnow
from gasworks.errors import CostLimitExceeded, DatabaseUnavailable, TokenBudgetExceeded
from gasworks.llm.budgets.leases import Reservation
from gasworks.llm.budgets.ledger import Ledger, LedgerEntry, _Item
from gasworks.llm.budgets.limits import (
    BudgetOut,
    BudgetService,
    BudgetSet,
    LeasePolicy,
    Period,
    list_budgets,
    set_budget,
)
from gasworks.llm.budgets.store import RESERVATION_EXPIRED
from gasworks.llm.guardrail_tables import LedgerRow
from gasworks.llm.guardrails import Guardrails
from gasworks.modeltypes import CallScope, Usage
from gasworks.tenancy.context import Role, TenantContext
from tests.guardrails import _budget_worker as worker
from tests.guardrails.fakes import FakeClock, FakeModel, failed, ok
from tests.guardrails.race import race

ROOT = Path(__file__).resolve().parents[2]


async def tenant(runtime) -> TenantContext:
    from gasworks.tenancy import service

    async with runtime.db.session() as s:
        t, created = await service.bootstrap(s, "acme")
    assert created is not None
    return TenantContext(
        tenant_id=t.id,
        principal_id=created.principal.id,
        role=Role.OWNER,
        api_key_id=created.api_key.id,
    )


def entry(ctx: TenantContext, cost: str, tokens: int, **kw: object) -> LedgerEntry:
    """A finished call of ``ctx``'s tenant (all tokens counted as output)."""
    return LedgerEntry(
        id=new_id("call"),
        tenant_id=ctx.tenant_id,
        model="fake-model",
        provider="fake",
        status="ok",
        created_at=utcnow(),
        output_tokens=tokens,
        cost=Decimal(cost),
        **kw,  # type: ignore[arg-type]
    )


async def budget(runtime, ctx: TenantContext) -> BudgetOut:
    async with runtime.db.session() as s:
        (b,) = await list_budgets(s, ctx)
    return b


async def test_reserve_settle_release(runtime) -> None:
    ctx = await tenant(runtime)
    async with runtime.db.session() as s:
        await set_budget(s, ctx, BudgetSet(period=Period.DAY, cost_limit=Decimal("1.00")))
    svc = BudgetService(runtime.db)
    ledger = Ledger(runtime.db, svc, background=False)
    r = await svc.reserve(ctx.tenant_id, None, Decimal("0.60"), 10)
    assert r is not None and r.lease is None  # far too close to the limit for a lease
    with pytest.raises(CostLimitExceeded) as info:
        await svc.reserve(ctx.tenant_id, None, Decimal("0.50"), 10)
    assert info.value.status == 402 and info.value.details["reserved"] == "0.6"
    await ledger.release(r)
    assert (await budget(runtime, ctx)).reserved_cost == Decimal("0.6")  # until the batch
    await ledger.flush()
    assert (await budget(runtime, ctx)).reserved_cost == 0
    r2 = await svc.reserve(ctx.tenant_id, None, Decimal("0.50"), 10)
    assert r2 is not None
    await ledger.record(entry(ctx, "0.25", 7), r2)
    await ledger.flush()
    b = await budget(runtime, ctx)
    assert (b.spent_cost, b.reserved_cost, b.spent_tokens, b.reserved_tokens, b.calls) == (
        Decimal("0.25"),
        Decimal(0),
        7,
        0,
        1,
    )


async def test_api_key_and_token_limits_and_month_rollover(runtime) -> None:
    ctx = await tenant(runtime)
    clock = FakeClock(1_790_000_000.0)
    async with runtime.db.session() as s:
        await set_budget(
            s, ctx, BudgetSet(period=Period.MONTH, api_key_id=ctx.api_key_id, token_limit=100)
        )
    svc = BudgetService(runtime.db, clock=clock)
    assert await svc.reserve(ctx.tenant_id, None, Decimal(0), 1000) is None  # other keys: free
    assert await svc.reserve(ctx.tenant_id, ctx.api_key_id, Decimal(0), 60) is not None
    with pytest.raises(TokenBudgetExceeded):
        await svc.reserve(ctx.tenant_id, ctx.api_key_id, Decimal(0), 60)
    clock.advance(40 * 86400)  # next calendar month: a fresh counter
    assert await svc.reserve(ctx.tenant_id, ctx.api_key_id, Decimal(0), 60) is not None


async def test_a_rejected_limit_leaves_the_others_untouched(runtime) -> None:
    ctx = await tenant(runtime)
    async with runtime.db.session() as s:
        await set_budget(s, ctx, BudgetSet(period=Period.DAY, cost_limit=Decimal(10)))
        await set_budget(
            s, ctx, BudgetSet(period=Period.DAY, api_key_id=ctx.api_key_id, cost_limit=Decimal(1))
        )
    svc = BudgetService(runtime.db)
    with pytest.raises(CostLimitExceeded) as info:
        await svc.reserve(ctx.tenant_id, ctx.api_key_id, Decimal(2), 1)
    assert info.value.details["scope"] == "api_key"
    async with runtime.db.session() as s:
        budgets = await list_budgets(s, ctx)
    assert all(b.reserved_cost == 0 for b in budgets)


async def test_limit_change_applies_to_the_current_period(runtime) -> None:
    ctx = await tenant(runtime)
    svc = BudgetService(runtime.db, cache_ttl=0)
    async with runtime.db.session() as s:
        await set_budget(s, ctx, BudgetSet(period=Period.DAY, cost_limit=Decimal(1)))
    assert await svc.reserve(ctx.tenant_id, None, Decimal("0.9"), 1)
    async with runtime.db.session() as s:
        await set_budget(s, ctx, BudgetSet(period=Period.DAY, cost_limit=Decimal("0.5")))
    with pytest.raises(CostLimitExceeded):
        await svc.reserve(ctx.tenant_id, None, Decimal("0.01"), 1)
    async with runtime.db.session() as s:  # both limits None: removed
        assert await set_budget(s, ctx, BudgetSet(period=Period.DAY)) is None
    assert await svc.reserve(ctx.tenant_id, None, Decimal(100), 1) is None


async def test_failed_call_releases_and_ledger_records_once(runtime) -> None:
    ctx = await tenant(runtime)
    async with runtime.db.session() as s:
        await set_budget(s, ctx, BudgetSet(period=Period.DAY, cost_limit=Decimal(5)))
    g = Guardrails(runtime.db)
    model = FakeModel()
    scope = CallScope(tenant_id=ctx.tenant_id, api_key_id=ctx.api_key_id, request_id="req_1")
    req = worker.request()
    token = await g.before_call(scope, model, req)
    await g.after_call(token, scope, model, failed(latency_ms=3))
    token2 = await g.before_call(scope, model, worker.request())
    outcome = ok(model, 20, 50)
    await g.after_call(token2, scope, model, outcome)
    await g.after_call(token2, scope, model, outcome)  # a duplicate settle changes nothing
    await g.ledger.flush()
    async with runtime.db.session() as s:
        (b,) = await list_budgets(s, ctx)
        rows = (await s.execute(select(LedgerRow).order_by(LedgerRow.status))).scalars().all()
    assert b.reserved_cost == 0 and b.spent_cost == outcome.cost and b.calls == 2
    assert [(r.status, r.cost, r.request_id) for r in rows] == [
        ("PROVIDER_UNAVAILABLE", Decimal(0), "req_1"),
        ("ok", outcome.cost, "req_1"),
    ]


async def test_a_ledger_backlog_refuses_new_calls_and_drops_no_row(runtime, monkeypatch) -> None:
    """While the database refuses the ledger's writes, rows wait; at the bound new calls are
    refused (503) before reaching a provider, calls already running still queue their rows."""
    ctx = await tenant(runtime)
    g = Guardrails(runtime.db, ledger=Ledger(runtime.db, flush_interval=3600, max_pending=2))
    model = FakeModel()
    scope = CallScope(tenant_id=ctx.tenant_id, request_id="req_b")
    tokens = [await g.before_call(scope, model, worker.request()) for _ in range(3)]

    def down() -> object:
        raise DatabaseUnavailable("The database is unreachable; try again shortly.")

    async def down_batch(fn: object) -> object:
        raise DatabaseUnavailable("The database is unreachable; try again shortly.")

    monkeypatch.setattr(runtime.db, "session", down)
    monkeypatch.setattr(runtime.db, "write_batch", down_batch)
    for t in tokens:  # three calls in flight: all three rows queue, beyond the bound
        await g.after_call(t, scope, model, ok(model, 5, 5))
    assert g.ledger.pending == 3
    with pytest.raises(DatabaseUnavailable) as refused:
        await g.before_call(scope, model, worker.request())
    assert refused.value.details == {"pendingRows": 3}
    monkeypatch.undo()  # the database is back
    assert await g.ledger.flush() == 3
    await g.before_call(scope, model, worker.request())  # written: calls are taken again
    async with runtime.db.session() as s:
        assert len((await s.execute(select(LedgerRow))).scalars().all()) == 3


async def test_a_rewritten_batch_charges_nothing_twice(runtime) -> None:
    """A batch written again (its commit was lost in transit) finds its rows present."""
    ctx = await tenant(runtime)
    async with runtime.db.session() as s:
        await set_budget(s, ctx, BudgetSet(period=Period.DAY, cost_limit=Decimal(5)))
    svc = BudgetService(runtime.db)
    ledger = Ledger(runtime.db, svc, background=False)
    r = await svc.reserve(ctx.tenant_id, None, Decimal("0.5"), 10)
    assert r is not None
    e = entry(ctx, "0.3", 5)
    await ledger.record(e, r)
    await ledger.flush()
    twin = BudgetService.settle(Reservation(r.id, r.counters, r.cost_units, r.tokens), e.cost, 5)
    assert twin is not None
    ledger._enqueue(_Item(e, twin, tried=True))  # the same call's row and charge once more
    await ledger.flush()
    b = await budget(runtime, ctx)
    assert (b.spent_cost, b.reserved_cost, b.calls) == (Decimal("0.3"), 0, 1)


async def test_a_row_that_cannot_be_written_loses_neither_the_batch_nor_its_charge(runtime) -> None:
    ctx = await tenant(runtime)
    async with runtime.db.session() as s:
        await set_budget(s, ctx, BudgetSet(period=Period.DAY, cost_limit=Decimal(5)))
    svc = BudgetService(runtime.db)
    ledger = Ledger(runtime.db, svc, background=False)
    good, bad = entry(ctx, "0.1", 5), entry(ctx, "0.2", 7)
    bad.tenant_id = "ten_gone"  # violates the ledger's foreign key: this row cannot be written
    for e in (good, bad):
        r = await svc.reserve(ctx.tenant_id, None, Decimal("0.5"), 10)
        await ledger.record(e, r)
    await ledger.flush()
    assert ledger.pending == 0
    async with runtime.db.session() as s:
        ids = (await s.execute(select(LedgerRow.id))).scalars().all()
    assert ids == [good.id]
    b = await budget(runtime, ctx)  # the dropped row's usage is still charged
    assert (b.spent_cost, b.spent_tokens, b.reserved_cost) == (Decimal("0.3"), 12, 0)


@pytest.mark.slow
async def test_50_concurrent_requests_from_4_processes_never_overspend(
    db_url, tmp_path, monkeypatch
) -> None:
    """Through the gateway, against a fake provider: a limit admitting exactly 10 calls."""
    for k in list(os.environ):
        if k.startswith("GASWORKS_") and k != "GASWORKS_TEST_POSTGRES_URL":
            monkeypatch.delenv(k)
    r = await race(db_url, tmp_path, admits=10, per_process=[13, 13, 12, 12])
    assert len(r.results) == 50
    assert set(r.results) <= {"served:lonely", "COST_LIMIT_EXCEEDED"}
    served = r.results.count("served:lonely")
    assert served == 10
    assert r.modes["lease"] == 0  # a limit this small: every call reserves exactly
    assert r.provider_requests == served  # rejected calls never reached the provider
    b = r.budget
    assert b.spent_cost <= r.limit
    assert b.reserved_cost == 0 and b.reserved_tokens == 0
    assert len(r.ledger_costs) == served == b.calls
    assert sum(r.ledger_costs, Decimal(0)) == b.spent_cost == r.per_call * 10


def test_new_ids_are_unique() -> None:  # sanity for ledger primary keys
    assert len({new_id("call") for _ in range(1000)}) == 1000


def test_ledger_call_ids_are_unique_and_ordered_by_time() -> None:
    """Ledger rows' keys: the shape of every other id (prefix, 32 hex digits), unique, and
    later milliseconds sort after earlier ones (new rows append to the key's index)."""
    ids = [new_ordered_id("call") for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(len(i) == 37 and i.startswith("call_") and int(i[5:], 16) >= 0 for i in ids)
    stamps = [int(i[5:17], 16) for i in ids]
    assert stamps == sorted(stamps)


async def test_reservations_of_a_dead_process_are_charged_never_released(runtime) -> None:
    """A reservation left behind may belong to a call that was made: charging its estimate
    is the only way neither the budget nor the ledger undercounts."""
    ctx = await tenant(runtime)
    clock = FakeClock()
    async with runtime.db.session() as s:
        await set_budget(s, ctx, BudgetSet(period=Period.DAY, cost_limit=Decimal(2)))
    svc = BudgetService(runtime.db, clock=clock, reservation_ttl=600)
    ledger = Ledger(runtime.db, svc, background=False)
    lost = await svc.reserve(ctx.tenant_id, None, Decimal("0.7"), 10)  # its process "dies"
    slow = await svc.reserve(ctx.tenant_id, None, Decimal("0.2"), 10)  # a very long call
    assert lost is not None and slow is not None
    with pytest.raises(CostLimitExceeded):
        await svc.reserve(ctx.tenant_id, None, Decimal("1.5"), 10)
    clock.advance(599)
    assert await svc.sweep() == 0
    clock.advance(2)
    assert await svc.sweep() == 2
    assert await svc.sweep() == 0  # once only
    b = await budget(runtime, ctx)
    assert (b.spent_cost, b.reserved_cost, b.spent_tokens, b.calls) == (Decimal("0.9"), 0, 20, 2)
    # the long call settles after its reservation was charged: its usage counts as well
    await ledger.record(entry(ctx, "0.15", 5), slow)
    await ledger.flush()
    b = await budget(runtime, ctx)
    assert (b.spent_cost, b.reserved_cost) == (Decimal("1.05"), 0)
    async with runtime.db.session() as s:
        rows = (await s.execute(select(LedgerRow).order_by(LedgerRow.cost))).scalars().all()
    assert [(r.status, r.estimated, r.cost) for r in rows] == [
        ("ok", False, Decimal("0.15")),
        (RESERVATION_EXPIRED, True, Decimal("0.2")),
        (RESERVATION_EXPIRED, True, Decimal("0.7")),
    ]
    assert sum(r.cost for r in rows) == b.spent_cost  # the ledger explains every charge


async def test_background_maintenance_flushes_an_idle_process(runtime) -> None:
    from gasworks.llm.breaker import OutcomeKind
    from gasworks.llm.guardrails_runtime import MAINTENANCE, get_guardrails

    g = get_guardrails(runtime)
    start = g.breakers.config.window_start(g.breakers.clock())
    before = await g.breakers.store.window("demo", 0, start)
    for _ in range(3):  # below the minimum number of calls: nothing is flushed on the way
        permit = await g.breakers.check("demo")
        await g.breakers.record(permit, OutcomeKind.FAILURE)
    await runtime.services[MAINTENANCE].once(sweep=True)
    after = await g.breakers.store.window("demo", 0, start)
    assert after.failures - before.failures == 3


async def test_maintenance_during_another_sync_still_flushes_what_came_after(runtime) -> None:
    """A maintenance pass that finds another sync of this process under way (the periodic
    one) waits for it and then syncs itself: the counts recorded after that sync took its
    own are flushed too, not left for the next pass (the hot path alone skips the wait)."""
    import asyncio

    from gasworks.llm.breaker import OutcomeKind
    from gasworks.llm.guardrails_runtime import MAINTENANCE, get_guardrails

    g = get_guardrails(runtime)
    start = g.breakers.config.window_start(g.breakers.clock())
    before = await g.breakers.store.window("demo", 0, start)
    async with g.breakers._sync_lock:  # another sync of this process, mid-way
        for _ in range(3):
            permit = await g.breakers.check("demo")  # does not wait for the sync
            await g.breakers.record(permit, OutcomeKind.FAILURE)
        maintenance = asyncio.create_task(runtime.services[MAINTENANCE].once(sweep=True))
        await asyncio.sleep(0)
        assert not maintenance.done()  # waiting for the sync under way
    await maintenance
    after = await g.breakers.store.window("demo", 0, start)
    assert after.failures - before.failures == 3


async def test_a_limit_set_mid_period_counts_the_periods_earlier_spend(runtime) -> None:
    """279 tokens used, then a 500-token daily limit: it reports 279 used, and the call that
    would cross it is refused (it reported "used 0" and let 500 more through)."""
    ctx = await tenant(runtime)
    other = await tenant_named(runtime, "other")
    svc = BudgetService(runtime.db)
    ledger = Ledger(runtime.db, svc, background=False)
    await ledger.record(entry(ctx, "0.25", 279, api_key_id=ctx.api_key_id), None)
    await ledger.record(entry(other, "9", 10_000), None)  # another tenant's spend: not counted
    await ledger.flush()
    async with runtime.db.session() as s:
        await set_budget(s, ctx, BudgetSet(period=Period.DAY, token_limit=500))
        await set_budget(s, ctx, BudgetSet(period=Period.MONTH, cost_limit=Decimal(1)))
    day, month = sorted(await all_budgets(runtime, ctx), key=lambda b: b.period.value)
    assert (day.spent_tokens, day.calls) == (279, 1)  # before any new call
    assert month.spent_cost == Decimal("0.25")
    with pytest.raises(TokenBudgetExceeded) as info:
        await svc.reserve(ctx.tenant_id, None, Decimal(0), 300)
    assert info.value.details["spent"] == 279
    r = await svc.reserve(ctx.tenant_id, None, Decimal(0), 200)  # 279 + 200 fits under 500
    assert r is not None
    day = next(b for b in await all_budgets(runtime, ctx) if b.period is Period.DAY)
    assert day.spent_tokens == 279


async def tenant_named(runtime, name: str) -> TenantContext:
    from gasworks.tenancy import service

    async with runtime.db.session() as s:
        t, _ = await service.bootstrap(s, name)
    return TenantContext.system(t.id, t.name)


async def all_budgets(runtime, ctx: TenantContext) -> list[BudgetOut]:
    async with runtime.db.session() as s:
        return await list_budgets(s, ctx)


async def test_reserved_tokens_are_kept_free_of_the_prompt(runtime) -> None:
    """A model's ``reserved_tokens`` (tool schemas, system overhead) shrink the prompt budget:
    a prompt that fits without them is refused with them, or truncated when allowed."""
    from dataclasses import replace

    from gasworks.errors import ContextWindowExceeded
    from gasworks.modeltypes import ChatRequest, Message
    from tests.guardrails.fakes import FakeEntry

    g = Guardrails(runtime.db)
    plain = FakeModel(entry=FakeEntry(context_window=1000))
    reserved = replace(plain, entry=FakeEntry(context_window=1000, reserved_tokens=300))
    history = [Message("user" if i % 2 == 0 else "assistant", "word " * 90) for i in range(6)]

    def req(**kw: object) -> ChatRequest:
        return ChatRequest(
            model="fake-model", messages=[*history, Message("user", "now?")], max_tokens=100, **kw
        )

    g.precheck(plain, req())  # ~550 tokens fit 1000 * 0.9 - 100
    with pytest.raises(ContextWindowExceeded):
        g.precheck(reserved, req())  # not with 300 kept free
    fitted = req(truncate=True)
    check = g.precheck(reserved, fitted)
    assert fitted.messages[-1].content == "now?" and len(fitted.messages) < len(history) + 1
    assert check.notes["truncation"]["droppedMessages"] > 0


async def test_a_prompt_that_fits_by_its_bytes_is_counted_only_when_needed(runtime) -> None:
    """The context-window check decides on the prompt's UTF-8 bytes (never fewer than its
    tokens) when they fit; the answer's note then says so, and the exact count is made the
    moment a reservation or a cost limit reads it. A prompt whose bytes do not fit is counted
    exactly at once, and its note is that count."""
    from gasworks.errors import ContextWindowExceeded
    from gasworks.modeltypes import ChatRequest, Message
    from tests.guardrails.fakes import FakeEntry

    g = Guardrails(runtime.db)
    model = FakeModel(entry=FakeEntry(context_window=1000))
    text = "Grüße, wie geht's? "
    short = ChatRequest(model="fake-model", messages=[Message("user", text)], max_tokens=100)
    check = g.precheck(model, short)
    exact = g.counter_for(model).estimate_messages(short.messages)
    bound = 3 + 3 + len(text.encode())
    assert check.note() == {"inputTokens": bound, "tokenizer": "utf8_bytes", "exact": False}
    assert check.estimate == exact and exact.tokens < bound
    assert check.note() == {"inputTokens": exact.tokens, "tokenizer": "cl100k_base", "exact": True}
    # over the window by its bytes (~1200), within it by its tokens (~600): counted, it passes
    near = ChatRequest(model="fake-model", messages=[Message("user", "ab " * 400)], max_tokens=100)
    check = g.precheck(model, near)
    assert check.note()["exact"] is True and check.note()["inputTokens"] < 800
    over = ChatRequest(model="fake-model", messages=[Message("user", "ab " * 900)], max_tokens=100)
    with pytest.raises(ContextWindowExceeded) as err:
        g.precheck(model, over)
    assert err.value.details["exact"] is True
    # a request's cost limit is checked on the exact count
    limited = ChatRequest(
        model="fake-model",
        messages=[Message("user", text)],
        max_tokens=100,
        cost_limit=model.cost(Usage(input_tokens=exact.tokens, output_tokens=100)),
    )
    assert g.precheck(model, limited).note()["exact"] is True


async def test_requests_that_miss_the_limits_cache_together_share_one_read(runtime) -> None:
    """After the cached limits run out (a few idle seconds), a burst of calls on one scope
    reads them once (issue #19: one read each made a burst after idle 4x costlier), and all of
    them see the limit."""
    import asyncio

    from sqlalchemy import event

    ctx = await tenant(runtime)
    async with runtime.db.session() as s:
        await set_budget(s, ctx, BudgetSet(period=Period.DAY, cost_limit=Decimal(1)))
    svc = BudgetService(runtime.db, cache_ttl=0)  # every call finds the cache expired
    reads = 0

    def count(_conn: object, _cur: object, statement: str, *_: object) -> None:
        nonlocal reads
        reads += "FROM llm_budgets" in statement

    event.listen(runtime.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        limits = await asyncio.gather(
            *(svc.limits_for(ctx.tenant_id, ctx.api_key_id) for _ in range(30))
        )
    finally:
        event.remove(runtime.db.engine.sync_engine, "before_cursor_execute", count)
    assert reads == 1
    assert all(len(lim) == 1 and lim[0].cost_limit == Decimal(1) for lim in limits)


async def test_a_limit_removed_by_another_process_limits_nothing_here(runtime) -> None:
    """This process still has the removed limit in its cache (GASWORKS_BUDGET_CACHE_TTL_SECONDS):
    its next call is served, not a 500 (no counter is created for a limit that is gone)."""
    ctx = await tenant(runtime)
    async with runtime.db.session() as s:
        await set_budget(s, ctx, BudgetSet(period=Period.DAY, cost_limit=Decimal("1.00")))
    here = BudgetService(runtime.db, cache_ttl=3600, leases=LeasePolicy(calls=0))
    ledger = Ledger(runtime.db, here, background=False)
    first = await here.reserve(ctx.tenant_id, None, Decimal("0.10"), 10)
    assert first is not None
    await ledger.release(first)
    async with runtime.db.session() as s:  # another process removes the limit
        assert await set_budget(s, ctx, BudgetSet(period=Period.DAY)) is None
    again = await here.reserve(ctx.tenant_id, None, Decimal("0.10"), 10)
    if again is not None:
        await ledger.release(again)
    async with runtime.db.session() as s:
        assert await list_budgets(s, ctx) == []
