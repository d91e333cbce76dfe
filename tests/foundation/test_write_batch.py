"""``Database.write_batch``: a background writer's transaction (one hand-off on a SQLite file)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gasworks.db.engine import OnLoop
from gasworks.tenancy.tables import TenantRow


def _add(s: Session, name: str) -> None:
    s.execute(TenantRow.__table__.insert().values(id=f"t-{name}", name=name, display_name=name))


async def _names(runtime: Any) -> list[str]:
    async with runtime.db.read_session() as s:
        return list((await s.scalars(select(TenantRow.name).order_by(TenantRow.name))).all())


async def test_commits_what_it_returns_and_nothing_when_it_raises(runtime) -> None:
    def ok(s: Session, on_loop: OnLoop) -> int:
        _add(s, "alpha")
        _add(s, "beta")
        return 2

    assert await runtime.db.write_batch(ok) == 2
    assert await _names(runtime) == ["alpha", "beta"]

    def fails(s: Session, on_loop: OnLoop) -> None:
        _add(s, "gamma")
        raise ValueError("halfway")

    with pytest.raises(ValueError, match="halfway"):
        await runtime.db.write_batch(fails)
    assert await _names(runtime) == ["alpha", "beta"]  # no partial write


async def test_on_loop_runs_on_the_event_loops_thread(runtime) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def batch(s: Session, on_loop: OnLoop) -> str:
        _add(s, "alpha")
        return on_loop(lambda: (seen.append(threading.get_ident()), "decided")[1])

    assert await runtime.db.write_batch(batch) == "decided"
    assert seen == [loop_thread]
    assert await _names(runtime) == ["alpha"]


async def test_a_cancelled_caller_learns_the_outcome_before_the_cancel(runtime) -> None:
    """Cancelling the caller does not cut the transaction short: the caller still gets the
    result of the committed batch, and the cancellation arrives at its next await."""
    started = threading.Event()
    go_on = threading.Event()
    outcome: list[str] = []

    def batch(s: Session, on_loop: OnLoop) -> str:
        _add(s, "alpha")
        started.set()
        go_on.wait(5)  # on SQLite: the writer thread; elsewhere: the loop (not cancellable)
        return "written"

    async def caller() -> None:
        outcome.append(await runtime.db.write_batch(batch))
        await asyncio.sleep(0)  # the next await: the cancellation lands here
        outcome.append("not reached")

    if runtime.db.dialect.name != "sqlite":
        pytest.skip("the batch runs in the event loop here: there is no await to cancel at")
    task = asyncio.create_task(caller())
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    await asyncio.sleep(0.05)
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert outcome == ["written"]
    assert await _names(runtime) == ["alpha"]
