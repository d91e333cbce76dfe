"""Circuit breakers against a real database (SQLite and PostgreSQL), with an injected clock."""

from __future__ import annotations

import asyncio

import pytest

from gasworks.db.engine import Database
from gasworks.errors import CircuitOpen, ModelUnavailable
from gasworks.llm.breaker import BreakerConfig, BreakerManager, BreakerState, OutcomeKind
from gasworks.llm.breaker.store import BreakerStore
from gasworks.llm.guardrail_metrics import GUARDRAIL_ERRORS
from tests.guardrails.fakes import FakeClock

CFG = BreakerConfig(
    window_seconds=300,
    buckets=10,
    failure_rate_threshold=0.25,
    minimum_calls=8,
    cooldown_seconds=30,
    half_open_probes=2,
    sync_interval_seconds=1.0,
)


@pytest.fixture
async def db(db_url: str):
    d = Database(db_url)
    yield d
    await d.dispose()


async def drive(m: BreakerManager, key: str, kinds: list[OutcomeKind]) -> None:
    for kind in kinds:
        permit = await m.check(key)
        await m.record(permit, kind, latency_ms=5)


async def test_opens_at_threshold_and_fails_fast(db: Database) -> None:
    clock = FakeClock()
    m = BreakerManager(db, CFG, clock=clock)
    # 6 successes, 1 failure: 7 calls < minimum, stays closed
    await drive(m, "gpt", [OutcomeKind.SUCCESS] * 6 + [OutcomeKind.FAILURE])
    assert m.state_of("gpt") is BreakerState.CLOSED
    # 8th call, 2/8 = 25% failures -> opens exactly here
    await drive(m, "gpt", [OutcomeKind.FAILURE])
    assert m.state_of("gpt") is BreakerState.OPEN
    with pytest.raises(CircuitOpen) as info:
        await m.check("gpt")
    assert isinstance(info.value, ModelUnavailable)
    assert info.value.code == "MODEL_UNAVAILABLE" and info.value.status == 503
    assert info.value.details["state"] == "open"
    # another model is not affected
    await m.check("other")
    events = await m.store.events("gpt")
    assert [(e.from_state, e.to_state, e.manual) for e in events] == [("closed", "open", False)]
    assert events[0].stats and events[0].stats["calls"] == 8


async def test_callers_4xx_never_count(db: Database) -> None:
    m = BreakerManager(db, CFG, clock=FakeClock())
    await drive(m, "gpt", [OutcomeKind.IGNORED] * 30 + [OutcomeKind.SUCCESS] * 8)
    assert m.state_of("gpt") is BreakerState.CLOSED


async def test_failures_outside_the_window_do_not_count(db: Database) -> None:
    clock = FakeClock()
    m = BreakerManager(db, CFG, clock=clock)
    await drive(m, "gpt", [OutcomeKind.FAILURE] * 1 + [OutcomeKind.SUCCESS] * 5)
    clock.advance(400)  # past the 5-minute window
    await drive(m, "gpt", [OutcomeKind.SUCCESS] * 6 + [OutcomeKind.FAILURE])
    # 1 failure in 7 in-window calls (the older failure expired): closed
    assert m.state_of("gpt") is BreakerState.CLOSED


async def test_half_open_probes_close_it_and_a_failed_probe_reopens(db: Database) -> None:
    clock = FakeClock()
    m = BreakerManager(db, CFG, clock=clock)
    await drive(m, "gpt", [OutcomeKind.FAILURE] * 8)
    assert m.state_of("gpt") is BreakerState.OPEN
    clock.advance(29)
    with pytest.raises(CircuitOpen):
        await m.check("gpt")
    clock.advance(2)  # cool-down over: half-open, two probes allowed
    p1 = await m.check("gpt")
    p2 = await m.check("gpt")
    assert p1.probe and p2.probe
    with pytest.raises(CircuitOpen):  # no third probe while two are in flight
        await m.check("gpt")
    await m.record(p1, OutcomeKind.FAILURE)
    assert m.state_of("gpt") is BreakerState.OPEN
    await m.record(p2, OutcomeKind.SUCCESS)  # late result of a stale probe changes nothing
    assert m.state_of("gpt") is BreakerState.OPEN
    clock.advance(31)
    p1, p2 = await m.check("gpt"), await m.check("gpt")
    await m.record(p1, OutcomeKind.SUCCESS)
    assert m.state_of("gpt") is BreakerState.HALF_OPEN
    await m.record(p2, OutcomeKind.SUCCESS)
    assert m.state_of("gpt") is BreakerState.CLOSED
    # the window restarted: the old failures do not reopen it
    await drive(m, "gpt", [OutcomeKind.SUCCESS] * 7 + [OutcomeKind.FAILURE])
    assert m.state_of("gpt") is BreakerState.CLOSED
    states = [(e.from_state, e.to_state) for e in reversed(await m.store.events("gpt"))]
    assert states == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


async def test_state_survives_restart_and_is_shared_between_processes(db_url: str) -> None:
    clock = FakeClock()
    db1, db2 = Database(db_url), Database(db_url)
    try:
        a = BreakerManager(db1, CFG, clock=clock)
        b = BreakerManager(db2, CFG, clock=clock)
        await b.check("gpt")  # b has synced once already
        await drive(a, "gpt", [OutcomeKind.FAILURE] * 8)
        assert a.state_of("gpt") is BreakerState.OPEN
        # b sees it after at most one sync interval
        clock.advance(CFG.sync_interval_seconds)
        with pytest.raises(CircuitOpen):
            await b.check("gpt")
        # a brand-new manager (a restarted process) starts from the stored state
        c = BreakerManager(db2, CFG, clock=clock)
        with pytest.raises(CircuitOpen):
            await c.check("gpt")
    finally:
        await db1.dispose()
        await db2.dispose()


async def test_counts_of_several_processes_add_up(db_url: str) -> None:
    clock = FakeClock()
    dbs = [Database(db_url) for _ in range(2)]
    try:
        a, b = (BreakerManager(d, CFG, clock=clock) for d in dbs)
        # each process alone stays under the minimum number of calls
        await drive(a, "gpt", [OutcomeKind.FAILURE] * 2 + [OutcomeKind.SUCCESS] * 3)
        await drive(b, "gpt", [OutcomeKind.FAILURE] * 1 + [OutcomeKind.SUCCESS] * 3)
        assert a.state_of("gpt") is BreakerState.CLOSED
        clock.advance(CFG.sync_interval_seconds)
        await a.sync()
        await b.sync()  # b flushes its 4 calls and sees 9 calls, 3 failures: trips
        assert b.state_of("gpt") is BreakerState.OPEN
        await a.sync()
        assert a.state_of("gpt") is BreakerState.OPEN
    finally:
        for d in dbs:
            await d.dispose()


async def test_fail_open_when_the_store_errors(db: Database) -> None:
    class BrokenStore(BreakerStore):
        async def snapshot(self, window_start: int):  # type: ignore[override]
            raise RuntimeError("database on fire")

        async def flush(self, items, now):  # type: ignore[override]
            raise RuntimeError("database on fire")

    clock = FakeClock()
    m = BreakerManager(db, CFG, clock=clock, store=BrokenStore(db))
    before = GUARDRAIL_ERRORS.labels(component="breaker")._value.get()
    # the store cannot be read: calls are allowed (nothing known says otherwise) and counted
    for _ in range(10):
        clock.advance(2)
        permit = await m.check("gpt")
        await m.record(permit, OutcomeKind.FAILURE)
    assert GUARDRAIL_ERRORS.labels(component="breaker")._value.get() >= before + 10

    class FlakyStore(BreakerStore):
        broken = False

        async def snapshot(self, window_start: int):  # type: ignore[override]
            if self.broken:
                raise RuntimeError("database on fire")
            return await super().snapshot(window_start)

    store = FlakyStore(db)
    m = BreakerManager(db, CFG, clock=clock, store=store)
    await drive(m, "gpt", [OutcomeKind.FAILURE] * 8)
    assert m.state_of("gpt") is BreakerState.OPEN
    store.broken = True
    clock.advance(2)
    # the store fails after the breaker opened: the last known state still protects the model
    with pytest.raises(CircuitOpen):
        await m.check("gpt")


async def test_manual_trip_disable_and_reset_are_audited(db: Database) -> None:
    clock = FakeClock()
    m = BreakerManager(db, CFG, clock=clock)
    await m.set_manual("gpt", BreakerState.FORCED_OPEN, actor="prn_ops", reason="vendor incident")
    with pytest.raises(CircuitOpen) as info:
        await m.check("gpt")
    assert info.value.details["state"] == "forced_open"
    clock.advance(3600)  # forced open never half-opens by itself
    with pytest.raises(CircuitOpen):
        await m.check("gpt")
    await m.set_manual("gpt", BreakerState.DISABLED, actor="prn_ops", reason="ignore it")
    await drive(m, "gpt", [OutcomeKind.FAILURE] * 20)  # disabled: nothing counted
    assert m.state_of("gpt") is BreakerState.DISABLED
    await m.set_manual("gpt", BreakerState.CLOSED, actor="prn_ops", reason="over")
    await m.check("gpt")
    events = list(reversed(await m.store.events("gpt")))
    assert [(e.to_state, e.actor, e.reason, e.manual) for e in events] == [
        ("forced_open", "prn_ops", "vendor incident", True),
        ("disabled", "prn_ops", "ignore it", True),
        ("closed", "prn_ops", "over", True),
    ]
    views = {v.key: v for v in await m.views()}
    assert views["gpt"].state is BreakerState.CLOSED and views["gpt"].window.calls == 0


async def test_slow_calls_count_when_a_threshold_is_set(db: Database) -> None:
    cfg = BreakerConfig(minimum_calls=4, failure_rate_threshold=0.5, slow_call_ms=100)
    m = BreakerManager(db, cfg, clock=FakeClock())
    for latency in (10, 10, 500, 600):
        p = await m.check("gpt")
        await m.record(p, OutcomeKind.SUCCESS, latency_ms=latency)
    assert m.state_of("gpt") is BreakerState.OPEN


async def test_a_sync_read_before_a_manual_reset_does_not_undo_it(db: Database) -> None:
    """An operator resets a breaker while this process's periodic sync is reading the
    store: the sync's older view must not put the breaker back to forced open."""

    class HeldStore(BreakerStore):
        hold: asyncio.Event | None = None
        read = asyncio.Event()

        async def snapshot(self, window_start: int):  # type: ignore[override]
            out = await super().snapshot(window_start)
            if self.hold is not None:
                self.read.set()
                await self.hold.wait()
            return out

    clock = FakeClock()
    store = HeldStore(db)
    m = BreakerManager(db, CFG, clock=clock, store=store)
    await m.set_manual("gpt", BreakerState.FORCED_OPEN, actor="prn_ops", reason="incident")
    store.hold = asyncio.Event()
    clock.advance(2)
    sync = asyncio.create_task(m.sync())
    await store.read.wait()  # the sync has read the breaker forced open
    await m.set_manual("gpt", BreakerState.CLOSED, actor="prn_ops", reason="over")
    store.hold.set()
    await sync
    assert m.state_of("gpt") is BreakerState.CLOSED
    await m.check("gpt")  # allowed: no new sync is due, the reset holds
    clock.advance(2)
    await m.check("gpt")  # and the next sync reads the reset from the store
    assert m.state_of("gpt") is BreakerState.CLOSED
