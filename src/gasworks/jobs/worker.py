"""Workers: claim jobs, run their handler with a heartbeat, record the outcome.

A worker runs up to ``concurrency`` jobs at once. While idle it polls at most once per
``poll_max`` seconds (starting at ``poll_min`` after the last job and doubling), and an
enqueue committed in the same process wakes it at once, so an idle deployment costs one small
query per worker per ``poll_max``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from gasworks.errors import ShuttingDown
from gasworks.jobs.queue import Job, JobQueue, LeaseLost, Linger, Starter
from gasworks.observability.logging import get_logger

log = get_logger("gasworks.jobs")

Handler = Callable[[Job], Awaitable[None]]
#: runs several jobs of one kind and tenant at once; one outcome per job, in order: ``None``
#: (done, or finished by the handler), ``Postpone``, ``LeaseLost`` or the attempt's error
BatchHandler = Callable[[list[Job]], Awaitable[list[BaseException | None]]]
#: told of every failed attempt: the job, the error, and the job's new status
#: (``queued`` for a retry, ``postponed`` (no attempt spent), ``dead``, or ``lost``)
FailureHook = Callable[[Job, BaseException, str], Awaitable[None]]


class Postpone(Exception):
    """Raised by a handler to put its job back without spending an attempt."""

    def __init__(self, cause: BaseException, delay: float) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.delay = delay


@dataclass(slots=True, frozen=True)
class Batching:
    """A job kind whose ready jobs of one tenant run together: the worker holding one takes up
    to ``max_jobs - 1`` more (``JobQueue.claim_more``) whose payloads' ``weight_key`` values
    sum to at most ``budget``, and gives them all to ``handler``. Each job keeps its own lease
    (renewed with the others), attempts, backoff and dead letter: the handler answers one
    outcome per job and the worker records each as it records a single job's.

    ``linger`` (seconds; ``None``: off): the worker's claims take a batch of this kind ahead
    of older jobs of other kinds once one is full or its oldest job has been ready that long
    (``queue.Linger``), so that a backlog of other work (a big upload's extractions) does not
    hold back the batches that work produces."""

    handler: BatchHandler
    max_jobs: int
    budget: int
    weight_key: str = "weight"
    linger: float | None = None
    #: what one batch may grow to with the jobs ready when it is claimed (``None``:
    #: ``max_jobs`` / ``budget``, which then only say when a batch is full for ``linger``)
    most_jobs: int | None = None
    most_budget: int | None = None
    #: at most one batch of this kind runs at a time in this worker: its other slots claim
    #: other kinds meanwhile (a second batch would only wait for a one-at-a-time resource,
    #: like the local embedding model, holding a slot), and the next batch, claimed when this
    #: one ends, takes everything that became ready meanwhile. The handler may end the hold
    #: sooner, once it is done with the resource (``Job.release_exclusive`` of its first job):
    #: the next batch may then be claimed while this one records its outcomes
    exclusive: bool = False


@dataclass(slots=True)
class WorkerConfig:
    concurrency: int = 2
    lease_seconds: float = 30.0
    poll_min: float = 0.05
    poll_max: float = 1.0


def next_poll_delay(current: float, cfg: WorkerConfig) -> float:
    """The idle back-off: doubles from ``poll_min`` up to ``poll_max``."""
    return min(cfg.poll_max, max(cfg.poll_min, current * 2))


def default_worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, Handler],
        config: WorkerConfig | None = None,
        *,
        worker_id: str | None = None,
        on_failure: FailureHook | None = None,
        batches: Mapping[str, Batching] | None = None,
        starters: Mapping[str, Starter] | None = None,
    ) -> None:
        self.on_failure = on_failure
        #: by kind: the start of a job's work, recorded in its claim (``JobQueue.claim``)
        self.starters = dict(starters or {})
        self.batches = dict(batches or {})
        self._linger = [
            Linger(kind, spec.max_jobs, spec.budget, spec.weight_key, spec.linger)
            for kind, spec in self.batches.items()
            if spec.linger is not None and spec.max_jobs > 1 and kind in handlers
        ]
        self.queue = queue
        self.handlers = dict(handlers)
        self.config = config or WorkerConfig()
        self.worker_id = worker_id or default_worker_id()
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        #: exclusive batched kinds (``Batching.exclusive``) with a batch claimed or running
        self._exclusive: dict[str, int] = {}
        #: jobs whose claim already holds their exclusive kind (``run``)
        self._marked: set[str] = set()
        self._stopping = asyncio.Event()
        #: jobs this worker finished or failed (observability, tests)
        self.processed = 0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            # holds left by batches cancelled at a previous stop must not block their kinds
            self._exclusive.clear()
            self._marked.clear()
            self._task = asyncio.create_task(self.run(), name=f"worker:{self.worker_id}")

    async def stop(self, *, grace: float = 10.0) -> None:
        """Stop claiming; wait up to ``grace`` seconds for running jobs, then cancel them
        (their leases expire and another worker retries them)."""
        self._stopping.set()
        self.queue.wakeup.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._running:
            _, pending = await asyncio.wait(self._running, timeout=grace)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def run(self) -> None:
        slots = asyncio.Semaphore(self.config.concurrency)
        delay = self.config.poll_min
        while not self._stopping.is_set():
            await slots.acquire()
            if self._stopping.is_set():
                slots.release()
                break
            kinds = (
                [k for k in self.handlers if not self._exclusive.get(k)]
                if self._exclusive
                else self.handlers.keys()
            )
            try:
                job = await self.queue.claim(
                    self.worker_id,
                    kinds,
                    self.config.lease_seconds,
                    linger=self._linger,
                    starters=self.starters,
                )
            except Exception:
                log.exception("jobs.claim_failed", worker=self.worker_id)
                job = None
            if job is None:
                slots.release()
                self.queue.wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.queue.wakeup.wait(), timeout=delay)
                delay = next_poll_delay(delay, self.config)
                continue
            delay = self.config.poll_min
            spec = self.batches.get(job.kind)
            if spec is not None and spec.exclusive:  # from now on: before the next claim
                self._hold(job.kind)
                self._marked.add(job.id)
            task = asyncio.create_task(self._run_one(job, slots))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    # -- one job ----------------------------------------------------------------------------

    async def _run_one(self, job: Job, slots: asyncio.Semaphore) -> None:
        held: dict[str, Job] = {job.id: job}
        beat = asyncio.create_task(self._heartbeat(held))
        try:
            await self.run_job(job, held)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            slots.release()

    async def run_job(self, job: Job, held: dict[str, Job] | None = None) -> None:
        """Run ``job``'s handler and record the outcome, then the jobs it handed on to this
        worker (``Job.then``, ``JobQueue.enqueue_next``) one after the other (also used
        directly by tests). A job of a batched kind (``Batching``) takes more ready jobs of
        its tenant and kind with it. ``held``: the jobs whose leases the heartbeat renews."""
        held = {} if held is None else held
        todo: deque[Job] = deque([job])
        while todo:
            current = todo.popleft()
            held[current.id] = current
            group = [current]
            spec = self.batches.get(current.kind)
            if spec is None:
                await self._run_single(current)
            elif spec.exclusive:
                if current.id in self._marked:  # held since its claim (``run``)
                    self._marked.discard(current.id)
                else:
                    self._hold(current.kind)
                release = self._releaser(current.kind)
                current.release_exclusive = release
                try:
                    group += await self._group(current, spec, held)
                    await self._run_batch(spec, group)
                finally:
                    current.release_exclusive = None
                    release()
            else:
                group += await self._group(current, spec, held)
                await self._run_batch(spec, group)
            for done in group:
                held.pop(done.id, None)
                nxt = done.then if done.finished else None
                if nxt is not None and self._stopping.is_set():
                    # leased to this worker, which is going away: back to the queue at once
                    stopping = ShuttingDown("The worker stopped before running this job.")
                    await self.queue.postpone(nxt, stopping, 0.0)
                    nxt = None
                if nxt is not None:
                    held[nxt.id] = nxt
                    todo.append(nxt)

    async def _group(self, job: Job, spec: Batching, held: dict[str, Job]) -> list[Job]:
        """The jobs that run with ``job`` (``claim_more``), held for the heartbeat."""
        if spec.max_jobs <= 1 or self._stopping.is_set():
            return []
        more = await self._more(job, spec)
        for extra in more:
            held[extra.id] = extra
        return more

    def _hold(self, kind: str) -> None:
        self._exclusive[kind] = self._exclusive.get(kind, 0) + 1

    def _releaser(self, kind: str) -> Callable[[], None]:
        """``_release`` of one exclusive batch's hold, once however often it is called (by the
        batch handler when its resource is free: ``Job.release_exclusive``, and at its end)."""
        done = False

        def release() -> None:
            nonlocal done
            if not done:
                done = True
                self._release(kind)

        return release

    def _release(self, kind: str) -> None:
        left = self._exclusive.pop(kind, 1) - 1
        if left > 0:
            self._exclusive[kind] = left
        self.queue.wake()  # the kind is claimable again: no idle poll's wait

    async def _more(self, job: Job, spec: Batching) -> list[Job]:
        try:
            weight = job.payload.get(spec.weight_key, 1)
            used = weight if isinstance(weight, int) and weight > 0 else 1
            most_jobs = spec.max_jobs if spec.most_jobs is None else spec.most_jobs
            most_budget = spec.budget if spec.most_budget is None else spec.most_budget
            return await self.queue.claim_more(
                job, limit=most_jobs - 1, budget=most_budget - used, weight_key=spec.weight_key
            )
        except Exception:
            log.exception("jobs.claim_more_failed", job=job.id, kind=job.kind)
            return []

    async def _run_single(self, job: Job) -> None:
        handler = self.handlers[job.kind]
        try:
            await handler(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._settle(job, exc)
            return
        await self._settle(job, None)

    async def _run_batch(self, spec: Batching, jobs: list[Job]) -> None:
        try:
            outcomes = await spec.handler(jobs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the handler itself broke: every job's attempt failed
            outcomes = [exc] * len(jobs)
        if len(outcomes) != len(jobs):
            broken = RuntimeError("The batch handler answered the wrong number of outcomes.")
            outcomes = [broken] * len(jobs)
        for job, outcome in zip(jobs, outcomes, strict=True):
            await self._settle(job, outcome)

    async def _settle(self, job: Job, exc: BaseException | None) -> None:
        """Record one job's outcome: done, lease lost, postponed, or a failed attempt."""
        try:
            if exc is None:
                if not job.finished:
                    async with self.queue.db.session() as s:
                        await self.queue.finish(s, job)
                log.debug("jobs.done", job=job.id, kind=job.kind, attempt=job.attempt)
            elif isinstance(exc, LeaseLost):
                log.info("jobs.lease_lost", job=job.id, kind=job.kind)
            elif isinstance(exc, Postpone):
                if await self.queue.postpone(job, exc.cause, exc.delay):
                    await self._tell(job, exc.cause, "postponed")
                log.info("jobs.postponed", job=job.id, kind=job.kind, delay=exc.delay)
            else:
                status = await self.queue.fail(job, exc)
                await self._tell(job, exc, status)
                log.info(
                    "jobs.failed",
                    job=job.id,
                    kind=job.kind,
                    attempt=job.attempt,
                    code=getattr(exc, "code", type(exc).__name__),
                    now=status,
                )
        except LeaseLost:
            log.info("jobs.lease_lost", job=job.id, kind=job.kind)
        finally:
            self.processed += 1

    async def _tell(self, job: Job, exc: BaseException, status: str) -> None:
        if self.on_failure is not None:
            try:
                await self.on_failure(job, exc, status)
            except Exception:
                log.exception("jobs.failure_hook_failed", job=job.id)

    async def _heartbeat(self, held: dict[str, Job]) -> None:
        every = max(0.05, self.config.lease_seconds / 3)
        while True:
            await asyncio.sleep(every)
            jobs: list[Job] = []
            for job in list(held.values()):
                jobs.append(job)
                # a finished job may have handed on (``then``, leased in its commit) before
                # ``run_job`` takes the next one in hand: keep that lease alive too
                nxt = job.then
                while job.finished and nxt is not None:
                    jobs.append(nxt)
                    job, nxt = nxt, nxt.then
            try:
                lost = await self.queue.heartbeat_many(jobs, self.config.lease_seconds)
            except Exception:
                log.warning("jobs.heartbeat_failed", jobs=len(jobs))
                continue
            for job in lost:
                if not job.finished and held.get(job.id) is job:
                    del held[job.id]  # lost: another worker owns it now
