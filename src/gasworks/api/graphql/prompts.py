"""GraphQL types and resolvers for prompts (same service and errors as REST)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, TypeVar

import strawberry
from pydantic import BaseModel
from strawberry.scalars import JSON

from gasworks.api.graphql.context import GqlContext
from gasworks.api.graphql.paging import DEFAULT_LIMIT, Limit, Offset, checked_page
from gasworks.prompts.content import PromptContent
from gasworks.prompts.schemas import (
    CanaryDecision,
    CanaryRequest,
    MoveRequest,
    ResolveRequest,
    RollbackRequest,
    ScopeIn,
    VersionCreate,
)
from gasworks.prompts.service import PromptService, prompt_service

Info = strawberry.Info[GqlContext, None]
T = TypeVar("T")


def _svc(info: Info) -> PromptService:
    return prompt_service(info.context.runtime)


def _of(cls: type[T], model: BaseModel, **extra: Any) -> T:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    data = {k: v for k, v in model.model_dump(mode="python").items() if k in names}
    return cls(**(data | extra))


@strawberry.type(name="PromptVersion")
class PromptVersionType:
    id: str
    name: str
    number: int
    content_hash: str
    size_bytes: int
    storage: str
    author: str
    message: str
    created_at: datetime
    archived_at: datetime | None
    content: JSON | None = None
    created: bool = False


@strawberry.type(name="PromptPointer")
class PromptPointerType:
    id: str
    scope_tenant: str | None
    workflow_id: str | None
    model: str
    level: str
    active_version_id: str
    previous_version_id: str | None
    canary_version_id: str | None
    canary_percent: int
    version: int
    updated_at: datetime
    updated_by: str


@strawberry.type(name="PromptHistoryEntry")
class PromptHistoryType:
    seq: int
    action: str
    from_version_id: str | None
    to_version_id: str | None
    canary_version_id: str | None
    canary_percent: int
    actor: str
    reason: str
    at: datetime


@strawberry.type(name="PromptDeadLetter")
class PromptDeadLetterType:
    id: str
    operation: str
    request: JSON
    actor: str
    reason_code: str
    error: str
    status: str
    attempts: int
    created_at: datetime
    last_attempt_at: datetime
    result: JSON | None


@strawberry.type(name="PromptDiff")
class PromptDiffType:
    from_version_id: str
    to_version_id: str
    identical: bool
    diff: str


@strawberry.type(name="PromptMessage")
class PromptMessageType:
    role: str
    content: str


@strawberry.type(name="PromptResolution")
class PromptResolutionType:
    level: str
    source: str
    model: str
    version_id: str | None
    version_number: int | None
    name: str | None
    content_hash: str
    pointer_version: int | None
    canary: bool
    stale: bool
    content: JSON
    messages: list[PromptMessageType]
    missing: list[str]
    parameters: JSON


def _scope(model: str, workflow_id: str | None, tenant_scoped: bool) -> ScopeIn:
    return ScopeIn(model=model, workflow_id=workflow_id, tenant_scoped=tenant_scoped)


@strawberry.type
class PromptsQuery:
    @strawberry.field
    async def prompt_versions(
        self,
        info: Info,
        name: str | None = None,
        include_archived: bool = False,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> list[PromptVersionType]:
        """Versions by name, newest first per name."""
        page = checked_page(limit, offset)
        items = await _svc(info).list_versions(
            info.context.ctx, name=name, include_archived=include_archived, page=page
        )
        return [_of(PromptVersionType, v) for v in items]

    @strawberry.field
    async def prompt_version(self, info: Info, id: str) -> PromptVersionType:
        v = await _svc(info).get_version(info.context.ctx, id)
        return _of(PromptVersionType, v, content=v.content.canonical_dict())

    @strawberry.field
    async def prompt_diff(self, info: Info, from_id: str, to_id: str) -> PromptDiffType:
        return _of(PromptDiffType, await _svc(info).diff(info.context.ctx, from_id, to_id))

    @strawberry.field
    async def prompt_pointers(
        self, info: Info, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> list[PromptPointerType]:
        """The tenant's and the platform-wide pointers, by model."""
        items = await _svc(info).list_pointers(info.context.ctx, checked_page(limit, offset))
        return [_of(PromptPointerType, p) for p in items]

    @strawberry.field
    async def prompt_pointer(
        self, info: Info, model: str, workflow_id: str | None = None, tenant_scoped: bool = True
    ) -> PromptPointerType:
        p = await _svc(info).get_pointer(
            info.context.ctx, _scope(model, workflow_id, tenant_scoped)
        )
        return _of(PromptPointerType, p)

    @strawberry.field
    async def prompt_pointer_history(
        self,
        info: Info,
        model: str,
        workflow_id: str | None = None,
        tenant_scoped: bool = True,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> list[PromptHistoryType]:
        """Every move of one pointer, newest first."""
        page = checked_page(limit, offset)
        items = await _svc(info).history(
            info.context.ctx, _scope(model, workflow_id, tenant_scoped), page
        )
        return [_of(PromptHistoryType, h) for h in items]

    @strawberry.field
    async def prompt_dead_letters(
        self,
        info: Info,
        status: str | None = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> list[PromptDeadLetterType]:
        """Failed pointer changes, newest first."""
        page = checked_page(limit, offset)
        items = await _svc(info).dead_letters(info.context.ctx, status, page)
        return [_of(PromptDeadLetterType, d) for d in items]

    @strawberry.field
    async def resolve_prompt(
        self,
        info: Info,
        model: str | None = None,
        workflow_id: str | None = None,
        conversation_id: str | None = None,
        variables: JSON | None = None,
        strict: bool = False,
    ) -> PromptResolutionType:
        req = ResolveRequest(
            model=model,
            workflow_id=workflow_id,
            conversation_id=conversation_id,
            variables=variables if isinstance(variables, dict) else {},
            strict=strict,
        )
        r = await _svc(info).resolve(info.context.ctx, req)
        return _of(
            PromptResolutionType,
            r,
            content=r.content.canonical_dict(),
            messages=[PromptMessageType(role=m.role, content=m.content) for m in r.messages],
        )


@strawberry.type
class PromptsMutation:
    @strawberry.mutation
    async def create_prompt_version(
        self, info: Info, name: str, content: JSON, message: str = ""
    ) -> PromptVersionType:
        data = VersionCreate(
            name=name, content=PromptContent.model_validate(content), message=message
        )
        v = await _svc(info).create_version(info.context.ctx, data)
        return _of(PromptVersionType, v, content=v.content.canonical_dict())

    @strawberry.mutation
    async def archive_prompt_version(self, info: Info, id: str) -> PromptVersionType:
        return _of(PromptVersionType, await _svc(info).archive_version(info.context.ctx, id))

    @strawberry.mutation
    async def move_prompt_pointer(
        self,
        info: Info,
        model: str,
        version_id: str,
        expected_version: int,
        workflow_id: str | None = None,
        tenant_scoped: bool = True,
        reason: str = "",
    ) -> PromptPointerType:
        req = MoveRequest(
            scope=_scope(model, workflow_id, tenant_scoped),
            version_id=version_id,
            expected_version=expected_version,
            reason=reason,
        )
        return _of(PromptPointerType, await _svc(info).move(info.context.ctx, req))

    @strawberry.mutation
    async def rollback_prompt_pointer(
        self,
        info: Info,
        model: str,
        expected_version: int,
        workflow_id: str | None = None,
        tenant_scoped: bool = True,
        reason: str = "",
    ) -> PromptPointerType:
        req = RollbackRequest(
            scope=_scope(model, workflow_id, tenant_scoped),
            expected_version=expected_version,
            reason=reason,
        )
        return _of(PromptPointerType, await _svc(info).rollback(info.context.ctx, req))

    @strawberry.mutation
    async def start_prompt_canary(
        self,
        info: Info,
        model: str,
        version_id: str,
        percent: int,
        expected_version: int,
        workflow_id: str | None = None,
        tenant_scoped: bool = True,
        reason: str = "",
    ) -> PromptPointerType:
        req = CanaryRequest(
            scope=_scope(model, workflow_id, tenant_scoped),
            version_id=version_id,
            percent=percent,
            expected_version=expected_version,
            reason=reason,
        )
        return _of(PromptPointerType, await _svc(info).start_canary(info.context.ctx, req))

    @strawberry.mutation
    async def decide_prompt_canary(
        self,
        info: Info,
        model: str,
        promote: bool,
        expected_version: int,
        workflow_id: str | None = None,
        tenant_scoped: bool = True,
        reason: str = "",
    ) -> PromptPointerType:
        req = CanaryDecision(
            scope=_scope(model, workflow_id, tenant_scoped),
            expected_version=expected_version,
            reason=reason,
        )
        p = await _svc(info).decide_canary(info.context.ctx, req, promote=promote)
        return _of(PromptPointerType, p)

    @strawberry.mutation
    async def replay_prompt_dead_letter(
        self, info: Info, id: str, rebase: bool = False
    ) -> PromptPointerType:
        out = await _svc(info).replay(info.context.ctx, id, rebase=rebase)
        return _of(PromptPointerType, out.pointer)
