"""The ingestion pipeline: one job kind per stage, each idempotent.

extract -> ocr (only pages without a text layer) -> chunk -> embed -> index

Every stage reads the previous stage's artifact (a blob at a key fixed by document,
generation and stage), writes its own, and then -- in one transaction -- checks that the
document still wants this generation, records the stage, enqueues the next stage and
completes its job (``JobQueue.finish``). A crash anywhere re-runs the stage from its input;
the same input gives the same artifact and the same chunk ids, so nothing is duplicated. A
deleted or superseded document makes a stage a no-op (its late writes are discarded).

The index stage writes the new generation's source and then switches the document to it in
one transaction; the old generation's chunks and vectors are removed by a cleanup job after.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import sys
import time
from array import array
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from gasworks.documents import sandbox, sniff
from gasworks.documents.chunking import DEFAULT_OVERLAP, DEFAULT_TOKENS, ChunkConfig, chunk
from gasworks.documents.extractors import EXTRACTORS, IN_PROCESS, Block, Extracted
from gasworks.documents.metrics import STAGE_SECONDS
from gasworks.documents.service import (
    CHUNK,
    CLEANUP,
    DELETE,
    EMBED,
    EXTRACT,
    INDEX,
    OCR,
    STAGE_STATUS,
    DocumentService,
    add_event,
    add_events,
    artifact_blob,
    event_values,
    stage_job_key,
)
from gasworks.documents.tables import CollectionDocumentRow, CollectionRow, DocumentRow
from gasworks.errors import (
    BlobNotFound,
    CostLimitExceeded,
    DocumentNoText,
    GasworksError,
    RetrievalNotConfigured,
    TokenBudgetExceeded,
)
from gasworks.jobs import Batching, Handler, Job, LeaseLost, Postpone, Starter
from gasworks.modeltypes import CallScope
from gasworks.observability.logging import get_logger
from gasworks.retrieval.types import (
    BatchEmbedder,
    Chunk,
    Embedder,
    EmbedRequest,
    EmbedResult,
    SourceWriter,
    Space,
    StagedSourceWriter,
    source_id,
)

log = get_logger("gasworks.documents.pipeline")

#: the chunk sizes of a document's first collection, by name (``Pipeline._chunk_sizes``)
_FIRST_COLLECTION = (
    select(CollectionRow.chunk_tokens, CollectionRow.chunk_overlap)
    .join(CollectionDocumentRow, CollectionDocumentRow.collection_id == CollectionRow.id)
    .where(
        CollectionDocumentRow.tenant_id == bindparam("tenant"),
        CollectionDocumentRow.document_id == bindparam("document"),
    )
    .order_by(CollectionRow.name)
    .limit(1)
)

#: the job's document, locked (``_live``); built once: a stage's start and commit read it
_DOCS: Table = DocumentRow.__table__  # type: ignore[assignment]
#: a stage's document row, locked: a Core SELECT of the table's columns (``_live``)
_LIVE = (
    select(*_DOCS.c)
    .where(_DOCS.c.id == bindparam("document"), _DOCS.c.tenant_id == bindparam("tenant"))
    .with_for_update()
)
#: a claimed stage's document row, locked unless another transaction holds it
#: (``Pipeline._start_claimed``: the claim holds the job's row, so it must not wait for the
#: document's, which every other transaction locks first)
_LIVE_NOW = (
    select(*_DOCS.c)
    .where(_DOCS.c.id == bindparam("document"), _DOCS.c.tenant_id == bindparam("tenant"))
    .with_for_update(skip_locked=True)
)
#: a stage's write of its document row: the columns it changed, given as the execution's
#: parameters (``_save_rows``), one statement built once
_SAVE = update(_DOCS).where(
    _DOCS.c.id == bindparam("_doc"), _DOCS.c.tenant_id == bindparam("_tenant")
)

#: chunk artifacts kept in memory for the embed stage (``Pipeline._recent``)
_RECENT_MAX = 512


@dataclass(slots=True)
class PipelineConfig:
    parse: sandbox.Limits
    ocr: sandbox.Limits
    ocr_engine: str = "rapidocr"
    textract_region: str | None = None
    embedding_model: str | None = None
    embed_batch: int = 64
    #: embed stages of one tenant run together, up to this many documents whose chunks fit in
    #: ``embed_batch`` (one shared embedding call); 1 embeds each document on its own
    embed_batch_documents: int = 16
    #: chunks a batch of embed stages may hold when more are ready than make one
    #: (``embed_batch``): the batch takes what is ready up to this, its documents up to
    #: ``embed_batch_documents`` in the same proportion
    embed_batch_max: int = 256
    #: a batch of embed stages is claimed ahead of older stages once full, or once its oldest
    #: has waited this long (``jobs.Batching.linger``); ``None``: by age only
    embed_linger: float | None = 10.0
    budget_retry_seconds: float = 300.0
    #: fork parse and OCR children from servers that imported the parsers once
    #: (``sandbox.ForkServer``) instead of starting a fresh interpreter per file
    preload: bool = True
    #: files of one tenant a parse child may parse one after the other (with ``preload``);
    #: any failure in a child that parsed a file before is retried in a fresh child
    parse_reuse: int = 16
    #: hand the next stage to the worker that finished this one (``JobQueue.enqueue_next``)
    chain: bool = True
    #: chunk in the extract/OCR job and index in the embed job (``_chunked_or_handed``,
    #: ``_embedded``); a part that fails is handed on as its own chunk or index job
    fuse: bool = True


class _Stale(Exception):
    pass


class Pipeline:
    def __init__(
        self,
        svc: DocumentService,
        config: PipelineConfig,
        *,
        embedder: Callable[[], Embedder | None],
        writer: Callable[[], SourceWriter | None],
        textract: Callable[[], Any] | None = None,
    ) -> None:
        self.svc = svc
        self.db = svc.db
        self.blobs = svc.blobs
        self.queue = svc.queue
        self.config = config
        self._embedder = embedder
        self._writer = writer
        self._textract = textract
        self.forks = sandbox.ForkServer(config.parse_reuse) if config.preload else None
        #: chunk artifacts this process just wrote, by blob key: the embed stage, queued for
        #: a batch rather than handed on, usually runs here and need not read them back
        self._recent: OrderedDict[str, Any] = OrderedDict()

    async def aclose(self) -> None:
        """End the parse servers (``sandbox.ForkServer``), if any."""
        if self.forks is not None:
            await self.forks.aclose()

    async def _sandboxed(
        self,
        tenant_id: str,
        task: str,
        media_type: str,
        data: bytes,
        limits: sandbox.Limits,
        arg: str = "",
    ) -> Any:
        """``task`` in a parse child; with the fork servers, a child may parse several files
        of the same tenant (``parse_reuse``)."""
        if self.forks is not None:
            return await self.forks.run(task, media_type, data, limits, arg, key=tenant_id)
        return await sandbox.run(task, media_type, data, limits, arg)

    def handlers(self) -> dict[str, Handler]:
        return {
            EXTRACT: self.extract,
            OCR: self.ocr,
            CHUNK: self.chunk,
            EMBED: self.embed,
            INDEX: self.index,
            CLEANUP: self.cleanup,
            DELETE: self.delete,
        }

    def batches(self) -> dict[str, Batching]:
        """The stages whose jobs run several at a time (``Worker`` batching): embed, when
        ``embed_batch_documents`` > 1, claimed ahead of older extractions once a batch is
        full or has lingered ``embed_linger`` seconds. One batch at a time per worker
        (``Batching.exclusive``): its other slot keeps parsing, and the next batch takes every
        embed stage ready by then, up to ``embed_batch_max`` chunks, so that the model's
        calls grow with the backlog (bigger calls sorted by length pad less)."""
        cfg = self.config
        if cfg.embed_batch_documents <= 1:
            return {}
        most = max(cfg.embed_batch, cfg.embed_batch_max)
        return {
            EMBED: Batching(
                self.embed_batch,
                max_jobs=cfg.embed_batch_documents,
                budget=cfg.embed_batch,
                weight_key="chunks",
                linger=cfg.embed_linger,
                most_jobs=max(1, cfg.embed_batch_documents * most // max(1, cfg.embed_batch)),
                most_budget=most,
                exclusive=True,
            )
        }

    def starters(self) -> dict[str, Starter]:
        """The stages whose start (status, ``stages.<stage>.started``, the ``status`` event) a
        worker records in the transaction that claims their job (``JobQueue.claim``), one
        transaction fewer per claimed stage; not the batched embed stage, whose batch starts
        together (``_begin``)."""
        kinds = [EXTRACT, OCR, CHUNK, INDEX]
        if not self.batches():
            kinds.append(EMBED)
        return dict.fromkeys(kinds, self._start_claimed)

    def _start_claimed(self, s: Session, job: Job) -> None:
        """Record the start of ``job``'s stage in its claim's transaction and hand the row to
        the stage (``Job.memo``, as a previous stage's commit hands it on). A document that
        another transaction holds, or that no longer wants the job, is left to the stage's own
        start (``_begin``), which waits for it or completes the job as a no-op."""
        doc_id, gen = str(job.payload.get("documentId")), int(job.payload.get("generation", 0))
        found = s.connection().execute(_LIVE_NOW, {"document": doc_id, "tenant": job.tenant_id})
        row = found.first()
        if row is None or row.deleted_at is not None or row.pending_generation != gen:
            return
        live = DocumentRow(**row._mapping)
        event = _mark_started(live, job)
        _save_rows(s, [live], ("status", "stages"))
        add_events(s, [event])
        job.memo["row"] = live

    def maybe_writer(self) -> SourceWriter | None:
        return self._writer()

    def writer(self) -> SourceWriter:
        """The vector writer; without one the job waits (no attempt spent) until retrieval is
        configured."""
        w = self._writer()
        if w is None:
            raise Postpone(
                RetrievalNotConfigured("No vector index is configured for documents."),
                self.config.budget_retry_seconds,
            )
        return w

    # -- the common shape of a stage --------------------------------------------------------

    async def _run_stage(
        self,
        job: Job,
        work: Callable[[DocumentRow, int], Awaitable[tuple[str | None, dict[str, Any]]]],
        also: list[Callable[[Session], None]] | None = None,
    ) -> None:
        """Start the stage (unless its start was handed on), run ``work``, commit the stage;
        ``also``: what ``work`` left to be written in the commit's transaction."""
        doc_id, gen = str(job.payload["documentId"]), int(job.payload["generation"])
        row = await self._started(job)
        if row is None:
            return
        started = time.monotonic()
        next_kind, updates = await work(row, gen)
        # the embed job carries its document's chunk count: a batch's weight (``batches``)
        extra = {"chunks": int(updates.get("chunks") or 0)} if next_kind == EMBED else None
        await self._complete(job, doc_id, gen, next_kind, updates, started, extra, also)

    async def _started(self, job: Job) -> DocumentRow | None:
        """The job's document with its stage's start recorded: handed on by the previous
        stage's commit, which recorded it, or recorded now (``_begin``); ``None`` when the
        document no longer wants the job (completed as a no-op)."""
        handed = job.memo.get("row")
        if isinstance(handed, DocumentRow):
            return handed
        (begun,) = await self._begin([job])
        return begun

    async def _begin(self, jobs: list[Job]) -> list[DocumentRow | None]:
        """Record the start of each job's stage (status, ``stages.<stage>.started``, a
        ``status`` event), all in one transaction; ``None`` for a job whose document no longer
        wants it (deleted, superseded), which is completed (a no-op)."""
        # the documents are locked in id order (``mark_deleted_many`` takes them so too)
        order = sorted(range(len(jobs)), key=lambda n: str(jobs[n].payload["documentId"]))

        def start(s: Session, _: object) -> list[DocumentRow | None]:
            out: list[DocumentRow | None] = [None] * len(jobs)
            events: list[dict[str, Any]] = []
            for n in order:
                job = jobs[n]
                doc_id, gen = str(job.payload["documentId"]), int(job.payload["generation"])
                live = _live(s, job, doc_id, gen)
                out[n] = live
                if live is not None:
                    events.append(_mark_started(live, job))
            _save_rows(s, [x for x in out if x is not None], ("status", "stages"))
            add_events(s, events)
            return out

        out = await self.db.write_batch(start)
        for job, live in zip(jobs, out, strict=True):
            if live is None:
                with contextlib.suppress(LeaseLost):
                    async with self.db.session() as s:
                        await self.queue.finish(s, job)
        return out

    async def _complete(
        self,
        job: Job,
        doc_id: str,
        gen: int,
        next_kind: str | None,
        updates: dict[str, Any],
        started: float,
        next_payload: dict[str, Any] | None = None,
        also: list[Callable[[Session], None]] | None = None,
    ) -> None:
        """Commit the stage (``_commit_stage``) and hand the next one on; ``_Stale`` when the
        document no longer wants this generation or the lease was lost (the job is completed
        or left to its new owner)."""
        stage = job.kind.split(".", 1)[1]
        fused: list[_Part] = job.memo.pop("fused", [])
        try:
            nxt, done = await self._commit_stage(
                job, stage, doc_id, gen, next_kind, updates, next_payload, also, fused
            )
        except (_Stale, LeaseLost):
            with contextlib.suppress(LeaseLost):
                async with self.db.session() as s:
                    await self.queue.finish(s, job)
            await self._drop_if_deleted(job, doc_id, gen)
            raise _Stale from None
        _observe(stage, time.monotonic() - started, fused)
        if nxt is not None:
            nxt.memo = {"row": done, "artifacts": job.memo.get("artifacts", {})}
            job.then = nxt
        elif next_kind is not None:
            # queued for any worker: wake the idle ones. A stage handed on to this worker
            # wakes nobody (there is nothing for them to claim: a wake-up would only cost
            # each idle worker a poll, about four per document)
            self.queue.wake()

    async def _drop_if_deleted(self, job: Job, doc_id: str, gen: int) -> None:
        """A stage writes its artifact before the transaction that finds the document still
        wanted. When the document was deleted meanwhile, the cascade may already have swept
        its blobs: remove what this attempt wrote (and was handed), or it would stay an
        orphan until reconciliation."""
        try:
            async with self.db.read_session() as s:
                row = await s.get(DocumentRow, doc_id)
            if row is not None and row.tenant_id == job.tenant_id and row.deleted_at is None:
                return  # superseded or lease lost: the document's own cleanup owns its blobs
            for stage in job.memo.get("artifacts", {}):
                await self.blobs.delete(artifact_blob(job.tenant_id, doc_id, gen, stage))
        except Exception as exc:  # reconciliation removes what is left: never fail the job here
            log.warning("documents.late_artifact_kept", job=job.id, error_type=type(exc).__name__)

    async def _commit_stage(
        self,
        job: Job,
        stage: str,
        doc_id: str,
        gen: int,
        next_kind: str | None,
        updates: dict[str, Any],
        next_payload: dict[str, Any] | None = None,
        also: list[Callable[[Session], None]] | None = None,
        fused: list[_Part] | None = None,
    ) -> tuple[Job | None, DocumentRow]:
        """Record the stage done, enqueue the next one and complete the job, in one
        transaction. The next stage's job is leased to this worker (``enqueue_next``), which
        runs it at once: its start (status, ``stages.<next>.started``, the ``status`` event) is
        recorded here too, as its own first transaction would have.

        The transaction is synchronous statements in one ``Database.write_batch`` (on a
        SQLite file: one hand-off to the writer thread instead of one per statement), and
        the document row is written once."""
        chains = next_kind is not None and self._chains(next_kind)
        payload = {**job.payload, **(next_payload or {}), "generation": gen}
        key = stage_job_key(doc_id, gen, next_kind) if next_kind is not None else None

        def commit(s: Session, _: object) -> tuple[Job | None, DocumentRow]:
            live = _live(s, job, doc_id, gen)
            if live is None:
                raise _Stale
            for write in also or ():  # after the document's lock, before the job's
                write(s)
            nxt: Job | None = None
            if next_kind is not None:  # handed on to this worker, or queued for any
                nxt = self.queue.enqueue_next_sync(
                    s,
                    job,
                    kind=next_kind,
                    subject=doc_id,
                    payload=payload,
                    dedupe_key=key,
                    hand_on=chains,
                )
            events = _record_stage(live, job, stage, updates, fused, nxt)
            _save_rows(s, [live], ("status", "stages", "updated_at", *updates))
            add_events(s, events)
            self.queue.finish_sync(s, job)
            return nxt, live

        nxt, live = await self.db.write_batch(commit)
        job.finished = True
        return nxt, live

    def _chains(self, next_kind: str) -> bool:
        """Whether the next stage is handed on to this worker (``enqueue_next``) or queued.
        The embed stage is queued when embeds run in batches: the batch is made of queued
        embed jobs (``batches``)."""
        if not self.config.chain:
            return False
        return not (next_kind == EMBED and self.config.embed_batch_documents > 1)

    async def _guarded(
        self,
        job: Job,
        work: Callable[[DocumentRow, int], Awaitable[tuple[str | None, dict[str, Any]]]],
    ) -> None:
        try:
            await self._run_stage(job, work)
        except _Stale:
            log.info("documents.stage_discarded", job=job.id, kind=job.kind)

    async def _artifact(self, job: Job, row: DocumentRow, gen: int, stage: str) -> Any:
        """A previous stage's output: handed on in memory when this worker ran that stage
        just before (``Job.memo``), else read back from the blob store."""
        handed = job.memo.get("artifacts", {})
        if stage in handed:
            return handed[stage]
        key = artifact_blob(row.tenant_id, row.id, gen, stage)
        if key in self._recent:  # the same bytes as the blob: artifacts are deterministic
            return self._recent.pop(key)
        return json.loads(await self.blobs.get(key))

    async def _save(
        self,
        job: Job,
        row: DocumentRow,
        gen: int,
        stage: str,
        value: Any,
        stored: Any = None,
        *,
        encoded: bytes | None = None,
    ) -> None:
        """Write a stage's artifact (``encoded``: its JSON already made off the event loop,
        else the JSON of ``stored``, or of ``value`` itself) and hand ``value`` on."""
        data = encoded if encoded is not None else _json(value if stored is None else stored)
        key = artifact_blob(row.tenant_id, row.id, gen, stage)
        await self.blobs.put(key, data)
        job.memo.setdefault("artifacts", {})[stage] = value
        if stage == "chunks" and not self._chains(EMBED):
            self._recent[key] = value
            while len(self._recent) > _RECENT_MAX:
                self._recent.popitem(last=False)

    # -- stages -----------------------------------------------------------------------------

    async def extract(self, job: Job) -> None:
        async def work(row: DocumentRow, gen: int) -> tuple[str | None, dict[str, Any]]:
            data = await self.blobs.get(row.blob_key)
            if row.media_type in IN_PROCESS:
                doc = await asyncio.to_thread(EXTRACTORS[row.media_type], data)
            else:
                answer = await self._sandboxed(
                    row.tenant_id, "extract", row.media_type, data, self.config.parse
                )
                doc = Extracted.from_dict(answer)
            wants_ocr = bool(doc.ocr_pages) and self.config.ocr_engine != "none"
            if not doc.blocks and not wants_ocr:
                raise DocumentNoText(
                    "No text was found in the document.", details={"documentId": row.id}
                )
            if wants_ocr:
                await self._save(job, row, gen, "extract", doc.to_dict())
                return OCR, {"pages": doc.pages}
            return await self._chunked_or_handed(
                job, row, gen, "extract", doc, {"pages": doc.pages}
            )

        await self._guarded(job, work)

    async def ocr(self, job: Job) -> None:
        async def work(row: DocumentRow, gen: int) -> tuple[str | None, dict[str, Any]]:
            doc = Extracted.from_dict(await self._artifact(job, row, gen, "extract"))
            data = await self.blobs.get(row.blob_key)
            pages = json.dumps(doc.ocr_pages)
            if self.config.ocr_engine == "textract":
                texts = await self._textract_pages(row.tenant_id, row.media_type, data, pages)
            else:
                texts = await self._sandboxed(
                    row.tenant_id, "ocr", row.media_type, data, self.config.ocr, pages
                )
            for number, text in sorted(texts.items(), key=lambda kv: int(kv[0])):
                if str(text).strip():
                    page = int(number) or None
                    doc.blocks.append(Block(str(text).strip(), page=page))
            doc.blocks.sort(key=lambda b: b.page or 0)
            if not doc.blocks:
                raise DocumentNoText(
                    "OCR found no text in the document.", details={"documentId": row.id}
                )
            return await self._chunked_or_handed(job, row, gen, "ocr", doc, {})

        await self._guarded(job, work)

    async def _textract_pages(
        self, tenant_id: str, media_type: str, data: bytes, pages: str
    ) -> dict[str, str]:
        import base64

        from gasworks.documents.ocr import textract

        images = await self._sandboxed(
            tenant_id, "render", media_type, data, self.config.parse, pages
        )
        client = (
            self._textract()
            if self._textract
            else textract.boto3_client(self.config.textract_region)
        )
        out = {}
        for number, b64 in images.items():
            out[number] = await asyncio.to_thread(textract.read_page, client, base64.b64decode(b64))
        return out

    async def chunk(self, job: Job) -> None:
        async def work(row: DocumentRow, gen: int) -> tuple[str | None, dict[str, Any]]:
            handed = job.memo.get("artifacts", {})
            raw = handed.get("ocr", handed.get("extract"))
            if raw is None:
                try:
                    raw = await self._artifact(job, row, gen, "ocr")
                except BlobNotFound:
                    raw = await self._artifact(job, row, gen, "extract")
            chunks, data = await self._chunks(row, gen, Extracted.from_dict(raw))
            await self._save(job, row, gen, "chunks", chunks, encoded=data)
            return EMBED, {"chunks": len(chunks)}

        await self._guarded(job, work)

    async def _chunks(
        self, row: DocumentRow, gen: int, doc: Extracted
    ) -> tuple[list[dict[str, Any]], bytes]:
        """The document's chunks and their artifact's JSON."""
        sizes = await self._chunk_sizes(row)

        def run() -> tuple[list[dict[str, Any]], bytes]:
            # one hand-off to a worker thread for everything off the event loop: the model's
            # input limit (may load its tokenizer), chunking, and the JSON of the chunks'
            # texts and metadata
            cfg = ChunkConfig(*sizes, limit=self.svc.input_limit())
            dicts = [_chunk_dict(c) for c in chunk(row.id, gen, doc, cfg)]
            return dicts, _json(dicts)

        return await asyncio.to_thread(run)

    async def _chunked_or_handed(
        self,
        job: Job,
        row: DocumentRow,
        gen: int,
        stage: str,
        doc: Extracted,
        updates: dict[str, Any],
    ) -> tuple[str | None, dict[str, Any]]:
        """The end of an extract or OCR job (``stage``): with ``fuse``, the document is
        chunked here and the job's commit records the chunk stage too and queues the embed
        stage (no artifact of the extracted text is written); should the chunking fail, the
        extracted text is saved and a ``documents.chunk`` job handed on, which runs it again
        with its own attempts, backoff and dead letter. Without ``fuse``: the extracted text's
        artifact and the chunk job."""
        if self.config.fuse:
            began, started = _now_iso(), time.monotonic()
            try:
                chunks, data = await self._chunks(row, gen, doc)
                await self._save(job, row, gen, "chunks", chunks, encoded=data)
            except Exception as exc:
                log.info(
                    "documents.fused_chunk_handed_on",
                    job=job.id,
                    error_type=getattr(exc, "code", type(exc).__name__),
                )
            else:
                job.memo["fused"] = [_Part("chunk", began, time.monotonic() - started)]
                return EMBED, {**updates, "chunks": len(chunks)}
        await self._save(job, row, gen, stage, doc.to_dict())
        return CHUNK, updates

    async def _chunk_sizes(self, row: DocumentRow) -> tuple[int, int]:
        """The chunk tokens and overlap of the document's first collection (by name), else the
        defaults; the chunk stage adds the embedding model's input limit, which chunks never
        exceed (``chunking.ChunkConfig.limit``)."""
        col = await self.db.read_first(
            _FIRST_COLLECTION, {"tenant": row.tenant_id, "document": row.id}
        )
        if col is None:
            return DEFAULT_TOKENS, DEFAULT_OVERLAP
        return int(col[0]), int(col[1])

    async def embed(self, job: Job) -> None:
        """One document's embed stage (and, with ``fuse``, its index stage: ``_embedded``)."""
        row = await self._started(job)
        if row is None:
            return
        started = time.monotonic()
        embedder = self._need_embedder()
        gen = int(job.payload["generation"])
        chunks = await self._artifact(job, row, gen, "chunks")
        vectors = await self._embed_alone(embedder, row, chunks)
        (outcome,) = await self._embedded([_Embedded(job, row, gen, chunks, vectors)], started)
        if outcome is not None:
            raise outcome

    async def _embedded(self, items: list[_Embedded], started: float) -> list[BaseException | None]:
        """The end of embed stages whose vectors are back (one document's, or a batch's):
        with ``fuse`` and a vector index, each document's vectors are written to the index
        here, and **one transaction** commits every document of the batch: its embed stage
        done, its index stage done (the chunk rows, the switch to the new generation, the
        old generation's cleanup job) and its job completed. A document whose index part
        failed is committed in the same transaction the unfused way (its vectors artifact
        saved, a ``documents.index`` job handed on: that stage's own attempts and dead
        letter); so is every document without ``fuse`` or a vector index. The documents are
        locked in id order, then the jobs in id order (``cancel_subjects``,
        ``heartbeat_many`` take them so too). One outcome per item."""
        writer = self._writer() if self.config.fuse else None
        embed_seconds = time.monotonic() - started
        began, index_started = _now_iso(), time.monotonic()
        if writer is not None:
            await self._write_vectors(writer, items)
        outcomes: list[BaseException | None] = [None] * len(items)
        todo: list[_Embedded] = []
        for n, item in enumerate(items):
            if not item.fused:
                try:
                    await self._save(
                        item.job, item.row, item.gen, "vectors", item.vectors, _packed(item.vectors)
                    )
                except Exception as exc:
                    outcomes[n] = exc
                    continue
            todo.append(item)
        if not todo:
            return outcomes
        chains = self._chains(INDEX)
        by_doc = sorted(todo, key=lambda e: e.row.id)
        by_job = sorted(todo, key=lambda e: e.job.id)

        def commit(s: Session, _: object) -> bool:
            woken = False
            lives = [_live(s, e.job, e.row.id, e.gen) for e in by_doc]
            for e in by_job:  # completed, or a no-op for a document no longer wanted
                try:
                    self.queue.finish_sync(s, e.job)
                    e.completed = True
                except LeaseLost:
                    e.completed = False
            events: list[dict[str, Any]] = []
            seconds = time.monotonic() - index_started
            for e, live in zip(by_doc, lives, strict=True):
                if live is None or not e.completed:
                    continue
                doc_id, tenant = live.id, live.tenant_id
                nxt: Job | None = None
                parts: list[_Part] = []
                updates: dict[str, Any] = {}
                if e.fused:
                    if isinstance(writer, StagedSourceWriter) and e.chunks:
                        writer.write_chunks(s, tenant, [Chunk(**c) for c in e.chunks])
                    old = live.generation
                    if old is not None and old != e.gen:  # removal of the old generation
                        self._enqueue_cleanup(s, tenant, doc_id, old)
                        woken = True
                    parts = [_Part("index", began, seconds)]
                    updates = dict(_READY, generation=e.gen)
                else:
                    nxt = self.queue.enqueue_next_sync(
                        s,
                        e.job,
                        kind=INDEX,
                        subject=doc_id,
                        payload={**e.job.payload, "generation": e.gen},
                        dedupe_key=stage_job_key(doc_id, e.gen, INDEX),
                        hand_on=chains,
                    )
                    woken = woken or nxt is None
                events += _record_stage(live, e.job, "embed", updates, parts, nxt)
                _save_rows(s, [live], ("status", "stages", "updated_at", *updates))
                e.done, e.then, e.parts = live, nxt, parts
            add_events(s, events)
            return woken

        try:
            woken = await self.db.write_batch(commit)
        except Exception as exc:
            # the shared commit failed: nothing of it was applied; each document is
            # committed again on its own, the unfused way (its index stage handed on)
            log.warning("documents.fused_commit_failed", error_type=type(exc).__name__)
            for n, item in enumerate(items):
                if item in todo:
                    outcomes[n] = await self._embedded_alone(item, started)
            return outcomes
        for e in todo:
            if e.done is None:  # deleted, superseded, or its lease lost: a no-op
                e.job.finished = e.completed
                log.info("documents.stage_discarded", job=e.job.id, kind=e.job.kind)
                await self._drop_if_deleted(e.job, e.row.id, e.gen)
                if e.fused and writer is not None and not await self._still_wanted(e.job):
                    await writer.delete_sources(e.job.tenant_id, [source_id(e.row.id, e.gen)])
                continue
            e.job.finished = True
            _observe("embed", embed_seconds + sum(p.seconds for p in e.parts), e.parts)
            if e.then is not None:
                e.then.memo = {"row": e.done, "artifacts": e.job.memo.get("artifacts", {})}
                e.job.then = e.then
        if woken:  # queued for any worker: wake the idle ones
            self.queue.wake()
        return outcomes

    async def _write_vectors(self, writer: SourceWriter, items: list[_Embedded]) -> None:
        """The index part of fused embed stages, before their commit: the vectors into the
        index (a ``StagedSourceWriter``: one call for the batch, each document alone only
        when that call fails; else ``write_source`` per document). A document whose write
        failed is left unfused (its index stage is handed on)."""
        staged = isinstance(writer, StagedSourceWriter)
        # grouped by tenant too: a batch is one tenant's (``claim_more``), but the index's
        # writes never rest on that
        spaces: dict[tuple[str, Space], list[_Embedded]] = {}
        for item in items:
            if item.chunks:
                space = Space(str(item.vectors["model"]), int(item.vectors["dimensions"]))
                spaces.setdefault((item.row.tenant_id, space), []).append(item)
            else:
                item.fused = True
        for (tenant_id, space), group in spaces.items():
            if staged and len(group) > 1:
                try:
                    await writer.write_vectors(  # type: ignore[attr-defined]
                        tenant_id,
                        space,
                        [Chunk(**c) for e in group for c in e.chunks],
                        [v for e in group for v in _unpacked(e.vectors)],
                    )
                except Exception as exc:
                    log.info("documents.fused_index_retried_alone", error_type=type(exc).__name__)
                else:
                    for item in group:
                        item.fused = True
                    continue
            for item in group:
                chunks = [Chunk(**c) for c in item.chunks]
                vectors = _unpacked(item.vectors)
                try:
                    if staged:
                        await writer.write_vectors(  # type: ignore[attr-defined]
                            item.row.tenant_id, space, chunks, vectors
                        )
                    else:
                        await writer.write_source(item.row.tenant_id, space, chunks, vectors)
                except Exception as exc:
                    log.info(
                        "documents.fused_index_handed_on",
                        job=item.job.id,
                        error_type=getattr(exc, "code", type(exc).__name__),
                    )
                else:
                    item.fused = True

    async def _embedded_alone(self, item: _Embedded, started: float) -> BaseException | None:
        """One document's embed stage committed on its own, its index stage handed on (the
        unfused commit), after a shared commit failed."""
        try:
            if "vectors" not in item.job.memo.get("artifacts", {}):
                await self._save(
                    item.job,
                    item.row,
                    item.gen,
                    "vectors",
                    item.vectors,
                    _packed(item.vectors),
                )
            await self._complete(item.job, item.row.id, item.gen, INDEX, {}, started)
        except _Stale:
            log.info("documents.stage_discarded", job=item.job.id, kind=item.job.kind)
        except Exception as exc:
            return exc
        return None

    def _need_embedder(self) -> Embedder:
        embedder = self._embedder()
        if embedder is None:
            raise Postpone(
                RetrievalNotConfigured("No embedder is configured for documents."),
                self.config.budget_retry_seconds,
            )
        return embedder

    def _request(self, row: DocumentRow, texts: list[str]) -> EmbedRequest:
        return EmbedRequest(
            model=self.config.embedding_model, inputs=texts, served={"documentId": row.id}
        )

    async def _embed_alone(
        self, embedder: Embedder, row: DocumentRow, chunks: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """One document's vectors, ``embed_batch`` chunks per call (a budget refusal waits:
        ``Postpone``)."""
        vectors: list[list[float]] = []
        model, dims = "", 0
        step = self.config.embed_batch
        for i in range(0, len(chunks), step):
            req = self._request(row, [c["text"] for c in chunks[i : i + step]])
            try:
                res = await embedder.embed(CallScope(tenant_id=row.tenant_id), req)
            except (CostLimitExceeded, TokenBudgetExceeded) as exc:
                raise Postpone(exc, self.config.budget_retry_seconds) from exc
            vectors.extend(res.vectors)
            model, dims = res.model, res.dimensions
        return {"model": model, "dimensions": dims, "vectors": vectors}

    async def embed_batch(self, jobs: list[Job]) -> list[BaseException | None]:
        """The embed stage of several documents of one tenant (``batches``): every stage
        started in one transaction, their chunks embedded in one shared call
        (``BatchEmbedder.embed_many``: a ledger row per document, as alone), then each
        document's vectors saved and its stage committed on its own, exactly as ``embed``
        does. A document whose share of the call fails is embedded again alone, so one
        document's bad input or refusal is its own job's failed attempt and never the
        others'. One outcome per job (``Worker`` records each)."""
        outcomes: list[BaseException | None] = [None] * len(jobs)
        embedder = self._embedder()
        if len(jobs) == 1 or not isinstance(embedder, BatchEmbedder):
            for n, job in enumerate(jobs):
                outcomes[n] = await _outcome(self.embed(job))
            return outcomes
        try:
            rows = await self._begin(jobs)
        except Exception as exc:  # the start did not commit: every attempt failed alike
            return [exc] * len(jobs)
        started = time.monotonic()
        live: list[tuple[int, Job, DocumentRow, int, list[dict[str, Any]]]] = []
        for n, (job, row) in enumerate(zip(jobs, rows, strict=True)):
            if row is None:
                continue  # no longer wanted: completed as a no-op
            gen = int(job.payload["generation"])
            try:
                chunks = await self._artifact(job, row, gen, "chunks")
            except Exception as exc:
                outcomes[n] = exc
                continue
            job.memo.setdefault("artifacts", {})["chunks"] = chunks
            live.append((n, job, row, gen, chunks))
        shared = [(n, row, chunks) for n, _, row, _, chunks in live if chunks]
        results: dict[int, EmbedResult | GasworksError] = {}
        if shared:
            tenant = shared[0][1].tenant_id
            reqs = [self._request(row, [c["text"] for c in chunks]) for _, row, chunks in shared]
            try:
                got = await embedder.embed_many(CallScope(tenant_id=tenant), reqs)
            except GasworksError as exc:
                got = [exc] * len(reqs)
            results = {n: r for (n, _, _), r in zip(shared, got, strict=True)}
        # the model call is over: the next batch may be claimed (``Batching.exclusive``) and
        # go into the model while these documents' vectors are saved and their stages
        # committed (an embed alone below, for a failed share, queues for the model as any
        # call does)
        if jobs[0].release_exclusive is not None:
            jobs[0].release_exclusive()
        done: list[tuple[int, _Embedded]] = []
        for n, job, row, gen, chunks in live:
            res = results.get(n)
            try:
                if isinstance(res, EmbedResult):
                    vectors = {
                        "model": res.model,
                        "dimensions": res.dimensions,
                        "vectors": res.vectors,
                    }
                else:  # its share failed (or it has no chunks): this document alone
                    vectors = await self._embed_alone(embedder, row, chunks)
            except Exception as exc:
                outcomes[n] = exc
                continue
            done.append((n, _Embedded(job, row, gen, chunks, vectors)))
        if done:
            got = await self._embedded([e for _, e in done], started)
            for (n, _), outcome in zip(done, got, strict=True):
                outcomes[n] = outcome
        return outcomes

    async def index(self, job: Job) -> None:
        written: list[str] = []
        #: written in the stage's commit: the chunk rows (a ``StagedSourceWriter``) and the
        #: removal of the old generation, so that the switch is one transaction with them
        also: list[Callable[[Session], None]] = []
        cleanups: list[int] = []  # the old generation, when its cleanup job is queued

        async def work(row: DocumentRow, gen: int) -> tuple[str | None, dict[str, Any]]:
            chunks = [Chunk(**c) for c in await self._artifact(job, row, gen, "chunks")]
            vec = await self._artifact(job, row, gen, "vectors")
            if chunks:
                space = Space(str(vec["model"]), int(vec["dimensions"]))
                writer = self.writer()
                if isinstance(writer, StagedSourceWriter):
                    await writer.write_vectors(row.tenant_id, space, chunks, _unpacked(vec))
                    tenant = row.tenant_id
                    also.append(lambda s: writer.write_chunks(s, tenant, chunks))
                else:
                    await writer.write_source(row.tenant_id, space, chunks, _unpacked(vec))
                written.append(source_id(row.id, gen))
            old = row.generation
            if old is not None and old != gen:  # removal of the old generation, later
                tenant_id, doc_id = row.tenant_id, row.id

                also.append(lambda s: self._enqueue_cleanup(s, tenant_id, doc_id, old))
                cleanups.append(old)
            return None, {
                "generation": gen,
                "pending_generation": None,
                "status": "ready",
                "error_code": None,
                "error_message": None,
            }

        try:
            await self._run_stage(job, work, also)
            if cleanups:  # queued for any worker
                self.queue.wake()
        except _Stale:
            # deleted or superseded while indexing: what this attempt wrote must not stay. A
            # lost lease alone is not a reason: another worker owns the stage and writes the
            # very same chunk ids.
            if written and not await self._still_wanted(job):
                await self.writer().delete_sources(job.tenant_id, written)

    def _enqueue_cleanup(self, s: Session, tenant_id: str, doc_id: str, old: int) -> None:
        """Queue the removal of a document's previous generation ``old`` (its index stage's
        commit, once the document switched)."""
        self.queue.enqueue_sync(
            s,
            tenant_id=tenant_id,
            kind=CLEANUP,
            subject=f"cleanup:{doc_id}",
            payload={"documentId": doc_id, "generation": old},
            dedupe_key=stage_job_key(doc_id, old, CLEANUP),
        )

    async def _still_wanted(self, job: Job) -> bool:
        gen = int(job.payload["generation"])
        async with self.db.read_session() as s:
            row = await s.scalar(
                select(DocumentRow).where(
                    DocumentRow.id == job.payload["documentId"],
                    DocumentRow.tenant_id == job.tenant_id,
                )
            )
        return (
            row is not None
            and row.deleted_at is None
            and gen in (row.generation, row.pending_generation)
        )

    async def cleanup(self, job: Job) -> None:
        doc_id, gen = str(job.payload["documentId"]), int(job.payload["generation"])
        await self.writer().delete_sources(job.tenant_id, [source_id(doc_id, gen)])
        for stage in ("extract", "ocr", "chunks", "vectors"):
            await self.blobs.delete(artifact_blob(job.tenant_id, doc_id, gen, stage))

    # -- cascade delete ---------------------------------------------------------------------

    async def delete(self, job: Job) -> None:
        scope, ref = str(job.payload["scope"]), str(job.payload["id"])
        if scope == "document":
            await self.purge_document(job.tenant_id, ref)
        elif scope == "collection":
            await self._delete_collection(job.tenant_id, ref)

    async def purge_document(self, tenant_id: str, doc_id: str) -> None:
        """Remove a document's vectors, chunks, blobs and rows (idempotent, resumable)."""
        async with self.db.read_session() as s:
            row = await s.scalar(
                select(DocumentRow).where(
                    DocumentRow.id == doc_id, DocumentRow.tenant_id == tenant_id
                )
            )
        if row is not None and row.deleted_at is None:
            return  # not deleted (a stale job): nothing to do
        top = 1 if row is None else max(row.generation or 0, row.pending_generation or 0, 1)
        await self.writer().delete_sources(
            tenant_id, [source_id(doc_id, g) for g in range(1, top + 1)]
        )
        prefix = f"{tenant_id}/documents/{doc_id}/"
        async for key in self.blobs.keys(prefix):
            await self.blobs.delete(key)
        async with self.db.session() as s:
            if row is not None:
                gone = await s.get(DocumentRow, doc_id)
                if gone is not None:
                    await s.delete(gone)
                await add_event(s, tenant_id, doc_id, "purged")

    async def _delete_collection(self, tenant_id: str, col_id: str) -> None:
        async with self.db.session() as s:
            col = await s.get(CollectionRow, col_id)
            if col is None or col.tenant_id != tenant_id:
                return
            await self.svc.retire_members(s, col_id)
            await s.delete(col)  # links and grants go with it (foreign keys)
        self.queue.wake()

    # -- failures ---------------------------------------------------------------------------

    async def on_failure(self, job: Job, exc: BaseException, status: str) -> None:
        """Keep the document's status honest: the last error on every failed attempt, and
        ``failed`` once a stage's job is a dead letter."""
        if job.kind not in STAGE_STATUS or status == "lost":
            return
        code = str(getattr(exc, "code", "JOB_FAILED"))
        message = str(getattr(exc, "message", None) or f"{type(exc).__name__}")

        def record(s: Session, _: object) -> None:
            _record_failure(s, _LIVE, job, code, message, status)

        await self.db.write_batch(record)

    def on_dead(self, s: Session, job: Job, code: str, message: str) -> None:
        """``on_failure``'s record of a dead letter, for one that a claim made of a stage
        whose lease expired on its last attempt (its worker died), in the claim's
        transaction (``JobQueue.claim``'s ``on_dead``). The claim holds the job's row, so the
        document's is taken only if no other transaction holds it (``_LIVE_NOW``): one that
        does is the dead worker's late commit, which fails on the lost lease."""
        if job.kind in STAGE_STATUS:
            _record_failure(s, _LIVE_NOW, job, code, message, "dead")


def _record_failure(s: Session, read: Any, job: Job, code: str, message: str, status: str) -> None:
    """Record a failed attempt of ``job``'s stage on its document (read and locked with
    ``read``, ``_LIVE`` or ``_LIVE_NOW``): its last error, ``failed`` when the job is a dead
    letter (``status``), and a ``stage.failed`` event."""
    found = s.connection().execute(
        read, {"document": str(job.payload.get("documentId")), "tenant": job.tenant_id}
    )
    row = found.first()
    if row is None or row.deleted_at is not None:
        return
    live = DocumentRow(**row._mapping)
    live.error_code, live.error_message = code, message[:1000]
    if status == "dead":
        live.status = "failed"
    _save_rows(s, [live], ("error_code", "error_message", "status"))
    event = event_values(
        live.tenant_id,
        live.id,
        "stage.failed",
        stage=job.kind,
        attempt=job.attempt,
        code=code,
        message=message[:300],
        status=live.status,
        retrying=status == "queued",
    )
    add_events(s, [event])


#: a document's columns once its index stage is done (with its new ``generation``)
_READY: dict[str, Any] = {
    "pending_generation": None,
    "status": "ready",
    "error_code": None,
    "error_message": None,
}


@dataclass(slots=True, eq=False)
class _Embedded:
    """A document whose embed stage has its vectors (``Pipeline._embedded``)."""

    job: Job
    row: DocumentRow
    gen: int
    chunks: list[dict[str, Any]]
    vectors: dict[str, Any]
    #: its vectors are in the index: its index stage is done in this job
    fused: bool = False
    #: its job was completed in the commit (else its lease was lost)
    completed: bool = False
    #: after the commit: the document row as committed, the index job handed on, the
    #: stages done inside this job
    done: DocumentRow | None = None
    then: Job | None = None
    parts: list[_Part] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class _Part:
    """A stage done inside another stage's job (``PipelineConfig.fuse``): the chunking of an
    extract or OCR job, the indexing of an embed job. Recorded in that job's commit as the
    stage itself records (``stages.<stage>`` started, finished and attempts, a ``status``
    and a ``stage.done`` event, its duration metric)."""

    stage: str
    started: str
    seconds: float


def _mark_started(live: DocumentRow, job: Job) -> dict[str, Any]:
    """Record on ``live`` (locked) the start of ``job``'s stage: its status,
    ``stages.<stage>.started`` and attempts; the ``status`` event to add."""
    stage = job.kind.split(".", 1)[1]
    live.status = STAGE_STATUS[job.kind]
    stages = dict(live.stages or {})
    stages[stage] = {**stages.get(stage, {}), "started": _now_iso(), "attempts": job.attempt}
    live.stages = stages
    return event_values(live.tenant_id, live.id, "status", status=live.status, attempt=job.attempt)


def _record_stage(
    live: DocumentRow,
    job: Job,
    stage: str,
    updates: dict[str, Any],
    fused: list[_Part] | None,
    nxt: Job | None,
) -> list[dict[str, Any]]:
    """Record ``job``'s stage done on ``live`` (locked in this transaction), then the stages
    done inside it (``fused``: each started, done, with its events, as its own job would have
    recorded them), then the start of the next job when it was handed on to this worker
    (``nxt``); ``updates`` are the document's new column values. The events to add."""
    now = _now_iso()
    doc_id, tenant = live.id, live.tenant_id
    stages = dict(live.stages or {})
    stages[stage] = {**stages.get(stage, {}), "finished": now}
    own = live.status
    for k, v in updates.items():
        setattr(live, k, v)
    final = live.status if "status" in updates else None
    live.updated_at = _now()
    parts = fused or []
    events = [
        event_values(
            tenant, doc_id, "stage.done", stage=stage, status=own if parts else live.status
        )
    ]
    for n, part in enumerate(parts):
        status = STAGE_STATUS[f"documents.{part.stage}"]
        stages[part.stage] = {
            **stages.get(part.stage, {}),
            "started": part.started,
            "finished": now,
            "attempts": job.attempt,
        }
        events.append(event_values(tenant, doc_id, "status", status=status, attempt=job.attempt))
        done = final if final is not None and n == len(parts) - 1 else status
        events.append(event_values(tenant, doc_id, "stage.done", stage=part.stage, status=done))
        live.status = done
    if nxt is not None:
        following = nxt.kind.split(".", 1)[1]
        live.status = STAGE_STATUS[nxt.kind]
        stages[following] = {
            **stages.get(following, {}),
            "started": _now_iso(),
            "attempts": nxt.attempt,
        }
        events.append(
            event_values(tenant, doc_id, "status", status=live.status, attempt=nxt.attempt)
        )
    live.stages = stages
    return events


def _observe(stage: str, seconds: float, fused: list[_Part]) -> None:
    """The stage duration metric of a job's stage and of the stages done inside it (each its
    own share of the job's time)."""
    for part in fused:
        STAGE_SECONDS.labels(part.stage).observe(part.seconds)
    STAGE_SECONDS.labels(stage).observe(max(0.0, seconds - sum(p.seconds for p in fused)))


def _live(s: Session, job: Job, doc_id: str, gen: int) -> DocumentRow | None:
    """The job's document, locked, while it still wants generation ``gen``; else ``None``."""
    found = s.connection().execute(_LIVE, {"document": doc_id, "tenant": job.tenant_id}).first()
    if found is None or found.deleted_at is not None or found.pending_generation != gen:
        return None
    # a row object of no session, read and changed by the stage, written by ``_save_rows``:
    # the ORM's loading of an entity (its load context, identity map, instance state per
    # row) cost the writer thread more than the SELECT itself
    return DocumentRow(**found._mapping)


def _save_rows(s: Session, rows: list[DocumentRow], columns: tuple[str, ...]) -> None:
    """Write ``columns`` of ``rows`` (``_live``'s, locked in this transaction, in no
    session) as they are now: one Core UPDATE per row, executed together (the rows give the
    same columns). The unit of work's flush of loaded entities did the same at a higher
    cost (change detection, the identity map's bookkeeping), on the writer thread where
    every stage's transaction runs."""
    if rows:
        names = tuple(dict.fromkeys(columns))
        s.connection().execute(
            _SAVE,
            [
                {"_doc": r.id, "_tenant": r.tenant_id, **{c: getattr(r, c) for c in names}}
                for r in rows
            ],
        )


async def _outcome(work: Awaitable[None]) -> BaseException | None:
    try:
        await work
    except Exception as exc:
        return exc
    return None


def _packed(vectors: dict[str, Any]) -> dict[str, Any]:
    """The vectors artifact as stored: the vectors as one base64 string of little-endian
    float32 (what both vector indexes keep: no precision is lost), not a JSON list of
    decimal floats, which cost far more to write and read."""
    flat = array("f", itertools.chain.from_iterable(vectors["vectors"]))
    if sys.byteorder != "little":
        flat.byteswap()
    return {
        "model": vectors["model"],
        "dimensions": vectors["dimensions"],
        "count": len(vectors["vectors"]),
        "f32": base64.b64encode(flat.tobytes()).decode("ascii"),
    }


def _unpacked(vec: dict[str, Any]) -> list[list[float]]:
    """The vectors of an artifact, handed on (``vectors``) or stored (``_packed``)."""
    if "vectors" in vec:
        return list(vec["vectors"])
    flat = array("f")
    flat.frombytes(base64.b64decode(vec["f32"]))
    if sys.byteorder != "little":
        flat.byteswap()
    n, dims = int(vec["count"]), int(vec["dimensions"])
    if len(flat) != n * dims:
        raise ValueError("The vectors artifact is damaged (size mismatch).")
    values = flat.tolist()
    return [values[i * dims : (i + 1) * dims] for i in range(n)]


def _json(value: Any) -> bytes:
    """An artifact's bytes: compact UTF-8 JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _chunk_dict(c: Chunk) -> dict[str, Any]:
    return {
        "chunk_id": c.chunk_id,
        "source_id": c.source_id,
        "document_id": c.document_id,
        "ordinal": c.ordinal,
        "text": c.text,
        "page": c.page,
        "start": c.start,
        "end": c.end,
        "heading": c.heading,
        "metadata": c.metadata,
    }


def _now() -> Any:
    from gasworks.db.types import utcnow

    return utcnow()


def _now_iso() -> str:
    return str(_now().isoformat())


__all__ = ["Pipeline", "PipelineConfig", "sniff"]
