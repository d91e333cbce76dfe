"""The job queue on both databases: leases, retries with backoff, dead letters, replay,
fairness across tenants, and exactly-once processing under concurrent workers."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from gasworks.db.engine import Database
from gasworks.db.types import utcnow
from gasworks.errors import BadRequest, ProviderUnavailable
from gasworks.jobs import (
    Batching,
    Job,
    JobQueue,
    LeaseLost,
    Linger,
    RetryPolicy,
    Worker,
    WorkerConfig,
)
from gasworks.jobs.tables import JobRow
from gasworks.jobs.worker import next_poll_delay


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    d = Database(db_url)
    yield d
    await d.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_queue(db: Database, clock: Clock, **policies: RetryPolicy) -> JobQueue:
    return JobQueue(
        db,
        policies,
        default_policy=RetryPolicy(max_attempts=3, base_delay=10, max_delay=100, jitter=0.5),
        clock=clock,
        rng=random.Random(7),
    )


async def put(q: JobQueue, tenant: str, kind: str = "work", **payload: object) -> str:
    async with q.db.session() as s:
        job_id = await q.enqueue(s, tenant_id=tenant, kind=kind, payload=payload)
    assert job_id is not None
    return job_id


async def count(db: Database, *where: object) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(JobRow).where(*where)) or 0)


async def test_enqueue_is_part_of_the_callers_transaction(db: Database, clock: Clock) -> None:
    q = make_queue(db, clock)
    with pytest.raises(RuntimeError):
        async with db.session() as s:
            await q.enqueue(s, tenant_id="t1", kind="work")
            raise RuntimeError("caller's write failed")
    assert await count(db) == 0
    await put(q, "t1")
    assert await count(db) == 1


async def test_claim_finish_and_nothing_left(db: Database, clock: Clock) -> None:
    q = make_queue(db, clock)
    await put(q, "t1", n=1)
    job = await q.claim("w1", ["work"], 30)
    assert job is not None and job.payload == {"n": 1} and job.attempt == 1
    assert await q.claim("w2", ["work"], 30) is None  # leased
    async with db.session() as s:
        await q.finish(s, job)
    assert await count(db) == 0


async def test_a_starter_runs_in_the_claims_transaction(db: Database, clock: Clock) -> None:
    """A kind's starter records the start of its job's work in the claim's own transaction:
    what it writes commits with the claim, and when it raises the claim is rolled back (the
    job stays queued, no attempt spent)."""
    q = make_queue(db, clock)
    first = await put(q, "t1", "work")
    await put(q, "t1", "other")
    seen: list[str] = []

    def start(s: Any, job: Job) -> None:
        seen.append(job.id)
        job.memo["started"] = True
        q.enqueue_sync(s, tenant_id="t1", kind="note", payload={"of": job.id})

    job = await q.claim("w", ["work"], 30, starters={"work": start})
    assert job is not None and job.id == first and seen == [first] and job.memo["started"]
    assert await count(db, JobRow.kind == "note") == 1  # committed with the claim

    def broken(s: Any, job: Job) -> None:
        q.enqueue_sync(s, tenant_id="t1", kind="note", payload={"of": job.id})
        raise RuntimeError("start failed")

    with pytest.raises(RuntimeError):
        await q.claim("w", ["other"], 30, starters={"other": broken})
    assert await count(db, JobRow.kind == "note") == 1  # rolled back with the claim
    assert (
        await count(db, JobRow.kind == "other", JobRow.status == "queued", JobRow.attempts == 0)
        == 1
    )
    # a kind without a starter is claimed as before
    assert (await q.claim("w", ["other"], 30, starters={"work": start})) is not None
    assert seen == [first]


async def test_expired_lease_goes_back_to_the_queue(db: Database, clock: Clock) -> None:
    q = make_queue(db, clock)
    await put(q, "t1")
    first = await q.claim("w1", ["work"], 30)
    assert first is not None
    clock.advance(20)
    assert await q.heartbeat(first, 30)  # renewed: still w1's at +40 s
    clock.advance(20)
    assert await q.claim("w2", ["work"], 30) is None
    clock.advance(11)  # w1 stopped renewing (killed)
    second = await q.claim("w2", ["work"], 30)
    assert second is not None and second.id == first.id and second.attempt == 2
    assert second.history[-1]["code"] == "LEASE_EXPIRED"
    # stored as claimed: the new lease, and the expired attempt in the row's history
    async with db.read_session() as s:
        row = await s.get(JobRow, first.id)
    assert row is not None and (row.status, row.attempts, row.lease_owner) == ("running", 2, "w2")
    assert row.lease_token == second.lease_token and row.history[-1]["code"] == "LEASE_EXPIRED"
    # the first worker's late completion is refused and changes nothing
    with pytest.raises(LeaseLost):
        async with db.session() as s:
            await q.finish(s, first)
    assert not await q.heartbeat(first, 30)
    assert await q.fail(first, RuntimeError("late")) == "lost"
    async with db.session() as s:
        await q.finish(s, second)
    assert await count(db) == 0


async def test_lease_expiring_on_the_last_attempt_is_a_dead_letter(
    db: Database, clock: Clock
) -> None:
    q = make_queue(db, clock)
    await put(q, "t1")
    for _ in range(3):
        assert await q.claim("w", ["work"], 5) is not None
        clock.advance(6)
    assert await q.claim("w", ["work"], 5) is None
    async with db.session() as s:
        (dead,) = await q.list_dead(s, tenant_id="t1")
    assert dead.error_code == "LEASE_EXPIRED" and dead.attempts == 3


async def test_retry_waits_an_exponential_backoff_with_jitter(db: Database, clock: Clock) -> None:
    q = make_queue(db, clock)
    job_id = await put(q, "t1")
    for attempt in (1, 2):
        job = await q.claim("w", ["work"], 30)
        assert job is not None and job.attempt == attempt
        assert await q.fail(job, ProviderUnavailable("upstream down")) == "queued"
        async with db.session() as s:
            row = await s.get(JobRow, job_id)
            assert row is not None
            wait = (row.run_at - clock.now).total_seconds()
        full = 10 * 2 ** (attempt - 1)
        assert full * 0.5 <= wait <= full  # base 10 s doubling, up to half taken off
        assert await q.claim("w", ["work"], 30) is None  # not before its time
        clock.advance(wait)
    job = await q.claim("w", ["work"], 30)
    assert job is not None and job.attempt == 3
    assert [h["code"] for h in job.history] == ["PROVIDER_UNAVAILABLE"] * 2


def test_backoff_is_capped_and_jittered() -> None:
    p = RetryPolicy(base_delay=1, max_delay=8, jitter=0.25)
    rng = random.Random(1)
    delays = [p.delay(n, rng) for n in range(1, 8)]
    assert all(
        0.75 * min(8, 2 ** (n - 1)) <= d <= min(8, 2 ** (n - 1)) for n, d in enumerate(delays, 1)
    )
    assert len({round(p.delay(3, rng), 6) for _ in range(5)}) > 1  # jitter spreads retries


async def test_out_of_attempts_becomes_a_dead_letter_with_history(
    db: Database, clock: Clock
) -> None:
    q = make_queue(db, clock, work=RetryPolicy(max_attempts=2, base_delay=0, jitter=0))
    job_id = await put(q, "t1", doc="d1")
    for expected in ("queued", "dead"):
        job = await q.claim("w", ["work"], 30)
        assert job is not None
        assert await q.fail(job, ProviderUnavailable("upstream down")) == expected
    assert await q.claim("w", ["work"], 30) is None
    async with db.session() as s:
        dead = await q.get_dead(s, job_id, tenant_id="t1")
        assert await q.list_dead(s, tenant_id="other") == []
    assert dead.error_code == "PROVIDER_UNAVAILABLE" and dead.error_message == "upstream down"
    assert [h["attempt"] for h in dead.history] == [1, 2] and dead.payload == {"doc": "d1"}


async def test_a_permanent_error_is_dead_at_once(db: Database, clock: Clock) -> None:
    q = make_queue(db, clock)
    await put(q, "t1")
    job = await q.claim("w", ["work"], 30)
    assert job is not None
    assert await q.fail(job, BadRequest("the file is encrypted")) == "dead"


async def test_replay_one_and_in_bulk_and_discard(db: Database, clock: Clock) -> None:
    q = make_queue(db, clock, work=RetryPolicy(max_attempts=1))
    ids = [await put(q, "t1", n=i) for i in range(3)]
    other = await put(q, "t2")
    for _ in range(4):
        job = await q.claim("w", ["work"], 30)
        assert job is not None
        await q.fail(job, ProviderUnavailable("x"))
    async with db.session() as s:
        assert len(await q.list_dead(s, tenant_id="t1", kind="work")) == 3
        assert await q.replay(s, tenant_id="t1", ids=[ids[0]]) == 1
    job = await q.claim("w", ["work"], 30)
    assert job is not None and job.id == ids[0] and job.attempt == 1
    async with db.session() as s:
        await q.finish(s, job)
        # another tenant's dead letter is not found, not replayed
        with pytest.raises(Exception, match="Dead letter not found"):
            await q.replay(s, tenant_id="t1", ids=[other])
    async with db.session() as s:
        assert await q.replay(s, tenant_id="t1") == 2  # the rest, in bulk
        assert await q.discard(s, tenant_id="t2", ids=[other]) == 1
    assert await count(db, JobRow.status == "queued") == 2
    assert await count(db, JobRow.status == "dead") == 0


async def test_fair_across_tenants(db: Database, clock: Clock) -> None:
    q = make_queue(db, clock)
    async with db.session() as s:
        for i in range(200):
            await q.enqueue(s, tenant_id="big", kind="work", payload={"i": i})
    clock.advance(1)
    await put(q, "small")
    clock.advance(1)
    served = []
    for _ in range(3):
        job = await q.claim("w", ["work"], 30)
        assert job is not None
        served.append(job.tenant_id)
        clock.advance(0.001)
    # the small tenant's one job goes within the first two claims, not after 200
    assert "small" in served[:2]


async def test_dedupe_key_and_cancel(db: Database, clock: Clock) -> None:
    q = make_queue(db, clock)
    async with db.session() as s:
        assert await q.enqueue(s, tenant_id="t", kind="work", dedupe_key="d1:extract", subject="d1")
        assert await q.enqueue(s, tenant_id="t", kind="work", dedupe_key="d1:extract") is None
    job = await q.claim("w", ["work"], 30)
    assert job is not None
    async with db.session() as s:
        assert await q.cancel_subject(s, "t", "d1") == 1
    with pytest.raises(LeaseLost):  # a cancelled job's late completion is discarded
        async with db.session() as s:
            await q.finish(s, job)


async def test_stats_per_kind(db: Database, clock: Clock) -> None:
    q = make_queue(db, clock, b=RetryPolicy(max_attempts=1))
    await put(q, "t", "a")
    await put(q, "t", "b")
    clock.advance(5)
    job = await q.claim("w", ["b"], 30)
    assert job is not None
    await q.fail(job, ProviderUnavailable("x"))
    stats = await q.stats()
    assert (stats["a"].queued, stats["a"].dead, stats["b"].dead) == (1, 0, 1)
    assert stats["a"].oldest_age_seconds == pytest.approx(5)


def test_idle_polling_is_bounded() -> None:
    cfg = WorkerConfig(poll_min=0.05, poll_max=1.0)
    d, seen = cfg.poll_min, []
    for _ in range(10):
        d = next_poll_delay(d, cfg)
        seen.append(d)
    assert seen[-1] == 1.0 and max(seen) == 1.0  # at most one claim query per second idle


async def test_two_concurrent_workers_process_each_job_exactly_once(db_url: str) -> None:
    dbs = [Database(db_url), Database(db_url)]
    try:
        queues = [JobQueue(d, default_policy=RetryPolicy(base_delay=0.01)) for d in dbs]
        async with dbs[0].session() as s:
            for i in range(60):
                await queues[0].enqueue(s, tenant_id=f"t{i % 3}", kind="work", payload={"i": i})
        done: Counter[int] = Counter()
        all_done = asyncio.Event()

        def handler_for(q: JobQueue):  # type: ignore[no-untyped-def]
            async def handler(job: Job) -> None:
                await asyncio.sleep(0)
                async with q.db.session() as s:
                    await q.finish(s, job)
                    done[int(job.payload["i"])] += 1  # counted only if the finish commits
                if sum(done.values()) == 60:
                    all_done.set()

            return handler

        cfg = WorkerConfig(concurrency=3, poll_min=0.01, poll_max=0.05)
        workers = [Worker(q, {"work": handler_for(q)}, cfg) for q in queues]
        for w in workers:
            w.start()
        await asyncio.wait_for(all_done.wait(), 60)
        for w in workers:
            await w.stop()
        assert sorted(done) == list(range(60)) and set(done.values()) == {1}
        assert all(w.processed > 0 for w in workers)  # both took part
        assert await count(dbs[0]) == 0
    finally:
        for d in dbs:
            await d.dispose()


async def test_a_handed_on_job_runs_in_its_worker_and_survives_that_workers_death(
    db: Database, clock: Clock
) -> None:
    """``enqueue_next``: the next job is leased to the finishing job's worker in the same
    transaction; nobody else can claim it until that lease expires, then it is an ordinary
    retry (``LEASE_EXPIRED``); a live job with the same dedupe key means nothing is added."""
    q = make_queue(db, clock)
    await put(q, "t1", kind="first")
    first = await q.claim("w1", ["first", "second"], 30)
    assert first is not None and first.worker_id == "w1"
    async with db.session() as s:
        nxt = await q.enqueue_next(s, first, kind="second", payload={"n": 2}, dedupe_key="k2")
        await q.finish(s, first)
    assert nxt is not None and (nxt.kind, nxt.attempt, nxt.payload) == ("second", 1, {"n": 2})
    assert await q.claim("w2", ["first", "second"], 30) is None  # w1 holds it

    ran: list[str] = []

    async def second(job: Job) -> None:
        ran.append(job.id)

    worker = Worker(q, {"second": second}, worker_id="w1")
    clock.advance(31)  # w1 died before running it: its lease expires
    again = await q.claim("w2", ["second"], 30)
    assert again is not None and again.id == nxt.id and again.attempt == 2
    assert again.history[-1]["code"] == "LEASE_EXPIRED"
    await worker.run_job(again)
    assert ran == [nxt.id] and await count(db) == 0

    await put(q, "t1", kind="first")
    other = await q.claim("w1", ["first"], 30)
    assert other is not None
    async with db.session() as s:
        await q.enqueue(s, tenant_id="t1", kind="second", dedupe_key="k3")
        assert await q.enqueue_next(s, other, kind="second", dedupe_key="k3") is None


async def test_the_worker_runs_a_handed_on_job_next(db: Database, clock: Clock) -> None:
    q = make_queue(db, clock)
    order: list[str] = []

    async def first(job: Job) -> None:
        order.append("first")
        async with db.session() as s:
            job.then = await q.enqueue_next(s, job, kind="second")
            await q.finish(s, job)

    async def second(job: Job) -> None:
        order.append(f"second:{job.attempt}")

    await put(q, "t1", kind="first")
    worker = Worker(q, {"first": first, "second": second}, worker_id="w1")
    job = await q.claim("w1", ["first", "second"], 30)
    assert job is not None
    await worker.run_job(job)
    assert order == ["first", "second:1"] and worker.processed == 2
    assert await count(db) == 0


async def test_a_stopping_worker_puts_a_handed_on_job_back(db: Database, clock: Clock) -> None:
    q = make_queue(db, clock)

    async def first(job: Job) -> None:
        async with db.session() as s:
            job.then = await q.enqueue_next(s, job, kind="second")
            await q.finish(s, job)

    async def second(job: Job) -> None:
        raise AssertionError("a stopping worker starts no new job")

    await put(q, "t1", kind="first")
    worker = Worker(q, {"first": first, "second": second}, worker_id="w1")
    job = await q.claim("w1", ["first"], 30)
    assert job is not None
    worker._stopping.set()  # stop() was called while ``first`` ran
    await worker.run_job(job)
    back = await q.claim("w2", ["second"], 30)  # at once, not after the lease
    assert back is not None and back.attempt == 1
    assert back.history[-1]["code"] == "SERVER_SHUTTING_DOWN"


async def test_claim_more_takes_the_same_tenant_and_kind_within_the_weight_budget(
    db: Database, clock: Clock
) -> None:
    """A batch (``Worker`` batching): the first job is claimed fairly; more of its tenant and
    kind join it, oldest first, while their payload weights fit the budget, each with its own
    lease; other tenants' and kinds' jobs are left alone."""
    q = make_queue(db, clock)
    await put(q, "t1", weight=3)
    clock.advance(1)
    for tenant, kind, weight in [
        ("t2", "work", 1),
        ("t1", "other", 1),
        ("t1", "work", 2),
        ("t1", "work", 9),  # does not fit: left for later
        ("t1", "work", 1),
        ("t1", "work", 1),  # over the limit of jobs
    ]:
        await put(q, tenant, kind, weight=weight)
        clock.advance(1)
    lead = await q.claim("w1", ["work"], 30)
    assert lead is not None and lead.tenant_id == "t1"
    more = await q.claim_more(lead, limit=2, budget=10 - 3)
    assert [j.payload["weight"] for j in more] == [2, 1]
    assert {j.tenant_id for j in more} == {"t1"} and {j.kind for j in more} == {"work"}
    assert len({j.lease_token for j in [lead, *more]}) == 3
    # held: nobody else takes them; the heartbeat renews them all
    again = await q.claim_more(lead, limit=5, budget=100)
    assert [j.payload["weight"] for j in again] == [9, 1]  # the rest, never the held ones
    clock.advance(25)
    assert await q.heartbeat_many([lead, *more], 30) == []
    clock.advance(25)
    nxt = await q.claim("w2", ["work"], 30)
    assert nxt is not None and nxt.tenant_id == "t2"  # fair: t2's turn; t1's batch still held
    for job in [lead, *more]:
        async with db.session() as s:
            await q.finish(s, job)
    assert await q.heartbeat_many([lead], 30) == [lead]  # finished: nothing to renew


async def test_linger_claims_a_full_or_aged_batch_ahead_of_older_jobs(
    db: Database, clock: Clock
) -> None:
    """A lingering kind (``Linger``): its jobs wait their turn by age until one tenant's make
    a batch (enough jobs, or enough weight) or the oldest has waited ``seconds``; then a claim
    takes that batch's oldest job ahead of older jobs of other kinds."""
    q = make_queue(db, clock)
    rule = Linger("embed", max_jobs=3, budget=10, weight_key="chunks", seconds=5)
    for _ in range(3):
        await put(q, "t1", "extract")
        clock.advance(1)
    await put(q, "t1", "embed", chunks=4)
    await put(q, "t2", "embed", chunks=6)  # another tenant's: never counted with t1's
    clock.advance(1)
    kinds = ["extract", "embed"]
    # no tenant's embed jobs make a batch yet: by age (and fairness), an extraction
    first = await q.claim("w1", kinds, 30, linger=[rule])
    assert first is not None and (first.kind, first.tenant_id) == ("extract", "t1")
    # t1's embed jobs now weigh 4 + 6 = 10: a full batch, ahead of t1's older extractions
    await put(q, "t1", "embed", chunks=6)
    ahead = await q.claim("w1", kinds, 30, linger=[rule])
    assert ahead is not None and (ahead.kind, ahead.tenant_id) == ("embed", "t1")
    assert ahead.payload == {"chunks": 4}  # the batch's oldest job
    more = await q.claim_more(ahead, limit=2, budget=10 - 4, weight_key="chunks")
    assert [j.payload for j in more] == [{"chunks": 6}]
    t2 = await q.claim("w2", kinds, 30, linger=[rule])  # t2's turn (fairness)
    assert t2 is not None and t2.tenant_id == "t2"
    # a lone embed job: by age until it has waited 5 s, then ahead of older extractions
    await put(q, "t1", "embed", chunks=1)
    by_age = await q.claim("w2", kinds, 30, linger=[rule])
    assert by_age is not None and by_age.kind == "extract"
    clock.advance(5)
    aged = await q.claim("w2", kinds, 30, linger=[rule])
    assert aged is not None and aged.payload == {"chunks": 1}
    last = await q.claim("w2", kinds, 30)
    assert last is not None and last.kind == "extract"
    assert await q.claim("w2", kinds, 30, linger=[rule]) is None
    # a kind the worker does not run is never lingered on
    await put(q, "t1", "embed", chunks=99)
    assert await q.claim("w3", ["extract"], 30, linger=[rule]) is None


async def _embedding_worker(q: JobQueue, spec: Batching, **handlers: Any) -> Worker:
    """A started worker of two slots whose "embed" kind runs in batches (``spec``; a lone
    embed job through the same handler), with two embed jobs of t1 queued."""

    async def alone(job: Job) -> None:
        await spec.handler([job])

    worker = Worker(
        q,
        {"embed": alone, **handlers},
        WorkerConfig(concurrency=2, poll_min=0.01, poll_max=0.05),
        batches={"embed": spec},
    )
    for _ in range(2):
        await put(q, "t1", "embed", chunks=1)
    worker.start()
    return worker


async def test_an_exclusive_batch_runs_alone_and_the_next_takes_what_became_ready(
    db: Database, clock: Clock
) -> None:
    """``Batching.exclusive``: while a worker runs a batch of the kind, its other slot claims
    other kinds (not a second batch, which would only wait); the next batch takes every job
    ready by then, up to ``most_jobs`` / ``most_budget`` (past ``max_jobs`` / ``budget``)."""
    q = make_queue(db, clock)
    batches: list[int] = []
    entered, gate, extracted, all_embedded = (asyncio.Event() for _ in range(4))
    extracts = 0

    async def embed(jobs: list[Job]) -> list[BaseException | None]:
        batches.append(len(jobs))
        if len(batches) == 1:
            entered.set()
            await gate.wait()
        if sum(batches) == 5:
            all_embedded.set()
        return [None] * len(jobs)

    async def extract(job: Job) -> None:
        nonlocal extracts
        extracts += 1
        if extracts == 2:
            extracted.set()

    spec = Batching(
        embed,
        max_jobs=2,
        budget=2,
        weight_key="chunks",
        most_jobs=10,
        most_budget=10,
        exclusive=True,
    )
    worker = await _embedding_worker(q, spec, extract=extract)
    try:
        await asyncio.wait_for(entered.wait(), 30)
        for _ in range(3):  # older than the extractions: by age, a second batch would be next
            await put(q, "t1", "embed", chunks=1)
        for _ in range(2):
            await put(q, "t1", "extract")
        q.wake()
        await asyncio.wait_for(extracted.wait(), 30)
        assert batches == [2]  # the other slot parsed instead of waiting behind the batch
        gate.set()
        await asyncio.wait_for(all_embedded.wait(), 30)
    finally:
        gate.set()
        await worker.stop()
    assert batches == [2, 3]
    assert await count(db) == 0


async def test_an_exclusive_batch_that_releases_its_hold_lets_the_next_batch_run(
    db: Database, clock: Clock
) -> None:
    """``Job.release_exclusive``: a batch handler done with its one-at-a-time resource (the
    model call over) ends the hold while it still records its outcomes: the worker's other
    slot may then claim the next batch of the kind. Releasing twice, or again at the batch's
    end, frees the kind once."""
    q = make_queue(db, clock)
    batches: list[int] = []
    released, second_ran = asyncio.Event(), asyncio.Event()
    gate = asyncio.Event()

    async def embed(jobs: list[Job]) -> list[BaseException | None]:
        batches.append(len(jobs))
        if len(batches) == 1:
            assert jobs[0].release_exclusive is not None
            jobs[0].release_exclusive()
            jobs[0].release_exclusive()
            released.set()
            await gate.wait()  # still recording its outcomes
        else:
            second_ran.set()
        return [None] * len(jobs)

    spec = Batching(embed, max_jobs=2, budget=2, weight_key="chunks", exclusive=True)
    worker = await _embedding_worker(q, spec)
    try:
        await asyncio.wait_for(released.wait(), 30)
        for _ in range(2):
            await put(q, "t1", "embed", chunks=1)
        q.wake()
        await asyncio.wait_for(second_ran.wait(), 30)  # while the first has not ended
        assert not gate.is_set()
        gate.set()
    finally:
        gate.set()
        await worker.stop()
    assert batches == [2, 2]
    assert worker._exclusive == {}  # every hold ended, none twice
    assert await count(db) == 0
