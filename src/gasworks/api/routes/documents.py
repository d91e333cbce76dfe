"""Documents, their status and events (JSON or SSE), collections, grants and dead letters.

Uploads are ``multipart/form-data``: Starlette spools each file part to a temporary file past
1 MiB, and the service reads it in 1 MiB pieces into the blob store's streamed, encrypted put,
so no file is ever whole in memory.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Query, Request, Response, status
from starlette.datastructures import UploadFile

from gasworks.api.deps import ContextDep, RuntimeDep
from gasworks.api.paging import PageDep
from gasworks.api.routing import router as guarded_router
from gasworks.api.sse import SSE_HEADERS, EventStreamResponse
from gasworks.bounds import EventSeq
from gasworks.documents.domain import get_documents
from gasworks.documents.schemas import (
    CollectionIn,
    CollectionOut,
    CountOut,
    DeadLetterOut,
    DocumentEventOut,
    DocumentOut,
    GrantIn,
    GrantOut,
    UploadOut,
)
from gasworks.documents.service import FINAL, DocumentService
from gasworks.errors import UnsupportedMediaType, ValidationFailed
from gasworks.inputs import refuse
from gasworks.jobs.queue import JobNotFound
from gasworks.tenancy.context import TenantContext

router = guarded_router("/api", tags=["documents"])

PIECE = 1 << 20
#: how often an event stream looks for new events
EVENT_POLL_SECONDS = 0.5


async def _file_pieces(f: UploadFile) -> AsyncIterator[bytes]:
    while piece := await f.read(PIECE):
        yield piece


@router.post(
    "/documents",
    status_code=status.HTTP_201_CREATED,
    summary="Upload files (multipart: files, collection, new)",
)
async def upload(request: Request, rt: RuntimeDep, ctx: ContextDep) -> UploadOut:
    return await receive_upload(request, get_documents(rt).service, ctx)


async def receive_upload(request: Request, svc: DocumentService, ctx: TenantContext) -> UploadOut:
    """A multipart upload (fields ``files``, ``collection``, ``new``) into ``svc``: the REST
    route's body, shared with the console's upload form (same limits, same errors)."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UnsupportedMediaType("Upload files as multipart/form-data (field 'files').")
    async with request.form(max_files=svc.limits.max_files + 1, max_fields=200) as form:
        files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
        svc.check_count(len(files))
        cols = [str(c) for c in form.getlist("collection") if str(c)]  # "": none chosen
        new = str(form.get("new", "false")).lower() in ("1", "true", "yes", "on")
        _refuse_nul({"files": [f.filename or "" for f in files], "collection": cols})
        out = [
            await svc.upload(
                ctx, f.filename or "upload", _file_pieces(f), collections=cols, new=new
            )
            for f in files
        ]
    return UploadOut(documents=out)


def _refuse_nul(fields: dict[str, list[str]]) -> None:
    """A multipart body bypasses the JSON guard: its names are checked here (PostgreSQL cannot
    store a NUL character)."""
    for field, values in fields.items():
        if any("\x00" in v for v in values):
            raise refuse(f"body.{field}", "contains a NUL character", "nul_character")


@router.get("/documents", summary="Documents the caller may read")
async def list_documents(
    rt: RuntimeDep,
    ctx: ContextDep,
    page: PageDep,
    collection: str | None = None,
    status_: Annotated[str | None, Query(alias="status")] = None,
) -> list[DocumentOut]:
    return await get_documents(rt).service.list_documents(
        ctx, collection=collection, status=status_, page=page
    )


@router.get("/documents/{document_id}", summary="A document with its status per stage")
async def get_document(document_id: str, rt: RuntimeDep, ctx: ContextDep) -> DocumentOut:
    return await get_documents(rt).service.get(ctx, document_id)


@router.get(
    "/documents/{document_id}/events",
    summary="A document's events (JSON, or SSE with Accept: text/event-stream)",
    response_model=list[DocumentEventOut],
)
async def document_events(
    document_id: str,
    request: Request,
    rt: RuntimeDep,
    ctx: ContextDep,
    page: PageDep,
    after: Annotated[EventSeq, Query()] = 0,
) -> Any:
    svc = get_documents(rt).service
    if "text/event-stream" not in request.headers.get("accept", ""):
        return await svc.events(ctx, document_id, after=after, page=page)
    await svc.get(ctx, document_id)  # NOT_FOUND before the stream starts

    async def body() -> AsyncIterator[str]:
        seq = after
        while True:
            for ev in await svc.events(ctx, document_id, after=seq):
                seq = ev.seq
                data = ev.model_dump_json(by_alias=True)
                yield f"id: {ev.seq}\nevent: {ev.kind}\ndata: {data}\n\n"
            try:
                doc = await svc.get(ctx, document_id)
            except Exception:
                yield 'event: end\ndata: {"status":"deleted"}\n\n'
                return
            if doc.status in FINAL:
                yield f"event: end\ndata: {json.dumps({'status': doc.status})}\n\n"
                return
            await asyncio.sleep(EVENT_POLL_SECONDS)

    return EventStreamResponse(body(), headers=SSE_HEADERS)


@router.delete(
    "/documents/{document_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,  # an empty body: no content type to document
    summary="Delete (invisible at once, removed by a job)",
)
async def delete_document(document_id: str, rt: RuntimeDep, ctx: ContextDep) -> Response:
    await get_documents(rt).service.delete(ctx, document_id)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post("/documents/{document_id}/reingest", summary="Build a new generation")
async def reingest(document_id: str, rt: RuntimeDep, ctx: ContextDep) -> DocumentOut:
    return await get_documents(rt).service.reingest(ctx, document_id)


# --- collections ------------------------------------------------------------------------------


@router.post("/collections", status_code=status.HTTP_201_CREATED, summary="Create a collection")
async def create_collection(data: CollectionIn, rt: RuntimeDep, ctx: ContextDep) -> CollectionOut:
    return await get_documents(rt).service.create_collection(ctx, data)


@router.get("/collections", summary="Collections the caller may read")
async def list_collections(rt: RuntimeDep, ctx: ContextDep, page: PageDep) -> list[CollectionOut]:
    return await get_documents(rt).service.list_collections(ctx, page)


@router.get("/collections/{ref}", summary="A collection (by id or name)")
async def get_collection(ref: str, rt: RuntimeDep, ctx: ContextDep) -> CollectionOut:
    return await get_documents(rt).service.get_collection(ctx, ref)


@router.delete(
    "/collections/{ref}",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,  # an empty body: no content type to document
    summary="Delete a collection (its documents in no other collection go too)",
)
async def delete_collection(ref: str, rt: RuntimeDep, ctx: ContextDep) -> Response:
    await get_documents(rt).service.delete_collection(ctx, ref)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post("/collections/{ref}/documents", summary="Add documents to a collection")
async def add_documents(
    ref: str, document_ids: list[str], rt: RuntimeDep, ctx: ContextDep
) -> CountOut:
    if not document_ids:
        raise ValidationFailed("Name at least one document id.", details={"path": "body"})
    return CountOut(count=await get_documents(rt).service.add_documents(ctx, ref, document_ids))


@router.delete(
    "/collections/{ref}/documents/{document_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a document from a collection",
)
async def remove_document(ref: str, document_id: str, rt: RuntimeDep, ctx: ContextDep) -> Response:
    await get_documents(rt).service.remove_document(ctx, ref, document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/collections/{ref}/grants", status_code=status.HTTP_201_CREATED, summary="Grant read")
async def grant(ref: str, data: GrantIn, rt: RuntimeDep, ctx: ContextDep) -> GrantOut:
    return await get_documents(rt).service.grant(ctx, ref, data)


@router.get("/collections/{ref}/grants", summary="A collection's grants")
async def grants(ref: str, rt: RuntimeDep, ctx: ContextDep, page: PageDep) -> list[GrantOut]:
    return await get_documents(rt).service.list_grants(ctx, ref, page)


@router.delete(
    "/collections/{ref}/grants/{grant_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a grant",
)
async def revoke(ref: str, grant_id: str, rt: RuntimeDep, ctx: ContextDep) -> Response:
    await get_documents(rt).service.revoke(ctx, ref, grant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- dead letters (tenant admins) -------------------------------------------------------------


@router.get("/document-dead-letters", summary="Dead letters of the pipeline, by stage")
async def dead_letters(
    rt: RuntimeDep, ctx: ContextDep, page: PageDep, stage: str | None = None
) -> list[DeadLetterOut]:
    return await get_documents(rt).service.dead_letters(ctx, stage=stage, page=page)


@router.get("/document-dead-letters/{job_id}", summary="One dead letter with its history")
async def dead_letter(job_id: str, rt: RuntimeDep, ctx: ContextDep) -> DeadLetterOut:
    return await get_documents(rt).service.dead_letter(ctx, job_id)


@router.post("/document-dead-letters/{job_id}/replay", summary="Replay one dead letter")
async def replay_one(job_id: str, rt: RuntimeDep, ctx: ContextDep) -> CountOut:
    return CountOut(count=_one(job_id, await get_documents(rt).service.replay(ctx, ids=[job_id])))


@router.post("/document-dead-letters/replay", summary="Replay every dead letter (of a stage)")
async def replay_all(rt: RuntimeDep, ctx: ContextDep, stage: str | None = None) -> CountOut:
    return CountOut(count=await get_documents(rt).service.replay(ctx, stage=stage))


@router.post("/document-dead-letters/discard", summary="Discard every dead letter (of a stage)")
async def discard_all(rt: RuntimeDep, ctx: ContextDep, stage: str | None = None) -> CountOut:
    return CountOut(count=await get_documents(rt).service.discard(ctx, stage=stage))


@router.delete("/document-dead-letters/{job_id}", summary="Discard one dead letter")
async def discard_one(job_id: str, rt: RuntimeDep, ctx: ContextDep) -> CountOut:
    return CountOut(count=_one(job_id, await get_documents(rt).service.discard(ctx, ids=[job_id])))


def _one(job_id: str, count: int) -> int:
    """One named dead letter that is not there (another tenant's, or none) is NOT_FOUND."""
    if count == 0:
        raise JobNotFound("Dead letter not found.", details={"id": job_id})
    return count
