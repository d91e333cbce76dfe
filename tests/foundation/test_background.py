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


async def test_it_reports_runs_and_the_last_failure_without_foreign_messages() -> None:
    from gasworks.errors import BadRequest

    steps: asyncio.Queue[Exception | None] = asyncio.Queue()

    async def body() -> None:
        outcome = await steps.get()  # one iteration per step the test gives
        if outcome is not None:
            raise outcome

    task = PeriodicTask("t", body, every=0, on_error=lambda exc: None)
    task.start()

    async def step(outcome: Exception | None) -> tuple[int, bool, str | None]:
        before = task.runs
        await steps.put(outcome)
        async with asyncio.timeout(30):  # a guard only
            while task.runs == before:
                await asyncio.sleep(0)
        return task.runs, task.last_failed, task.last_error

    # a gasworks error keeps its message; anything else only its class (it may hold secrets)
    assert await step(BadRequest("bad input")) == (1, True, "BadRequest: bad input")
    assert await step(RuntimeError("postgres://u:pw@h")) == (2, True, "RuntimeError")
    assert await step(None) == (3, False, "RuntimeError")  # the last failure stays on view
    await steps.put(None)  # let the waiting iteration end
    await task.stop()
    assert task.failures == 2 and task.last_run is not None and task.last_error_at is not None
