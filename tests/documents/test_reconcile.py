"""The reconciler finds planted orphans in the blob store and the vector index, and rows
whose blob is gone; it waits out the grace period; it leaves live documents alone."""

from __future__ import annotations

from typing import Any

from gasworks.documents.domain import SOURCES, get_documents
from gasworks.documents.service import source_blob
from gasworks.retrieval.types import Chunk, Space, source_id
from tests.documents import samples
from tests.documents.helpers import ADMIN, blob_keys, drain, upload


async def test_reconciler_removes_planted_orphans(drt: Any) -> None:
    docs = get_documents(drt)
    keep = (await upload(drt, "keep.md", samples.MARKDOWN)).document
    lost = (await upload(drt, "lost.md", samples.MARKDOWN + b"!")).document
    await drain(drt)
    before = sorted(await blob_keys(drt))
    sources = drt.services[SOURCES]
    vectors_before = sources.count("ten_a")
    # plant: a blob of no document, an old generation's artifact, vectors of no document
    await docs.service.blobs.put("ten_a/documents/doc_ghost/source", b"ghost")
    await docs.service.blobs.put(f"ten_a/documents/{keep.id}/g7-chunks.json", b"[]")
    ghost = Chunk("c1", source_id("doc_ghost", 1), "doc_ghost", 0, "ghost text")
    stale = Chunk("c2", source_id(keep.id, 7), keep.id, 0, "stale text")
    await sources.write_source("ten_a", Space("fake-embed", 8), [ghost, stale], [[1.0] * 8] * 2)
    # and a row whose blob vanished
    await docs.service.blobs.delete(source_blob("ten_a", lost.id))

    # orphans are seen, but not removed before the grace period; the row without its blob is
    # marked at once (nothing is removed)
    first = await docs.reconciler.run(grace=3600)
    assert (first.blobs_removed, first.sources_removed, first.documents_failed) == (0, 0, 1)
    out = await docs.reconciler.run(grace=0)
    assert (out.blobs_removed, out.sources_removed, out.documents_failed) == (2, 2, 0)
    assert sorted(await blob_keys(drt)) == [k for k in before if k != source_blob("ten_a", lost.id)]
    assert sources.count("ten_a") == vectors_before
    assert (await docs.service.get(ADMIN, keep.id)).status == "ready"
    got = await docs.service.get(ADMIN, lost.id)
    assert (got.status, got.error_code) == ("failed", "DOCUMENT_BLOB_MISSING")
    # nothing left to do, and an audit event records what was removed
    again = await docs.reconciler.run(grace=0)
    assert (again.blobs_removed, again.sources_removed, again.documents_failed) == (0, 0, 0)
    from sqlalchemy import select

    from gasworks.documents.tables import DocumentEventRow

    async with drt.db.read_session() as s:
        audit = (
            await s.scalars(select(DocumentEventRow).where(DocumentEventRow.kind == "reconciled"))
        ).all()
    assert [a.data["removed"] for a in audit] == [{"missing": 1}, {"blob": 2, "source": 2}]


async def test_a_deleted_document_whose_delete_job_was_discarded_is_purged(drt: Any) -> None:
    docs = get_documents(drt)
    doc = (await upload(drt, "a.md", samples.MARKDOWN)).document
    await drain(drt)
    await docs.service.delete(ADMIN, doc.id)
    async with drt.db.session() as s:  # the delete job is lost (discarded by an operator)
        await docs.queue.cancel_subject(s, "ten_a", f"delete:{doc.id}")
    out = await docs.reconciler.run(grace=0)
    assert out.documents_purged == 1
    from tests.documents.helpers import leftovers

    assert set((await leftovers(drt)).values()) == {0}


async def test_reconciler_runs_once_per_deployment(drt: Any) -> None:
    """Only the process holding the deployment's leader lease reconciles."""
    docs = get_documents(drt)
    ran = []

    async def fake_run(grace: float = 600.0) -> Any:
        ran.append(grace)

    docs.reconciler.run = fake_run  # type: ignore[method-assign]
    leading = [False]
    docs.leader = lambda: leading[0]
    await docs.reconcile_if_leader()
    assert ran == []
    leading[0] = True
    await docs.reconcile_if_leader()
    assert ran == [600.0]


async def test_the_reconciler_follows_the_leader_lease(doc_settings: Any) -> None:
    """Two runtimes: the follower's reconcile does nothing while the leader's runs."""
    from gasworks.db.leader import is_leader
    from gasworks.wiring import build_runtime

    one = build_runtime(doc_settings)
    two = build_runtime(doc_settings.model_copy(update={"home": doc_settings.home.parent / "2"}))
    await one.start(migrate=False)
    await two.start(migrate=False)
    try:
        assert is_leader(one) != is_leader(two)  # the first to start leads at once
        ran: list[str] = []
        for name, rt in (("one", one), ("two", two)):
            docs = get_documents(rt)

            async def fake_run(grace: float = 600.0, name: str = name) -> Any:
                ran.append(name)

            docs.reconciler.run = fake_run  # type: ignore[method-assign]
            await docs.reconcile_if_leader()
        assert ran == (["one"] if is_leader(one) else ["two"])
    finally:
        await two.stop()
        await one.stop()
