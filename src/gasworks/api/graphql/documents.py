"""GraphQL for documents: multipart upload (the GraphQL multipart request spec), documents,
events, collections, grants, dead letters, delete, reconcile."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import strawberry
from starlette.datastructures import UploadFile
from strawberry.file_uploads import Upload
from strawberry.scalars import JSON

from gasworks.api.graphql.context import GqlContext
from gasworks.api.graphql.paging import DEFAULT_LIMIT, Limit, Offset, checked_page
from gasworks.documents.domain import get_documents
from gasworks.documents.schemas import (
    CollectionIn,
    CollectionOut,
    DeadLetterOut,
    DocumentEventOut,
    DocumentOut,
    GrantIn,
    GrantOut,
    IngestionOut,
)
from gasworks.documents.service import DocumentService
from gasworks.errors import Forbidden, ValidationFailed

Info = strawberry.Info[GqlContext, None]
PIECE = 1 << 20


def _svc(info: Info) -> DocumentService:
    return get_documents(info.context.runtime).service


@strawberry.type(name="DocumentEvent")
class EventType:
    seq: int
    kind: str
    actor: str | None
    data: JSON
    created_at: datetime

    @staticmethod
    def of(e: DocumentEventOut) -> EventType:
        return EventType(
            seq=e.seq, kind=e.kind, actor=e.actor, data=JSON(e.data), created_at=e.created_at
        )


@strawberry.type(name="Document")
class DocumentType:
    id: str
    name: str
    media_type: str
    size: int
    content_hash: str
    status: str
    generation: int | None
    pending_generation: int | None
    stages: JSON
    error_code: str | None
    error_message: str | None
    pages: int | None
    chunks: int | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    collections: list[str]

    @strawberry.field
    async def events(
        self, info: Info, after: int = 0, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> list[EventType]:
        """Status changes and audit events, oldest first."""
        page = checked_page(limit, offset)
        items = await _svc(info).events(info.context.ctx, self.id, after=after, page=page)
        return [EventType.of(e) for e in items]

    @staticmethod
    def of(d: DocumentOut) -> DocumentType:
        data = d.model_dump(by_alias=False)
        data["stages"] = JSON(data["stages"])
        return DocumentType(**data)


@strawberry.type(name="DocumentUpload")
class UploadType:
    document: DocumentType
    duplicate: bool


@strawberry.type(name="Collection")
class CollectionType:
    id: str
    name: str
    description: str | None
    owner_id: str
    chunk_tokens: int
    chunk_overlap: int
    created_at: datetime

    @staticmethod
    def of(c: CollectionOut) -> CollectionType:
        return CollectionType(**c.model_dump(by_alias=False))


@strawberry.type(name="CollectionGrant")
class GrantType:
    id: str
    collection_id: str
    kind: str
    subject: str
    created_at: datetime

    @staticmethod
    def of(g: GrantOut) -> GrantType:
        return GrantType(**g.model_dump(by_alias=False))


@strawberry.type(name="DocumentDeadLetter")
class DeadLetterType:
    id: str
    kind: str
    subject: str | None
    payload: JSON
    attempts: int
    error_code: str | None
    error_message: str | None
    history: JSON
    created_at: datetime
    dead_at: datetime | None

    @staticmethod
    def of(d: DeadLetterOut) -> DeadLetterType:
        data = d.model_dump(by_alias=False)
        data["payload"], data["history"] = JSON(data["payload"]), JSON(data["history"])
        return DeadLetterType(**data)


@strawberry.type(name="ReconcileReport")
class ReconcileType:
    blobs_removed: int
    sources_removed: int
    documents_failed: int
    documents_purged: int
    vectors_checked: bool


@strawberry.type(name="DocumentStageQueue")
class StageQueueType:
    stage: str
    waiting: int
    running: int
    dead: int
    oldest_age_seconds: float


@strawberry.type(name="DocumentQueue")
class QueueType:
    stages: list[StageQueueType]
    waiting: int
    running: int
    dead: int
    oldest_age_seconds: float


@strawberry.type(name="DocumentStatusCount")
class StatusCountType:
    status: str
    count: int


@strawberry.type(name="DocumentIngestion")
class IngestionType:
    """Readable documents by status; the tenant's queue per stage (tenant admins, else null)."""

    statuses: list[StatusCountType]
    queue: QueueType | None

    @staticmethod
    def of(i: IngestionOut) -> IngestionType:
        q = i.queue
        return IngestionType(
            statuses=[StatusCountType(status=k, count=n) for k, n in sorted(i.statuses.items())],
            queue=None
            if q is None
            else QueueType(
                stages=[StageQueueType(**st.model_dump(by_alias=False)) for st in q.stages],
                waiting=q.waiting,
                running=q.running,
                dead=q.dead,
                oldest_age_seconds=q.oldest_age_seconds,
            ),
        )


@strawberry.type
class DocumentsQuery:
    @strawberry.field
    async def documents(
        self,
        info: Info,
        collection: str | None = None,
        status: str | None = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> list[DocumentType]:
        """Documents the caller may read."""
        page = checked_page(limit, offset)
        items = await _svc(info).list_documents(
            info.context.ctx, collection=collection, status=status, page=page
        )
        return [DocumentType.of(d) for d in items]

    @strawberry.field
    async def document(self, info: Info, id: str) -> DocumentType:
        return DocumentType.of(await _svc(info).get(info.context.ctx, id))

    @strawberry.field
    async def collections(
        self, info: Info, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> list[CollectionType]:
        page = checked_page(limit, offset)
        items = await _svc(info).list_collections(info.context.ctx, page)
        return [CollectionType.of(c) for c in items]

    @strawberry.field
    async def collection(self, info: Info, ref: str) -> CollectionType:
        """A collection by id or name."""
        return CollectionType.of(await _svc(info).get_collection(info.context.ctx, ref))

    @strawberry.field
    async def collection_grants(
        self, info: Info, collection: str, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> list[GrantType]:
        page = checked_page(limit, offset)
        items = await _svc(info).list_grants(info.context.ctx, collection, page)
        return [GrantType.of(g) for g in items]

    @strawberry.field
    async def document_dead_letters(
        self,
        info: Info,
        stage: str | None = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> list[DeadLetterType]:
        page = checked_page(limit, offset)
        items = await _svc(info).dead_letters(info.context.ctx, stage=stage, page=page)
        return [DeadLetterType.of(d) for d in items]

    @strawberry.field
    async def document_ingestion(self, info: Info) -> IngestionType:
        """Documents by status; for tenant admins the pipeline queue per stage (waiting,
        running, dead letters, oldest age)."""
        found = await _svc(info).ingestion(info.context.ctx)
        return IngestionType.of(IngestionOut.of(found.statuses, found.jobs))

    @strawberry.field
    async def document_audit(
        self,
        info: Info,
        collection: str | None = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> list[EventType]:
        """Collection and dead-letter events, newest first (tenant admins; a collection's
        owner with ``collection``)."""
        page = checked_page(limit, offset)
        items = await _svc(info).audit(info.context.ctx, collection=collection, page=page)
        return [EventType.of(e) for e in items]


async def _pieces(f: UploadFile) -> AsyncIterator[bytes]:
    while piece := await f.read(PIECE):
        yield piece


@strawberry.type
class DocumentsMutation:
    @strawberry.mutation
    async def upload_documents(
        self,
        info: Info,
        files: list[Upload],
        collections: list[str] | None = None,
        new: bool = False,
    ) -> list[UploadType]:
        """Upload files (GraphQL multipart request: ``operations``, ``map``, file parts)."""
        svc = _svc(info)
        svc.check_count(len(files))
        out = []
        for f in files:
            if not isinstance(f, UploadFile):
                raise ValidationFailed("Each file must be a multipart file part.")
            res = await svc.upload(
                info.context.ctx,
                f.filename or "upload",
                _pieces(f),
                collections=collections or [],
                new=new,
            )
            out.append(UploadType(document=DocumentType.of(res.document), duplicate=res.duplicate))
        return out

    @strawberry.mutation
    async def delete_document(self, info: Info, id: str) -> bool:
        await _svc(info).delete(info.context.ctx, id)
        return True

    @strawberry.mutation
    async def reingest_document(self, info: Info, id: str) -> DocumentType:
        return DocumentType.of(await _svc(info).reingest(info.context.ctx, id))

    @strawberry.mutation
    async def create_collection(
        self,
        info: Info,
        name: str,
        description: str | None = None,
        chunk_tokens: int | None = None,
        chunk_overlap: int = 50,
    ) -> CollectionType:
        from gasworks.validation import validated

        data = validated(
            CollectionIn,
            {
                "name": name,
                "description": description,
                "chunkTokens": chunk_tokens,
                "chunkOverlap": chunk_overlap,
            },
        )
        return CollectionType.of(await _svc(info).create_collection(info.context.ctx, data))

    @strawberry.mutation
    async def delete_collection(self, info: Info, ref: str) -> bool:
        await _svc(info).delete_collection(info.context.ctx, ref)
        return True

    @strawberry.mutation
    async def add_to_collection(self, info: Info, ref: str, documents: list[str]) -> int:
        return await _svc(info).add_documents(info.context.ctx, ref, documents)

    @strawberry.mutation
    async def grant_collection(
        self, info: Info, ref: str, kind: str, subject: str | None = None
    ) -> GrantType:
        from gasworks.validation import validated

        data = validated(GrantIn, {"kind": kind, "subject": subject})
        return GrantType.of(await _svc(info).grant(info.context.ctx, ref, data))

    @strawberry.mutation
    async def revoke_collection_grant(self, info: Info, ref: str, grant_id: str) -> bool:
        await _svc(info).revoke(info.context.ctx, ref, grant_id)
        return True

    @strawberry.mutation
    async def replay_document_dead_letters(
        self, info: Info, ids: list[str] | None = None, stage: str | None = None
    ) -> int:
        """Replay the named dead letters, or every one (of ``stage``)."""
        return await _svc(info).replay(info.context.ctx, ids=ids, stage=stage)

    @strawberry.mutation
    async def discard_document_dead_letters(
        self, info: Info, ids: list[str] | None = None, stage: str | None = None
    ) -> int:
        return await _svc(info).discard(info.context.ctx, ids=ids, stage=stage)

    @strawberry.mutation
    async def reconcile_documents(self, info: Info, grace_seconds: float = 600.0) -> ReconcileType:
        """Platform administrators: compare database, blobs and vectors, remove orphans."""
        if not info.context.ctx.is_platform_admin:
            raise Forbidden("Only platform administrators may reconcile.")
        out = await get_documents(info.context.runtime).reconciler.run(grace=grace_seconds)
        return ReconcileType(**out.model_dump(by_alias=False))
