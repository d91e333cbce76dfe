"""Cross-document embedding batches on both databases: the embed stages of one tenant's
documents share one embedding call, yet each document settles on its own -- one document's
failure (retriable or permanent) is its own job's attempt and never the others', leases are
held for every job of the batch, and the ledger keeps a row per document."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from gasworks.documents.domain import SOURCES, get_documents
from gasworks.errors import ProviderBadRequest, ProviderUnavailable
from gasworks.jobs import Job
from gasworks.jobs.tables import JobRow
from gasworks.retrieval.types import source_id
from tests.documents import samples
from tests.documents.helpers import (
    ADMIN,
    after_lease_expiry_all_ready,
    drain,
    leftovers,
    upload,
)

EMBED = "documents.embed"
MARK = "Zanzibar"  # a word only the poisoned document carries


def _doc(i: int, extra: str = "") -> bytes:
    return samples.MARKDOWN + f"\n\nNote {i}. {extra}\n".encode()


async def _up_to_embed(rt: Any, n: int, poisoned: int | None = None) -> list[str]:
    """``n`` documents uploaded and run up to their embed stage (queued, not yet claimed)."""
    ids = [
        (await upload(rt, f"d{i}.md", _doc(i, MARK if i == poisoned else ""))).document.id
        for i in range(n)
    ]
    docs = get_documents(rt)
    worker = docs.new_worker(rt.settings, worker_id="stages")
    while True:
        job = await docs.queue.claim(
            "stages", ["documents.extract", "documents.chunk", "documents.ocr"], 30
        )
        if job is None:
            break
        await worker.run_job(job)
    async with rt.db.read_session() as s:
        kinds = list((await s.scalars(select(JobRow.kind))).all())
    assert kinds == [EMBED] * n  # every document waits at its embed stage
    return ids


async def _run_one_batch(rt: Any, held: dict[str, Job] | None = None) -> Job:
    docs = get_documents(rt)
    worker = docs.new_worker(rt.settings, worker_id="batcher")
    job = await docs.queue.claim("batcher", [EMBED], 30)
    assert job is not None
    await worker.run_job(job, held)
    return job


async def test_a_tenants_embed_stages_share_one_call_and_settle_each(drt: Any) -> None:
    embedder = drt.services["documents.embedder"]
    ids = await _up_to_embed(drt, 4)
    await _run_one_batch(drt)
    docs = get_documents(drt)
    got = [await docs.service.get(ADMIN, i) for i in ids]
    assert [d.status for d in got] == ["ready"] * 4
    assert embedder.call_sizes == [sum(d.chunks or 0 for d in got)]  # one call for all four
    sources = drt.services[SOURCES]
    for d in got:
        assert len(sources.data["ten_a"][source_id(d.id, 1)]) == d.chunks
        assert d.stages["embed"]["attempts"] == 1 and "finished" in d.stages["embed"]


async def test_one_documents_retriable_failure_retries_only_that_document(drt: Any) -> None:
    embedder = drt.services["documents.embedder"]
    embedder.poison = {MARK: ProviderUnavailable("the provider is down for this input")}
    ids = await _up_to_embed(drt, 3, poisoned=1)
    await _run_one_batch(drt)
    docs = get_documents(drt)
    got = [await docs.service.get(ADMIN, i) for i in ids]
    # the shared call failed; each document was embedded again alone: two made it
    assert [d.status for d in got] == ["ready", "embedding", "ready"]
    assert got[1].error_code == "PROVIDER_UNAVAILABLE"
    assert embedder.call_sizes[0] == sum(embedder.call_sizes[1:])  # shared, then one each
    stats = await docs.queue.stats()
    assert stats[EMBED].queued == 1 and stats[EMBED].dead == 0  # its retry, nobody else's
    embedder.poison = {}  # the cause goes away: the retry succeeds
    await drain(drt)
    again = await docs.service.get(ADMIN, ids[1])
    assert again.status == "ready" and again.stages["embed"]["attempts"] == 2
    assert await docs.service.dead_letters(ADMIN) == []


async def test_one_documents_permanent_failure_is_its_own_dead_letter(drt: Any) -> None:
    embedder = drt.services["documents.embedder"]
    embedder.poison = {MARK: ProviderBadRequest("the provider refuses this input")}
    ids = await _up_to_embed(drt, 3, poisoned=2)
    await drain(drt)
    docs = get_documents(drt)
    got = [await docs.service.get(ADMIN, i) for i in ids]
    assert [d.status for d in got] == ["ready", "ready", "failed"]
    assert got[2].error_code == "PROVIDER_BAD_REQUEST"
    (dead,) = await docs.service.dead_letters(ADMIN, stage="embed")
    assert dead.attempts == 1 and dead.payload["documentId"] == ids[2]
    assert drt.services[SOURCES].count("ten_a") == (got[0].chunks or 0) + (got[1].chunks or 0)


async def test_every_job_of_a_batch_is_held_and_its_lease_renewed(drt: Any) -> None:
    """While the shared call runs, the worker holds (and its heartbeat renews) the lease of
    every job of the batch, not only the one it claimed: no other worker can take them."""
    docs = get_documents(drt)
    embedder = drt.services["documents.embedder"]
    await _up_to_embed(drt, 3)
    held: dict[str, Job] = {}
    seen: dict[str, Any] = {}
    inner = embedder.embed_many

    async def watching(scope: Any, reqs: Any) -> Any:
        seen["held"] = {j.id: j.kind for j in held.values()}
        seen["other"] = await docs.queue.claim("other", [EMBED], 30)
        before = await _expiries(drt)
        assert await docs.queue.heartbeat_many(list(held.values()), 300) == []
        seen["renewed"] = all(v > before[k] for k, v in (await _expiries(drt)).items())
        return await inner(scope, reqs)

    embedder.embed_many = watching
    await _run_one_batch(drt, held)
    assert list(seen["held"].values()) == [EMBED] * 3
    assert seen["other"] is None and seen["renewed"]
    assert held == {}  # all settled


async def _expiries(rt: Any) -> dict[str, Any]:
    async with rt.db.read_session() as s:
        rows = (await s.execute(select(JobRow.id, JobRow.lease_expires_at))).all()
    return {r[0]: r[1] for r in rows}


async def test_a_worker_killed_mid_batch_leaves_every_job_to_be_taken_again(
    drt: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker dies after the shared call, with one document committed and the others
    not: their leases expire, another worker takes them (a batch again), nothing is lost or
    duplicated."""
    docs = get_documents(drt)
    q = docs.queue
    ids = await _up_to_embed(drt, 3)

    class Killed(BaseException):
        pass

    real_finish = q.finish
    finished: list[str] = []

    async def dying_finish(session: Any, job: Any) -> None:
        if job.kind == EMBED and finished:
            raise Killed
        await real_finish(session, job)
        if job.kind == EMBED:
            finished.append(job.id)

    monkeypatch.setattr(q, "finish", dying_finish)
    with pytest.raises(Killed):
        await _run_one_batch(drt)
    monkeypatch.setattr(q, "finish", real_finish)
    await after_lease_expiry_all_ready(drt, ids)
    async with drt.db.read_session() as s:
        assert (await s.scalars(select(JobRow))).all() == []


async def test_batches_stay_within_one_tenant(drt: Any) -> None:
    from tests.documents.helpers import ctx

    other = ctx("ten_b", who="prn_b", role=ADMIN.role)
    embedder = drt.services["documents.embedder"]
    mine = [(await upload(drt, f"{n}.md", _doc(n))).document.id for n in (1, 3)]
    theirs = (await upload(drt, "b.md", _doc(2), c=other)).document.id
    await drain(drt)
    svc = get_documents(drt).service
    assert {(await svc.get(ADMIN, i)).status for i in mine} == {"ready"}
    assert (await svc.get(other, theirs)).status == "ready"
    sizes = sorted(embedder.call_sizes)
    one = (await svc.get(other, theirs)).chunks
    assert len(sizes) == 2 and one in sizes  # ten_a's two documents together, ten_b's alone


async def _purge_now(rt: Any, ids: list[str]) -> None:
    """Delete the documents and run their removal at once, as another worker would."""
    docs = get_documents(rt)
    for i in ids:
        await docs.service.delete(ADMIN, i)
    other = docs.new_worker(rt.settings, worker_id="purger")
    while (job := await docs.queue.claim("purger", ["documents.delete"], 30)) is not None:
        await other.run_job(job)


async def test_documents_deleted_during_their_shared_call_leave_nothing(drt: Any) -> None:
    """The documents are deleted, and their removal has run, while their embed call is in
    flight: the vectors this late stage produced are written after the removal swept the
    documents' blobs, and must not stay behind (no orphan waiting for reconciliation)."""
    embedder = drt.services["documents.embedder"]
    ids = await _up_to_embed(drt, 3)
    inner = embedder.embed_many

    async def deleting(scope: Any, reqs: Any) -> Any:
        await _purge_now(drt, ids[:2])  # two of the three
        return await inner(scope, reqs)

    embedder.embed_many = deleting
    await _run_one_batch(drt)
    await drain(drt)
    from tests.documents.helpers import blob_keys

    keys = await blob_keys(drt)
    assert not [k for k in keys if ids[0] in k or ids[1] in k]
    got = await get_documents(drt).service.get(ADMIN, ids[2])
    assert got.status == "ready"  # the third was not touched
    await _purge_now(drt, ids[2:])
    assert set((await leftovers(drt)).values()) == {0}


async def test_a_document_deleted_during_its_own_embed_call_leaves_nothing(drt: Any) -> None:
    embedder = drt.services["documents.embedder"]
    (doc,) = await _up_to_embed(drt, 1)
    inner = embedder.embed

    async def deleting(scope: Any, req: Any) -> Any:
        await _purge_now(drt, [doc])
        return await inner(scope, req)

    embedder.embed = deleting
    await _run_one_batch(drt)
    await drain(drt)
    assert set((await leftovers(drt)).values()) == {0}
