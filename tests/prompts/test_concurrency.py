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
