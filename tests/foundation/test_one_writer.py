"""One writer for a SQLite file: ``Database.write_batch`` (the ledger's batches) and
``Database.insert_rows`` (the runs' group commit) share one thread, one connection and one
queue, so their transactions commit one after the other in the order they were handed over,
each on its own, and shutting the database down writes what was already handed over."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Table, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gasworks.db.engine import Database, OnLoop
from gasworks.tenancy.tables import TenantRow
from gasworks.workflows.tables import WorkflowRow, WorkflowRunEventRow, WorkflowRunRow

RUNS: Table = WorkflowRunRow.__table__  # type: ignore[assignment]
EVENTS: Table = WorkflowRunEventRow.__table__  # type: ignore[assignment]
TENANTS: Table = TenantRow.__table__  # type: ignore[assignment]
WORKFLOWS: Table = WorkflowRow.__table__  # type: ignore[assignment]


def _run(run_id: str, tenant: str = "t-a", workflow: str = "wf-a") -> dict[str, Any]:
    at = datetime(2026, 12, 3, 6, 30, 1, tzinfo=UTC)
    return {
        "id": run_id,
        "tenant_id": tenant,
        "workflow_id": workflow,
        "version": 1,
        "principal_id": "p",
        "conversation_id": None,
        "status": "succeeded",
        "inputs": {},
        "output": "ok",
        "error": None,
        "node_timings": [],
        "steps": 1,
        "tokens": 0,
        "cost": Decimal(0),
        "duration_ms": 0.1,
        "started_at": at,
        "finished_at": at,
        "owner_id": None,
        "lease_expires_at": None,
        "prompt_version_id": None,
    }


def _event(run_id: str, seq: int) -> dict[str, Any]:
    return {"run_id": run_id, "seq": seq, "tenant_id": "t-a", "type": "x", "data": {}}


def _add_workflow(tenant: str, workflow: str) -> Any:
    def batch(s: Session, on_loop: OnLoop) -> None:
        s.execute(TENANTS.insert().values(id=tenant, name=tenant, display_name=tenant))
        s.execute(
            WORKFLOWS.insert().values(
                id=workflow, tenant_id=tenant, slug=workflow, name=workflow, owner_id="p"
            )
        )

    return batch


def _add_tenant(name: str) -> Any:
    def batch(s: Session, on_loop: OnLoop) -> None:
        s.execute(TENANTS.insert().values(id=f"t-{name}", name=name, display_name=name))

    return batch


async def _run_ids(db: Database) -> list[str]:
    async with db.read_session() as s:
        return sorted((await s.scalars(select(WorkflowRunRow.id))).all())


async def _tenant_ids(db: Database) -> list[str]:
    async with db.read_session() as s:
        return sorted((await s.scalars(select(TenantRow.id))).all())


async def test_batches_of_both_kinds_commit_in_the_order_handed_over(runtime: Any) -> None:
    """A run batch handed over while a ledger batch holds the writer waits behind it (one
    queue): its rows reference the workflow that batch creates, which a foreign key checks,
    so it could not commit first."""
    db: Database = runtime.db
    if db.dialect.name != "sqlite":
        pytest.skip("one writer thread on a SQLite file; elsewhere each call is its own")
    started, go_on = threading.Event(), threading.Event()
    finished: list[str] = []
    create = _add_workflow("t-a", "wf-a")

    def first(s: Session, on_loop: OnLoop) -> None:
        started.set()
        go_on.wait(10)
        create(s, on_loop)

    async def ledger() -> None:
        await db.write_batch(first)
        finished.append("ledger")

    async def runs() -> None:
        await db.insert_rows([(RUNS, [_run("r1"), _run("r2")]), (EVENTS, [_event("r1", 1)])])
        finished.append("runs")

    t1 = asyncio.create_task(ledger())
    await asyncio.to_thread(started.wait, 10)
    t2 = asyncio.create_task(runs())
    await asyncio.sleep(0)  # the run batch is handed over (queued behind the first)
    go_on.set()
    await asyncio.gather(t1, t2)
    assert finished == ["ledger", "runs"]
    assert await _run_ids(db) == ["r1", "r2"]


async def test_a_failed_batch_loses_no_other_batchs_rows(runtime: Any) -> None:
    """Batches handed over together, one of which breaks a constraint: that one writes
    nothing (not even its valid rows) and raises IntegrityError; the others are committed."""
    db: Database = runtime.db
    await db.write_batch(_add_workflow("t-a", "wf-a"))
    results = await asyncio.gather(
        db.write_batch(_add_tenant("alpha")),
        db.insert_rows([(RUNS, [_run("r1")])]),
        db.insert_rows(  # its second table repeats a primary key
            [(RUNS, [_run("bad")]), (EVENTS, [_event("bad", 1), _event("bad", 1)])]
        ),
        db.write_batch(_add_tenant("gamma")),
        db.insert_rows([(RUNS, [_run("r2")]), (EVENTS, [_event("r2", 1)])]),
        return_exceptions=True,
    )
    assert isinstance(results[2], IntegrityError)
    assert [r for i, r in enumerate(results) if i != 2] == [None] * 4
    assert await _run_ids(db) == ["r1", "r2"]
    assert await _tenant_ids(db) == ["t-a", "t-alpha", "t-gamma"]


async def test_rows_without_every_column_take_the_same_writer(runtime: Any) -> None:
    """Rows that leave a column out (written through Core, defaults applied) queue behind
    the writer's earlier batch like any other."""
    db: Database = runtime.db
    if db.dialect.name != "sqlite":
        pytest.skip("one writer thread on a SQLite file; elsewhere each call is its own")
    values = _run("r1")
    del values["steps"]
    create = db.write_batch(_add_workflow("t-a", "wf-a"))
    insert = db.insert_rows([(RUNS, [values])])
    await asyncio.gather(create, insert)
    async with db.read_session() as s:
        steps = (await s.execute(select(WorkflowRunRow.steps))).scalar_one()
    assert steps == 0


async def test_shutdown_writes_what_was_handed_over(runtime: Any) -> None:
    """``dispose`` (the runtime's shutdown) waits for every batch already handed to the
    writer: each caller gets its outcome and the rows are in the file."""
    db = Database(runtime.db.url)
    try:
        await db.write_batch(_add_workflow("t-a", "wf-a"))
        calls = [
            asyncio.create_task(db.insert_rows([(RUNS, [_run(f"r{i}")])])) for i in range(5)
        ] + [asyncio.create_task(db.write_batch(_add_tenant(f"n{i}"))) for i in range(3)]
        await asyncio.sleep(0)  # every call has handed its batch over
        await db.dispose()
        assert await asyncio.gather(*calls) == [None] * 8
    finally:
        await db.dispose()
    assert await _run_ids(runtime.db) == [f"r{i}" for i in range(5)]
    assert await _tenant_ids(runtime.db) == ["t-a"] + [f"t-n{i}" for i in range(3)]
