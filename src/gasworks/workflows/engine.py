"""The workflow engine service of a runtime: compiled-graph cache, live runs, persistence.

Every run executes in its own task (a client that disconnects does not stop it). Its events go
to an in-memory buffer that any number of subscribers follow; with persistence on, the run row
and its events are written in batches — at checkpoints while it streams, and once at the end
together with the conversation's new turn — so a client that reconnects with ``Last-Event-ID``
(to this process or another) continues without loss.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import functools
import operator
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, fields, replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncSession

from gasworks.background import PeriodicTask
from gasworks.db.base import Base
from gasworks.db.paging import Page
from gasworks.db.types import new_id, new_ordered_id, utcnow
from gasworks.errors import Conflict, RunInterrupted, ServerBusy, ValidationFailed
from gasworks.observability.logging import get_logger
from gasworks.tenancy.context import Role, TenantContext
from gasworks.tenancy.grants import may_manage
from gasworks.workflows import leases, service
from gasworks.workflows.catalog import WorkflowCatalog
from gasworks.workflows.context import RunContext
from gasworks.workflows.definition import ALLOWED_KEY, RETRIEVAL_NODE_TYPES
from gasworks.workflows.graph import CompiledGraph, compile_workflow
from gasworks.workflows.metrics import FAILURES, RUNS_REFUSED, count_run
from gasworks.workflows.nodes import default_registry
from gasworks.workflows.ports import ConversationData, Ports
from gasworks.workflows.registry import NodeRegistry
from gasworks.workflows.runner import NodeTiming, RunOutcome, execute, initial_state
from gasworks.workflows.schemas import (
    ConversationOut,
    MessageOut,
    RunIn,
    RunOut,
    ShareOut,
    VersionOut,
    WorkflowOut,
)
from gasworks.workflows.tables import WorkflowRunRow, WorkflowVersionRow
from gasworks.workflows.writer import RunWriter, Write

if TYPE_CHECKING:
    from gasworks.db.engine import Database

log = get_logger("gasworks.workflows")

Event = tuple[int, str, dict[str, Any]]
TERMINAL = frozenset({"run.finished", "run.failed", "run.cancelled"})
#: conversations kept in memory per process when persistence is off
MEMORY_CONVERSATIONS = 10_000
#: not an event: a marker the SSE layer turns into a comment line
KEEPALIVE: Event = (0, "keepalive", {})


@dataclass(slots=True)
class RunRecord:
    """A run's row while it runs: a plain object (an ORM instance costs ~100 µs per run in
    attribute instrumentation); turned into a ``WorkflowRunRow`` only inside the writer. A
    finished run never written before goes to the writer as it is: a *record* of the
    ``workflow_runs`` table (``row_fields``, see ``db/batch.py``), its values taken straight
    into the INSERT's parameters, no dict built per run."""

    #: the ``workflow_runs`` column of each field, in order (every column: checked by a test)
    row_fields: ClassVar[tuple[str, ...]]
    #: its table's model: a finished run is a write of its own (``writer.RowRecord``)
    row_model: ClassVar[type[Base]] = WorkflowRunRow

    id: str
    tenant_id: str
    workflow_id: str
    version: int
    principal_id: str | None
    conversation_id: str | None
    status: str
    inputs: dict[str, Any]
    output: Any
    error: dict[str, Any] | None
    node_timings: list[dict[str, Any]]
    steps: int
    tokens: int
    cost: Decimal
    started_at: datetime
    duration_ms: float | None = None
    finished_at: datetime | None = None
    #: set while a run written early is running: the engine that owns its lease
    owner_id: str | None = None
    lease_expires_at: datetime | None = None
    prompt_version_id: str | None = None

    def to_row(self) -> WorkflowRunRow:
        return WorkflowRunRow(**self.values())

    def values(self) -> dict[str, Any]:
        """The run row's column values (for the writer's multi-row INSERT)."""
        return dict(zip(_RUN_FIELDS, _run_values(self), strict=True))


_RUN_FIELDS = RunRecord.row_fields = tuple(f.name for f in fields(RunRecord))
#: every field's value in one C call
_run_values = operator.attrgetter(*_RUN_FIELDS)
#: outputs that are JSON as they are (exact types: a subclass may not serialise alike)
_SCALARS = frozenset({str, int, float, bool})


@dataclass(frozen=True, slots=True)
class RunTarget:
    """What a run of one workflow version needs once its caller is allowed: plain values
    (an ORM row's attribute reads are instrumented) and the compiled graph."""

    workflow_id: str
    slug: str
    version: int
    graph: CompiledGraph
    #: the catalog generation it was resolved at, and when it expires (``access_ttl``)
    generation: int
    expires: float


@dataclass(frozen=True, slots=True)
class WorkflowView:
    """One workflow as its page shows it (``WorkflowEngine.view``)."""

    workflow: WorkflowOut
    versions: list[VersionOut]
    version: VersionOut
    #: whether the caller may change it (publish, share, delete): then ``shares`` is filled
    may_edit: bool
    shares: list[ShareOut]
    runs: list[RunOut]
    run: RunOut | None


class LiveRun:
    """A run in this process: its event buffer and the task executing it."""

    __slots__ = (
        "_changed",
        "_done",
        "_finished",
        "events",
        "flushed",
        "inline",
        "keep_events",
        "persisted",
        "principal_id",
        "result",
        "run_id",
        "slug",
        "task",
        "tenant_id",
    )

    def __init__(self, run_id: str, tenant_id: str, slug: str, *, keep_events: bool) -> None:
        self.run_id = run_id
        self.tenant_id = tenant_id
        self.slug = slug
        self.events: list[Event] = []
        self.flushed = 0
        self.keep_events = keep_events
        #: made on first use (``done``): most runs are never waited for, and a finished run
        #: is kept a few seconds (two objects less per kept run for the garbage collector)
        self._done: asyncio.Event | None = None
        self._finished = False
        #: set by the next event; made by the first follower that waits (None: nobody waits)
        self._changed: asyncio.Event | None = None
        self.result: RunOut | None = None
        self.task: asyncio.Task[Any] | None = None
        #: the run's body when it executes in the caller's task (``WorkflowEngine.run``)
        self.inline: Coroutine[Any, Any, None] | None = None
        self.persisted = False
        #: who started the run (may cancel it; so may editors and above)
        self.principal_id: str | None = None

    @property
    def done(self) -> asyncio.Event:
        """Set once the run has finished (``finish``)."""
        done = self._done
        if done is None:
            done = self._done = asyncio.Event()
            if self._finished:
                done.set()
        return done

    def finish(self) -> None:
        """Mark the run finished: ``done`` is set (now, or when it is first made)."""
        self._finished = True
        if self._done is not None:
            self._done.set()

    def emit(self, type_: str, data: dict[str, Any]) -> None:
        self.events.append((len(self.events) + 1, type_, data))
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def follow(self, after: int, keepalive: float | None = None) -> AsyncIterator[Event]:
        """Events after ``after`` as they come; ``KEEPALIVE`` every ``keepalive`` seconds of
        silence (so proxies keep an idle stream open)."""
        pos = after
        while True:
            changed = self._changed
            if changed is None:
                changed = self._changed = asyncio.Event()
            while pos < len(self.events):
                ev = self.events[pos]
                pos += 1
                yield ev
            if self.done.is_set() and pos >= len(self.events):
                return
            if keepalive is None:
                await changed.wait()
                continue
            try:
                await asyncio.wait_for(changed.wait(), keepalive)
            except TimeoutError:
                yield KEEPALIVE


class WorkflowEngine:
    def __init__(
        self,
        db: Database,
        ports: Ports | Callable[[], Ports],
        *,
        persist: bool = True,
        cache_size: int = 256,
        flush_interval: float = 0.5,
        access_ttl: float = 0.0,
        lease_ttl: float = 30.0,
        sweep_interval: float = 10.0,
        leader: Callable[[], bool] = lambda: True,
        max_running: int = 1000,
        max_pending_writes: int = 10_000,
        max_followers: int = 64,
        nodes: NodeRegistry | None = None,
        catalog: WorkflowCatalog | None = None,
    ) -> None:
        self.db = db
        #: workflows, versions and shares (its changes drop this engine's cached access)
        self.catalog = catalog if catalog is not None else WorkflowCatalog(db)
        #: the node types this engine compiles graphs with (built by the workflows domain)
        self.nodes = nodes if nodes is not None else default_registry()
        #: this engine's id on the runs it writes early (their lease owner)
        self.owner_id = new_id("own")
        self.lease_ttl = lease_ttl
        self.sweep_interval = sweep_interval
        #: whether this process runs the deployment-wide sweep now (the leader lease)
        self.leader = leader
        self.max_running = max_running
        self.max_pending_writes = max_pending_writes
        self.max_followers = max_followers
        #: event streams open per run in this process (bounded by ``max_followers``)
        self._followers: dict[str, int] = {}
        #: runs of this engine written early and not yet finished in the database
        self._leased: set[str] = set()
        self._last_renew = self._last_sweep = 0.0
        self._maintenance: PeriodicTask | None = None
        self._ports = ports
        self.persist = persist
        self.flush_interval = flush_interval
        self._cache: OrderedDict[str, CompiledGraph] = OrderedDict()
        self._cache_size = cache_size
        self._live: dict[str, LiveRun] = {}
        #: (deadline, run id) per delay, oldest first: live runs to drop (``_forget_later``)
        self._forget: dict[float, collections.deque[tuple[float, str]]] = {}
        self._forget_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.writer = RunWriter(db) if persist else None
        self._conv_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._conv_pending: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._conv_users: dict[tuple[str, str], int] = {}
        #: conversations when persistence is off (bounded, least recently used dropped)
        self._memory_convs: OrderedDict[tuple[str, str], ConversationData] = OrderedDict()
        self.access_ttl = access_ttl
        self._targets: dict[tuple[str, str, Role, bool, str, int | None], RunTarget] = {}

    @property
    def ports(self) -> Ports:
        """Built on first use, so services registered by later startup hooks are seen."""
        if not isinstance(self._ports, Ports):
            self._ports = self._ports()
        return self._ports

    # --- graphs ---------------------------------------------------------------------------

    def graph(self, ver: WorkflowVersionRow) -> CompiledGraph:
        """The compiled graph of a published version (compiled once, then cached)."""
        g = self._cache.get(ver.id)
        if g is None:
            g = compile_workflow(ver.document, version=ver.version, registry=self.nodes)
            self._cache[ver.id] = g
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(ver.id)
        return g

    async def _target(self, ctx: TenantContext, slug: str, version: int | None) -> RunTarget:
        """The workflow (access-checked), its pinned version and that version's compiled
        graph, cached per caller for ``access_ttl`` seconds (and dropped at once by any change
        made through this process's catalog): a cached run costs one dict lookup here."""
        key = (
            ctx.tenant_id,
            ctx.principal_id,
            ctx.role,
            ctx.is_platform_admin,
            slug,
            version,
        )
        hit = self._targets.get(key)
        if (
            hit is not None
            and hit.generation == self.catalog.generation
            and hit.expires > time.monotonic()
        ):
            return hit
        generation = self.catalog.generation
        async with self.db.session() as s:
            wf, ver = await service.resolve_run_target(s, ctx, slug, version)
        target = RunTarget(
            workflow_id=wf.id,
            slug=wf.slug,
            version=ver.version,
            graph=self.graph(ver),
            generation=generation,
            expires=time.monotonic() + self.access_ttl,
        )
        if self.access_ttl > 0:
            if len(self._targets) >= 10_000:
                self._targets.clear()
            self._targets[key] = target
        return target

    # --- runs -----------------------------------------------------------------------------

    async def start(
        self,
        ctx: TenantContext,
        slug: str,
        body: RunIn,
        *,
        request_id: str | None = None,
        inline: bool = False,
    ) -> LiveRun:
        """Start a run in its own task and return at once (events follow on the LiveRun)."""
        self._admit()
        target = await self._target(ctx, slug, body.version)
        graph = target.graph
        run_id = new_ordered_id("run")
        conv_id = body.conversation_id or new_id("cnv")
        # stored per workflow and principal: another's conversation id is an unused one here
        conv_store_id = service.conversation_key(target.workflow_id, ctx.principal_id, conv_id)
        live = LiveRun(run_id, ctx.tenant_id, target.slug, keep_events=body.stream)
        live.principal_id = ctx.principal_id
        rc = RunContext(
            run_id=run_id,
            tenant_id=ctx.tenant_id,
            workflow_id=target.slug,
            version=target.version,
            ports=self.ports,
            emit=live.emit if body.stream else None,
            conversation_id=conv_id,
            session_id=body.session_id,
            request_id=request_id,
            api_key_id=ctx.api_key_id,
        )
        state = initial_state(graph, body.input, rc)  # bad inputs fail the request, not the run
        if not RETRIEVAL_NODE_TYPES.isdisjoint(graph.node_types):
            await self._allow(ctx, graph, rc, state)
        conv_key = (ctx.tenant_id, conv_store_id)
        lock: asyncio.Lock | None = None
        if body.conversation_id is None:
            rc.set_conversation(ConversationData(id=conv_store_id))
        else:
            # turns of one conversation run one after the other, each seeing the last one saved
            lock = self._conv_locks.setdefault(conv_key, asyncio.Lock())
            self._conv_users[conv_key] = self._conv_users.get(conv_key, 0) + 1
            try:
                await lock.acquire()
            except BaseException:
                self._unuse(conv_key)
                raise
            try:
                pending = self._conv_pending.get(conv_key)
                if pending is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(pending)
                if self.writer is None:  # persistence off: conversations live in this process
                    rc.set_conversation(self._memory_conversation(conv_key))
                else:
                    async with self.db.session() as s:
                        conv = await service.load_conversation(s, ctx.tenant_id, conv_store_id)
                    rc.set_conversation(conv)
            except BaseException:
                self._release(conv_key, lock)
                raise
        row = RunRecord(
            id=run_id,
            tenant_id=ctx.tenant_id,
            workflow_id=target.workflow_id,
            version=target.version,
            principal_id=ctx.principal_id,
            conversation_id=conv_id,
            status="running",
            inputs=body.input,
            output=None,
            error=None,
            node_timings=[],
            steps=0,
            tokens=0,
            cost=Decimal(0),
            started_at=utcnow(),
        )
        if body.stream:
            live.emit(
                "run.started",
                {
                    "runId": run_id,
                    "workflow": target.slug,
                    "version": target.version,
                    "conversationId": conv_id,
                },
            )
        if self.writer is not None and body.stream:
            # the row exists early so a client can resume from another server process
            # the row carries this engine's lease (see workflows/leases.py), dated at write time
            row.owner_id = self.owner_id
            first = replace(row)  # a snapshot; ORM rows are built inside each write attempt
            self.writer.submit(lambda s: service.insert_run(s, self._leased_row(first)))
            live.persisted = True
            self._leased.add(run_id)
        self._live[run_id] = live
        body_coro = self._run(live, graph, target.slug, row, rc, state, conv_key, lock)
        if inline:
            live.task = asyncio.current_task()
            live.inline = body_coro
            return live
        task = asyncio.create_task(body_coro)
        live.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return live

    async def _allow(
        self, ctx: TenantContext, graph: CompiledGraph, rc: RunContext, state: dict[str, Any]
    ) -> None:
        """What the caller may search, computed here by the server (never from the run's
        inputs): kept on the run context for the nodes, shown as ``allowedDocumentIds``
        (set after the inputs, so an input of that name cannot replace it). A collection a
        VectorSearch node names that does not exist fails the request."""
        port = self.ports.retrieval
        if port is None:
            raise ValidationFailed(
                "This workflow has retrieval nodes but retrieval is not available here.",
                details={"workflow": rc.workflow_id},
            )
        rc.allowed = await port.allowed(ctx.tenant_id, ctx.principal_id)
        for node_id, node in graph.nodes.items():
            collections = getattr(node.node, "collections", None)
            if node.type == "VectorSearch" and collections:
                try:
                    await port.allowed(ctx.tenant_id, ctx.principal_id, collections=collections)
                except ValidationFailed as exc:
                    raise ValidationFailed(
                        f"Node '{node_id}': {exc.message}", details={"node": node_id, **exc.details}
                    ) from exc
        state[ALLOWED_KEY] = rc.allowed.document_ids()

    async def _run(
        self,
        live: LiveRun,
        graph: CompiledGraph,
        slug: str,
        row: RunRecord,
        rc: RunContext,
        state: dict[str, Any],
        conv_key: tuple[str, str],
        lock: asyncio.Lock | None,
    ) -> None:
        flusher = asyncio.create_task(self._flush_loop(live)) if live.persisted else None
        cancelled = False
        timings: list[NodeTiming] = []
        try:
            try:
                outcome = await execute(graph, row.inputs, rc, state=state, timings=timings)
            except asyncio.CancelledError:
                cancelled = True
                outcome = RunOutcome(
                    "cancelled",
                    None,
                    state,
                    len(timings),
                    timings,
                    {"code": "RUN_CANCELLED", "message": "The run was cancelled."},
                )
            finally:
                if flusher is not None:
                    flusher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await flusher
            row.status = outcome.status
            row.output = _jsonable(outcome.output)
            row.error = outcome.error
            row.node_timings = [t.to_dict() for t in outcome.timings]
            row.steps = outcome.steps
            row.tokens = rc.tokens
            row.cost = rc.cost
            row.prompt_version_id = rc.prompt_version_id
            row.duration_ms = round(outcome.duration_ms, 3)
            row.finished_at = utcnow()
            result = RunOut.of(row, slug)
            count_run(outcome.status, outcome.duration_ms)
            if outcome.status == "failed" and outcome.timings:
                code = (outcome.error or {}).get("code", "UNKNOWN")
                FAILURES.labels(node_type=outcome.timings[-1].type, code=code).inc()
            final = {"succeeded": "run.finished", "failed": "run.failed"}.get(
                outcome.status, "run.cancelled"
            )
            live.result = result
            if live.keep_events:
                live.emit(final, result.model_dump(mode="json", by_alias=True))
            conv = rc.loaded_conversation
            changed = conv is not None and (conv.dirty or bool(conv.pending))
            if self.writer is None and outcome.status == "succeeded" and conv and changed:
                self._remember_conversation(conv_key, conv)
            if self.writer is not None and not live.persisted and lock is None:
                # nobody waits for this write alone (``drain`` covers it): no future per run
                self.writer.submit_untracked(self._final_write(live, row, rc, outcome))
            elif self.writer is not None:
                fut = self.writer.submit(self._final_write(live, row, rc, outcome))
                if live.persisted:  # renewed until its final state is written
                    fut.add_done_callback(functools.partial(self._final_written, live))
                if lock is not None:
                    self._conv_pending[conv_key] = fut
                    fut.add_done_callback(functools.partial(self._forget_pending, conv_key))
        finally:
            if lock is not None:
                self._release(conv_key, lock)
            live.finish()
            # a streamed run's buffer serves reconnects for a minute; others need no buffer
            self._forget_later(live, 60.0 if live.keep_events else 5.0)
        if cancelled and live.task is not None and live.task is asyncio.current_task():
            if live.task in self._tasks:
                return  # the run's own task: the cancellation ends here, recorded
            raise asyncio.CancelledError  # the caller's task was cancelled: keep it cancelled

    def _final_written(self, live: LiveRun, fut: asyncio.Future[None]) -> None:
        self._leased.discard(live.run_id)
        if not fut.cancelled() and isinstance(fut.exception(), RunInterrupted):
            # swept while cut off: the database's interrupted run is the truth, not our result
            self._live.pop(live.run_id, None)

    def _admit(self) -> None:
        """Back-pressure: refuse a new run (503 SERVER_BUSY, Retry-After) rather than let
        running tasks or queued writes grow without bound."""
        busy = None
        if len(self._tasks) >= self.max_running:
            busy = {"running": len(self._tasks), "limit": self.max_running}
        elif self.writer is not None and self.writer.pending >= self.max_pending_writes:
            busy = {"pendingWrites": self.writer.pending, "limit": self.max_pending_writes}
        if busy is not None:
            RUNS_REFUSED.inc()
            raise ServerBusy(
                "This server process is running as many workflow runs as it may; retry shortly.",
                details={**busy, "retryAfterSeconds": 1},
            )

    def _leased_row(self, rec: RunRecord) -> WorkflowRunRow:
        row = rec.to_row()
        row.lease_expires_at = leases.deadline(self.lease_ttl)
        return row

    # --- leases: heartbeat of this engine's runs, sweep of runs whose owner died ----------

    @property
    def maintenance_task(self) -> PeriodicTask | None:
        """The run-lease heartbeat and sweep (None when not started)."""
        return self._maintenance

    def start_maintenance(self) -> None:
        """Renew this engine's run leases and sweep expired ones in the background."""
        if self.writer is None or self._maintenance is not None:
            return
        every = min(self.lease_ttl / 3, self.sweep_interval)
        self._maintenance = PeriodicTask("workflow-run-leases", self.maintain, every)
        self._maintenance.start()

    async def maintain(self) -> None:
        """One round: renew when due and this engine has running runs; sweep when due."""
        now = time.monotonic()
        if self._leased and now - self._last_renew >= self.lease_ttl / 3:
            self._last_renew = now
            try:
                async with self.db.session() as s:
                    await leases.renew(s, self.owner_id, self.lease_ttl)
            except Exception:
                log.exception("workflow.lease_renew_failed", owner=self.owner_id)
        if now - self._last_sweep >= self.sweep_interval and self.leader():
            self._last_sweep = now
            await self.sweep()

    async def sweep(self) -> int:
        """Mark runs whose lease expired ``RUN_INTERRUPTED`` (at most one batch); returns how
        many. Idle cost: one indexed query returning nothing."""
        now = utcnow()
        async with self.db.read_session() as s:  # no write lock while nothing expired
            ids = await leases.expired(s, now)
        done = 0
        for run_id in ids:
            try:
                async with self.db.session() as s:
                    done += await leases.interrupt(s, run_id, now)
            except Exception:  # e.g. its owner was only partitioned and wrote an event: retry
                log.exception("workflow.interrupt_failed", run_id=run_id)
        return done

    def _final_write(
        self, live: LiveRun, row: RunRecord, rc: RunContext, outcome: RunOutcome
    ) -> Write:
        conv = rc.loaded_conversation
        save_conv = (
            outcome.status == "succeeded"
            and conv is not None
            and (conv.dirty or bool(conv.pending))
        )
        events = live.events[live.flushed :] if live.keep_events else []
        live.flushed += len(events)
        exists = live.persisted
        if not exists and not save_conv:  # new rows only: batched without a session
            return row if not events else service.new_run_rows(row, events)

        async def write(s: AsyncSession) -> None:
            if save_conv and conv is not None:
                await service.save_conversation(
                    s,
                    row.tenant_id,
                    row.workflow_id,
                    conv,
                    row.id,
                    client_id=row.conversation_id,
                    principal_id=row.principal_id or "",
                )
            await service.finish_run(s, run=row.values(), exists=exists, events=events)

        return write

    def _flush(self, live: LiveRun) -> None:
        """Queue the run's events written so far (a checkpoint while it streams)."""
        pending = live.events[live.flushed :]
        if pending and self.writer is not None:
            live.flushed += len(pending)
            tenant_id, run_id = live.tenant_id, live.run_id
            self.writer.submit(service.event_rows(tenant_id, run_id, pending))

    async def _flush_loop(self, live: LiveRun) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            self._flush(live)

    def _memory_conversation(self, key: tuple[str, str]) -> ConversationData:
        got = self._memory_convs.get(key)
        if got is None:
            return ConversationData(id=key[1])
        self._memory_convs.move_to_end(key)
        return ConversationData(
            id=got.id, history=list(got.history), data=copy.deepcopy(got.data), turn=got.turn
        )

    def _remember_conversation(self, key: tuple[str, str], conv: ConversationData) -> None:
        self._memory_convs[key] = ConversationData(
            id=conv.id, history=conv.history + conv.pending, data=conv.data, turn=conv.turn + 1
        )
        self._memory_convs.move_to_end(key)
        while len(self._memory_convs) > MEMORY_CONVERSATIONS:
            self._memory_convs.popitem(last=False)

    def _release(self, key: tuple[str, str], lock: asyncio.Lock) -> None:
        lock.release()
        self._unuse(key)

    def _unuse(self, key: tuple[str, str]) -> None:
        left = self._conv_users.get(key, 1) - 1
        if left <= 0:
            self._conv_users.pop(key, None)
            self._conv_locks.pop(key, None)
        else:
            self._conv_users[key] = left

    def _forget_pending(self, key: tuple[str, str], fut: asyncio.Future[None]) -> None:
        if self._conv_pending.get(key) is fut:
            del self._conv_pending[key]

    def _forget_later(self, live: LiveRun, delay: float = 60.0) -> None:
        """Drop the run's buffer after ``delay`` seconds. One timer serves every run (a queue
        per delay, deadlines in order): a timer handle per run cost more than the rest of a
        short run's bookkeeping."""
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        self._forget.setdefault(delay, collections.deque()).append((due, live.run_id))
        if self._forget_timer is None or due < self._forget_timer.when():
            if self._forget_timer is not None:
                self._forget_timer.cancel()
            self._forget_timer = loop.call_at(due, self._forget_due)

    def _forget_due(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time() + 0.001  # a timer may fire a hair early: never spin on it
        self._forget_timer = None
        nxt: float | None = None
        for queue in self._forget.values():
            while queue and queue[0][0] <= now:
                self._live.pop(queue.popleft()[1], None)
            if queue and (nxt is None or queue[0][0] < nxt):
                nxt = queue[0][0]
        if nxt is not None:
            self._forget_timer = loop.call_at(nxt, self._forget_due)

    async def drain(self) -> None:
        """Wait until every finished run of this process is in the database."""
        if self.writer is not None:
            await self.writer.drain()

    async def get_run(self, ctx: TenantContext, run_id: str) -> RunOut:
        """One run: a run this process has finished answers from memory (once the caller is
        known to see its workflow), any other from the database (this process's writes first)."""
        live = self.finished(ctx.tenant_id, run_id)
        if live is not None and live.result is not None:
            async with self.db.session() as s:
                await service.get_workflow(s, ctx, live.slug)  # 404 unless allowed to see it
            return live.result
        await self.drain()
        async with self.db.session() as s:
            return await service.get_run(s, ctx, run_id)

    async def list_runs(self, ctx: TenantContext, slug: str, page: Page) -> list[RunOut]:
        """Recent runs of a workflow, this process's finished runs included."""
        await self.drain()
        async with self.db.session() as s:
            return await service.list_runs(s, ctx, slug, page)

    async def list_conversations(
        self, ctx: TenantContext, slug: str, page: Page
    ) -> list[ConversationOut]:
        await self.drain()
        async with self.db.session() as s:
            return await service.list_conversations(s, ctx, slug, page)

    async def get_conversation(
        self, ctx: TenantContext, conversation_id: str, messages: Page | None
    ) -> ConversationOut:
        """A conversation with a page of its messages (``None``: without messages)."""
        await self.drain()
        async with self.db.session() as s:
            return await service.get_conversation(s, ctx, conversation_id, messages)

    async def conversation_messages(
        self, ctx: TenantContext, store_key: str, page: Page
    ) -> list[MessageOut]:
        """A page of the messages (oldest first) of a conversation the caller was given by
        ``get_conversation`` (``store_key`` is never shown to callers)."""
        async with self.db.read_session() as s:
            return await service.conversation_messages(s, ctx, store_key, page)

    async def view(
        self,
        ctx: TenantContext,
        slug: str,
        *,
        version: int | None = None,
        run_id: str | None = None,
        page: Page,
        runs: Page,
    ) -> WorkflowView:
        """One workflow as its page shows it, in one snapshot: a page of its versions, one
        version (the latest by default), the shares when the caller may change them, a page
        of its runs (this process's finished ones included) and one run."""
        await self.drain()
        async with self.db.read_session() as s:
            wf = await service.get_workflow(s, ctx, slug)
            editable = may_manage(ctx, wf.owner_id)
            return WorkflowView(
                workflow=wf,
                versions=await service.list_versions(s, ctx, slug, page),
                version=await service.get_version(s, ctx, slug, version),
                may_edit=editable,
                shares=await service.list_shares(s, ctx, slug, page) if editable else [],
                runs=await service.list_runs(s, ctx, slug, runs),
                run=await service.get_run(s, ctx, run_id) if run_id else None,
            )

    async def open_events(
        self, ctx: TenantContext, run_id: str, after: int = 0, *, keepalive: float | None = None
    ) -> tuple[Event | None, AsyncIterator[Event]]:
        """The run's first event and the rest: reading the first one checks that the caller
        may see the run, so an adapter can answer 404 before its response starts."""
        events = self.events(ctx, run_id, after, keepalive=keepalive)
        return await anext(aiter(events), None), events

    async def run(
        self, ctx: TenantContext, slug: str, body: RunIn, *, request_id: str | None = None
    ) -> RunOut:
        """Run to the end and return the result. A non-streamed run executes in the caller's
        task (no task switch on the hot path): cancelling the caller cancels the run."""
        live = await self.start(ctx, slug, body, request_id=request_id, inline=not body.stream)
        if live.inline is not None:
            coro, live.inline = live.inline, None
            await coro
        else:
            await live.done.wait()
        assert live.result is not None
        return live.result

    async def events(
        self, ctx: TenantContext, run_id: str, after: int = 0, *, keepalive: float | None = None
    ) -> AsyncIterator[Event]:
        """The run's events after ``after``: live from this process, else from the database
        (polled while the run is still going elsewhere). At most ``max_followers`` streams of
        one run at once in this process (a live follower costs a task and a buffer cursor, a
        follower of a run elsewhere a database query per flush interval): one more is refused
        with SERVER_BUSY before its response starts."""
        live = self._live.get(run_id)
        if live is not None and live.tenant_id != ctx.tenant_id:
            live = None
        if live is None:
            await self.drain()
        async with self.db.session() as s:
            if live is None:
                await service.get_run(s, ctx, run_id)  # 404 unless visible
            else:
                await service.get_workflow(s, ctx, live.slug)  # 404 unless allowed to run it
        following = self._followers.get(run_id, 0)
        if following >= self.max_followers:
            RUNS_REFUSED.inc()
            raise ServerBusy(
                "This run has as many event streams open in this server process as it may; "
                "retry shortly, or read the run's result with GET /api/workflow-runs/{id}.",
                details={
                    "followers": following,
                    "limit": self.max_followers,
                    "retryAfterSeconds": 1,
                },
            )
        self._followers[run_id] = following + 1
        try:
            async for ev in self._events(ctx, run_id, after, keepalive, live):
                yield ev
        finally:
            left = self._followers.pop(run_id, 1) - 1
            if left > 0:
                self._followers[run_id] = left

    async def _events(
        self,
        ctx: TenantContext,
        run_id: str,
        after: int,
        keepalive: float | None,
        live: LiveRun | None,
    ) -> AsyncIterator[Event]:
        if live is not None and live.keep_events:
            async for ev in live.follow(after, keepalive):
                yield ev
            return
        pos = after
        quiet_since = time.monotonic()
        while True:
            async with self.db.session() as s:
                status, evs = await service.run_events(s, ctx.tenant_id, run_id, pos)
            for ev in evs:
                pos = ev[0]
                yield ev
                if ev[1] in TERMINAL:
                    return
            if status != "running":
                return
            now = time.monotonic()
            if evs:
                quiet_since = now
            elif keepalive is not None and now - quiet_since >= keepalive:
                quiet_since = now
                yield KEEPALIVE
            await asyncio.sleep(self.flush_interval)

    async def cancel(self, ctx: TenantContext, run_id: str) -> RunOut:
        live = self._live.get(run_id)
        if live is None or live.tenant_id != ctx.tenant_id:
            await self.drain()
            async with self.db.session() as s:
                out = await service.get_run(s, ctx, run_id)
                service.check_may_cancel(ctx, await service.run_starter(s, ctx, run_id))
            if out.status == "running":
                async with self.db.session() as s:  # its owner is gone: close it now
                    closed = await leases.interrupt(s, run_id, utcnow(), ctx.tenant_id)
                if closed:
                    async with self.db.session() as s:
                        return await service.get_run(s, ctx, run_id)
                raise Conflict(
                    "The run is executing in another server process; cancel it there.",
                    details={"id": run_id},
                )
            return out
        async with self.db.session() as s:
            await service.get_workflow(s, ctx, live.slug)
        service.check_may_cancel(ctx, live.principal_id)
        if live.task is not None and not live.done.is_set():
            live.task.cancel()
        await live.done.wait()
        assert live.result is not None
        return live.result

    async def stop_maintenance(self) -> None:
        if self._maintenance is not None:
            await self._maintenance.stop()
            self._maintenance = None

    async def close(self) -> None:
        if self._forget_timer is not None:
            self._forget_timer.cancel()
            self._forget_timer = None
        await self.stop_maintenance()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self.writer is not None:
            await self.writer.close()

    def finished(self, tenant_id: str, run_id: str) -> LiveRun | None:
        """A run of this process that has finished (its result is at hand), else None."""
        live = self._live.get(run_id)
        if live is None or live.tenant_id != tenant_id or live.result is None:
            return None
        return live


def _jsonable(value: Any) -> Any:
    import json

    if value is None or type(value) in _SCALARS:  # the common outputs: nothing to check
        return value
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=str))
