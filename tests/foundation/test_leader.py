"""The leader lease: once-per-deployment work runs in exactly one process, and another takes
over when the holder stops (cleanly: at once; killed: once its lease expires)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from gasworks.db.engine import Database
from gasworks.db.leader import SERVICE, LeaderLease, Leadership, is_leader
from gasworks.db.types import utcnow
from gasworks.llm.guardrails_runtime import MAINTENANCE
from gasworks.wiring import build_runtime

ROOT = Path(__file__).resolve().parents[2]
WAIT = 20.0


async def _until(cond: Any, timeout: float = WAIT) -> float:
    """Poll ``cond`` until true; returns the seconds it took."""
    start = time.monotonic()
    while not cond():
        assert time.monotonic() - start < timeout, "condition not reached in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def test_one_holder_a_clean_release_and_an_expired_holder(db_url: str) -> None:
    db = Database(db_url)
    now = [utcnow()]
    a = LeaderLease(db, "t", ttl=30, holder="a", clock=lambda: now[0])
    b = LeaderLease(db, "t", ttl=30, holder="b", clock=lambda: now[0])
    try:
        assert await a.hold() is True
        assert await b.hold() is False
        assert await a.hold() is True  # renewal
        assert await b.hold() is False and not b.held
        await a.release()
        assert not a.held
        assert await b.hold() is True  # a clean stop hands over at the next heartbeat
        assert await a.hold() is False
        now[0] += timedelta(seconds=31)  # b died: its deadline passes
        assert await a.hold() is True
        assert await b.hold() is False  # the late holder does not get it back
        other = LeaderLease(db, "other-name", ttl=30, holder="b", clock=lambda: now[0])
        assert await other.hold() is True  # names are independent
    finally:
        await db.dispose()


async def test_two_runtimes_elect_one_and_the_other_takes_over(settings: Any) -> None:
    s = settings.model_copy(update={"leader_lease_seconds": 1.0})
    one = build_runtime(s)
    two = build_runtime(s.model_copy(update={"home": s.home.parent / "two"}))
    await one.start(migrate=False)
    await two.start(migrate=False)
    try:
        await _until(lambda: is_leader(one) or is_leader(two))
        leader, follower = (one, two) if is_leader(one) else (two, one)
        await asyncio.sleep(0.5)  # a few heartbeats: still exactly one
        assert is_leader(leader) and not is_leader(follower)
        await leader.stop()  # returns the lease
        await _until(lambda: is_leader(follower), timeout=2.0)
    finally:
        for rt in (one, two):
            if rt.started:
                await rt.stop()


async def test_the_follower_does_not_sweep_budgets(settings: Any) -> None:
    one = build_runtime(settings)
    two = build_runtime(settings.model_copy(update={"home": settings.home.parent / "two"}))
    await one.start(migrate=False)
    await two.start(migrate=False)
    swept: list[str] = []
    try:
        await _until(lambda: is_leader(one) or is_leader(two))
        for name, rt in (("one", one), ("two", two)):
            g = rt.services["guardrails"]

            async def sweep(name: str = name) -> None:
                swept.append(name)

            g.budgets.sweep = sweep
            m = rt.services[MAINTENANCE]
            m.last_sweep = 0.0  # due
            await m.once()
        assert swept == ["one" if is_leader(one) else "two"]
    finally:
        await two.stop()
        await one.stop()


async def test_an_api_only_process_takes_no_part(settings: Any) -> None:
    rt = build_runtime(settings.model_copy(update={"background_work": False}))
    await rt.start(migrate=False)
    try:
        assert SERVICE not in rt.services
        assert is_leader(rt) is False
        swept: list[int] = []

        async def sweep() -> None:
            swept.append(1)

        rt.services["guardrails"].budgets.sweep = sweep
        m = rt.services[MAINTENANCE]
        m.last_sweep = 0.0
        await m.once()
        assert swept == []
        assert rt.services["workflows"].leader() is False
        docs = rt.services["documents"]  # no ingestion workers, no reconciler either
        assert rt.settings.documents_run_workers and docs.workers == [] and docs.tasks == []
    finally:
        await rt.stop()


async def test_a_killed_holder_is_replaced_within_the_lease(db_url: str) -> None:
    ttl = 1.0
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.foundation._leader_holder", db_url, str(ttl)],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    db = Database(db_url)
    mine = Leadership(db, ttl=ttl, holder="survivor")
    try:
        assert proc.stdout is not None
        line = "?"
        while line and line != "leader\n":  # log lines go to stdout too
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), WAIT)
        assert line == "leader\n", "the holder process exited before leading"
        mine.task.start()
        await asyncio.sleep(ttl)  # several of our heartbeats while the holder lives
        assert not mine.lease.held
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, WAIT)
        took = await _until(lambda: mine.lease.held)
        assert took <= ttl + ttl / 3 + 1.0  # lease + one heartbeat (+ scheduling slack)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await mine.stop()
        await db.dispose()


async def test_only_the_leader_runs_prompt_retention(settings: Any) -> None:
    from gasworks.prompts.service import retention_if_leader

    one = build_runtime(settings)
    two = build_runtime(settings.model_copy(update={"home": settings.home.parent / "two"}))
    api = build_runtime(
        settings.model_copy(update={"home": settings.home.parent / "api", "background_work": False})
    )
    for rt in (one, two, api):
        await rt.start(migrate=False)
    try:
        await _until(lambda: is_leader(one) or is_leader(two))
        reports = [await retention_if_leader(rt) for rt in (one, two, api)]
        ran = [r is not None for r in reports]
        assert ran == [is_leader(one), is_leader(two), False] and sum(ran) == 1
    finally:
        for rt in (api, two, one):
            await rt.stop()
