"""Documents service: upload, documents, events, collections, grants, dead letters, delete.

Functions take the caller's ``TenantContext``; every query is scoped by its tenant and by
``access``'s conditions, so another tenant's or an unreadable object is NOT_FOUND.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from gasworks.blobs.envelope import EnvelopeStore
from gasworks.blobs.types import blob_key
from gasworks.db.engine import Database
from gasworks.db.paging import ALL, Page
from gasworks.db.types import new_id, utcnow
from gasworks.documents import access, sniff
from gasworks.documents.chunking import default_tokens, model_cap
from gasworks.documents.schemas import (
    CollectionIn,
    CollectionOut,
    DeadLetterOut,
    DocumentEventOut,
    DocumentOut,
    GrantIn,
    GrantOut,
    UploadResult,
)
from gasworks.documents.tables import (
    CollectionDocumentRow,
    CollectionGrantRow,
    CollectionRow,
    DocumentEventRow,
    DocumentRow,
)
from gasworks.errors import (
    AlreadyExists,
    DocumentNotFound,
    DocumentTooLarge,
    DocumentTypeUnsupported,
    Forbidden,
    NotFound,
    TooManyFiles,
    ValidationFailed,
)
from gasworks.jobs.queue import JobQueue, KindStats
from gasworks.observability.logging import get_logger
from gasworks.retrieval.types import AllowedSources, EmbedInputLimit
from gasworks.tenancy.context import Role, TenantContext
from gasworks.tenancy.grants import grant_subject, is_manager, may_manage

log = get_logger("gasworks.documents")

EXTRACT = "documents.extract"
OCR = "documents.ocr"
CHUNK = "documents.chunk"
EMBED = "documents.embed"
INDEX = "documents.index"
DELETE = "documents.delete"
CLEANUP = "documents.cleanup"
STAGES = (EXTRACT, OCR, CHUNK, EMBED, INDEX)
KINDS = (*STAGES, DELETE, CLEANUP)
#: the document status while each stage runs
STAGE_STATUS = {
    EXTRACT: "extracting",
    OCR: "ocr",
    CHUNK: "chunking",
    EMBED: "embedding",
    INDEX: "indexing",
}
FINAL = ("ready", "failed")


def source_blob(tenant_id: str, document_id: str) -> str:
    return blob_key(tenant_id, "documents", f"{document_id}/source")


def artifact_blob(tenant_id: str, document_id: str, generation: int, stage: str) -> str:
    return blob_key(tenant_id, "documents", f"{document_id}/g{generation}-{stage}.json")


def stage_job_key(document_id: str, generation: int, kind: str) -> str:
    return f"{document_id}:{generation}:{kind}"


@dataclass(slots=True)
class Ingestion:
    #: readable documents by status
    statuses: dict[str, int]
    #: the tenant's jobs per kind (tenant admins only, else ``None``)
    jobs: list[KindStats] | None


@dataclass(slots=True)
class Limits:
    max_bytes: int
    max_files: int


def _doc_out(row: DocumentRow, collections: Sequence[str] = ()) -> DocumentOut:
    out = DocumentOut.model_validate(row)
    out.collections = list(collections)
    return out


async def add_event(
    session: AsyncSession,
    tenant_id: str,
    document_id: str | None,
    kind: str,
    actor: str | None = None,
    **data: Any,
) -> None:
    session.add(event_row(tenant_id, document_id, kind, actor, **data))


def event_row(
    tenant_id: str, document_id: str | None, kind: str, actor: str | None = None, **data: Any
) -> DocumentEventRow:
    """A document event, for a session to add (``add_event``, or a synchronous session)."""
    return DocumentEventRow(
        tenant_id=tenant_id,
        document_id=document_id,
        kind=kind,
        actor=actor,
        data=data,
        created_at=utcnow(),
    )


#: ``add_events``' INSERT, built once
_INSERT_EVENTS = insert(DocumentEventRow.__table__)  # type: ignore[arg-type]


def event_values(
    tenant_id: str, document_id: str | None, kind: str, actor: str | None = None, **data: Any
) -> dict[str, Any]:
    """A document event's column values, for ``add_events``."""
    return {
        "tenant_id": tenant_id,
        "document_id": document_id,
        "kind": kind,
        "actor": actor,
        "data": data,
        "created_at": utcnow(),
    }


def add_events(session: Session, events: Sequence[dict[str, Any]]) -> None:
    """INSERT ``events`` (``event_values``) in a synchronous session's transaction, in order,
    through Core: one statement for them all, where the ORM's unit of work inserts each row
    on its own to read its key back (the pipeline's stage transactions write two or three
    per document, nine or so in all)."""
    if events:
        session.connection().execute(_INSERT_EVENTS, list(events))


#: the tenant's oldest live document with these bytes (``upload``'s duplicate check), built
#: once: parameters ``tenant`` and ``hash``
_SAME_CONTENT = (
    select(DocumentRow)
    .where(
        DocumentRow.tenant_id == bindparam("tenant"),
        DocumentRow.content_hash == bindparam("hash"),
        DocumentRow.deleted_at.is_(None),
    )
    .order_by(DocumentRow.created_at)
    .limit(1)
)
#: a new document's row (``upload``)
_INSERT_DOCUMENT = insert(DocumentRow.__table__)  # type: ignore[arg-type]


def _collections_query(doc_id: str) -> Any:
    """The ids of the live collections a document is in."""
    return (
        select(CollectionDocumentRow.collection_id)
        .join(CollectionRow, CollectionRow.id == CollectionDocumentRow.collection_id)
        .where(CollectionDocumentRow.document_id == doc_id, CollectionRow.deleted_at.is_(None))
        .order_by(CollectionDocumentRow.collection_id)
    )


class DocumentService:
    """The documents domain's operations over one database, blob store and queue."""

    def __init__(
        self,
        db: Database,
        blobs: EnvelopeStore,
        queue: JobQueue,
        limits: Limits,
        *,
        input_limit: Callable[[], EmbedInputLimit | None] = lambda: None,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.queue = queue
        self.limits = limits
        #: the ingestion embedding model's input limit (collection chunk sizes obey it)
        self.input_limit = input_limit

    # -- upload -----------------------------------------------------------------------------

    def check_count(self, n: int) -> None:
        if n > self.limits.max_files:
            raise TooManyFiles(
                f"At most {self.limits.max_files} files per upload.",
                details={"files": n, "limit": self.limits.max_files},
            )
        if n == 0:
            raise ValidationFailed("The upload carries no file.", details={"field": "files"})

    async def upload(
        self,
        ctx: TenantContext,
        name: str,
        pieces: AsyncIterator[bytes],
        *,
        collections: Sequence[str] = (),
        new: bool = False,
    ) -> UploadResult:
        """Stream one file to the blob store (memory bounded by one piece), then write the
        document row and its first job in one transaction. The same bytes already uploaded
        to this tenant give that document back (linked to ``collections``) unless ``new``."""
        ctx.require(Role.EDITOR)
        name = (name or "upload").replace("/", "_").replace("\\", "_")[:300] or "upload"
        cols = await access.collection_ids(self.db, ctx, collections)  # fail fast on unknown
        doc_id = new_id("doc")
        key = source_blob(ctx.tenant_id, doc_id)
        digest = hashlib.sha256()
        head = bytearray()
        limit = self.limits.max_bytes

        async def counted() -> AsyncIterator[bytes]:
            size = 0
            async for piece in pieces:
                size += len(piece)
                if size > limit:
                    raise DocumentTooLarge(
                        f"'{name}' is larger than {limit} bytes.",
                        details={"name": name, "limit": limit},
                    )
                digest.update(piece)
                if len(head) < sniff.HEAD:
                    head.extend(piece[: sniff.HEAD - len(head)])
                yield piece

        size = await self.blobs.put_stream(key, counted())
        try:
            try:
                media_type = sniff.sniff(bytes(head), name, size=size)
            except DocumentTypeUnsupported:
                if not head.startswith(b"PK"):
                    raise
                # a ZIP's directory is at its end: look at the whole (size-bounded) file
                media_type = sniff.sniff(await self.blobs.get(key), name, size=size)
            content_hash = digest.hexdigest()
            now = utcnow()
            values: dict[str, Any] = {
                "id": doc_id,
                "tenant_id": ctx.tenant_id,
                "name": name,
                "media_type": media_type,
                "size": size,
                "content_hash": content_hash,
                "blob_key": key,
                "status": "queued",
                "generation": None,
                "pending_generation": 1,
                "stages": {},
                "created_by": ctx.principal_id,
                "created_at": now,
                "updated_at": now,
            }
            row = DocumentRow(**values)

            def write(s: Session, _: object) -> tuple[DocumentOut, bool]:
                """The row, its links, its first job and its event (or, for bytes this
                tenant has already, that document linked), in one transaction: on a SQLite
                file one hand-off to the writer thread (``Database.write_batch``)."""
                if not new:
                    existing = s.scalar(
                        _SAME_CONTENT, {"tenant": ctx.tenant_id, "hash": content_hash}
                    )
                    if existing is not None:
                        for stmt in self._link_stmts(ctx, existing.id, cols):
                            s.execute(stmt)
                        linked = list(s.scalars(_collections_query(existing.id)).all())
                        return _doc_out(existing, linked), True
                # Core, one statement built once: the unit of work's flush of a new entity
                # cost the writer thread more than the INSERT
                s.connection().execute(_INSERT_DOCUMENT, values)
                for stmt in self._link_stmts(ctx, doc_id, cols):
                    s.execute(stmt)
                self.queue.enqueue_sync(
                    s,
                    tenant_id=ctx.tenant_id,
                    kind=EXTRACT,
                    subject=doc_id,
                    payload={"documentId": doc_id, "generation": 1},
                    dedupe_key=stage_job_key(doc_id, 1, EXTRACT),
                )
                add_events(
                    s,
                    [
                        event_values(
                            ctx.tenant_id,
                            doc_id,
                            "uploaded",
                            ctx.principal_id,
                            name=name,
                            size=size,
                            mediaType=media_type,
                            status="queued",
                        )
                    ],
                )
                return _doc_out(row, cols), False

            out, duplicate = await self.db.write_batch(write)
            if duplicate:
                await self.blobs.delete(key)
                return UploadResult(document=out, duplicate=True)
        except BaseException:
            await self.blobs.delete(key)
            raise
        self.queue.wake()
        return UploadResult(document=out)

    async def _link(
        self, s: AsyncSession, ctx: TenantContext, doc_id: str, cols: Sequence[str]
    ) -> None:
        for stmt in self._link_stmts(ctx, doc_id, cols):
            await s.execute(stmt)

    def _link_stmts(self, ctx: TenantContext, doc_id: str, cols: Sequence[str]) -> list[Any]:
        return [
            self.db.dialect.insert(CollectionDocumentRow.__table__)  # type: ignore[arg-type]
            .values(collection_id=col, document_id=doc_id, tenant_id=ctx.tenant_id)
            .on_conflict_do_nothing()
            for col in cols
        ]

    async def _collections_of(self, s: AsyncSession, doc_id: str) -> list[str]:
        return list((await s.scalars(_collections_query(doc_id))).all())

    async def reingest(self, ctx: TenantContext, document_id: str) -> DocumentOut:
        """Build a new generation; the current one stays searchable until it is complete."""
        ctx.require(Role.EDITOR)
        async with self.db.session() as s:
            row = await self._doc(s, ctx, document_id)
            gen = max(row.generation or 0, row.pending_generation or 0) + 1
            await self.queue.cancel_subject(s, ctx.tenant_id, row.id)
            row.pending_generation = gen
            row.status, row.stages, row.updated_at = "queued", {}, utcnow()
            row.error_code = row.error_message = None
            await self.queue.enqueue(
                s,
                tenant_id=ctx.tenant_id,
                kind=EXTRACT,
                subject=row.id,
                payload={"documentId": row.id, "generation": gen},
                dedupe_key=stage_job_key(row.id, gen, EXTRACT),
            )
            await add_event(s, ctx.tenant_id, row.id, "reingest", ctx.principal_id, generation=gen)
            out = _doc_out(row, await self._collections_of(s, row.id))
        self.queue.wake()
        return out

    # -- documents --------------------------------------------------------------------------

    async def _doc(self, s: AsyncSession, ctx: TenantContext, document_id: str) -> DocumentRow:
        row = await s.scalar(
            select(DocumentRow).where(access.readable_documents(ctx), DocumentRow.id == document_id)
        )
        if row is None:
            raise DocumentNotFound("Document not found.", details={"document": document_id})
        return row

    async def get(self, ctx: TenantContext, document_id: str) -> DocumentOut:
        async with self.db.read_session() as s:
            row = await self._doc(s, ctx, document_id)
            return _doc_out(row, await self._collections_of(s, row.id))

    async def _documents_query(
        self,
        s: AsyncSession,
        ctx: TenantContext,
        collection: str | None,
        status: str | None,
        search: str | None,
    ) -> Any:
        q = select(DocumentRow).where(access.readable_documents(ctx))
        if collection is not None:
            col = await access.collection_row(s, ctx, collection)
            q = q.where(
                DocumentRow.id.in_(
                    select(CollectionDocumentRow.document_id).where(
                        CollectionDocumentRow.collection_id == col.id
                    )
                )
            )
        if status is not None:
            q = q.where(DocumentRow.status == status)
        if search:
            q = q.where(
                or_(
                    func.lower(DocumentRow.name).contains(search.lower(), autoescape=True),
                    DocumentRow.id == search,
                )
            )
        return q

    async def list_documents(
        self,
        ctx: TenantContext,
        *,
        collection: str | None = None,
        status: str | None = None,
        search: str | None = None,
        newest_first: bool = False,
        page: Page = ALL,
    ) -> list[DocumentOut]:
        """Readable documents, oldest first (``newest_first``: the console's order); ``search``
        matches a part of the name (any case) or the whole id."""
        async with self.db.read_session() as s:
            q = await self._documents_query(s, ctx, collection, status, search)
            order = (
                (DocumentRow.created_at.desc(), DocumentRow.id.desc())
                if newest_first
                else (DocumentRow.created_at, DocumentRow.id)
            )
            rows = (await s.scalars(page.apply(q.order_by(*order)))).all()
            links = await s.execute(
                select(CollectionDocumentRow.document_id, CollectionDocumentRow.collection_id)
                .join(CollectionRow, CollectionRow.id == CollectionDocumentRow.collection_id)
                .where(
                    CollectionDocumentRow.document_id.in_([r.id for r in rows]),
                    CollectionRow.deleted_at.is_(None),
                )
                .order_by(CollectionDocumentRow.collection_id)
            )
            by_doc: dict[str, list[str]] = {}
            for doc_id, col_id in links.all():
                by_doc.setdefault(doc_id, []).append(col_id)
            return [_doc_out(r, by_doc.get(r.id, [])) for r in rows]

    async def count_documents(
        self,
        ctx: TenantContext,
        *,
        collection: str | None = None,
        status: str | None = None,
        search: str | None = None,
    ) -> int:
        """How many documents ``list_documents`` would list with the same filters."""
        async with self.db.read_session() as s:
            q = await self._documents_query(s, ctx, collection, status, search)
            return int(await s.scalar(select(func.count()).select_from(q.subquery())) or 0)

    async def events(
        self, ctx: TenantContext, document_id: str, *, after: int = 0, page: Page = ALL
    ) -> list[DocumentEventOut]:
        async with self.db.read_session() as s:
            await self._doc(s, ctx, document_id)
            rows = await s.scalars(
                page.apply(
                    select(DocumentEventRow)
                    .where(
                        DocumentEventRow.tenant_id == ctx.tenant_id,
                        DocumentEventRow.document_id == document_id,
                        DocumentEventRow.seq > after,
                    )
                    .order_by(DocumentEventRow.seq)
                )
            )
            return [DocumentEventOut.model_validate(r) for r in rows.all()]

    async def delete(self, ctx: TenantContext, document_id: str) -> None:
        """Invisible at once; a durable job removes vectors, chunks, blobs and rows."""
        ctx.require(Role.EDITOR)
        async with self.db.session() as s:
            row = await self._doc(s, ctx, document_id)
            if not may_manage(ctx, row.created_by):
                raise Forbidden(
                    "Only the uploader or a tenant admin may delete a document.",
                    details={"document": document_id},
                )
            await self.mark_deleted(s, row, ctx.principal_id)
        self.queue.wake()

    async def mark_deleted(self, s: AsyncSession, row: DocumentRow, actor: str | None) -> None:
        """In ``s``'s transaction: hide the document, cancel its pipeline jobs (a stage still
        running loses its lease; its late writes are discarded) and queue its removal."""
        await self.mark_deleted_many(s, row.tenant_id, [row], actor)

    async def mark_deleted_many(
        self, s: AsyncSession, tenant_id: str, rows: Sequence[DocumentRow], actor: str | None
    ) -> None:
        """``mark_deleted`` for several documents of one tenant in ``s``'s transaction. Locks
        are taken in one order -- the documents by id, then their jobs by id -- the order the
        workers' transactions follow too (a stage locks its document, then its job), so a
        delete racing the pipeline never deadlocks with it. Ids are a prefix and lowercase
        hex, so the database's order and Python's (``Pipeline._begin``) agree."""
        if not rows:
            return
        ordered = sorted(rows, key=lambda r: r.id)
        ids = [r.id for r in ordered]
        await s.execute(
            select(DocumentRow.id)
            .where(DocumentRow.tenant_id == tenant_id, DocumentRow.id.in_(ids))
            .order_by(DocumentRow.id)
            .with_for_update()
        )
        now = utcnow()
        for row in ordered:
            row.deleted_at = now
            row.status = "deleting"
            row.updated_at = now
        await s.flush()
        await self.queue.cancel_subjects(s, tenant_id, ids)
        for row in ordered:
            await self._queue_delete(s, tenant_id, "document", row.id)
            await add_event(s, tenant_id, row.id, "deleted", actor)

    async def delete_tenant_documents(self, ctx: TenantContext) -> int:
        """Everything of the tenant's documents domain, hidden at once (one transaction) and
        removed by jobs: each document's delete job, then each collection's. For a tenant
        being closed; platform administrators only. Returns the number of documents."""
        ctx.require_platform_admin()
        now = utcnow()
        async with self.db.session() as s:
            docs = (
                await s.scalars(
                    select(DocumentRow).where(
                        DocumentRow.tenant_id == ctx.tenant_id, DocumentRow.deleted_at.is_(None)
                    )
                )
            ).all()
            await self.mark_deleted_many(s, ctx.tenant_id, docs, ctx.principal_id)
            cols = (
                await s.scalars(
                    select(CollectionRow).where(
                        CollectionRow.tenant_id == ctx.tenant_id,
                        CollectionRow.deleted_at.is_(None),
                    )
                )
            ).all()
            for col in cols:
                await self._retire_collection(s, col, now)
            await add_event(
                s,
                ctx.tenant_id,
                None,
                "tenant.documents_deleted",
                ctx.principal_id,
                documents=len(docs),
                collections=len(cols),
            )
        self.queue.wake()
        return len(docs)

    # -- collections ------------------------------------------------------------------------

    async def create_collection(self, ctx: TenantContext, data: CollectionIn) -> CollectionOut:
        ctx.require(Role.EDITOR)
        limit = await asyncio.to_thread(self.input_limit)
        tokens = data.chunk_tokens
        if tokens is None:
            tokens = default_tokens(limit)
        elif limit is not None and tokens > model_cap(limit):
            raise ValidationFailed(
                f"chunkTokens {tokens} is more than the embedding model '{limit.model}' takes "
                f"({model_cap(limit)} tokens): choose at most {model_cap(limit)}, or leave it "
                "out for the largest size that fits.",
                details={"path": "body.chunkTokens", "limit": model_cap(limit)},
            )
        if data.chunk_overlap >= tokens:
            raise ValidationFailed(
                "chunkOverlap must be smaller than chunkTokens.",
                details={"path": "body.chunkOverlap"},
            )
        try:
            async with self.db.session() as s:
                row = CollectionRow(
                    id=new_id("col"),
                    tenant_id=ctx.tenant_id,
                    name=data.name,
                    description=data.description,
                    owner_id=ctx.principal_id,
                    chunk_tokens=tokens,
                    chunk_overlap=data.chunk_overlap,
                    created_at=utcnow(),
                )
                s.add(row)
                await s.flush()
                await add_event(
                    s,
                    ctx.tenant_id,
                    None,
                    "collection.created",
                    ctx.principal_id,
                    collection=row.id,
                    name=row.name,
                )
                return CollectionOut.model_validate(row)
        except IntegrityError:
            raise AlreadyExists(
                f"A collection named '{data.name}' exists.", details={"name": data.name}
            ) from None

    async def get_collection(self, ctx: TenantContext, ref: str) -> CollectionOut:
        async with self.db.read_session() as s:
            return CollectionOut.model_validate(await access.collection_row(s, ctx, ref))

    async def list_collections(self, ctx: TenantContext, page: Page = ALL) -> list[CollectionOut]:
        async with self.db.read_session() as s:
            rows = await s.scalars(
                page.apply(
                    select(CollectionRow)
                    .where(access.readable_collections(ctx))
                    .order_by(CollectionRow.name, CollectionRow.id)
                )
            )
            return [CollectionOut.model_validate(r) for r in rows.all()]

    async def _managed_collection(
        self, s: AsyncSession, ctx: TenantContext, ref: str
    ) -> CollectionRow:
        """A readable collection (else COLLECTION_NOT_FOUND) the caller may change (else
        FORBIDDEN: only its owner or a tenant admin)."""
        row = await access.collection_row(s, ctx, ref)
        if not may_manage(ctx, row.owner_id):
            raise Forbidden(
                "Only the collection's owner or a tenant admin may change it.",
                details={"collection": row.name},
            )
        return row

    async def _retire_collection(
        self, s: AsyncSession, col: CollectionRow, now: datetime, *, members: bool = False
    ) -> None:
        """In ``s``'s transaction: hide the collection (with ``members``, also its documents
        that are in no other collection) and queue the job that removes it."""
        col.deleted_at = now
        if members:
            await s.flush()
            await self.retire_members(s, col.id)
        await self._queue_delete(s, col.tenant_id, "collection", col.id)

    async def _queue_delete(self, s: AsyncSession, tenant_id: str, scope: str, id_: str) -> None:
        """The durable job that removes a hidden document or collection (once per id)."""
        await self.queue.enqueue(
            s,
            tenant_id=tenant_id,
            kind=DELETE,
            subject=f"delete:{id_}",
            payload={"scope": scope, "id": id_},
            dedupe_key=f"delete:{id_}",
        )

    async def add_documents(self, ctx: TenantContext, ref: str, document_ids: Sequence[str]) -> int:
        ctx.require(Role.EDITOR)
        async with self.db.session() as s:
            col = await self._managed_collection(s, ctx, ref)
            for doc_id in document_ids:
                await self._doc(s, ctx, doc_id)
            for doc_id in document_ids:
                await self._link(s, ctx, doc_id, [col.id])
            return len(document_ids)

    async def remove_document(self, ctx: TenantContext, ref: str, document_id: str) -> None:
        async with self.db.session() as s:
            col = await self._managed_collection(s, ctx, ref)
            res = await s.execute(
                delete(CollectionDocumentRow).where(
                    CollectionDocumentRow.collection_id == col.id,
                    CollectionDocumentRow.document_id == document_id,
                )
            )
            if not getattr(res, "rowcount", 0):
                raise DocumentNotFound("Document not found.", details={"document": document_id})

    async def delete_collection(self, ctx: TenantContext, ref: str) -> None:
        """Invisible at once; a job removes the documents in no other collection and unlinks
        the others."""
        async with self.db.session() as s:
            col = await self._managed_collection(s, ctx, ref)
            await self._retire_collection(s, col, utcnow(), members=True)
            await add_event(
                s,
                ctx.tenant_id,
                None,
                "collection.deleted",
                ctx.principal_id,
                collection=col.id,
                name=col.name,
            )
        self.queue.wake()

    async def retire_members(self, s: AsyncSession, col_id: str) -> None:
        """Delete (``mark_deleted``) the collection's documents that belong to no other live
        collection; the others keep their other collections."""
        members = (
            await s.scalars(
                select(DocumentRow)
                .join(CollectionDocumentRow, CollectionDocumentRow.document_id == DocumentRow.id)
                .where(CollectionDocumentRow.collection_id == col_id)
            )
        ).all()
        retired: list[DocumentRow] = []
        for doc in members:
            elsewhere = await s.scalar(
                select(CollectionDocumentRow.collection_id)
                .join(CollectionRow, CollectionRow.id == CollectionDocumentRow.collection_id)
                .where(
                    CollectionDocumentRow.document_id == doc.id,
                    CollectionDocumentRow.collection_id != col_id,
                    CollectionRow.deleted_at.is_(None),
                )
                .limit(1)
            )
            if elsewhere is None and doc.deleted_at is None:
                retired.append(doc)
        if retired:
            await self.mark_deleted_many(s, retired[0].tenant_id, retired, None)

    # -- grants -----------------------------------------------------------------------------

    async def grant(self, ctx: TenantContext, ref: str, data: GrantIn) -> GrantOut:
        async with self.db.session() as s:
            col = await self._managed_collection(s, ctx, ref)
            subject = grant_subject(data.kind, data.subject, noun="grant")
            row = await s.scalar(
                select(CollectionGrantRow).where(
                    CollectionGrantRow.collection_id == col.id,
                    CollectionGrantRow.kind == data.kind,
                    CollectionGrantRow.subject == subject,
                )
            )
            if row is None:
                row = CollectionGrantRow(
                    id=new_id("grt"),
                    tenant_id=ctx.tenant_id,
                    collection_id=col.id,
                    kind=data.kind,
                    subject=subject,
                    created_at=utcnow(),
                )
                s.add(row)
                await s.flush()
                await add_event(
                    s,
                    ctx.tenant_id,
                    None,
                    "collection.granted",
                    ctx.principal_id,
                    collection=col.id,
                    grantKind=data.kind,
                    subject=subject,
                )
            return GrantOut.model_validate(row)

    async def list_grants(self, ctx: TenantContext, ref: str, page: Page = ALL) -> list[GrantOut]:
        async with self.db.read_session() as s:
            col = await access.collection_row(s, ctx, ref)
            rows = await s.scalars(
                page.apply(
                    select(CollectionGrantRow)
                    .where(CollectionGrantRow.collection_id == col.id)
                    .order_by(CollectionGrantRow.created_at, CollectionGrantRow.id)
                )
            )
            return [GrantOut.model_validate(r) for r in rows.all()]

    async def revoke(self, ctx: TenantContext, ref: str, grant_id: str) -> None:
        async with self.db.session() as s:
            col = await self._managed_collection(s, ctx, ref)
            res = await s.execute(
                delete(CollectionGrantRow).where(
                    CollectionGrantRow.id == grant_id, CollectionGrantRow.collection_id == col.id
                )
            )
            if not getattr(res, "rowcount", 0):
                raise NotFound("Grant not found.", details={"id": grant_id})
            await add_event(
                s,
                ctx.tenant_id,
                None,
                "collection.revoked",
                ctx.principal_id,
                collection=col.id,
                grant=grant_id,
            )

    async def allowed_sources(
        self, ctx: TenantContext, collections: Sequence[str] | None = None
    ) -> set[str]:
        async with self.db.read_session() as s:
            return await access.allowed_sources(s, ctx, collections)

    async def allowed_set(
        self,
        tenant_id: str,
        principal_id: str | None,
        *,
        collections: Sequence[str] | None = None,
        documents: Sequence[str] | None = None,
    ) -> AllowedSources:
        async with self.db.read_session() as s:
            return await access.allowed_set(
                s, tenant_id, principal_id, collections=collections, documents=documents
            )

    async def readable_collection_keys(self, tenant_id: str, principal_id: str | None) -> set[str]:
        async with self.db.read_session() as s:
            return await access.readable_collection_keys(s, tenant_id, principal_id)

    # -- dead letters (tenant admins, their own tenant) --------------------------------------

    async def dead_letters(
        self, ctx: TenantContext, *, stage: str | None = None, page: Page = ALL
    ) -> list[DeadLetterOut]:
        ctx.require(Role.ADMIN)
        async with self.db.read_session() as s:
            rows = await self.queue.list_dead(
                s, tenant_id=ctx.tenant_id, kind=_kind(stage), page=page
            )
        return [DeadLetterOut.model_validate(r, from_attributes=True) for r in rows]

    async def dead_letter(self, ctx: TenantContext, job_id: str) -> DeadLetterOut:
        ctx.require(Role.ADMIN)
        async with self.db.read_session() as s:
            row = await self.queue.get_dead(s, job_id, tenant_id=ctx.tenant_id)
        return DeadLetterOut.model_validate(row, from_attributes=True)

    async def replay(
        self, ctx: TenantContext, *, ids: Sequence[str] | None = None, stage: str | None = None
    ) -> int:
        ctx.require(Role.ADMIN)
        async with self.db.session() as s:
            jobs = await self.queue.replay_jobs(
                s, tenant_id=ctx.tenant_id, ids=ids, kind=_kind(stage)
            )
            # a failed document whose stage is queued again is queued, in the same transaction:
            # the status never says "failed" while its work waits in the queue
            docs = {
                str(j.payload.get("documentId"))
                for j in jobs
                if j.kind in STAGE_STATUS and j.payload.get("documentId")
            }
            if docs:
                rows = await s.scalars(
                    select(DocumentRow).where(
                        DocumentRow.tenant_id == ctx.tenant_id,
                        DocumentRow.id.in_(sorted(docs)),
                        DocumentRow.status == "failed",
                        DocumentRow.deleted_at.is_(None),
                    )
                )
                for row in rows.all():
                    row.status = "queued"
                    await add_event(s, ctx.tenant_id, row.id, "status", status="queued")
            n = len(jobs)
            await add_event(
                s,
                ctx.tenant_id,
                None,
                "deadletters.replayed",
                ctx.principal_id,
                count=n,
                stage=stage,
            )
        self.queue.wake()
        return n

    async def discard(
        self, ctx: TenantContext, *, ids: Sequence[str] | None = None, stage: str | None = None
    ) -> int:
        ctx.require(Role.ADMIN)
        async with self.db.session() as s:
            n = await self.queue.discard(s, tenant_id=ctx.tenant_id, ids=ids, kind=_kind(stage))
            await add_event(
                s,
                ctx.tenant_id,
                None,
                "deadletters.discarded",
                ctx.principal_id,
                count=n,
                stage=stage,
            )
        return n

    async def ingestion(self, ctx: TenantContext) -> Ingestion:
        """The caller's view of ingestion: its readable documents by status, and for tenant
        admins (who may see the dead letters) the tenant's pipeline jobs per kind."""
        async with self.db.read_session() as s:
            rows = await s.execute(
                select(DocumentRow.status, func.count())
                .where(access.readable_documents(ctx))
                .group_by(DocumentRow.status)
            )
            statuses = {str(k): int(n) for k, n in rows.all()}
        jobs = None
        if is_manager(ctx):
            stats = await self.queue.stats(ctx.tenant_id)
            jobs = [stats.get(kind, KindStats(kind)) for kind in KINDS]
        return Ingestion(statuses, jobs)

    async def audit(
        self, ctx: TenantContext, *, collection: str | None = None, page: Page = ALL
    ) -> list[DocumentEventOut]:
        """Events of no one document, newest first: collections created, granted, revoked and
        deleted, dead letters replayed and discarded. Tenant admins read the tenant's; a
        collection's owner reads its collection's (``collection``)."""
        async with self.db.read_session() as s:
            q = (
                select(DocumentEventRow)
                .where(
                    DocumentEventRow.tenant_id == ctx.tenant_id,
                    DocumentEventRow.document_id.is_(None),
                )
                .order_by(DocumentEventRow.seq.desc())
            )
            if collection is None:
                ctx.require(Role.ADMIN)
                rows = list((await s.scalars(page.apply(q))).all())
            else:
                col = await self._managed_collection(s, ctx, collection)
                every = (await s.scalars(q)).all()
                rows = page.window([r for r in every if (r.data or {}).get("collection") == col.id])
        return [DocumentEventOut.model_validate(r) for r in rows]

    async def status_counts(self) -> dict[str, int]:
        async with self.db.read_session() as s:
            rows = await s.execute(
                select(DocumentRow.status, func.count()).group_by(DocumentRow.status)
            )
            return {str(k): int(n) for k, n in rows.all()}


def _kind(stage: str | None) -> str | None:
    if stage is None:
        return None
    kind = stage if stage.startswith("documents.") else f"documents.{stage}"
    if kind not in KINDS:
        raise ValidationFailed(
            f"Unknown stage '{stage}'.",
            details={"stages": [k.split(".", 1)[1] for k in KINDS]},
        )
    return kind


def isoformat(ts: datetime) -> str:
    return ts.isoformat()
