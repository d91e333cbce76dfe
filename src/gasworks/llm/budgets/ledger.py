"""The cost ledger: every model call recorded exactly once, and its aggregates.

Rows are written by group commit (``Ledger``): a batch of calls' rows and the settlements of
their budget reservations in ONE transaction. Rows are keyed by the call id; a batch written
again after an attempt whose outcome is unknown skips (and does not charge) the rows that
attempt did commit, so the ledger total always equals what the budgets were charged.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import ConfigDict
from sqlalchemy import BigInteger, Table, case, func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from gasworks.apimodel import ApiModel
from gasworks.background import PeriodicTask
from gasworks.db.engine import Database, OnLoop
from gasworks.db.types import units_to_money
from gasworks.errors import DatabaseUnavailable, ValidationFailed
from gasworks.llm.budgets.leases import Charge, Lease, Reservation
from gasworks.llm.budgets.limits import BudgetService
from gasworks.llm.budgets.store import FlushPlan
from gasworks.llm.guardrail_metrics import (
    GUARDRAIL_ERRORS,
    LEDGER_BATCH_ROWS,
    LEDGER_PENDING,
    USAGE_CALLS,
    USAGE_COST,
    USAGE_TOKENS,
)
from gasworks.llm.guardrail_tables import LedgerRow
from gasworks.llm.vocab import GroupBy as GroupBy
from gasworks.observability.logging import get_logger
from gasworks.tenancy.context import Role, TenantContext

log = get_logger("gasworks.llm.budgets.ledger")

L: Table = LedgerRow.__table__  # type: ignore[assignment]


@dataclass(slots=True)
class LedgerEntry:
    id: str
    tenant_id: str
    model: str
    provider: str
    status: str
    created_at: datetime
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost: Decimal = Decimal(0)
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    estimated: bool = False
    streamed: bool = False
    request_id: str | None = None
    api_key_id: str | None = None
    workflow_id: str | None = None
    node_id: str | None = None
    run_id: str | None = None
    requested_model: str | None = None
    error_code: str | None = None
    #: "chat" or "embedding"
    kind: str = "chat"
    #: what an embedding call served (``{"documentId": ..}`` / ``{"runId": ..}``)
    served: dict[str, str] | None = None
    attempt: int = 1
    prompt_version_id: str | None = None

    #: the ledger table's columns, in ``row``'s order: an entry is a *record* of
    #: ``db/batch.py`` (its values taken straight into the INSERT's parameters, no dict built
    #: per row, issue #19)
    row_fields: ClassVar[tuple[str, ...]]

    @property
    def day(self) -> str:
        """The UTC day of ``created_at`` (``YYYY-MM-DD``), the ``day`` column."""
        at = self.created_at
        return (at if at.tzinfo is UTC else at.astimezone(UTC)).date().isoformat()

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "created_at": self.created_at,
            "day": self.day,
            "request_id": self.request_id,
            "api_key_id": self.api_key_id,
            "workflow_id": self.workflow_id,
            "node_id": self.node_id,
            "run_id": self.run_id,
            "model": self.model,
            "requested_model": self.requested_model,
            "attempt": self.attempt,
            "prompt_version_id": self.prompt_version_id,
            "provider": self.provider,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cost": self.cost,
            "latency_ms": self.latency_ms,
            "ttft_ms": self.ttft_ms,
            "status": self.status,
            "estimated": self.estimated,
            "streamed": self.streamed,
            "error_code": self.error_code,
            "kind": self.kind,
            "served": self.served,
        }


LedgerEntry.row_fields = (
    "id",
    "tenant_id",
    "created_at",
    "day",
    "request_id",
    "api_key_id",
    "workflow_id",
    "node_id",
    "run_id",
    "model",
    "requested_model",
    "attempt",
    "prompt_version_id",
    "provider",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cost",
    "latency_ms",
    "ttft_ms",
    "status",
    "estimated",
    "streamed",
    "error_code",
    "kind",
    "served",
)


@dataclass(slots=True)
class _Item:
    entry: LedgerEntry | None
    charge: Charge | None
    #: a transaction including it was attempted: its row may exist (the commit's answer lost)
    tried: bool = False


class Ledger:
    """Ledger rows and budget settlements, written by group commit.

    ``record`` queues a call's row with its settlement (the budget's in-memory part is done at
    once); a background ``PeriodicTask`` writes the queue every ``flush_interval`` seconds, or
    as soon as ``max_rows`` wait, in one transaction per batch that also maintains the budget
    leases. ``flush()`` writes what waits now (readers that need the latest rows call it);
    ``close()`` writes everything and returns the leases. ``flush_interval`` 0: every call
    waits for its own write (concurrent calls still share a transaction)."""

    def __init__(
        self,
        db: Database,
        budgets: BudgetService | None = None,
        *,
        flush_interval: float = 0.05,
        max_rows: int = 500,
        max_pending: int = 100_000,
        background: bool = True,
    ) -> None:
        self.db = db
        #: False: no writer task, batches are written only by ``flush()`` (tests, benchmarks)
        self.background = background
        self.budgets = budgets
        self.flush_interval = flush_interval
        self.max_rows = max_rows
        self.max_pending = max_pending
        self._queue: list[_Item] = []
        self._lock = asyncio.Lock()
        self._woken = False
        self._last_write = time.monotonic()
        self._task: PeriodicTask | None = None
        if budgets is not None:
            budgets.on_lease_change = self._kick

    @property
    def synchronous(self) -> bool:
        return self.flush_interval <= 0

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def record(self, entry: LedgerEntry, reservation: Reservation | None) -> bool:
        """Queue the call's row and settle its reservation. False: already settled."""
        if not self.queue(entry, reservation):
            return False
        if self.synchronous:
            await self.flush()
        return True

    def queue(self, entry: LedgerEntry, reservation: Reservation | None) -> bool:
        """``record`` without waiting for a synchronous ledger's write (the writer task
        writes it; ``record`` does the same and then, when ``synchronous``, flushes)."""
        charge = None
        if reservation is not None:
            tokens = entry.input_tokens + entry.output_tokens
            charge = BudgetService.settle(reservation, entry.cost, tokens)
            if charge is None:
                return False
        self._enqueue(_Item(entry, charge))
        return True

    async def release(self, reservation: Reservation) -> None:
        """Give back the reservation of a call that never reached a provider."""
        charge = BudgetService.release(reservation)
        if charge is not None:
            self._enqueue(_Item(None, charge))
            if self.synchronous:
                await self.flush()

    def check_backlog(self) -> None:
        """Refuse a new call (DATABASE_UNAVAILABLE, 503) while ``max_pending`` rows wait: the
        database has been unreachable for long, and a call that cannot be recorded is not
        made. Calls already running still queue their rows; none is ever dropped."""
        if len(self._queue) >= self.max_pending:
            GUARDRAIL_ERRORS.labels(component="ledger").inc()
            raise DatabaseUnavailable(
                f"The cost ledger has {len(self._queue)} calls waiting to be written and the "
                "database does not take them; new model calls are refused until it does.",
                details={"pendingRows": len(self._queue)},
            )

    def _enqueue(self, item: _Item) -> None:
        self._queue.append(item)
        if self._task is None or len(self._queue) >= self.max_rows:
            self._kick()

    @property
    def task(self) -> PeriodicTask | None:
        """The background writer (None until the first row, or when writes are synchronous)."""
        return self._task

    def _kick(self) -> None:
        """Start the writer (first use) or make it write now (a full batch; a lease taken,
        retired or running low)."""
        if self._task is None:
            if not self.background:
                return
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return
            # lease checks ride on the writer: it runs at least every lease interval
            every = self.budgets.policy.interval if self.budgets is not None else 1.0
            if not self.synchronous:
                every = min(every, self.flush_interval)
            self._task = PeriodicTask("ledger-writer", self._tick, every)
            self._task.start()
            return
        self._woken = True
        self._task.wake()

    async def _tick(self) -> None:
        """Rows every flush interval (or at once when woken); lease upkeep every tick."""
        woken, self._woken = self._woken, False
        due = time.monotonic() - self._last_write >= self.flush_interval
        try:
            await self.flush(rows=woken or due or self.synchronous)
        except DatabaseUnavailable:
            GUARDRAIL_ERRORS.labels(component="ledger").inc()
            log.warning("ledger.flush_deferred", pending=len(self._queue))

    async def flush(self, *, check_leases: bool | None = None, rows: bool = True) -> int:
        """Write every waiting row and settlement now (``rows`` False: only lease upkeep), and
        check every lease when due or when ``check_leases``. Returns the rows written. Raises
        DATABASE_UNAVAILABLE (the rows stay queued for the next attempt)."""
        written = 0
        async with self._lock:
            full = self.budgets.check_due() if check_leases is None and self.budgets else False
            if check_leases:
                full = True
            while True:
                batch = self._queue[: self.max_rows] if rows else []
                if rows:
                    self._last_write = time.monotonic()
                if not batch and not self._lease_work(full):
                    break
                del self._queue[: len(batch)]
                try:
                    await self._write(batch, full)
                except BaseException:
                    self._queue[:0] = batch
                    raise
                finally:
                    LEDGER_PENDING.set(len(self._queue))
                written += sum(1 for i in batch if i.entry is not None)
                full = False
                if not rows or not self._queue:
                    break
        return written

    def _lease_work(self, full: bool) -> bool:
        return self.budgets is not None and bool(self.budgets.leases_to_check(full))

    async def _write(self, batch: list[_Item], full: bool) -> None:
        try:
            await self._commit(batch, full)
            return
        except DatabaseUnavailable:
            raise
        except Exception:
            if len(batch) == 1 and batch[0].entry is None:
                raise
            log.exception("ledger.batch_failed", rows=len(batch))
        # one bad row must not sink the others, nor its budget charge
        for n, item in enumerate(batch):
            try:
                try:
                    await self._commit([item], False)
                except DatabaseUnavailable:
                    raise
                except Exception:
                    if item.entry is None:
                        raise
                    GUARDRAIL_ERRORS.labels(component="ledger").inc()
                    log.exception("ledger.row_failed", call_id=item.entry.id)
                    if item.charge is not None:  # the row is dropped, its charge is not
                        await self._commit([_Item(None, item.charge)], False)
            except BaseException:
                del batch[:n]  # the caller re-queues only what was not written
                raise

    async def _commit(self, batch: list[_Item], full: bool) -> None:
        """One batch's rows and settlements in one transaction. Rows alone (no budget
        applies to the calls, no lease to maintain): ``Database.insert_rows``, the INSERT
        built on the event loop and run in one hand-off (on a SQLite file a few GIL
        hand-backs per batch, not one per row). With settlements, ``Database.write_batch``:
        on a SQLite file one hand-off to the writer thread (two more when leases are
        settled: their memory is decided on the event loop)."""
        budgets = self.budgets
        plan = FlushPlan()
        lock = budgets.lease_lock if budgets is not None else contextlib.nullcontext()
        async with lock:
            leases = budgets.leases_to_check(full) if budgets is not None else []
            if not leases and all(i.charge is None for i in batch):
                # nothing to settle (no budget applies to these calls): only new rows, whose
                # INSERT is built here and run by the database's batch writer in one hand-off
                # (``Database.insert_rows``; a row written by an earlier attempt is skipped)
                rows = [i.entry for i in batch if i.entry is not None]
                for item in batch:
                    item.tried = True
                await self.db.insert_rows([(L, rows)], skip_existing=True)
                written = len(rows)
                if budgets is not None:
                    budgets.after_flush(plan, full=full)
                if written:
                    LEDGER_BATCH_ROWS.observe(written)
                    _count_usage([i.entry for i in batch if i.entry is not None])
                return
            try:
                written = await self.db.write_batch(
                    functools.partial(self._commit_in, batch, leases, plan, full)
                )
            except BaseException:
                plan.rollback()
                raise
            if budgets is not None:
                budgets.after_flush(plan, full=full)
        if written:
            LEDGER_BATCH_ROWS.observe(written)
            _count_usage([i.entry for i in batch if i.entry is not None])

    def _commit_in(
        self,
        batch: list[_Item],
        leases: list[Lease],
        plan: FlushPlan,
        full: bool,
        s: Session,
        on_loop: OnLoop,
    ) -> int:
        """The transaction of ``_commit`` (synchronous; the rows written)."""
        rows = [i.entry for i in batch if i.entry is not None]
        # Call ids are new: only a row of an item tried before can exist already (its batch
        # committed but the answer was lost), and it was charged then.
        existing: set[str] = set()
        retried = [i.entry.id for i in batch if i.tried and i.entry is not None]
        for item in batch:
            item.tried = True
        if retried:
            found = s.execute(select(L.c.id).where(L.c.id.in_(retried)))
            existing = {str(r[0]) for r in found.all()}
            rows = [r for r in rows if r.id not in existing]
        self.db.insert_in(s, L, rows, skip_existing=True)
        charges = [
            Charge(
                i.charge.reservation,
                i.charge.cost_units,
                i.charge.tokens,
                i.charge.counted and (i.entry is None or i.entry.id not in existing),
            )
            for i in batch
            if i.charge is not None
        ]
        if self.budgets is not None and (charges or leases):
            self.budgets.settle_in(s, on_loop, charges, leases, plan, full=full)
        return len(rows)

    async def close(self) -> None:
        """Write everything, return the leases, stop the writer (at shutdown)."""
        if self.budgets is not None:
            self.budgets.shutting_down()
        try:
            await self.flush(check_leases=True)
        finally:
            if self._task is not None:
                await self._task.stop()
                self._task = None


def _count_usage(entries: list[LedgerEntry]) -> None:
    calls: Counter[tuple[str, str]] = Counter()
    tokens: Counter[tuple[str, str]] = Counter()
    cost: dict[str, Decimal] = defaultdict(Decimal)
    for e in entries:
        calls[(e.model, e.status)] += 1
        tokens[(e.model, "input")] += e.input_tokens
        tokens[(e.model, "output")] += e.output_tokens
        tokens[(e.model, "cached_input")] += e.cached_input_tokens
        cost[e.model] += e.cost
    for (model, status), n in calls.items():
        USAGE_CALLS.labels(model=model, status=status).inc(n)
    for (model, kind), n in tokens.items():
        USAGE_TOKENS.labels(model=model, kind=kind).inc(n)
    for model, amount in cost.items():
        USAGE_COST.labels(model=model).inc(float(amount))


# --- aggregates -----------------------------------------------------------------------------


_COLUMNS = {
    GroupBy.DAY: L.c.day,
    GroupBy.MODEL: L.c.model,
    GroupBy.WORKFLOW: L.c.workflow_id,
    GroupBy.API_KEY: L.c.api_key_id,
    GroupBy.PROVIDER: L.c.provider,
    GroupBy.STATUS: L.c.status,
    GroupBy.KIND: L.c.kind,
    GroupBy.PROMPT_VERSION: L.c.prompt_version_id,
}


class UsageRow(ApiModel):
    group: dict[str, str | None]
    #: model calls asked for (a call's first provider attempt)
    requests: int
    #: requests that did not end with an answer
    failed_requests: int
    #: provider attempts, retries included (one ledger row each)
    calls: int
    #: attempts that failed (a retried request counts each failed attempt)
    failed_calls: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost: Decimal
    estimated_calls: int


class UsageReport(ApiModel):
    since: date | None
    until: date | None
    group_by: list[GroupBy]
    rows: list[UsageRow]
    total: UsageRow


async def usage(
    session: AsyncSession,
    ctx: TenantContext,
    *,
    group_by: list[GroupBy] | None = None,
    since: date | None = None,
    until: date | None = None,
    model: str | None = None,
    workflow_id: str | None = None,
    api_key_id: str | None = None,
) -> UsageReport:
    """Calls, tokens and cost of the caller's tenant, grouped (days are UTC, inclusive)."""
    ctx.require(Role.VIEWER)
    groups = list(dict.fromkeys(group_by or [GroupBy.DAY]))
    if since and until and since > until:
        raise ValidationFailed("since is after until.", details={"since": str(since)})
    cols = [_COLUMNS[g] for g in groups]
    measures = [
        func.count(),
        func.coalesce(func.sum(case((L.c.status != "ok", 1), else_=0)), 0),
        func.coalesce(func.sum(case((L.c.attempt <= 1, 1), else_=0)), 0),
        func.coalesce(func.sum(case((L.c.status == "ok", 1), else_=0)), 0),
        func.coalesce(func.sum(L.c.input_tokens), 0),
        func.coalesce(func.sum(L.c.output_tokens), 0),
        func.coalesce(func.sum(L.c.cached_input_tokens), 0),
        func.coalesce(func.sum(type_coerce(L.c.cost, BigInteger)), 0),
        func.coalesce(func.sum(case((L.c.estimated, 1), else_=0)), 0),
    ]
    conds = [L.c.tenant_id == ctx.tenant_id]
    if since:
        conds.append(L.c.day >= since.isoformat())
    if until:
        conds.append(L.c.day <= until.isoformat())
    if model:
        conds.append(L.c.model == model)
    if workflow_id:
        conds.append(L.c.workflow_id == workflow_id)
    if api_key_id:
        conds.append(L.c.api_key_id == api_key_id)
    q = select(*cols, *measures).where(*conds).group_by(*cols).order_by(*cols)
    rows = [
        _usage_row(
            dict(zip([g.value for g in groups], r[: len(cols)], strict=True)), r[len(cols) :]
        )
        for r in (await session.execute(q)).all()
    ]
    total_q = select(*measures).where(*conds)
    total = _usage_row({}, (await session.execute(total_q)).one())
    return UsageReport(since=since, until=until, group_by=groups, rows=rows, total=total)


def _usage_row(group: dict[str, Any], m: Any) -> UsageRow:
    return UsageRow(
        group={k: None if v is None else str(v) for k, v in group.items()},
        requests=int(m[2]),
        # each answered request has exactly one "ok" row; the others ended in an error
        failed_requests=max(0, int(m[2]) - int(m[3])),
        calls=int(m[0]),
        failed_calls=int(m[1] or 0),
        input_tokens=int(m[4]),
        output_tokens=int(m[5]),
        cached_input_tokens=int(m[6]),
        cost=units_to_money(m[7]),
        estimated_calls=int(m[8]),
    )


class LedgerCallOut(ApiModel):
    """One recorded model call (a provider attempt)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    created_at: datetime
    request_id: str | None
    api_key_id: str | None
    workflow_id: str | None
    node_id: str | None
    run_id: str | None
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost: Decimal
    latency_ms: float
    ttft_ms: float | None
    status: str
    estimated: bool
    streamed: bool
    error_code: str | None
    #: "chat" or "embedding"
    kind: str
    #: what an embedding call served (``{"documentId": ..}``, ``{"runId": ..}``)
    served: dict[str, str] | None
    attempt: int = 1
    prompt_version_id: str | None = None


async def list_calls(
    session: AsyncSession, ctx: TenantContext, *, limit: int = 50, model: str | None = None
) -> list[LedgerCallOut]:
    """The most recent calls of the tenant (newest first)."""
    ctx.require(Role.VIEWER)
    q = select(LedgerRow).where(LedgerRow.tenant_id == ctx.tenant_id)
    if model:
        q = q.where(LedgerRow.model == model)
    rows = (await session.execute(q.order_by(LedgerRow.created_at.desc()).limit(limit))).scalars()
    return [LedgerCallOut.model_validate(r) for r in rows]
