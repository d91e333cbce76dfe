"""What callers see (REST, GraphQL, CLI, SDK): pydantic models, camelCase on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field

from gasworks.apimodel import ApiModel

if TYPE_CHECKING:
    from gasworks.jobs.queue import KindStats

Status = Literal[
    "queued",
    "extracting",
    "ocr",
    "chunking",
    "embedding",
    "indexing",
    "ready",
    "failed",
    "deleting",
]


class _Out(ApiModel):
    model_config = ConfigDict(from_attributes=True, serialize_by_alias=True)


class DocumentOut(_Out):
    id: str
    name: str
    media_type: str
    size: int
    content_hash: str
    status: str
    generation: int | None
    pending_generation: int | None
    stages: dict[str, Any]
    error_code: str | None
    error_message: str | None
    pages: int | None
    chunks: int | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    collections: list[str] = Field(default_factory=list)


class UploadResult(_Out):
    document: DocumentOut
    #: the same bytes were already a document of this tenant: that one is returned
    duplicate: bool = False


class UploadOut(_Out):
    documents: list[UploadResult]


class DocumentEventOut(_Out):
    seq: int
    document_id: str | None
    kind: str
    actor: str | None
    data: dict[str, Any]
    created_at: datetime


class CollectionIn(ApiModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")
    description: str | None = Field(default=None, max_length=2000)
    #: ``cl100k_base`` tokens per chunk; none: 400, or the embedding model's input limit when
    #: lower. A size over that limit is refused (a chunk longer than the model takes cannot be
    #: embedded)
    chunk_tokens: int | None = Field(default=None, ge=32, le=8000)
    chunk_overlap: int = Field(default=50, ge=0, le=2000)


class CollectionOut(_Out):
    id: str
    name: str
    description: str | None
    owner_id: str
    chunk_tokens: int
    chunk_overlap: int
    created_at: datetime


class GrantIn(ApiModel):
    kind: Literal["user", "role", "tenant"]
    subject: str | None = Field(default=None, max_length=64)


class GrantOut(_Out):
    id: str
    collection_id: str
    kind: str
    subject: str
    created_at: datetime


class DeadLetterOut(_Out):
    id: str
    kind: str
    subject: str | None
    payload: dict[str, Any]
    attempts: int
    error_code: str | None
    error_message: str | None
    history: list[dict[str, Any]]
    created_at: datetime
    dead_at: datetime | None


class CountOut(_Out):
    count: int


class ReconcileOut(_Out):
    blobs_removed: int = 0
    sources_removed: int = 0
    documents_failed: int = 0
    documents_purged: int = 0
    #: whether the vector index could be listed (no index configured: blobs and rows only)
    vectors_checked: bool = False


class StageQueueOut(_Out):
    """One kind of pipeline job (a stage: extract, ocr, chunk, embed, index; or the delete and
    cleanup jobs) of the caller's tenant."""

    stage: str
    #: jobs waiting for a worker (including retries waiting for their backoff)
    waiting: int
    #: jobs a worker holds now (in flight)
    running: int
    #: dead letters of this stage
    dead: int
    #: seconds since the oldest waiting or running job of this stage was created (0: none)
    oldest_age_seconds: float


class QueueOut(_Out):
    """The tenant's pipeline queue, per stage and in total."""

    stages: list[StageQueueOut]
    waiting: int
    running: int
    dead: int
    oldest_age_seconds: float


class IngestionOut(_Out):
    #: the caller's readable documents by status
    statuses: dict[str, int]
    #: the tenant's queue (tenant admins, who may see the dead letters; otherwise null)
    queue: QueueOut | None

    @classmethod
    def of(cls, statuses: dict[str, int], jobs: list[KindStats] | None) -> IngestionOut:
        if jobs is None:
            return cls(statuses=statuses, queue=None)
        stages = [
            StageQueueOut(
                stage=j.kind.removeprefix("documents."),
                waiting=j.queued,
                running=j.running,
                dead=j.dead,
                oldest_age_seconds=round(j.oldest_age_seconds, 3),
            )
            for j in jobs
        ]
        queue = QueueOut(
            stages=stages,
            waiting=sum(s.waiting for s in stages),
            running=sum(s.running for s in stages),
            dead=sum(s.dead for s in stages),
            oldest_age_seconds=max((s.oldest_age_seconds for s in stages), default=0.0),
        )
        return cls(statuses=statuses, queue=queue)
