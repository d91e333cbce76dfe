"""Run owner leases: a run whose process died is found and closed by another process.

A streamed run's row is written early (so any process can serve its events) with the id of the
engine executing it (``owner_id``) and a lease deadline (``lease_expires_at``). The owner renews
the deadline of all its running runs with one UPDATE every third of the lease
(:func:`renew`). A process killed with ``kill -9`` renews nothing: once the deadline has passed,
the sweep of any process (:func:`sweep`, the workflows domain's periodic work) marks the run
``failed`` with ``RUN_INTERRUPTED``, keeps the events it had stored and appends a final
``run.failed`` event, so a client following the run from the database sees the stream end. The
turn of a conversation such a run held is never written (turns are saved with the run's final
write), so the conversation's next turn proceeds from the last finished one.

The pattern is the budget leases' (``gasworks.llm.budgets.leases``): a deadline in the database
renewed by a heartbeat, and a compare-and-set so two sweepers, or a sweeper and a late owner,
never both finish the same run (:func:`finish_guard`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, Update, func, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gasworks.db.types import utcnow
from gasworks.errors import RunInterrupted
from gasworks.observability.logging import get_logger
from gasworks.workflows.schemas import RunOut
from gasworks.workflows.tables import WorkflowRow, WorkflowRunEventRow, WorkflowRunRow

log = get_logger("gasworks.workflows.leases")

#: runs closed per sweep query (the rest wait for the next sweep)
SWEEP_BATCH = 100
INTERRUPTED = RunInterrupted.code
MESSAGE = (
    "The server process executing this run stopped before the run finished (crash, kill or "
    "lost host); its partial events are kept. Start the run again."
)


#: ``status = 'running'`` with the value written into the SQL, not bound: the partial index
#: ``ix_workflow_runs_running_lease`` holds running runs only, and PostgreSQL's planner uses a
#: partial index only for a query whose condition implies the index's in every plan (a bound
#: value is unknown to a generic plan of a prepared statement)
RUNNING: ColumnElement[bool] = WorkflowRunRow.status == literal_column("'running'")


def deadline(ttl: float, now: datetime | None = None) -> datetime:
    return (now or utcnow()) + timedelta(seconds=ttl)


async def renew(session: AsyncSession, owner_id: str, ttl: float) -> int:
    """Push the deadline of every running run of ``owner_id``; returns how many."""
    res = await session.execute(renew_statement(owner_id, deadline(ttl)))
    return int(getattr(res, "rowcount", 0) or 0)


def renew_statement(owner_id: str, until: datetime) -> Update:
    """The heartbeat's UPDATE (over ``ix_workflow_runs_running_lease``: running runs only)."""
    return (
        update(WorkflowRunRow)
        .where(RUNNING, WorkflowRunRow.owner_id == owner_id)
        .values(lease_expires_at=until)
    )


async def expired(session: AsyncSession, now: datetime, limit: int = SWEEP_BATCH) -> list[str]:
    """Ids of running runs whose lease has passed."""
    rows = await session.scalars(expired_query(now, limit))
    return list(rows.all())


def expired_query(now: datetime, limit: int = SWEEP_BATCH) -> Select[str]:
    """The sweep's query (index ``ix_workflow_runs_running_lease``)."""
    return (
        select(WorkflowRunRow.id)
        .where(RUNNING, WorkflowRunRow.lease_expires_at < now)
        .order_by(WorkflowRunRow.lease_expires_at)
        .limit(limit)
    )


async def interrupt(
    session: AsyncSession, run_id: str, now: datetime, tenant_id: str | None = None
) -> bool:
    """Mark one run ``RUN_INTERRUPTED`` if it is still running with an expired lease, and
    append its final event. False: it finished, or its owner renewed meanwhile."""
    cond = [
        WorkflowRunRow.id == run_id,
        WorkflowRunRow.status == "running",
        WorkflowRunRow.lease_expires_at < now,
    ]
    if tenant_id is not None:
        cond.append(WorkflowRunRow.tenant_id == tenant_id)
    error: dict[str, Any] = {"code": INTERRUPTED, "message": MESSAGE, "details": {}}
    res = await session.execute(
        update(WorkflowRunRow)
        .where(*cond)
        .values(
            status="failed",
            error=error,
            finished_at=now,
            owner_id=None,
            lease_expires_at=None,
        )
    )
    if getattr(res, "rowcount", 0) != 1:
        return False
    run, slug = (
        await session.execute(
            select(WorkflowRunRow, WorkflowRow.slug)
            .join(WorkflowRow, WorkflowRow.id == WorkflowRunRow.workflow_id)
            .where(WorkflowRunRow.id == run_id)
        )
    ).one()
    last = await session.scalar(
        select(func.coalesce(func.max(WorkflowRunEventRow.seq), 0)).where(
            WorkflowRunEventRow.run_id == run_id
        )
    )
    data = RunOut.of(run, slug).model_dump(mode="json", by_alias=True)
    session.add(
        WorkflowRunEventRow(
            run_id=run_id,
            seq=int(last or 0) + 1,
            tenant_id=run.tenant_id,
            type="run.failed",
            data=data,
        )
    )
    await session.flush()
    log.warning("workflow.run_interrupted", run_id=run_id, tenant_id=run.tenant_id, workflow=slug)
    return True


async def finish_guard(
    session: AsyncSession, run_id: str, tenant_id: str, values: dict[str, Any]
) -> None:
    """The owner's final update of a run it wrote early: only while the run is still running
    (a sweeper may have closed it after the lease lapsed: then the late result is refused)."""
    res = await session.execute(
        update(WorkflowRunRow)
        .where(
            WorkflowRunRow.id == run_id,
            WorkflowRunRow.tenant_id == tenant_id,
            WorkflowRunRow.status == "running",
        )
        .values(**values, owner_id=None, lease_expires_at=None)
    )
    if getattr(res, "rowcount", 1) != 1:
        raise RunInterrupted(
            "The run's lease lapsed and another process marked it interrupted; its late "
            "result is not stored.",
            details={"id": run_id},
        )


__all__ = [
    "INTERRUPTED",
    "SWEEP_BATCH",
    "deadline",
    "expired",
    "expired_query",
    "finish_guard",
    "interrupt",
    "renew",
    "renew_statement",
]
