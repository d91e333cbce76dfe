"""Workflows, versions, shares, runs (with server-sent events) and conversations.

Run routes never hold a database session across the run: the engine opens short ones itself
(an SQLite transaction is a write lock).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import structlog
from fastapi import Header, Path, Query, Request, Response, status

from gasworks.api.deps import ContextDep, RuntimeDep
from gasworks.api.paging import PageDep
from gasworks.api.routing import router as guarded_router
from gasworks.api.sse import SSE_HEADERS, EventStreamResponse
from gasworks.bounds import EventSeq, VersionNumber
from gasworks.errors import PayloadTooLarge
from gasworks.inputs import refuse
from gasworks.limits import MAX_INT32
from gasworks.observability.request_id import current_request_id
from gasworks.runtime import Runtime
from gasworks.tenancy.context import TenantContext
from gasworks.workflows import workflow_engine
from gasworks.workflows.catalog import WorkflowCatalog
from gasworks.workflows.definition import parse_document
from gasworks.workflows.engine import Event, WorkflowEngine
from gasworks.workflows.schemas import (
    ConversationOut,
    PublishOut,
    RunIn,
    RunOut,
    ShareIn,
    ShareOut,
    ValidationOut,
    VersionOut,
    WorkflowOut,
)

router = guarded_router(prefix="/api", tags=["workflows"])

MAX_DOCUMENT_BYTES = 1_000_000
#: seconds of silence after which an SSE comment keeps proxies from closing the stream
KEEPALIVE_SECONDS = 15.0


def _catalog(runtime: Runtime) -> WorkflowCatalog:
    return workflow_engine(runtime).catalog


async def _document(request: Request) -> dict[str, Any]:
    """The request body as a workflow document: JSON, or YAML with a YAML content type."""
    body = await request.body()
    if len(body) > MAX_DOCUMENT_BYTES:
        raise PayloadTooLarge(
            "The workflow document is larger than 1 MB.",
            details={"maxBytes": MAX_DOCUMENT_BYTES},
        )
    ctype = request.headers.get("content-type", "")
    return parse_document(body, filename=None if "yaml" in ctype else "doc.json")


#: the body of the routes that read a workflow document themselves (JSON, or YAML)
DOCUMENT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A workflow document (at most 1 MB, nesting at most 64 levels).",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


@router.post(
    "/workflows/validate",
    summary="Validate a workflow document (every problem)",
    openapi_extra=DOCUMENT_BODY,
)
async def validate_workflow(request: Request, ctx: ContextDep) -> ValidationOut:
    return WorkflowCatalog.validate(await _document(request))


@router.post(
    "/workflows",
    status_code=status.HTTP_201_CREATED,
    summary="Publish a workflow version (JSON or YAML body); invalid workflows are refused",
    openapi_extra=DOCUMENT_BODY,
)
async def publish(request: Request, ctx: ContextDep, runtime: RuntimeDep) -> PublishOut:
    return await _catalog(runtime).publish(ctx, await _document(request))


@router.get("/workflows", summary="Workflows the caller may run")
async def list_workflows(ctx: ContextDep, runtime: RuntimeDep, page: PageDep) -> list[WorkflowOut]:
    return await _catalog(runtime).list_workflows(ctx, page)


@router.get("/workflows/{slug}", summary="One workflow")
async def get_workflow(slug: str, ctx: ContextDep, runtime: RuntimeDep) -> WorkflowOut:
    return await _catalog(runtime).get_workflow(ctx, slug)


@router.delete(
    "/workflows/{slug}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a workflow"
)
async def delete_workflow(slug: str, ctx: ContextDep, runtime: RuntimeDep) -> Response:
    await _catalog(runtime).delete_workflow(ctx, slug)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/workflows/{slug}/versions", summary="Published versions, newest first")
async def list_versions(
    slug: str, ctx: ContextDep, runtime: RuntimeDep, page: PageDep
) -> list[VersionOut]:
    return await _catalog(runtime).list_versions(ctx, slug, page)


@router.get("/workflows/{slug}/versions/{version}", summary="One published version")
async def get_version(
    slug: str, version: Annotated[VersionNumber, Path()], ctx: ContextDep, runtime: RuntimeDep
) -> VersionOut:
    return await _catalog(runtime).get_version(ctx, slug, version)


@router.get("/workflows/{slug}/graph", summary="Mermaid flowchart of a version")
async def graph(
    slug: str,
    ctx: ContextDep,
    runtime: RuntimeDep,
    version: Annotated[VersionNumber | None, Query()] = None,
) -> dict[str, Any]:
    return await _catalog(runtime).graph(ctx, slug, version)


@router.get("/workflows/{slug}/shares", summary="Who the workflow is shared with")
async def list_shares(
    slug: str, ctx: ContextDep, runtime: RuntimeDep, page: PageDep
) -> list[ShareOut]:
    return await _catalog(runtime).list_shares(ctx, slug, page)


@router.post(
    "/workflows/{slug}/shares",
    status_code=status.HTTP_201_CREATED,
    summary="Share with a user, a role or the whole tenant",
)
async def share(slug: str, body: ShareIn, ctx: ContextDep, runtime: RuntimeDep) -> ShareOut:
    return await _catalog(runtime).share(ctx, slug, body)


@router.delete(
    "/workflows/{slug}/shares/{share_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a share",
)
async def unshare(slug: str, share_id: str, ctx: ContextDep, runtime: RuntimeDep) -> Response:
    await _catalog(runtime).unshare(ctx, slug, share_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/workflows/{slug}/runs",
    summary="Run the workflow (the latest version unless `version`); `stream: true` answers "
    "with server-sent events",
    response_model=RunOut,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def run_workflow(slug: str, body: RunIn, ctx: ContextDep, runtime: RuntimeDep) -> Any:
    structlog.contextvars.bind_contextvars(workflowId=slug)
    eng = workflow_engine(runtime)
    request_id = current_request_id()
    if not body.stream:
        return await eng.run(ctx, slug, body, request_id=request_id)
    live = await eng.start(ctx, slug, body, request_id=request_id)
    return _sse(eng, ctx, live.run_id, 0)


@router.get("/workflows/{slug}/runs", summary="Recent runs of a workflow")
async def list_runs(slug: str, ctx: ContextDep, runtime: RuntimeDep, page: PageDep) -> list[RunOut]:
    return await workflow_engine(runtime).list_runs(ctx, slug, page)


@router.get("/workflow-runs/{run_id}", summary="One run: status, timings, tokens, cost, errors")
async def get_run(run_id: str, ctx: ContextDep, runtime: RuntimeDep) -> RunOut:
    return await workflow_engine(runtime).get_run(ctx, run_id)


@router.get(
    "/workflow-runs/{run_id}/events",
    summary="The run's events as server-sent events; resumes after `Last-Event-ID`",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def run_events(
    run_id: str,
    ctx: ContextDep,
    runtime: RuntimeDep,
    last_event_id: Annotated[
        str | None,
        Header(pattern=r"^ *[0-9]{0,9} *$", description="The id of the last event received."),
    ] = None,
    after: Annotated[EventSeq | None, Query()] = None,
) -> EventStreamResponse:
    start = after if after is not None else _last_id(last_event_id)
    eng = workflow_engine(runtime)
    first, rest = await eng.open_events(ctx, run_id, start, keepalive=KEEPALIVE_SECONDS)
    return _sse(eng, ctx, run_id, start, first=first, rest=rest)


@router.post("/workflow-runs/{run_id}/cancel", summary="Cancel a running run")
async def cancel_run(run_id: str, ctx: ContextDep, runtime: RuntimeDep) -> RunOut:
    return await workflow_engine(runtime).cancel(ctx, run_id)


@router.get("/workflows/{slug}/conversations", summary="Recent conversations of a workflow")
async def list_conversations(
    slug: str, ctx: ContextDep, runtime: RuntimeDep, page: PageDep
) -> list[ConversationOut]:
    return await workflow_engine(runtime).list_conversations(ctx, slug, page)


@router.get(
    "/conversations/{conversation_id}",
    summary="A conversation with a page of its messages (oldest first)",
)
async def get_conversation(
    conversation_id: str, ctx: ContextDep, runtime: RuntimeDep, page: PageDep
) -> ConversationOut:
    return await workflow_engine(runtime).get_conversation(ctx, conversation_id, page)


# --- server-sent events -----------------------------------------------------------------------


def _last_id(raw: str | None) -> int:
    if raw is None or not raw.strip():
        return 0
    value = raw.strip()
    if not value.isdigit() or len(value) > 10 or int(value) > MAX_INT32:
        raise refuse(
            "header.Last-Event-ID", "must be an event id of this run (0 to 2147483647)", "int"
        )
    return int(value)


def format_event(ev: Event) -> str:
    seq, type_, data = ev
    if seq == 0:
        return ": keepalive\n\n"
    return f"id: {seq}\nevent: {type_}\ndata: {json.dumps(data, default=str)}\n\n"


def _sse(
    eng: WorkflowEngine,
    ctx: TenantContext,
    run_id: str,
    after: int,
    *,
    first: Event | None = None,
    rest: AsyncIterator[Event] | None = None,
) -> EventStreamResponse:
    async def body() -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        if rest is None:
            async for ev in eng.events(ctx, run_id, after, keepalive=KEEPALIVE_SECONDS):
                yield format_event(ev)
            return
        if first is not None:
            yield format_event(first)
        async for ev in rest:
            yield format_event(ev)

    return EventStreamResponse(body(), headers={**SSE_HEADERS, "X-Run-Id": run_id})
