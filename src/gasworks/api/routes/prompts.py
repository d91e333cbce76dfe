"""Prompts: versions, pointers (compare-and-set), history, dead letters, audit, resolution."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from gasworks.api.deps import ContextDep, RuntimeDep
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

router = APIRouter(prefix="/api/prompts", tags=["prompts"])


def _scope(
    model: Annotated[str, Query(min_length=1, max_length=200)],
    workflow_id: Annotated[str | None, Query(alias="workflowId", max_length=200)] = None,
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
    name: str | None = None,
    include_archived: Annotated[bool, Query(alias="includeArchived")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[VersionSummary]:
    return await prompt_service(rt).list_versions(
        ctx, name=name, include_archived=include_archived, limit=limit, offset=offset
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


@router.get("/pointers", summary="The tenant's pointers and the platform-wide ones")
async def list_pointers(ctx: ContextDep, rt: RuntimeDep) -> list[PointerOut]:
    return await prompt_service(rt).list_pointers(ctx)


@router.get("/pointer", summary="The pointer of one scope")
async def get_pointer(
    ctx: ContextDep,
    rt: RuntimeDep,
    model: Annotated[str, Query(min_length=1, max_length=200)],
    workflow_id: Annotated[str | None, Query(alias="workflowId", max_length=200)] = None,
    tenant_scoped: Annotated[bool, Query(alias="tenantScoped")] = True,
) -> PointerOut:
    return await prompt_service(rt).get_pointer(ctx, _scope(model, workflow_id, tenant_scoped))


@router.get("/pointer/history", summary="Every move of one pointer, newest first")
async def history(
    ctx: ContextDep,
    rt: RuntimeDep,
    model: Annotated[str, Query(min_length=1, max_length=200)],
    workflow_id: Annotated[str | None, Query(alias="workflowId", max_length=200)] = None,
    tenant_scoped: Annotated[bool, Query(alias="tenantScoped")] = True,
) -> list[HistoryEntry]:
    return await prompt_service(rt).history(ctx, _scope(model, workflow_id, tenant_scoped))


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


@router.get("/dead-letters", summary="Failed pointer changes, with request and reason")
async def dead_letters(
    ctx: ContextDep, rt: RuntimeDep, status_: Annotated[str | None, Query(alias="status")] = None
) -> list[DeadLetterOut]:
    return await prompt_service(rt).dead_letters(ctx, status_)


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


@router.get("/audit", summary="Audit log of prompt changes")
async def audit(
    ctx: ContextDep,
    rt: RuntimeDep,
    object_id: Annotated[str | None, Query(alias="objectId")] = None,
) -> list[AuditEntry]:
    return await prompt_service(rt).audit(ctx, object_id)


@router.post("/retention/run", summary="Delete archived versions past retention (platform admin)")
async def retention(
    ctx: ContextDep,
    rt: RuntimeDep,
    days: Annotated[int | None, Query(ge=0)] = None,
    dry_run: Annotated[bool, Query(alias="dryRun")] = False,
) -> RetentionReport:
    return await prompt_service(rt).retention(ctx, days=days, dry_run=dry_run)
