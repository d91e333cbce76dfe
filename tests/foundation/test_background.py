"""PeriodicTask: woken early, stopped cleanly."""

from __future__ import annotations

import asyncio

from gasworks.background import PeriodicTask


async def test_wake_runs_the_next_iteration_without_waiting_for_the_period() -> None:
    ran = asyncio.Event()
    runs: list[int] = []

    async def body() -> None:
        runs.append(1)
        ran.set()

    task = PeriodicTask("t", body, every=3600)
    task.start()
    await asyncio.sleep(0)
    assert runs == []  # nothing before the period, unless woken
    task.wake()
    await asyncio.wait_for(ran.wait(), 30)  # a guard only: it runs at once
    await task.stop()
    assert runs == [1] and not task.running
