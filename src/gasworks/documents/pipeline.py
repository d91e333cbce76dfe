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
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from gasworks.documents import sandbox, sniff
from gasworks.documents.chunking import ChunkConfig, chunk
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
    artifact_blob,
    stage_job_key,
)
from gasworks.documents.tables import CollectionDocumentRow, CollectionRow, DocumentRow
from gasworks.errors import (
    BlobNotFound,
    CostLimitExceeded,
    DocumentNoText,
    RetrievalNotConfigured,
    TokenBudgetExceeded,
)
from gasworks.jobs import Handler, Job, LeaseLost, Postpone
from gasworks.modeltypes import CallScope
from gasworks.observability.logging import get_logger
from gasworks.retrieval.types import Chunk, Embedder, EmbedRequest, SourceWriter, Space, source_id

log = get_logger("gasworks.documents.pipeline")


@dataclass(slots=True)
class PipelineConfig:
    parse: sandbox.Limits
    ocr: sandbox.Limits
    ocr_engine: str = "rapidocr"
    textract_region: str | None = None
    embedding_model: str | None = None
    embed_batch: int = 64
    budget_retry_seconds: float = 300.0
    #: fork parse and OCR children from servers that imported the parsers once
    #: (``sandbox.ForkServer``) instead of starting a fresh interpreter per file
    preload: bool = True


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
        self.forks = sandbox.ForkServer() if config.preload else None

    async def aclose(self) -> None:
        """End the parse servers (``sandbox.ForkServer``), if any."""
        if self.forks is not None:
            await self.forks.aclose()

    async def _sandboxed(
        self, task: str, media_type: str, data: bytes, limits: sandbox.Limits, arg: str = ""
    ) -> Any:
        if self.forks is not None:
            return await self.forks.run(task, media_type, data, limits, arg)
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
    ) -> None:
        doc_id, gen = str(job.payload["documentId"]), int(job.payload["generation"])
        stage = job.kind.split(".", 1)[1]
        async with self.db.session() as s:
            row = await self._live(s, job, doc_id, gen)
            if row is None:
                await self.queue.finish(s, job)
                return
            row.status = STAGE_STATUS[job.kind]
            stages = dict(row.stages or {})
            stages[stage] = {
                **stages.get(stage, {}),
                "started": _now_iso(),
                "attempts": job.attempt,
            }
            row.stages = stages
            await add_event(
                s, row.tenant_id, doc_id, "status", status=row.status, attempt=job.attempt
            )
            await s.flush()
            s.expunge(row)
        started = time.monotonic()
        next_kind, updates = await work(row, gen)
        try:
            await self._commit_stage(job, stage, doc_id, gen, next_kind, updates)
        except (_Stale, LeaseLost):
            with contextlib.suppress(LeaseLost):
                async with self.db.session() as s:
                    await self.queue.finish(s, job)
            raise _Stale from None
        STAGE_SECONDS.labels(stage).observe(time.monotonic() - started)
        self.queue.wake()

    async def _commit_stage(
        self,
        job: Job,
        stage: str,
        doc_id: str,
        gen: int,
        next_kind: str | None,
        updates: dict[str, Any],
    ) -> None:
        async with self.db.session() as s:
            live = await self._live(s, job, doc_id, gen)
            if live is None:
                raise _Stale
            stages = dict(live.stages or {})
            stages[stage] = {**stages.get(stage, {}), "finished": _now_iso()}
            live.stages = stages
            for k, v in updates.items():
                setattr(live, k, v)
            live.updated_at = _now()
            if next_kind is not None:
                await self.queue.enqueue(
                    s,
                    tenant_id=job.tenant_id,
                    kind=next_kind,
                    subject=doc_id,
                    payload={**job.payload, "generation": gen},
                    dedupe_key=stage_job_key(doc_id, gen, next_kind),
                )
            await add_event(
                s, live.tenant_id, doc_id, "stage.done", stage=stage, status=live.status
            )
            await self.queue.finish(s, job)

    async def _live(self, s: Any, job: Job, doc_id: str, gen: int) -> DocumentRow | None:
        row: DocumentRow | None = await s.scalar(
            select(DocumentRow)
            .where(DocumentRow.id == doc_id, DocumentRow.tenant_id == job.tenant_id)
            .with_for_update()
        )
        if row is None or row.deleted_at is not None or row.pending_generation != gen:
            return None
        return row

    async def _guarded(
        self,
        job: Job,
        work: Callable[[DocumentRow, int], Awaitable[tuple[str | None, dict[str, Any]]]],
    ) -> None:
        try:
            await self._run_stage(job, work)
        except _Stale:
            log.info("documents.stage_discarded", job=job.id, kind=job.kind)

    async def _artifact(self, row: DocumentRow, gen: int, stage: str) -> Any:
        return json.loads(await self.blobs.get(artifact_blob(row.tenant_id, row.id, gen, stage)))

    async def _save(self, row: DocumentRow, gen: int, stage: str, value: Any) -> None:
        data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        await self.blobs.put(artifact_blob(row.tenant_id, row.id, gen, stage), data)

    # -- stages -----------------------------------------------------------------------------

    async def extract(self, job: Job) -> None:
        async def work(row: DocumentRow, gen: int) -> tuple[str | None, dict[str, Any]]:
            data = await self.blobs.get(row.blob_key)
            if row.media_type in IN_PROCESS:
                doc = await asyncio.to_thread(EXTRACTORS[row.media_type], data)
            else:
                answer = await self._sandboxed("extract", row.media_type, data, self.config.parse)
                doc = Extracted.from_dict(answer)
            wants_ocr = bool(doc.ocr_pages) and self.config.ocr_engine != "none"
            if not doc.blocks and not wants_ocr:
                raise DocumentNoText(
                    "No text was found in the document.", details={"documentId": row.id}
                )
            await self._save(row, gen, "extract", doc.to_dict())
            return (OCR if wants_ocr else CHUNK), {"pages": doc.pages}

        await self._guarded(job, work)

    async def ocr(self, job: Job) -> None:
        async def work(row: DocumentRow, gen: int) -> tuple[str | None, dict[str, Any]]:
            doc = Extracted.from_dict(await self._artifact(row, gen, "extract"))
            data = await self.blobs.get(row.blob_key)
            pages = json.dumps(doc.ocr_pages)
            if self.config.ocr_engine == "textract":
                texts = await self._textract_pages(row.media_type, data, pages)
            else:
                texts = await self._sandboxed("ocr", row.media_type, data, self.config.ocr, pages)
            for number, text in sorted(texts.items(), key=lambda kv: int(kv[0])):
                if str(text).strip():
                    page = int(number) or None
                    doc.blocks.append(Block(str(text).strip(), page=page))
            doc.blocks.sort(key=lambda b: b.page or 0)
            if not doc.blocks:
                raise DocumentNoText(
                    "OCR found no text in the document.", details={"documentId": row.id}
                )
            await self._save(row, gen, "ocr", doc.to_dict())
            return CHUNK, {}

        await self._guarded(job, work)

    async def _textract_pages(self, media_type: str, data: bytes, pages: str) -> dict[str, str]:
        import base64

        from gasworks.documents.ocr import textract

        images = await self._sandboxed("render", media_type, data, self.config.parse, pages)
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
            try:
                raw = await self._artifact(row, gen, "ocr")
            except BlobNotFound:
                raw = await self._artifact(row, gen, "extract")
            cfg = await self._chunk_config(row)
            chunks = chunk(row.id, gen, Extracted.from_dict(raw), cfg)
            await self._save(row, gen, "chunks", [_chunk_dict(c) for c in chunks])
            return EMBED, {"chunks": len(chunks)}

        await self._guarded(job, work)

    async def _chunk_config(self, row: DocumentRow) -> ChunkConfig:
        """The sizes of the document's first collection (by name), else the defaults."""
        async with self.db.read_session() as s:
            col = await s.scalar(
                select(CollectionRow)
                .join(
                    CollectionDocumentRow, CollectionDocumentRow.collection_id == CollectionRow.id
                )
                .where(CollectionDocumentRow.document_id == row.id)
                .order_by(CollectionRow.name)
                .limit(1)
            )
        if col is None:
            return ChunkConfig()
        return ChunkConfig(max_tokens=col.chunk_tokens, overlap=col.chunk_overlap)

    async def embed(self, job: Job) -> None:
        async def work(row: DocumentRow, gen: int) -> tuple[str | None, dict[str, Any]]:
            embedder = self._embedder()
            if embedder is None:
                raise Postpone(
                    RetrievalNotConfigured("No embedder is configured for documents."),
                    self.config.budget_retry_seconds,
                )
            chunks = await self._artifact(row, gen, "chunks")
            vectors: list[list[float]] = []
            model, dims = "", 0
            step = self.config.embed_batch
            for i in range(0, len(chunks), step):
                req = EmbedRequest(
                    model=self.config.embedding_model,
                    inputs=[c["text"] for c in chunks[i : i + step]],
                    served={"documentId": row.id},
                )
                try:
                    res = await embedder.embed(CallScope(tenant_id=row.tenant_id), req)
                except (CostLimitExceeded, TokenBudgetExceeded) as exc:
                    raise Postpone(exc, self.config.budget_retry_seconds) from exc
                vectors.extend(res.vectors)
                model, dims = res.model, res.dimensions
            await self._save(
                row, gen, "vectors", {"model": model, "dimensions": dims, "vectors": vectors}
            )
            return INDEX, {}

        await self._guarded(job, work)

    async def index(self, job: Job) -> None:
        written: list[str] = []

        async def work(row: DocumentRow, gen: int) -> tuple[str | None, dict[str, Any]]:
            chunks = [Chunk(**c) for c in await self._artifact(row, gen, "chunks")]
            vec = await self._artifact(row, gen, "vectors")
            if chunks:
                space = Space(str(vec["model"]), int(vec["dimensions"]))
                await self.writer().write_source(row.tenant_id, space, chunks, vec["vectors"])
                written.append(source_id(row.id, gen))
            old = row.generation
            if old is not None and old != gen:
                async with self.db.session() as s:  # removal of the old generation, later
                    await self.queue.enqueue(
                        s,
                        tenant_id=row.tenant_id,
                        kind=CLEANUP,
                        subject=f"cleanup:{row.id}",
                        payload={"documentId": row.id, "generation": old},
                        dedupe_key=stage_job_key(row.id, old, CLEANUP),
                    )
            return None, {
                "generation": gen,
                "pending_generation": None,
                "status": "ready",
                "error_code": None,
                "error_message": None,
            }

        try:
            await self._run_stage(job, work)
        except _Stale:
            # deleted or superseded while indexing: what this attempt wrote must not stay. A
            # lost lease alone is not a reason: another worker owns the stage and writes the
            # very same chunk ids.
            if written and not await self._still_wanted(job):
                await self.writer().delete_sources(job.tenant_id, written)

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
        code = getattr(exc, "code", "JOB_FAILED")
        message = getattr(exc, "message", None) or f"{type(exc).__name__}"
        async with self.db.session() as s:
            row = await s.scalar(
                select(DocumentRow).where(
                    DocumentRow.id == job.payload.get("documentId"),
                    DocumentRow.tenant_id == job.tenant_id,
                    DocumentRow.deleted_at.is_(None),
                )
            )
            if row is None:
                return
            row.error_code, row.error_message = str(code), str(message)[:1000]
            if status == "dead":
                row.status = "failed"
            await add_event(
                s,
                row.tenant_id,
                row.id,
                "stage.failed",
                stage=job.kind,
                attempt=job.attempt,
                code=code,
                message=str(message)[:300],
                status=row.status,
                retrying=status == "queued",
            )


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
