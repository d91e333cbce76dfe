"""Races across real processes: compare-and-set moves and cross-process cache invalidation."""

from __future__ import annotations

import asyncio
import multiprocessing
import time

from tests.prompts import _workers
from tests.prompts.conftest import deploy, new_version, scope

PROCESSES = 4
PER_PROCESS = 5


async def test_twenty_movers_in_four_processes_one_wins(svc, tenants, settings, db_url):
    v0 = await new_version(svc, tenants.a, "start")
    await deploy(svc, tenants.a, v0, 0)  # pointer version 1
    targets = [await new_version(svc, tenants.a, f"candidate {i}") for i in range(20)]
    mp = multiprocessing.get_context("spawn")
    barrier = mp.Barrier(PROCESSES)
    out = mp.Queue()
    procs = [
        mp.Process(
            target=_workers.mover,
            args=(
                db_url,
                str(settings.home),
                tenants.a.tenant_id,
                targets[i * PER_PROCESS : (i + 1) * PER_PROCESS],
                barrier,
                out,
            ),
        )
        for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    results = []
    for _ in procs:
        results += await asyncio.to_thread(out.get, True, 120)
    for p in procs:
        await asyncio.to_thread(p.join, 30)
        assert p.exitcode == 0
    wins = [r for r in results if r[0] == "ok"]
    losses = [r for r in results if r[0] == "error"]
    assert len(results) == 20
    assert len(wins) == 1, results
    assert all(r[1:] == ["PROMPT_POINTER_CONFLICT", 409] for r in losses), losses
    pointer = await svc.get_pointer(tenants.a, scope())
    assert pointer.version == 2 and pointer.active_version_id == wins[0][1]
    assert pointer.previous_version_id == v0
    history = await svc.history(tenants.a, scope())
    assert [h.seq for h in reversed(history)] == [1, 2]  # no gap, no duplicate
    assert history[0].to_version_id == wins[0][1] and history[0].from_version_id == v0
    dead = await svc.dead_letters(tenants.a)
    assert len(dead) == 19 and {d.reason_code for d in dead} == {"PROMPT_POINTER_CONFLICT"}


async def test_move_seen_by_another_process_within_one_second(svc, tenants, settings, db_url):
    v1 = await new_version(svc, tenants.a, "one")
    v2 = await new_version(svc, tenants.a, "two")
    await deploy(svc, tenants.a, v1, 0)
    mp = multiprocessing.get_context("spawn")
    parent, child = mp.Pipe()
    proc = mp.Process(
        target=_workers.observer,
        args=(db_url, str(settings.home), tenants.a.tenant_id, child),
    )
    proc.start()
    try:
        assert await asyncio.to_thread(parent.poll, 60)
        ready = parent.recv()
        assert ready == ["ready", v1, "cache"]  # the observer serves v1 from its cache
        await deploy(svc, tenants.a, v2, 1)
        committed = time.time()
        assert await asyncio.to_thread(parent.poll, 15)
        kind, seen_version, seen_at = parent.recv()
        assert (kind, seen_version) == ("changed", v2)
        assert seen_at - committed <= 1.0, f"seen after {seen_at - committed:.3f}s"
    finally:
        await asyncio.to_thread(proc.join, 30)
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == 0


async def test_what_a_resolver_cached_before_its_first_poll_is_not_trusted(svc, tenants, runtime):
    """A resolve can run before the resolver's first poll ends. That poll takes the recent
    notices as already applied, so an entry cached before it (here: before a deploy that
    another process made) must not survive it."""
    from gasworks.prompts.resolver import Resolver

    v1 = await new_version(svc, tenants.a, "one")
    v2 = await new_version(svc, tenants.a, "two")
    await deploy(svc, tenants.a, v1, 0)
    other = Resolver(runtime.db, svc.store, default_model="gpt-4o", poll_seconds=0.2)
    try:
        early = await other.resolve(tenant_id=tenants.a.tenant_id, model="gpt-4o")
        assert early.version_id == v1  # cached before any poll
        await deploy(svc, tenants.a, v2, 1)  # seen by svc's resolver, not by `other`
        other.start()
        await _until(lambda: other.poller.runs >= 1)
        r = await other.resolve(tenant_id=tenants.a.tenant_id, model="gpt-4o")
        assert r.version_id == v2
    finally:
        await other.stop()


async def test_a_notice_wakes_an_idle_resolver_and_a_lost_listener_falls_back(
    svc, tenants, runtime
):
    """PostgreSQL: a second resolver (another process's, in effect) that polls only once a
    minute when idle still sees a move at once: the trigger's NOTIFY wakes it. When its
    LISTEN connection is killed it polls at the fast pace until it listens again."""
    from sqlalchemy import text

    from gasworks.prompts.resolver import Resolver

    if runtime.db.dialect.name != "postgresql":
        return  # SQLite has no notices: it always polls every prompt_invalidation_poll_seconds
    v1 = await new_version(svc, tenants.a, "one")
    v2 = await new_version(svc, tenants.a, "two")
    await deploy(svc, tenants.a, v1, 0)
    other = Resolver(
        runtime.db, svc.store, default_model="gpt-4o", poll_seconds=0.2, idle_poll_seconds=60
    )
    other.start()
    try:
        # listening, and the first poll (the baseline read) has ended
        await _until(lambda: other.listening and other.poller.every == 60 and other.poller.runs)
        seen = await other.resolve(tenant_id=tenants.a.tenant_id, model="gpt-4o")
        assert seen.version_id == v1
        runs = other.poller.runs
        await deploy(svc, tenants.a, v2, 1)
        await _until(lambda: other.poller.runs > runs)  # woken, not a minute later
        r = await other.resolve(tenant_id=tenants.a.tenant_id, model="gpt-4o")
        assert r.version_id == v2
        async with runtime.db.session() as s:  # the database drops the listening connection
            await s.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
                )
            )
        await _until(lambda: not other.listening)
        other.poller.wake()  # its next poll notices and speeds up
        await _until(lambda: other.poller.every == 0.2)
        await _until(lambda: other.listening and other.poller.every == 60, timeout=30)
    finally:
        await other.stop()


async def _until(cond, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)
