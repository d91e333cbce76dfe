"""Documents and collections: the documents list (paged, searchable, by status and collection),
upload with per-file progress, a document's status per stage (polled live while it ingests),
its events, collections, re-ingest and delete; collections with their documents, grants,
audit and delete with a preview of the cascade; the pipeline's dead letters with replay and
discard; a search playground with citations.

Every action calls the documents service the REST routes call (``DocumentService``; the
upload shares the REST route's multipart reader), so roles and grants are the API's: an
unreadable document or collection is NOT_FOUND here too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from gasworks.api.routes.documents import receive_upload
from gasworks.console.web import (
    PER_PAGE,
    SEARCH_WINDOW,
    Caller,
    CallerDep,
    ConsoleRoute,
    Listing,
    form_data,
    is_htmx,
    listing,
    parse,
    render,
)
from gasworks.db.paging import Page
from gasworks.documents import access
from gasworks.documents.domain import get_documents
from gasworks.documents.schemas import CollectionIn, CollectionOut, DocumentOut, GrantIn
from gasworks.documents.service import FINAL, KINDS, STAGE_STATUS, DocumentService
from gasworks.errors import ValidationFailed
from gasworks.observability.request_id import current_request_id
from gasworks.retrieval import service as retrieval
from gasworks.searchtypes import SearchRequest
from gasworks.tenancy import service as tenancy
from gasworks.tenancy.context import Role, TenantContext

router = APIRouter(route_class=ConsoleRoute)

#: the pipeline's stages in order, as the document's ``stages`` names them
STAGES = tuple(kind.split(".", 1)[1] for kind in STAGE_STATUS)
STATUSES = (
    "queued",
    "extracting",
    "ocr",
    "chunking",
    "embedding",
    "indexing",
    "ready",
    "failed",
)
IN_FLIGHT = tuple(s for s in STATUSES if s not in FINAL)


def tabs(ctx: TenantContext) -> list[tuple[str, str, str]]:
    out = [
        ("documents", "Documents", "/console/documents"),
        ("collections", "Collections", "/console/collections"),
        ("search", "Search", "/console/documents/search"),
    ]
    if access.is_manager(ctx):  # the API's dead letters and audit are tenant admins'
        out += [
            ("dead-letters", "Dead letters", "/console/document-dead-letters"),
            ("audit", "Audit", "/console/documents/audit"),
        ]
    return out


def svc_of(c: Caller) -> DocumentService:
    return get_documents(c.runtime).service


def can_upload(ctx: TenantContext) -> bool:
    return ctx.is_platform_admin or ctx.role.allows(Role.EDITOR)


def can_delete(ctx: TenantContext, doc: DocumentOut) -> bool:
    """``DocumentService.delete``'s rule: an editor who uploaded it, or a tenant admin."""
    return can_upload(ctx) and (access.is_manager(ctx) or doc.created_by == ctx.principal_id)


def can_manage(ctx: TenantContext, col: CollectionOut) -> bool:
    """``DocumentService._require_manage``'s rule: the owner or a tenant admin."""
    return access.is_manager(ctx) or col.owner_id == ctx.principal_id


def _page(c: Caller, template: str, tab: str, **ctx: Any) -> HTMLResponse:
    return render(
        c,
        template,
        active="collections" if tab == "collections" else "documents",
        title=ctx.pop("title", "Documents"),
        tabs=tabs(c.ctx),
        tab=tab,
        stages=STAGES,
        final=FINAL,
        **ctx,
    )


def _int(value: str | None, default: int = 1) -> int:
    try:
        return max(1, int(value or default))
    except ValueError:
        return default


@dataclass
class DocPage:
    listing: Listing[DocumentOut]
    status: str | None
    collection: str | None


async def _documents(
    c: Caller, *, collection: str | None = None, page_param: str = "page"
) -> DocPage:
    """One page of documents, newest first, filtered in the database (status, collection, a
    name search) so a tenant with many documents pages through all of them."""
    q = c.request.query_params
    status = q.get("status") or None
    collection = collection or q.get("collection") or None
    search = (q.get("q") or "").strip() or None
    svc = svc_of(c)
    total = await svc.count_documents(c.ctx, collection=collection, status=status, search=search)
    pages = max(1, math.ceil(total / PER_PAGE))
    page = min(_int(q.get(page_param)), pages)
    rows = await svc.list_documents(
        c.ctx,
        collection=collection,
        status=status,
        search=search,
        newest_first=True,
        page=Page(PER_PAGE, (page - 1) * PER_PAGE),
    )
    params = {"status": status or "", "collection": q.get("collection") or ""}
    return DocPage(
        Listing(rows, page, pages, total, search or "", params, page_param), status, collection
    )


async def _collection_names(c: Caller) -> dict[str, str]:
    return {col.id: col.name for col in await svc_of(c).list_collections(c.ctx, SEARCH_WINDOW)}


# --- documents ------------------------------------------------------------------------------


async def _list_page(
    c: Caller, *, message: str | None = None, status_code: int = 200
) -> HTMLResponse:
    docs = await _documents(c)
    cols = await svc_of(c).list_collections(c.ctx, SEARCH_WINDOW)
    return _page(
        c,
        "documents.html",
        "documents",
        docs=docs.listing,
        status=docs.status,
        collection=c.request.query_params.get("collection") or "",
        collections=cols,
        names={col.id: col.name for col in cols},
        statuses=STATUSES,
        can_upload=can_upload(c.ctx),
        max_files=svc_of(c).limits.max_files,
        max_bytes=svc_of(c).limits.max_bytes,
        live=any(d.status not in FINAL for d in docs.listing.rows),
        message=message,
        status_code=status_code,
    )


@router.get("/documents", response_class=HTMLResponse)
async def documents_page(c: CallerDep) -> HTMLResponse:
    return await _list_page(c)


@router.get("/documents/rows", response_class=HTMLResponse)
async def document_rows(c: CallerDep) -> HTMLResponse:
    """The list's rows alone: polled while a document on the page is still ingesting."""
    docs = await _documents(c)
    return render(
        c,
        "_document_rows.html",
        docs=docs.listing,
        names=await _collection_names(c),
        live=any(d.status not in FINAL for d in docs.listing.rows),
        final=FINAL,
    )


@router.post("/documents/upload", response_class=HTMLResponse)
async def upload(c: CallerDep) -> HTMLResponse:
    """The REST upload's reader and limits. From the page's script (one file per request, for
    its progress bar) the answer is that file's row; from a plain form post, the list."""
    out = await receive_upload(c.request, svc_of(c), c.ctx)
    if is_htmx(c.request):
        return render(c, "_uploaded.html", results=out.documents, names=await _collection_names(c))
    said = ", ".join(
        f"{r.document.name} ({'already uploaded' if r.duplicate else r.document.status})"
        for r in out.documents
    )
    return await _list_page(c, message=f"Uploaded {said}.")


async def _live_context(c: Caller, doc: DocumentOut) -> dict[str, Any]:
    """What the live part of a document's page shows (its status and events)."""
    events = await svc_of(c).events(c.ctx, doc.id, page=Page(500, 0))
    people = await c.people([doc.created_by], (e.actor for e in events))
    event_rows = listing(
        list(reversed(events)),
        c.request,
        lambda e: (e.kind, e.actor, people.get(e.actor or ""), *e.data.values()),
        page_param="events",
    )
    return {"doc": doc, "events": event_rows, "people": people}


async def _document_page(
    c: Caller, document_id: str, *, message: str | None = None
) -> HTMLResponse:
    svc = svc_of(c)
    doc = await svc.get(c.ctx, document_id)
    cols = await svc.list_collections(c.ctx, SEARCH_WINDOW)
    dead = (
        [d for d in await svc.dead_letters(c.ctx, page=SEARCH_WINDOW) if d.subject == doc.id]
        if access.is_manager(c.ctx)
        else []
    )
    return _page(
        c,
        "document.html",
        "documents",
        title=doc.name,
        **await _live_context(c, doc),
        names={col.id: col.name for col in cols},
        # collections the caller may add it to (``add_documents``: an editor who manages it)
        addable=[
            col
            for col in cols
            if col.id not in doc.collections and can_upload(c.ctx) and can_manage(c.ctx, col)
        ],
        manageable={col.id for col in cols if can_manage(c.ctx, col)},
        can_delete=can_delete(c.ctx, doc),
        can_reingest=can_upload(c.ctx),
        dead=dead,
        message=message,
        push_url=f"/console/documents/{doc.id}",
    )


@router.get("/documents/search", response_class=HTMLResponse)
async def search_page(c: CallerDep) -> HTMLResponse:
    """The search playground: ``POST /api/search``'s service with the caller's scope."""
    q = c.request.query_params
    query = (q.get("query") or "").strip()
    cols = await svc_of(c).list_collections(c.ctx, SEARCH_WINDOW)
    hits = None
    if query:
        body = parse(
            SearchRequest,
            {
                "query": query,
                "k": _int(q.get("k"), 5),
                "mode": q.get("mode") or "hybrid",
                "collections": [q["collection"]] if q.get("collection") else None,
            },
        )
        hits = (
            await retrieval.search(c.runtime, c.ctx, body, request_id=current_request_id())
        ).hits
    return _page(
        c,
        "documents_search.html",
        "search",
        title="Search",
        query=query,
        k=_int(q.get("k"), 5),
        mode=q.get("mode") or "hybrid",
        collection=q.get("collection") or "",
        collections=cols,
        hits=hits,
    )


@router.get("/documents/audit", response_class=HTMLResponse)
async def audit_page(c: CallerDep) -> HTMLResponse:
    events = await svc_of(c).audit(c.ctx, page=SEARCH_WINDOW)
    people = await c.people(e.actor for e in events)
    rows = listing(
        events, c.request, lambda e: (e.kind, e.actor, people.get(e.actor or ""), *e.data.values())
    )
    return _page(
        c, "documents_audit.html", "audit", title="Documents audit", events=rows, people=people
    )


@router.get("/documents/{document_id}", response_class=HTMLResponse)
async def document_page(document_id: str, c: CallerDep) -> HTMLResponse:
    return await _document_page(c, document_id)


@router.get("/documents/{document_id}/status", response_class=HTMLResponse)
async def document_status(document_id: str, c: CallerDep) -> HTMLResponse:
    """The live part of the page (or, ``compact``, the status badge) alone: polled every
    second until the document is ready or failed."""
    doc = await svc_of(c).get(c.ctx, document_id)
    if c.request.query_params.get("compact"):
        return render(c, "_document_status.html", doc=doc, final=FINAL)
    return render(
        c, "_document_live.html", stages=STAGES, final=FINAL, **await _live_context(c, doc)
    )


@router.post("/documents/{document_id}/reingest", response_class=HTMLResponse)
async def reingest(document_id: str, c: CallerDep) -> HTMLResponse:
    out = await svc_of(c).reingest(c.ctx, document_id)
    return await _document_page(
        c, document_id, message=f"Re-ingesting as generation {out.pending_generation}."
    )


@router.post("/documents/{document_id}/delete", response_class=HTMLResponse)
async def delete_document(document_id: str, c: CallerDep) -> HTMLResponse:
    svc = svc_of(c)
    doc = await svc.get(c.ctx, document_id)
    await svc.delete(c.ctx, document_id)
    return await _list_page(
        c,
        message=f"Deleting {doc.name}: it is gone from lists and search now; a background job "
        "removes its chunks, vectors and file.",
    )


@router.post("/documents/{document_id}/collections", response_class=HTMLResponse)
async def add_to_collection(document_id: str, c: CallerDep) -> HTMLResponse:
    form = await form_data(c.request)
    ref = form.get("collection")
    if not ref:
        raise ValidationFailed("Choose a collection.", details={"field": "collection"})
    await svc_of(c).add_documents(c.ctx, ref, [document_id])
    return await _document_page(c, document_id, message="Added to the collection.")


@router.post("/documents/{document_id}/collections/{ref}/remove", response_class=HTMLResponse)
async def remove_from_collection(document_id: str, ref: str, c: CallerDep) -> HTMLResponse:
    await svc_of(c).remove_document(c.ctx, ref, document_id)
    back = (await form_data(c.request)).get("back")
    if back == "collection":
        return await _collection_page(c, ref, message="Removed the document from the collection.")
    return await _document_page(c, document_id, message="Removed from the collection.")


# --- collections ----------------------------------------------------------------------------


async def _collections_page(
    c: Caller, *, message: str | None = None, status_code: int = 200
) -> HTMLResponse:
    svc = svc_of(c)
    cols = await svc.list_collections(c.ctx, SEARCH_WINDOW)
    people = await c.people(col.owner_id for col in cols)
    rows = listing(
        cols, c.request, lambda col: (col.name, col.description, col.id, people.get(col.owner_id))
    )
    counts = {col.id: await svc.count_documents(c.ctx, collection=col.id) for col in rows.rows}
    health = await svc.ingestion(c.ctx)
    deleting = next(
        (j.queued + j.running for j in health.jobs or [] if j.kind == "documents.delete"), None
    )
    return _page(
        c,
        "collections.html",
        "collections",
        title="Collections",
        cols=rows,
        counts=counts,
        people=people,
        can_create=can_upload(c.ctx),
        deleting=deleting,
        message=message,
        status_code=status_code,
        push_url="/console/collections",
    )


@router.get("/collections", response_class=HTMLResponse)
async def collections_page(c: CallerDep) -> HTMLResponse:
    return await _collections_page(c)


@router.post("/collections", response_class=HTMLResponse)
async def create_collection(c: CallerDep) -> HTMLResponse:
    form = await form_data(c.request)
    body = parse(
        CollectionIn,
        {
            "name": form.get("name", ""),
            "description": form.get("description"),
            "chunkTokens": form.get("chunkTokens") or 400,
            "chunkOverlap": form.get("chunkOverlap") or 50,
        },
    )
    out = await svc_of(c).create_collection(c.ctx, body)
    return await _collection_page(c, out.id, message=f"Created collection {out.name}.")


async def _collection_page(c: Caller, ref: str, *, message: str | None = None) -> HTMLResponse:
    svc = svc_of(c)
    col = await svc.get_collection(c.ctx, ref)
    manage = can_manage(c.ctx, col)
    docs = await _documents(c, collection=col.id)
    grants = await svc.list_grants(c.ctx, col.id, SEARCH_WINDOW)
    audit = await svc.audit(c.ctx, collection=col.id, page=Page(200, 0)) if manage else []
    # the cascade: members in no other live collection are deleted with it
    members = await svc.list_documents(c.ctx, collection=col.id, page=Page(5000, 0))
    going = [d for d in members if d.collections == [col.id]]
    principals = []
    if access.is_manager(c.ctx):  # listing principals is the tenant admins' (as the API)
        async with c.runtime.db.session() as s:
            principals = await tenancy.list_principals(s, c.ctx, SEARCH_WINDOW)
    people = await c.people(
        [col.owner_id], (g.subject for g in grants if g.kind == "user"), (e.actor for e in audit)
    )
    return _page(
        c,
        "collection.html",
        "collections",
        title=col.name,
        col=col,
        docs=docs.listing,
        names={col.id: col.name},
        grants=grants,
        audit=audit,
        manage=manage,
        going=going,
        staying=len(members) - len(going),
        principals=principals,
        people=people,
        roles=[r.value for r in Role],
        live=any(d.status not in FINAL for d in docs.listing.rows),
        message=message,
        push_url=f"/console/collections/{col.id}",
    )


@router.get("/collections/{ref}", response_class=HTMLResponse)
async def collection_page(ref: str, c: CallerDep) -> HTMLResponse:
    return await _collection_page(c, ref)


@router.post("/collections/{ref}/grants", response_class=HTMLResponse)
async def add_grant(ref: str, c: CallerDep) -> HTMLResponse:
    form = await form_data(c.request)
    kind = form.get("kind", "")
    subject = form.get("role") if kind == "role" else form.get("subject")
    body = parse(GrantIn, {"kind": kind, "subject": subject})
    out = await svc_of(c).grant(c.ctx, ref, body)
    who = "the whole tenant" if out.kind == "tenant" else f"{out.kind} {out.subject}"
    return await _collection_page(c, ref, message=f"Granted read to {who}.")


@router.post("/collections/{ref}/grants/{grant_id}/revoke", response_class=HTMLResponse)
async def revoke_grant(ref: str, grant_id: str, c: CallerDep) -> HTMLResponse:
    await svc_of(c).revoke(c.ctx, ref, grant_id)
    return await _collection_page(c, ref, message="Grant revoked.")


@router.post("/collections/{ref}/delete", response_class=HTMLResponse)
async def delete_collection(ref: str, c: CallerDep) -> HTMLResponse:
    svc = svc_of(c)
    col = await svc.get_collection(c.ctx, ref)
    members = await svc.list_documents(c.ctx, collection=col.id, page=Page(5000, 0))
    going = sum(1 for d in members if d.collections == [col.id])
    await svc.delete_collection(c.ctx, ref)
    return await _collections_page(
        c,
        message=f"Deleting collection {col.name}: {going} document{'s' if going != 1 else ''} "
        f"in no other collection go with it, {len(members) - going} stay; a background job "
        "removes them.",
    )


# --- dead letters ---------------------------------------------------------------------------


async def _dead_letters(c: Caller, *, message: str | None = None) -> HTMLResponse:
    svc = svc_of(c)
    stage = c.request.query_params.get("stage") or None
    items = await svc.dead_letters(c.ctx, stage=stage, page=SEARCH_WINDOW)
    rows = listing(
        items,
        c.request,
        lambda d: (d.id, d.kind, d.subject, d.error_code, d.error_message),
        extra={"stage": stage or ""},
    )
    names: dict[str, str] = {}
    for d in rows.rows:
        if d.subject and d.subject.startswith("doc_") and d.subject not in names:
            found = await svc.list_documents(c.ctx, search=d.subject, page=Page(1, 0))
            names[d.subject] = found[0].name if found else ""
    return _page(
        c,
        "documents_dead_letters.html",
        "dead-letters",
        title="Document dead letters",
        items=rows,
        stage=stage or "",
        kinds=[k.split(".", 1)[1] for k in KINDS],
        names=names,
        message=message,
        push_url="/console/document-dead-letters"
        + (f"?{urlencode({'stage': stage})}" if stage else ""),
    )


@router.get("/document-dead-letters", response_class=HTMLResponse)
async def dead_letters_page(c: CallerDep) -> HTMLResponse:
    return await _dead_letters(c)


@router.post("/document-dead-letters/replay", response_class=HTMLResponse)
async def replay_all(c: CallerDep) -> HTMLResponse:
    stage = (await form_data(c.request)).get("stage") or None
    n = await svc_of(c).replay(c.ctx, stage=stage)
    return await _dead_letters(
        c,
        message=f"Replayed {n} dead letter{'s' if n != 1 else ''}"
        + (f" of {stage}." if stage else "."),
    )


@router.post("/document-dead-letters/{job_id}/replay", response_class=HTMLResponse)
async def replay_one(job_id: str, c: CallerDep) -> HTMLResponse:
    await svc_of(c).replay(c.ctx, ids=[job_id])
    back = (await form_data(c.request)).get("back", "")
    if back.startswith("doc_"):  # replayed from the document's page: back there
        return await _document_page(c, back, message=f"Replayed {job_id}: queued again.")
    return await _dead_letters(c, message=f"Replayed {job_id}: queued again.")


@router.post("/document-dead-letters/{job_id}/discard", response_class=HTMLResponse)
async def discard_one(job_id: str, c: CallerDep) -> HTMLResponse:
    await svc_of(c).discard(c.ctx, ids=[job_id])
    return await _dead_letters(c, message=f"Discarded {job_id}.")
