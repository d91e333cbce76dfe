"""The ingestion pipeline on both databases: upload to ready, idempotent stages under kills,
retries, dead letters and replay, poison files, re-ingest generations."""

from __future__ import annotations

from typing import Any

import pytest

import gasworks.documents.pipeline as pipeline
from gasworks.documents.domain import SOURCES, get_documents
from gasworks.documents.service import source_blob
from gasworks.errors import (
    DocumentEmpty,
    DocumentTooLarge,
    DocumentTypeUnsupported,
    ProviderUnavailable,
    TooManyFiles,
)
from gasworks.jobs import LeaseLost
from gasworks.retrieval.types import source_id
from tests.documents import samples
from tests.documents.helpers import (
    ADMIN,
    after_lease_expiry_all_ready,
    blob_keys,
    broken_chunking,
    drain,
    upload,
)


async def test_markdown_upload_becomes_ready_with_headings(drt: Any) -> None:
    res = await upload(drt, "policy.md", samples.MARKDOWN)
    doc = res.document
    assert (doc.status, doc.media_type, res.duplicate) == ("queued", "text/markdown", False)
    await drain(drt)
    svc = get_documents(drt).service
    doc = await svc.get(ADMIN, doc.id)
    assert doc.status == "ready" and doc.generation == 1 and doc.chunks == 2
    assert set(doc.stages) == {"extract", "chunk", "embed", "index"}
    assert all("finished" in v for v in doc.stages.values())
    sources = drt.services[SOURCES]
    chunks = {c.heading: c for c, _ in sources.data["ten_a"][source_id(doc.id, 1)].values()}
    assert set(chunks) == {"Invoices", "Refunds"}
    assert "thirty days" in chunks["Invoices"].text
    # the stored upload is encrypted at rest and reads back
    store = svc.blobs
    assert await store.get(source_blob("ten_a", doc.id)) == samples.MARKDOWN
    assert samples.MARKDOWN not in await store.inner.get(source_blob("ten_a", doc.id))
    kinds = [e.kind for e in await svc.events(ADMIN, doc.id)]
    assert kinds[0] == "uploaded" and kinds.count("stage.done") == 4


@pytest.mark.parametrize(
    ("name", "data", "media_type", "expect"),
    [
        (
            "scan.pdf",
            samples.pdf("Quarterly report: revenue grew by nine percent."),
            "application/pdf",
            "nine percent",
        ),
        (
            "notes.docx",
            samples.docx(("Heading 1", "Minutes"), ("p", "The board approved the budget.")),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "approved the budget",
        ),
        ("page.html", samples.HTML, "text/html", "sixty days"),
        (
            "report.txt",
            samples.pdf("Named .txt but really a PDF document text."),
            "application/pdf",
            "really a PDF",
        ),
    ],
)
async def test_formats_are_sniffed_and_extracted(
    drt: Any, name: str, data: bytes, media_type: str, expect: str
) -> None:
    doc = (await upload(drt, name, data)).document
    assert doc.media_type == media_type
    await drain(drt)
    doc = await get_documents(drt).service.get(ADMIN, doc.id)
    assert doc.status == "ready", (doc.error_code, doc.error_message)
    texts = drt.services[SOURCES].texts("ten_a", source_id(doc.id, 1))
    assert any(expect in t for t in texts)


async def test_same_bytes_same_document_unless_new(drt: Any) -> None:
    a = await upload(drt, "a.md", samples.MARKDOWN)
    b = await upload(drt, "b.md", samples.MARKDOWN)
    assert b.duplicate and b.document.id == a.document.id
    c = await upload(drt, "c.md", samples.MARKDOWN, new=True)
    assert not c.duplicate and c.document.id != a.document.id
    assert len(await blob_keys(drt)) == 2  # the duplicate's bytes were not kept


async def test_upload_limits(drt: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    svc = get_documents(drt).service
    with pytest.raises(DocumentEmpty):
        await upload(drt, "empty.txt", b"")
    with pytest.raises(DocumentTypeUnsupported):
        await upload(drt, "fake.pdf", bytes(range(256)) * 4)
    monkeypatch.setattr(svc.limits, "max_bytes", 1000)
    with pytest.raises(DocumentTooLarge):
        await upload(drt, "big.txt", b"x" * 5000)
    with pytest.raises(TooManyFiles):
        svc.check_count(svc.limits.max_files + 1)
    assert await blob_keys(drt) == []  # nothing half-written stays


async def test_a_stage_failing_then_succeeding(drt: Any) -> None:
    drt.services["documents.embedder"].fail = [ProviderUnavailable("down")] * 2
    doc = (await upload(drt, "a.md", samples.MARKDOWN)).document
    await drain(drt)
    doc = await get_documents(drt).service.get(ADMIN, doc.id)
    assert doc.status == "ready" and doc.stages["embed"]["attempts"] == 3


async def test_always_failing_goes_to_that_stages_dead_letters_and_replays(drt: Any) -> None:
    """The index part of the embed job fails (the fused index: the first failure), so the
    index stage is handed on as its own job, which fails its three attempts: a dead letter of
    ``documents.index``, never of ``documents.embed``."""
    sources = drt.services[SOURCES]
    sources.fail = [ProviderUnavailable("index down")] * 4
    docs = get_documents(drt)
    doc = (await upload(drt, "a.md", samples.MARKDOWN)).document
    await drain(drt)
    got = await docs.service.get(ADMIN, doc.id)
    assert (got.status, got.error_code) == ("failed", "PROVIDER_UNAVAILABLE")
    (dead,) = await docs.service.dead_letters(ADMIN, stage="index")
    assert dead.error_code == "PROVIDER_UNAVAILABLE" and len(dead.history) == 3
    assert await docs.service.dead_letters(ADMIN, stage="embed") == []
    assert await docs.service.replay(ADMIN, ids=[dead.id]) == 1  # the cause is fixed now
    # queued at once, before any worker takes it: a page that stops following a document
    # once it has failed never shows "failed" for a document whose work is queued again
    assert (await docs.service.get(ADMIN, doc.id)).status == "queued"
    await drain(drt)
    assert (await docs.service.get(ADMIN, doc.id)).status == "ready"
    assert await docs.service.dead_letters(ADMIN) == []


async def test_a_chunking_failure_inside_extract_is_the_chunk_stages_dead_letter(
    drt: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunking runs inside the extract job (fused); when it fails there, the extracted text
    is kept and a ``documents.chunk`` job takes over with its own attempts: its dead letter,
    once replayed with the cause gone, ends ready."""
    monkeypatch.setitem(vars(pipeline), "chunk", vars(pipeline)["chunk"])  # restored after
    undo = broken_chunking()
    docs = get_documents(drt)
    doc = (await upload(drt, "a.md", samples.MARKDOWN)).document
    await drain(drt)
    got = await docs.service.get(ADMIN, doc.id)
    assert (got.status, got.error_code) == ("failed", "JOB_FAILED")
    assert "finished" in got.stages["extract"] and "finished" not in got.stages["chunk"]
    (dead,) = await docs.service.dead_letters(ADMIN, stage="chunk")
    assert dead.attempts == 3 and len(dead.history) == 3
    assert await docs.service.dead_letters(ADMIN, stage="extract") == []
    undo()
    assert await docs.service.replay(ADMIN, ids=[dead.id]) == 1
    await drain(drt)
    got = await docs.service.get(ADMIN, doc.id)
    assert got.status == "ready" and got.chunks
    assert len(drt.services[SOURCES].data["ten_a"][source_id(doc.id, 1)]) == got.chunks
    assert await docs.service.dead_letters(ADMIN) == []


async def test_fused_stages_report_every_stage(drt: Any) -> None:
    """A document whose chunking ran in its extract job and whose indexing ran in its embed
    job still reports each stage: started, finished, attempts, its events in order, and no
    artifact of the extracted text or of the vectors."""
    docs = get_documents(drt)
    doc = (await upload(drt, "a.md", samples.MARKDOWN)).document
    assert await drain(drt) == 2  # the extract job and the embed job
    got = await docs.service.get(ADMIN, doc.id)
    assert got.status == "ready"
    for stage in ("extract", "chunk", "embed", "index"):
        assert {"started", "finished", "attempts"} <= set(got.stages[stage]), stage
        assert got.stages[stage]["started"] <= got.stages[stage]["finished"]
    events = [
        (e.kind, e.data.get("stage") or e.data.get("status"))
        for e in await docs.service.events(ADMIN, doc.id)
    ]
    assert [e for e in events if e[0] in ("status", "stage.done")] == [
        ("status", "extracting"),
        ("stage.done", "extract"),
        ("status", "chunking"),
        ("stage.done", "chunk"),
        ("status", "embedding"),
        ("stage.done", "embed"),
        ("status", "indexing"),
        ("stage.done", "index"),
    ]
    names = {k.rsplit("/", 1)[1] for k in await blob_keys(drt)}
    assert names == {"source", "g1-chunks.json"}


POISON = [
    ("locked.pdf", samples.encrypted_pdf(), "DOCUMENT_ENCRYPTED"),
    ("cut.pdf", samples.truncated_pdf(), "DOCUMENT_CORRUPT"),
    ("bomb.docx", samples.docx_bomb(), "EXTRACTION_LIMIT_EXCEEDED"),
]


async def test_poison_files_fail_with_clear_codes_and_the_worker_goes_on(drt: Any) -> None:
    svc = get_documents(drt).service
    ids = {code: (await upload(drt, name, data)).document.id for name, data, code in POISON}
    good = (await upload(drt, "ok.md", samples.MARKDOWN)).document.id
    await drain(drt)
    for code, doc_id in ids.items():
        doc = await svc.get(ADMIN, doc_id)
        assert (doc.status, doc.error_code) == ("failed", code), doc
        assert doc.error_message
    assert (await svc.get(ADMIN, good)).status == "ready"
    dead = await svc.dead_letters(ADMIN, stage="extract")
    # permanent errors are dead letters at the first attempt
    assert sorted(d.error_code or "" for d in dead) == sorted(ids) and all(
        d.attempts == 1 for d in dead
    )


STAGE_KINDS = ["documents.extract", "documents.chunk", "documents.embed", "documents.index"]


@pytest.mark.parametrize("kill_at", STAGE_KINDS)
async def test_worker_killed_in_a_stage_then_restarted_ends_ready_without_duplicates(
    drt: Any, kill_at: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker dies after the stage did its work but before its commit (the worst point):
    its lease expires, another worker redoes the stage, nothing is duplicated. The extract
    job chunks and the embed job indexes (fused): killed there, the commit of both stages is
    lost; the chunk and index jobs exist when that part failed inside the fused job, so it
    is made to fail once to kill them too."""
    docs = get_documents(drt)
    q = docs.queue
    if kill_at == "documents.chunk":
        monkeypatch.setitem(vars(pipeline), "chunk", vars(pipeline)["chunk"])  # restored after
        broken_chunking(1)
    if kill_at == "documents.index":
        drt.services[SOURCES].fail = [ProviderUnavailable("index down once")]
    ids = [
        (await upload(drt, f"d{i}.md", samples.MARKDOWN + bytes([65 + i]))).document.id
        for i in range(3)
    ]

    class Killed(BaseException):
        pass

    real_finish = q.finish_sync  # a stage completes its job in its commit's transaction
    killed: list[str] = []

    def dying_finish(session: Any, job: Any) -> None:
        if job.kind == kill_at and not killed:
            killed.append(job.id)
            raise Killed
        real_finish(session, job)

    monkeypatch.setattr(q, "finish_sync", dying_finish)
    worker = docs.new_worker(drt.settings, worker_id="doomed")
    handlers = docs.pipeline.handlers()
    with pytest.raises(Killed):
        while True:
            job = await q.claim("doomed", handlers.keys(), 30, starters=docs.pipeline.starters())
            assert job is not None
            await worker.run_job(job)
    # "restart": the dead worker's lease runs out
    await after_lease_expiry_all_ready(drt, ids)
    sources = drt.services[SOURCES]
    assert sources.count("ten_a") == sum(
        [(await docs.service.get(ADMIN, i)).chunks or 0 for i in ids]
    )


async def test_reingest_switches_generation_after_completion(drt: Any) -> None:
    docs = get_documents(drt)
    doc = (await upload(drt, "a.md", samples.MARKDOWN)).document
    await drain(drt)
    await docs.service.reingest(ADMIN, doc.id)
    # the new generation is being built: search still sees generation 1 only
    assert await docs.service.allowed_sources(ADMIN) == {source_id(doc.id, 1)}
    await drain(drt)
    got = await docs.service.get(ADMIN, doc.id)
    assert (got.generation, got.status) == (2, "ready")
    assert await docs.service.allowed_sources(ADMIN) == {source_id(doc.id, 2)}
    held = drt.services[SOURCES].data["ten_a"]
    assert source_id(doc.id, 1) not in held and source_id(doc.id, 2) in held
    assert not [k for k in await blob_keys(drt) if "/g1-" in k]


async def test_a_deleted_documents_in_flight_stage_is_discarded(drt: Any) -> None:
    docs = get_documents(drt)
    doc = (await upload(drt, "a.md", samples.MARKDOWN)).document
    job = await docs.queue.claim("w", ["documents.extract"], 30)
    assert job is not None
    await docs.service.delete(ADMIN, doc.id)
    worker = docs.new_worker(drt.settings)
    await worker.run_job(job)  # the late stage: its lease is gone, nothing is written
    async with drt.db.session() as s:
        with pytest.raises(LeaseLost):
            await docs.queue.finish(s, job)
    await drain(drt)
    from tests.documents.helpers import leftovers

    assert set((await leftovers(drt)).values()) == {0}


async def test_a_budget_refusal_waits_without_spending_attempts(drt: Any) -> None:
    from gasworks.errors import TokenBudgetExceeded

    docs = get_documents(drt)
    drt.services["documents.embedder"].fail = [TokenBudgetExceeded("monthly tokens used up")]
    doc = (await upload(drt, "a.md", samples.MARKDOWN)).document
    await drain(drt)
    got = await docs.service.get(ADMIN, doc.id)
    assert (got.status, got.error_code) == ("embedding", "TOKEN_BUDGET_EXCEEDED")
    assert got.error_message == "monthly tokens used up"
    stats = await docs.queue.stats()
    assert stats["documents.embed"].queued == 1 and stats["documents.embed"].dead == 0
    # the budget resets: the stage runs again (its attempt count was not spent)
    from datetime import timedelta

    base = docs.queue.clock
    docs.queue.clock = lambda: base() + timedelta(seconds=301)
    await drain(drt)
    got = await docs.service.get(ADMIN, doc.id)
    assert got.status == "ready" and got.stages["embed"]["attempts"] == 1


async def test_without_a_vector_index_the_index_stage_waits(drt: Any) -> None:
    docs = get_documents(drt)
    del drt.services["documents.sources"]
    doc = (await upload(drt, "a.md", samples.MARKDOWN)).document
    await drain(drt)
    got = await docs.service.get(ADMIN, doc.id)
    assert (got.status, got.error_code) == ("indexing", "RETRIEVAL_NOT_CONFIGURED")
    assert await docs.service.dead_letters(ADMIN) == []


async def test_pages_without_text_go_through_ocr_with_textract(drt: Any) -> None:
    """A PDF whose second page has no text layer: only that page is rendered (in the
    sandbox) and sent to the Textract adapter; the text lands on page 2."""
    from gasworks.documents.domain import TEXTRACT
    from gasworks.testing import FakeTextract

    docs = get_documents(drt)
    fake = FakeTextract("Scanned total due 1250")
    drt.services[TEXTRACT] = fake
    docs.pipeline.config.ocr_engine = "textract"
    doc = (
        await upload(drt, "scan.pdf", samples.pdf("A first page with a text layer.", ""))
    ).document
    await drain(drt)
    got = await docs.service.get(ADMIN, doc.id)
    assert got.status == "ready" and set(got.stages) == {
        "extract",
        "ocr",
        "chunk",
        "embed",
        "index",
    }
    assert fake.calls == 1
    chunks = [c for c, _ in drt.services[SOURCES].data["ten_a"][source_id(doc.id, 1)].values()]
    assert {(c.page, c.text) for c in chunks} == {
        (1, "A first page with a text layer."),
        (2, "Scanned total due 1250"),
    }


async def test_an_image_is_read_by_rapidocr(drt: Any) -> None:
    pytest.importorskip("rapidocr_onnxruntime")
    from tests.documents.test_sandbox import _invoice_png

    docs = get_documents(drt)
    docs.pipeline.config.ocr_engine = "rapidocr"
    doc = (await upload(drt, "invoice.png", _invoice_png())).document
    assert doc.media_type == "image/png"
    await drain(drt)
    got = await docs.service.get(ADMIN, doc.id)
    assert got.status == "ready", (got.error_code, got.error_message)
    texts = drt.services[SOURCES].texts("ten_a", source_id(doc.id, 1))
    assert any("1250" in t for t in texts)


async def test_embedding_goes_through_the_gateway_by_default(drt: Any) -> None:
    """Without an override the embed stage calls ``Gateway.embed`` (the offline default
    embedding model here), so ingestion spend goes through breakers, budgets and the ledger."""
    from gasworks.llm.runtime import get_gateway

    del drt.services["documents.embedder"]
    assert get_documents(drt).pipeline._embedder() is get_gateway(drt)
    doc = (await upload(drt, "a.md", samples.MARKDOWN)).document
    await drain(drt)
    got = await get_documents(drt).service.get(ADMIN, doc.id)
    assert got.status == "ready", (got.error_code, got.error_message)
    held = drt.services[SOURCES].data["ten_a"][source_id(doc.id, 1)]
    (dims,) = {len(v) for _, v in held.values()}
    assert dims > 8  # a real model's vectors, not the fake's
