"""A durable job queue in gasworks' own database (SQLite and PostgreSQL).

* ``enqueue`` adds a row inside the caller's transaction, so a job exists exactly when the
  rows that caused it do.
* ``claim`` takes one ready job (queued and due, or running with an expired lease) for a
  worker: the tenant served least recently first (fairness), then that tenant's oldest job.
  A kind that runs in batches may *linger* (``Linger``): its ready jobs of one tenant are
  claimed ahead of older jobs once they make a full batch, or once the oldest of them has
  waited ``Linger.seconds``.
  PostgreSQL skips rows other workers hold (``FOR UPDATE SKIP LOCKED``); SQLite serialises
  writers anyway (every session begins ``BEGIN IMMEDIATE``, see ``db/dialects.py``), and
  SQLAlchemy renders no ``FOR UPDATE`` there, so the same statement serves both.
* Each claim hands out a fresh *lease token*; ``heartbeat``, ``finish`` and ``fail`` act only
  while the token still matches, so a worker whose lease expired (and whose job another
  worker took) can no longer finish it. ``finish(session, job)`` deletes the job in the
  handler's own transaction: the handler's writes and the job's completion commit together.
* A failed attempt goes back to the queue after an exponential backoff with jitter (per kind),
  or, out of attempts or not retryable, becomes a *dead letter* with its error code, message
  and attempt history, which can be listed, replayed or discarded.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Table, and_, bindparam, delete, func, nulls_first, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from gasworks.db.engine import Database
from gasworks.db.paging import ALL, Page
from gasworks.db.types import new_id, utcnow
from gasworks.errors import Conflict, GasworksError, NotFound
from gasworks.jobs.tables import JobRow, JobTenantRow

_JOBS: Table = JobRow.__table__  # type: ignore[assignment]
_TENANTS: Table = JobTenantRow.__table__  # type: ignore[assignment]

#: ``finish_sync``'s DELETE, built once (Core: a stage's commit runs it per job)
_FINISH = delete(_JOBS).where(
    _JOBS.c.id == bindparam("id"), _JOBS.c.lease_token == bindparam("token")
)

#: ``_take``'s UPDATE of the taken job, built once (its values are the parameters)
_TAKE = update(_JOBS).where(_JOBS.c.id == bindparam("_job"))

#: how many of the least-recently-served tenants a claim looks at before giving up
_TENANT_CANDIDATES = 8
#: history entries kept per job (the newest)
_HISTORY_MAX = 20


class LeaseLost(Conflict):
    """The job's lease expired and another worker took it (or it was cancelled)."""

    code = "JOB_LEASE_LOST"


class JobNotFound(NotFound):
    code = "JOB_NOT_FOUND"


@dataclass(slots=True, frozen=True)
class RetryPolicy:
    """Attempts and backoff of one job kind: attempt ``n`` failing waits
    ``min(max_delay, base_delay * 2**(n-1))`` reduced by up to ``jitter`` of itself."""

    max_attempts: int = 5
    base_delay: float = 2.0
    max_delay: float = 300.0
    jitter: float = 0.5

    def delay(self, attempt: int, rng: random.Random) -> float:
        raw = min(self.max_delay, self.base_delay * float(2 ** max(0, attempt - 1)))
        return float(raw * (1.0 - self.jitter * rng.random()))


@dataclass(slots=True, frozen=True)
class Linger:
    """Ready jobs of ``kind`` that ``claim`` takes ahead of older jobs of other kinds once
    they make a batch: for one tenant, ``max_jobs`` of them, or payload ``weight_key`` values
    summing to ``budget`` or more, or the oldest one ready for ``seconds``. Until then they
    wait their turn by age like any job (and a worker that takes one by age still batches
    it with whatever is ready: ``claim_more``)."""

    kind: str
    max_jobs: int
    budget: int
    weight_key: str = "weight"
    seconds: float = 1.0

    def due(self, count: int, weight: int, waited: float) -> bool:
        return count >= self.max_jobs or weight >= self.budget or waited >= self.seconds


#: records the start of a claimed job's work in the claim's own transaction (``claim``'s
#: ``starters``, by kind): given the claim's session and the job just taken. It must not
#: wait for a lock the claim's order does not allow (the claim holds the job's row): what it
#: cannot take at once it leaves to the handler
Starter = Callable[[Session, "Job"], None]


class ReplayedJob(NamedTuple):
    """A dead letter queued again by ``replay_jobs``."""

    id: str
    kind: str
    subject: str | None
    payload: dict[str, Any]


@dataclass(slots=True)
class Job:
    """A claimed job, as a worker sees it."""

    id: str
    tenant_id: str
    kind: str
    subject: str | None
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    lease_token: str
    history: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False
    #: the worker holding the lease, and for how long a lease lasts (``enqueue_next``)
    worker_id: str = ""
    lease_seconds: float = 0.0
    #: the job this one handed on to its own worker (``enqueue_next``): the worker runs it
    #: next, without claiming it
    then: Job | None = None
    #: in-memory hand-off between the handlers of a chain (never stored: the job's durable
    #: input is what its handler reads when no memo is there)
    memo: dict[str, Any] = field(default_factory=dict)
    #: set by the worker on the first job of an exclusive batch (``Batching.exclusive``): the
    #: batch handler calls it once it no longer needs the one-at-a-time resource (the model
    #: call is over), so the next batch of the kind may be claimed while it records its
    #: outcomes; the worker calls it anyway when the batch ends
    release_exclusive: Callable[[], None] | None = None


@dataclass(slots=True)
class DeadLetter:
    id: str
    tenant_id: str
    kind: str
    subject: str | None
    payload: dict[str, Any]
    attempts: int
    error_code: str | None
    error_message: str | None
    history: list[dict[str, Any]]
    created_at: datetime
    dead_at: datetime | None


@dataclass(slots=True)
class KindStats:
    kind: str
    queued: int = 0
    running: int = 0
    dead: int = 0
    #: seconds since the oldest queued-or-running job of this kind was created
    oldest_age_seconds: float = 0.0


def error_fields(exc: BaseException) -> tuple[str, str, bool]:
    """(code, message, retryable) of a failure. Unknown exceptions are retryable and say only
    their type: their text may hold anything."""
    if isinstance(exc, GasworksError):
        return exc.code, exc.message, bool(getattr(exc, "retryable", False))
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "JOB_TIMEOUT", "The job did not finish in time.", True
    return "JOB_FAILED", f"The job failed ({type(exc).__name__}).", True


def _ready(now: Any) -> Any:
    """Ready at ``now`` (a time, or a ``bindparam`` for a statement built once)."""
    return or_(
        and_(JobRow.status == "queued", JobRow.run_at <= now),
        and_(JobRow.status == "running", JobRow.lease_expires_at < now),
    )


#: ``claim``'s statements, built once (their values are the execution's parameters: no
#: statement is built, nor its cache key computed, per claim on the writer thread)
_KINDS: Any = bindparam("kinds", expanding=True)
_NOW: Any = bindparam("now")


def _any_ready(kinds: int) -> Any:
    """Whether a job of ``kinds`` kinds (the parameters ``kind0``...) is ready: ``claim``'s
    read before any write. One bound parameter per kind rather than an expanding ``IN``, so
    that the statement's SQL is final when it is built: ``Database.read_first`` runs it
    prepared (the stdlib driver's statement cache on SQLite, asyncpg's on PostgreSQL)."""
    listed: list[Any] = [bindparam(f"kind{n}") for n in range(kinds)]
    return select(JobRow.id).where(JobRow.kind.in_(listed), _ready(_NOW)).limit(1)


#: the tenants with a ready job of the kinds, least recently served first (``claim``)
_CANDIDATES = (
    select(JobRow.tenant_id)
    .outerjoin(JobTenantRow, JobTenantRow.tenant_id == JobRow.tenant_id)
    .where(JobRow.kind.in_(_KINDS), _ready(_NOW))
    .group_by(JobRow.tenant_id)
    .order_by(nulls_first(func.min(JobTenantRow.last_served_at).asc()), func.min(JobRow.run_at))
    .limit(_TENANT_CANDIDATES)
)
#: a tenant's oldest ready job of the kinds, skipping rows others hold (``_take_oldest``)
_OLDEST = (
    select(JobRow)
    .where(JobRow.tenant_id == bindparam("tenant"), JobRow.kind.in_(_KINDS), _ready(_NOW))
    .order_by(JobRow.run_at, JobRow.id)
    .limit(1)
    .with_for_update(skip_locked=True)
)


class JobQueue:
    """Queue operations over one ``Database``. Safe to share in a process."""

    def __init__(
        self,
        db: Database,
        policies: Mapping[str, RetryPolicy] | None = None,
        *,
        default_policy: RetryPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.policies: dict[str, RetryPolicy] = dict(policies or {})
        self.default_policy = default_policy or RetryPolicy()
        self.clock = clock
        self.rng = rng or random.Random()
        #: set after an enqueue commits in this process: idle workers here wake at once
        self.wakeup = asyncio.Event()
        #: the job INSERTs, plain and deduplicated (``_insert``)
        self._inserts: dict[bool, Any] = {}
        #: ``_due_batch``'s reads, per (kind, rows)
        self._oldest_reads: dict[tuple[str, int], Any] = {}
        #: the upsert of a tenant's turn (``_served``)
        self._served_stmt: Any = None
        #: ``claim``'s "anything ready?" reads, per number of kinds (``_any_ready``)
        self._ready_reads: dict[int, Any] = {}

    def policy(self, kind: str) -> RetryPolicy:
        return self.policies.get(kind, self.default_policy)

    # -- producing --------------------------------------------------------------------------

    async def enqueue(
        self,
        session: AsyncSession,
        *,
        tenant_id: str,
        kind: str,
        payload: Mapping[str, Any] | None = None,
        subject: str | None = None,
        dedupe_key: str | None = None,
        delay: float = 0.0,
    ) -> str | None:
        """Add a job in ``session``'s transaction. With ``dedupe_key``, a live job with the same
        key means nothing is added (returns ``None``)."""
        job_id, stmt, values = self._enqueue_stmt(
            tenant_id, kind, payload, subject, dedupe_key, delay
        )
        res = await session.execute(stmt, values)
        return job_id if getattr(res, "rowcount", 1) else None

    def enqueue_sync(
        self,
        session: Session,
        *,
        tenant_id: str,
        kind: str,
        payload: Mapping[str, Any] | None = None,
        subject: str | None = None,
        dedupe_key: str | None = None,
        delay: float = 0.0,
    ) -> str | None:
        """``enqueue`` in a synchronous session (``Database.write_batch``)."""
        job_id, stmt, values = self._enqueue_stmt(
            tenant_id, kind, payload, subject, dedupe_key, delay
        )
        res = session.connection().execute(stmt, values)
        return job_id if getattr(res, "rowcount", 1) else None

    def _enqueue_stmt(
        self,
        tenant_id: str,
        kind: str,
        payload: Mapping[str, Any] | None,
        subject: str | None,
        dedupe_key: str | None,
        delay: float,
    ) -> tuple[str, Any, dict[str, Any]]:
        """A new job's id, the INSERT that adds it and the INSERT's parameters."""
        now = self.clock()
        job_id = new_id("job")
        values: dict[str, Any] = {
            "id": job_id,
            "tenant_id": tenant_id,
            "kind": kind,
            "subject": subject,
            "payload": dict(payload or {}),
            "status": "queued",
            "attempts": 0,
            "max_attempts": self.policy(kind).max_attempts,
            "run_at": now + timedelta(seconds=delay),
            "dedupe_key": dedupe_key,
            "history": [],
            "created_at": now,
        }
        return job_id, self._insert(dedupe_key is not None), values

    def _served(self) -> Any:
        """The upsert of a tenant's turn (``_take``), built once: its values are the
        execution's parameters."""
        if self._served_stmt is None:
            upsert = self.db.dialect.insert(_TENANTS)
            self._served_stmt = upsert.on_conflict_do_update(
                index_elements=["tenant_id"],
                set_={"last_served_at": upsert.excluded.last_served_at},
            )
        return self._served_stmt

    def _insert(self, deduped: bool) -> Any:
        """The INSERT of a job row, built once (its values are the execution's parameters:
        no statement is built per job); ``deduped``: nothing is added when a live job has
        the same dedupe key."""
        stmt = self._inserts.get(deduped)
        if stmt is None:
            stmt = self.db.dialect.insert(_JOBS)
            if deduped:
                stmt = stmt.on_conflict_do_nothing(index_elements=["dedupe_key"])
            self._inserts[deduped] = stmt
        return stmt

    async def enqueue_next(
        self,
        session: AsyncSession,
        job: Job,
        *,
        kind: str,
        payload: Mapping[str, Any] | None = None,
        subject: str | None = None,
        dedupe_key: str | None = None,
    ) -> Job | None:
        """Add the job that follows ``job`` in ``session``'s transaction, already leased to
        ``job``'s worker (attempt 1, a fresh token): the worker runs it at once instead of
        claiming it (``Job.then``; ``Worker.run_job``). It is an ordinary job for everyone
        else: if that worker dies, the lease expires and another worker takes it. ``None``
        when a live job with ``dedupe_key`` exists (nothing is added)."""
        stmt, values, nxt = self._next_stmt(job, kind, payload, subject, dedupe_key)
        res = await session.execute(stmt, values)
        return nxt if getattr(res, "rowcount", 1) else None

    def enqueue_next_sync(
        self,
        session: Session,
        job: Job,
        *,
        kind: str,
        payload: Mapping[str, Any] | None = None,
        subject: str | None = None,
        dedupe_key: str | None = None,
        hand_on: bool = True,
    ) -> Job | None:
        """``enqueue_next`` in a synchronous session (``Database.write_batch``); with
        ``hand_on=False`` the job is queued for any worker, as ``enqueue`` queues it."""
        stmt, values, nxt = self._next_stmt(job, kind, payload, subject, dedupe_key, hand_on)
        res = session.connection().execute(stmt, values)
        return nxt if getattr(res, "rowcount", 1) else None

    def _next_stmt(
        self,
        job: Job,
        kind: str,
        payload: Mapping[str, Any] | None,
        subject: str | None,
        dedupe_key: str | None,
        hand_on: bool = True,
    ) -> tuple[Any, dict[str, Any], Job | None]:
        """The statement that adds ``job``'s successor, its parameters, and the successor as
        its worker gets it once that statement added a row; a successor not handed on, or of
        a job without a worker to hand on to (not claimed by a worker), is queued for anyone
        (``None``)."""
        if not hand_on or not job.worker_id or job.lease_seconds <= 0:
            _, plain, params = self._enqueue_stmt(
                job.tenant_id, kind, payload, subject, dedupe_key, 0.0
            )
            return plain, params, None
        now = self.clock()
        token = uuid.uuid4().hex
        job_id = new_id("job")
        values: dict[str, Any] = {
            "id": job_id,
            "tenant_id": job.tenant_id,
            "kind": kind,
            "subject": subject,
            "payload": dict(payload or {}),
            "status": "running",
            "attempts": 1,
            "max_attempts": self.policy(kind).max_attempts,
            "run_at": now,
            "dedupe_key": dedupe_key,
            "history": [],
            "created_at": now,
            "lease_token": token,
            "lease_owner": job.worker_id[:80],
            "lease_expires_at": now + timedelta(seconds=job.lease_seconds),
            "started_at": now,
        }
        return (
            self._insert(dedupe_key is not None),
            values,
            Job(
                id=job_id,
                tenant_id=job.tenant_id,
                kind=kind,
                subject=subject,
                payload=dict(payload or {}),
                attempt=1,
                max_attempts=values["max_attempts"],
                lease_token=token,
                worker_id=job.worker_id,
                lease_seconds=job.lease_seconds,
            ),
        )

    def wake(self) -> None:
        """Call after the enqueueing transaction committed."""
        self.wakeup.set()

    async def cancel_subject(self, session: AsyncSession, tenant_id: str, subject: str) -> int:
        """Remove every live or dead job about ``subject`` (a deleted document). A worker
        holding one loses its lease: its ``finish`` raises ``LeaseLost``."""
        return await self.cancel_subjects(session, tenant_id, [subject])

    async def cancel_subjects(
        self, session: AsyncSession, tenant_id: str, subjects: Collection[str]
    ) -> int:
        """``cancel_subject`` for several subjects in ``session``'s transaction. The rows are
        locked in id order before they are deleted: every transaction that locks several jobs
        (``heartbeat_many`` too) takes them in that order, so two never wait for each other
        in a cycle (PostgreSQL would abort one as a deadlock)."""
        if not subjects:
            return 0
        ids = list(
            (
                await session.scalars(
                    select(JobRow.id)
                    .where(JobRow.tenant_id == tenant_id, JobRow.subject.in_(list(subjects)))
                    .order_by(JobRow.id)
                    .with_for_update()
                )
            ).all()
        )
        if not ids:
            return 0
        res = await session.execute(delete(JobRow).where(JobRow.id.in_(ids)))
        return int(getattr(res, "rowcount", 0) or 0)

    # -- consuming --------------------------------------------------------------------------

    async def claim(
        self,
        worker_id: str,
        kinds: Collection[str],
        lease_seconds: float,
        *,
        linger: Sequence[Linger] = (),
        starters: Mapping[str, Starter] | None = None,
    ) -> Job | None:
        """Take one ready job of ``kinds``, fairly across tenants, or ``None``. A ``linger``
        kind's jobs that make a batch come first (``Linger``). ``starters``: by kind, what
        records the start of the job's work in the claim's transaction (``Starter``)."""
        if not kinds:
            return None
        now = self.clock()
        kinds = list(kinds)
        # an idle poll is one prepared read (``Database.read_first``: on a SQLite file, the
        # stdlib driver on this thread; on PostgreSQL one autocommit statement), built once
        # per number of kinds: no write transaction (on SQLite, no write lock) unless a job
        # is ready
        read = self._ready_reads.get(len(kinds))
        if read is None:
            read = self._ready_reads[len(kinds)] = _any_ready(len(kinds))
        params: dict[str, Any] = {f"kind{n}": kind for n, kind in enumerate(kinds)}
        params["now"] = now
        if await self.db.read_first(read, params) is None:
            return None
        due = await self._due_batch([x for x in linger if x.kind in kinds], now)

        # one write transaction of synchronous statements (``Database.write_batch``: on a
        # SQLite file, one hand-off to the writer thread rather than one per statement)
        def pick(s: Session) -> Job | None:
            if due is not None:
                kind, tenant_id = due
                job = self._take_oldest(s, tenant_id, [kind], worker_id, lease_seconds, now)
                if job is not None:
                    return job
            tenants = s.execute(_CANDIDATES, {"kinds": kinds, "now": now}).scalars()
            for tenant_id in list(tenants):
                job = self._take_oldest(s, tenant_id, kinds, worker_id, lease_seconds, now)
                if job is not None:
                    return job
            return None

        def take(s: Session, _: object) -> Job | None:
            job = pick(s)
            start = None if job is None or not starters else starters.get(job.kind)
            if job is not None and start is not None:
                start(s, job)  # the job's start, in this transaction
            return job

        return await self.db.write_batch(take)

    async def _due_batch(self, linger: Sequence[Linger], now: datetime) -> tuple[str, str] | None:
        """The kind and tenant of the first ready batch that ``linger`` puts ahead
        (``Linger``), from each kind's oldest ready jobs (one small read per kind), or
        ``None``."""
        if not linger:
            return None
        found = await self.db.read_now(*map(self._oldest_of, linger), params={"now": now})
        for rule, rows in zip(linger, found, strict=True):
            groups: dict[str, list[Any]] = {}  # tenant -> [count, weight, oldest run_at]
            for tenant_id, run_at, payload in rows:
                g = groups.setdefault(tenant_id, [0, 0, run_at])
                g[0] += 1
                g[1] += _weight(payload, rule.weight_key)
            for tenant_id, (count, weight, oldest) in groups.items():
                if rule.due(count, weight, (now - oldest).total_seconds()):
                    return rule.kind, tenant_id
        return None

    def _oldest_of(self, rule: Linger) -> Any:
        """``_due_batch``'s read of ``rule``'s kind, built once per kind and size."""
        key = (rule.kind, max(1, rule.max_jobs) * 2)
        stmt = self._oldest_reads.get(key)
        if stmt is None:
            stmt = self._oldest_reads[key] = (
                select(JobRow.tenant_id, JobRow.run_at, JobRow.payload)
                .where(JobRow.kind == rule.kind, _ready(_NOW))
                .order_by(JobRow.run_at, JobRow.id)
                .limit(key[1])
            )
        return stmt

    def _take_oldest(
        self,
        s: Session,
        tenant_id: str,
        kinds: list[str],
        worker_id: str,
        lease_seconds: float,
        now: datetime,
    ) -> Job | None:
        """Take ``tenant_id``'s oldest ready job of ``kinds`` (skipping rows others hold and
        expired leases out of attempts, which become dead letters), or ``None``."""
        while True:
            row = s.scalar(_OLDEST, {"tenant": tenant_id, "kinds": kinds, "now": now})
            if row is None:
                return None
            if self._revive(row, now):
                return self._take(s, row, worker_id, lease_seconds, now)

    async def claim_more(
        self, job: Job, *, limit: int, budget: int, weight_key: str = "weight"
    ) -> list[Job]:
        """Take up to ``limit`` more ready jobs of ``job``'s tenant and kind for ``job``'s
        worker, to run together with it (``Worker`` batching): oldest first, skipping any
        whose payload ``weight_key`` (default 1) would take the sum of the taken ones over
        ``budget``. Each gets its own lease, attempt and token, exactly as ``claim`` gives
        them; the tenant's turn is not counted again (the claim of ``job`` was its turn)."""
        if limit <= 0 or budget <= 0 or not job.worker_id:
            return []
        now = self.clock()
        worker_id = job.worker_id

        def take(s: Session, _: object) -> list[Job]:
            taken: list[Job] = []
            rows = s.scalars(
                select(JobRow)
                .where(
                    JobRow.tenant_id == job.tenant_id,
                    JobRow.kind == job.kind,
                    JobRow.id != job.id,
                    _ready(now),
                )
                .order_by(JobRow.run_at, JobRow.id)
                .limit(limit * 2)
                .with_for_update(skip_locked=True)
            ).all()
            left = budget
            for row in rows:
                if len(taken) >= limit:
                    break
                weight = _weight(row.payload, weight_key)
                if weight > left:
                    continue
                if not self._revive(row, now):
                    continue
                taken.append(self._take(s, row, worker_id, job.lease_seconds, now, turn=False))
                left -= weight
            return taken

        return await self.db.write_batch(take)

    def _revive(self, row: JobRow, now: datetime) -> bool:
        """A ready row may be taken: ``False`` when it was running under an expired lease (the
        worker vanished: a crash, a kill; that attempt failed) and had no attempt left, so it
        is a dead letter now."""
        if row.status != "running":
            return True
        message = "The worker stopped renewing its lease."
        self._record(row, "LEASE_EXPIRED", message, now)
        if row.attempts >= row.max_attempts:
            self._bury(row, "LEASE_EXPIRED", message, now)
            return False
        return True

    def _take(
        self,
        s: Session,
        row: JobRow,
        worker_id: str,
        lease_seconds: float,
        now: datetime,
        *,
        turn: bool = True,
    ) -> Job:
        token = uuid.uuid4().hex
        values = {
            "status": "running",
            "attempts": row.attempts + 1,
            "lease_token": token,
            "lease_owner": worker_id[:80],
            "lease_expires_at": now + timedelta(seconds=lease_seconds),
            "started_at": now,
        }
        # one Core UPDATE built once (``_TAKE``), not the unit of work's flush of the row;
        # the loaded row is told the new values, as that flush would have left it (a
        # revived row's own changes, its history, are still the unit of work's to write)
        s.connection().execute(_TAKE, {"_job": row.id, **values})
        for name, value in values.items():
            set_committed_value(row, name, value)
        if turn:
            s.execute(self._served(), {"tenant_id": row.tenant_id, "last_served_at": now})
        return Job(
            id=row.id,
            tenant_id=row.tenant_id,
            kind=row.kind,
            subject=row.subject,
            payload=dict(row.payload or {}),
            attempt=row.attempts,
            max_attempts=row.max_attempts,
            lease_token=token,
            history=list(row.history or []),
            worker_id=worker_id,
            lease_seconds=lease_seconds,
        )

    async def heartbeat(self, job: Job, lease_seconds: float) -> bool:
        """Extend the lease; ``False`` when it was lost (the job is another worker's now)."""
        async with self.db.session() as s:
            res = await s.execute(
                update(JobRow)
                .where(JobRow.id == job.id, JobRow.lease_token == job.lease_token)
                .values(lease_expires_at=self.clock() + timedelta(seconds=lease_seconds))
            )
            return bool(getattr(res, "rowcount", 0))

    async def heartbeat_many(self, jobs: Sequence[Job], lease_seconds: float) -> list[Job]:
        """``heartbeat`` for every job in ``jobs``, in one transaction (rows taken in id order,
        as ``cancel_subjects`` does); the jobs whose lease was lost (or that are finished:
        their rows are gone)."""
        if not jobs:
            return []
        lost: list[Job] = []
        until = self.clock() + timedelta(seconds=lease_seconds)
        async with self.db.session() as s:
            for job in sorted(jobs, key=lambda j: j.id):
                res = await s.execute(
                    update(JobRow)
                    .where(JobRow.id == job.id, JobRow.lease_token == job.lease_token)
                    .values(lease_expires_at=until)
                )
                if not getattr(res, "rowcount", 0):
                    lost.append(job)
        return lost

    async def finish(self, session: AsyncSession, job: Job) -> None:
        """Complete ``job`` in ``session``'s transaction (deletes it). Raises ``LeaseLost`` if
        the lease is gone, which rolls the handler's transaction back."""
        res = await session.execute(
            delete(JobRow).where(JobRow.id == job.id, JobRow.lease_token == job.lease_token)
        )
        if not getattr(res, "rowcount", 0):
            raise LeaseLost("The job's lease was lost.", details={"job": job.id})
        job.finished = True

    def finish_sync(self, session: Session, job: Job) -> None:
        """``finish`` in a synchronous session (``Database.write_batch``). ``job.finished``
        is left to the caller, once the transaction committed."""
        res = session.connection().execute(_FINISH, {"id": job.id, "token": job.lease_token})
        if not getattr(res, "rowcount", 0):
            raise LeaseLost("The job's lease was lost.", details={"job": job.id})

    async def fail(self, job: Job, exc: BaseException, *, retryable: bool | None = None) -> str:
        """Record a failed attempt: back to the queue after the kind's backoff, or dead.
        Returns the job's new status (``queued``, ``dead`` or ``lost``)."""
        code, message, default_retry = error_fields(exc)
        retry = default_retry if retryable is None else retryable
        now = self.clock()
        async with self.db.session() as s:
            row = await s.scalar(
                select(JobRow).where(JobRow.id == job.id, JobRow.lease_token == job.lease_token)
            )
            if row is None:
                return "lost"
            self._record(row, code, message, now)
            if not retry or row.attempts >= row.max_attempts:
                self._bury(row, code, message, now)
                return "dead"
            row.status = "queued"
            row.lease_token = None
            row.lease_owner = None
            row.lease_expires_at = None
            row.error_code, row.error_message = code, message
            delay = self.policy(row.kind).delay(row.attempts, self.rng)
            row.run_at = now + timedelta(seconds=delay)
            return "queued"

    async def postpone(self, job: Job, exc: BaseException, delay: float) -> bool:
        """Put the job back without spending an attempt (a refusal that is not the job's
        fault, e.g. a budget): it runs again after ``delay`` seconds."""
        code, message, _ = error_fields(exc)
        now = self.clock()
        async with self.db.session() as s:
            row = await s.scalar(
                select(JobRow).where(JobRow.id == job.id, JobRow.lease_token == job.lease_token)
            )
            if row is None:
                return False
            self._record(row, code, message, now)
            row.attempts = max(0, row.attempts - 1)
            row.status = "queued"
            row.lease_token = row.lease_owner = None
            row.lease_expires_at = None
            row.error_code, row.error_message = code, message
            row.run_at = now + timedelta(seconds=delay)
            return True

    @staticmethod
    def _record(row: JobRow, code: str, message: str, now: datetime) -> None:
        entry = {
            "attempt": row.attempts,
            "code": code,
            "message": message[:1000],
            "at": now.isoformat(),
            "worker": row.lease_owner,
        }
        row.history = [*(row.history or []), entry][-_HISTORY_MAX:]

    @staticmethod
    def _bury(row: JobRow, code: str, message: str, now: datetime) -> None:
        row.status = "dead"
        row.error_code = code
        row.error_message = message[:1000]
        row.dead_at = now
        row.lease_token = row.lease_owner = None
        row.lease_expires_at = None
        row.dedupe_key = None  # a replacement job may be enqueued while this one is dead

    # -- dead letters -----------------------------------------------------------------------

    @staticmethod
    def _dead_query(tenant_id: str | None, kind: str | None) -> Any:
        q = select(JobRow).where(JobRow.status == "dead")
        if tenant_id is not None:
            q = q.where(JobRow.tenant_id == tenant_id)
        if kind is not None:
            q = q.where(JobRow.kind == kind)
        return q

    async def list_dead(
        self,
        session: AsyncSession,
        *,
        tenant_id: str | None,
        kind: str | None = None,
        page: Page = ALL,
    ) -> list[DeadLetter]:
        q = self._dead_query(tenant_id, kind).order_by(JobRow.dead_at, JobRow.id)
        rows = (await session.scalars(page.apply(q))).all()
        return [_dead(r) for r in rows]

    async def get_dead(
        self, session: AsyncSession, job_id: str, *, tenant_id: str | None
    ) -> DeadLetter:
        row = await session.scalar(self._dead_query(tenant_id, None).where(JobRow.id == job_id))
        if row is None:
            raise JobNotFound("Dead letter not found.", details={"id": job_id})
        return _dead(row)

    async def replay(
        self,
        session: AsyncSession,
        *,
        tenant_id: str | None,
        ids: Sequence[str] | None = None,
        kind: str | None = None,
    ) -> int:
        """Queue dead letters again with fresh attempts (history kept). ``ids`` one by one, or
        every dead letter (of ``kind``) when ``ids`` is ``None``. Returns how many."""
        return len(await self.replay_jobs(session, tenant_id=tenant_id, ids=ids, kind=kind))

    async def replay_jobs(
        self,
        session: AsyncSession,
        *,
        tenant_id: str | None,
        ids: Sequence[str] | None = None,
        kind: str | None = None,
    ) -> list[ReplayedJob]:
        """``replay``, returning the jobs queued again (their owners update their own state in
        the same transaction)."""
        q = self._dead_query(tenant_id, kind)
        if ids is not None:
            q = q.where(JobRow.id.in_(list(ids)))
        rows = (await session.scalars(q)).all()
        if ids is not None and len(rows) != len(set(ids)):
            found = {r.id for r in rows}
            missing = [i for i in ids if i not in found]
            raise JobNotFound("Dead letter not found.", details={"id": missing[0]})
        now = self.clock()
        for row in rows:
            row.history = [*(row.history or []), {"replayed": now.isoformat()}][-_HISTORY_MAX:]
            row.status = "queued"
            row.attempts = 0
            row.run_at = now
            row.dead_at = None
        return [ReplayedJob(r.id, r.kind, r.subject, dict(r.payload or {})) for r in rows]

    async def discard(
        self,
        session: AsyncSession,
        *,
        tenant_id: str | None,
        ids: Sequence[str] | None = None,
        kind: str | None = None,
    ) -> int:
        cond = [JobRow.status == "dead"]
        if tenant_id is not None:
            cond.append(JobRow.tenant_id == tenant_id)
        if kind is not None:
            cond.append(JobRow.kind == kind)
        if ids is not None:
            cond.append(JobRow.id.in_(list(ids)))
        res = await session.execute(delete(JobRow).where(*cond))
        n = int(getattr(res, "rowcount", 0) or 0)
        if ids is not None and n == 0 and ids:
            raise JobNotFound("Dead letter not found.", details={"id": ids[0]})
        return n

    # -- observing --------------------------------------------------------------------------

    async def stats(self, tenant_id: str | None = None) -> dict[str, KindStats]:
        now = self.clock()
        q = select(JobRow.kind, JobRow.status, func.count(), func.min(JobRow.created_at)).group_by(
            JobRow.kind, JobRow.status
        )
        if tenant_id is not None:
            q = q.where(JobRow.tenant_id == tenant_id)
        out: dict[str, KindStats] = {}
        async with self.db.read_session() as s:
            for kind, status, n, oldest in (await s.execute(q)).all():
                st = out.setdefault(kind, KindStats(kind))
                if status in ("queued", "running", "dead"):
                    setattr(st, status, int(n))
                if status != "dead" and oldest is not None:
                    st.oldest_age_seconds = max(
                        st.oldest_age_seconds, (now - oldest).total_seconds()
                    )
        return out


def _weight(payload: Mapping[str, Any] | None, key: str) -> int:
    value = (payload or {}).get(key, 1)
    return max(1, value) if isinstance(value, int) and not isinstance(value, bool) else 1


def _dead(r: JobRow) -> DeadLetter:
    return DeadLetter(
        id=r.id,
        tenant_id=r.tenant_id,
        kind=r.kind,
        subject=r.subject,
        payload=dict(r.payload or {}),
        attempts=r.attempts,
        error_code=r.error_code,
        error_message=r.error_message,
        history=list(r.history or []),
        created_at=r.created_at,
        dead_at=r.dead_at,
    )
