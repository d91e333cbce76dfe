"""Prompts: versions, pointers (compare-and-set), history, dead letters, audit, resolution."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Query, Response, status

from gasworks.api.deps import ContextDep, RuntimeDep
from gasworks.api.errors import envelope
from gasworks.api.paging import PageDep
from gasworks.api.routing import router as guarded_router
from gasworks.api.sse import SSE_HEADERS, EventStreamResponse
from gasworks.bounds import Days
from gasworks.errors import GasworksError, InternalError
from gasworks.llm.gateway import aclose_stream
from gasworks.modeltypes import StreamChunk
from gasworks.observability.logging import get_logger
from gasworks.prompts.schemas import (
    AuditEntry,
    CanaryDecision,
    CanaryRequest,
    DeadLetterOut,
    HistoryEntry,
    MoveRequest,
    PointerOut,
    PromptChatOut,
    PromptChatRequest,
    ReplayRequest,
    ResolvedOut,
    ResolveRequest,
    RetentionReport,
    RollbackRequest,
    ScopeIn,
    VersionCreate,
    VersionDiff,
    VersionOut,
    VersionSummary,
)
from gasworks.prompts.service import ReplayOut, prompt_service

router = guarded_router(prefix="/api/prompts", tags=["prompts"])
log = get_logger("gasworks.api.prompts")


def _scope(
    model: Annotated[str, Query(min_length=1, max_length=200)],
    workflow_id: Annotated[
        str | None, Query(alias="workflowId", min_length=1, max_length=200)
    ] = None,
    tenant_scoped: Annotated[bool, Query(alias="tenantScoped")] = True,
) -> ScopeIn:
    return ScopeIn(model=model, workflow_id=workflow_id, tenant_scoped=tenant_scoped)


@router.post(
    "/versions",
    status_code=status.HTTP_201_CREATED,
    summary="Save a prompt version (identical content returns the existing version, 200)",
)
async def create_version(
    body: VersionCreate, ctx: ContextDep, rt: RuntimeDep, response: Response
) -> VersionOut:
    out = await prompt_service(rt).create_version(ctx, body)
    if not out.created:
        response.status_code = status.HTTP_200_OK
    return out


@router.get("/versions", summary="List versions (newest first per prompt name)")
async def list_versions(
    ctx: ContextDep,
    rt: RuntimeDep,
    page: PageDep,
    name: str | None = None,
    include_archived: Annotated[bool, Query(alias="includeArchived")] = False,
) -> list[VersionSummary]:
    return await prompt_service(rt).list_versions(
        ctx, name=name, include_archived=include_archived, page=page
    )


@router.get("/versions/{version_id}", summary="One version with its (hash-verified) content")
async def get_version(version_id: str, ctx: ContextDep, rt: RuntimeDep) -> VersionOut:
    return await prompt_service(rt).get_version(ctx, version_id)


@router.post("/versions/{version_id}/archive", summary="Archive a version")
async def archive_version(version_id: str, ctx: ContextDep, rt: RuntimeDep) -> VersionSummary:
    return await prompt_service(rt).archive_version(ctx, version_id)


@router.get("/diff", summary="Unified diff between two versions")
async def diff(
    ctx: ContextDep,
    rt: RuntimeDep,
    from_id: Annotated[str, Query(alias="from")],
    to_id: Annotated[str, Query(alias="to")],
) -> VersionDiff:
    return await prompt_service(rt).diff(ctx, from_id, to_id)


@router.get(
    "/pointers",
    summary="The tenant's pointers and the platform-wide ones (by model, then workflow)",
)
async def list_pointers(ctx: ContextDep, rt: RuntimeDep, page: PageDep) -> list[PointerOut]:
    return await prompt_service(rt).list_pointers(ctx, page)


@router.get("/pointer", summary="The pointer of one scope")
async def get_pointer(
    ctx: ContextDep,
    rt: RuntimeDep,
    model: Annotated[str, Query(min_length=1, max_length=200)],
    workflow_id: Annotated[
        str | None, Query(alias="workflowId", min_length=1, max_length=200)
    ] = None,
    tenant_scoped: Annotated[bool, Query(alias="tenantScoped")] = True,
) -> PointerOut:
    return await prompt_service(rt).get_pointer(ctx, _scope(model, workflow_id, tenant_scoped))


@router.get("/pointer/history", summary="Every move of one pointer, newest first")
async def history(
    ctx: ContextDep,
    rt: RuntimeDep,
    page: PageDep,
    model: Annotated[str, Query(min_length=1, max_length=200)],
    workflow_id: Annotated[
        str | None, Query(alias="workflowId", min_length=1, max_length=200)
    ] = None,
    tenant_scoped: Annotated[bool, Query(alias="tenantScoped")] = True,
) -> list[HistoryEntry]:
    scope = _scope(model, workflow_id, tenant_scoped)
    return await prompt_service(rt).history(ctx, scope, page)


@router.post(
    "/pointer/move",
    summary="Move a pointer (compare-and-set on expectedVersion; 409 PROMPT_POINTER_CONFLICT)",
)
async def move(body: MoveRequest, ctx: ContextDep, rt: RuntimeDep) -> PointerOut:
    return await prompt_service(rt).move(ctx, body)


@router.post("/pointer/rollback", summary="Move a pointer back to its previous version (CAS)")
async def rollback(body: RollbackRequest, ctx: ContextDep, rt: RuntimeDep) -> PointerOut:
    return await prompt_service(rt).rollback(ctx, body)


@router.post("/pointer/canary", summary="Send a percentage of conversations to a candidate")
async def canary(body: CanaryRequest, ctx: ContextDep, rt: RuntimeDep) -> PointerOut:
    return await prompt_service(rt).start_canary(ctx, body)


@router.post("/pointer/canary/promote", summary="Make the canary the active version (CAS)")
async def promote(body: CanaryDecision, ctx: ContextDep, rt: RuntimeDep) -> PointerOut:
    return await prompt_service(rt).decide_canary(ctx, body, promote=True)


@router.post("/pointer/canary/abort", summary="Stop the canary (CAS)")
async def abort(body: CanaryDecision, ctx: ContextDep, rt: RuntimeDep) -> PointerOut:
    return await prompt_service(rt).decide_canary(ctx, body, promote=False)


@router.get(
    "/dead-letters", summary="Failed pointer changes, with request and reason, newest first"
)
async def dead_letters(
    ctx: ContextDep,
    rt: RuntimeDep,
    page: PageDep,
    status_: Annotated[str | None, Query(alias="status")] = None,
) -> list[DeadLetterOut]:
    return await prompt_service(rt).dead_letters(ctx, status_, page)


@router.post("/dead-letters/{dl_id}/replay", summary="Re-run a failed pointer change")
async def replay(
    dl_id: str, ctx: ContextDep, rt: RuntimeDep, body: ReplayRequest | None = None
) -> ReplayOut:
    return await prompt_service(rt).replay(ctx, dl_id, rebase=bool(body and body.rebase))


@router.post("/resolve", summary="Resolve and render the prompt of a scope (never fails)")
async def resolve(body: ResolveRequest, ctx: ContextDep, rt: RuntimeDep) -> ResolvedOut:
    return await prompt_service(rt).resolve(ctx, body)


@router.post(
    "/chat",
    summary="Call a model with the resolved prompt of a scope (through the gateway)",
)
async def chat(body: PromptChatRequest, ctx: ContextDep, rt: RuntimeDep) -> PromptChatOut:
    return await prompt_service(rt).chat(rt, ctx, body)


@router.post(
    "/chat/stream",
    summary="The same call, streamed as server-sent events: `prompt`, `delta`..., `done`",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat_stream(
    body: PromptChatRequest, ctx: ContextDep, rt: RuntimeDep
) -> EventStreamResponse:
    """Events: `prompt` (which prompt answers, as in `/chat`), one `delta` per piece of text
    (`{"text": ...}`), then `done` (model, finish reason, usage, cost) — or `error` (the error
    envelope) if the call fails after the stream began. A failure before the first piece (an
    unknown model, a budget refusal, an open breaker) is an ordinary HTTP error."""
    used, chunks = await prompt_service(rt).chat_stream(rt, ctx, body)
    it = chunks.__aiter__()
    first = await anext(it, None)  # failures before any output get a real HTTP status
    return EventStreamResponse(
        _chat_events(used.model_dump(mode="json", by_alias=True), first, it),
        headers=SSE_HEADERS,
    )


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n"


def _done(c: StreamChunk) -> dict[str, Any]:
    u = c.usage
    return {
        "model": c.model,
        "demo": c.demo,
        "finishReason": c.finish_reason.value if c.finish_reason else None,
        "inputTokens": u.input_tokens if u else 0,
        "outputTokens": u.output_tokens if u else 0,
        "cachedInputTokens": u.cached_input_tokens if u else 0,
        "estimated": u.estimated if u else True,
        "cost": str(c.cost) if c.cost is not None else None,
        "notes": c.notes or {},
    }


async def _chat_events(
    used: dict[str, Any], first: StreamChunk | None, rest: AsyncIterator[StreamChunk]
) -> AsyncIterator[str]:
    yield _event("prompt", used)
    try:
        chunk: StreamChunk | None = first
        while chunk is not None:
            if chunk.delta:
                yield _event("delta", {"text": chunk.delta})
            if chunk.finish_reason is not None:
                yield _event("done", _done(chunk))
            chunk = await anext(rest, None)
    except GasworksError as exc:
        yield _event("error", envelope(exc.code, exc.message, exc.details))
    except Exception:
        log.exception("prompts.stream_crashed")
        crash = InternalError("The stream failed; the error has been logged.")
        yield _event("error", envelope(crash.code, crash.message, crash.details))
    finally:
        await aclose_stream(rest)


@router.get("/audit", summary="Audit log of prompt changes, newest first")
async def audit(
    ctx: ContextDep,
    rt: RuntimeDep,
    page: PageDep,
    object_id: Annotated[str | None, Query(alias="objectId")] = None,
) -> list[AuditEntry]:
    return await prompt_service(rt).audit(ctx, object_id, page)


@router.post("/retention/run", summary="Delete archived versions past retention (platform admin)")
async def retention(
    ctx: ContextDep,
    rt: RuntimeDep,
    days: Annotated[Days | None, Query()] = None,
    dry_run: Annotated[bool, Query(alias="dryRun")] = False,
) -> RetentionReport:
    return await prompt_service(rt).retention(ctx, days=days, dry_run=dry_run)
