"""The prompts service of one runtime: sessions, dead letters and cache invalidation around the
service functions, and the resolver. API, GraphQL and CLI all call this."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from gasworks.background import PeriodicTask
from gasworks.blobs.factory import blob_store
from gasworks.db.engine import Database
from gasworks.db.paging import ALL, Page
from gasworks.errors import (
    BlobStoreUnavailable,
    Conflict,
    DatabaseUnavailable,
    GasworksError,
    PromptPointerConflict,
    PromptPointerNotFound,
    ValidationFailed,
)
from gasworks.llm.runtime import SERVICE as MODELS
from gasworks.modeltypes import CallScope, Message, StreamChunk
from gasworks.observability.logging import get_logger
from gasworks.prompts import deadletters, pointers, versions
from gasworks.prompts.audit import list_audit
from gasworks.prompts.chat import PreparedCall, prepare_call
from gasworks.prompts.models import Normalizer, model_id_normalizer
from gasworks.prompts.resolver import ResolvedPrompt, Resolver
from gasworks.prompts.retention import run_retention
from gasworks.prompts.schemas import (
    AuditEntry,
    CanaryDecision,
    CanaryRequest,
    DeadLetterOut,
    HistoryEntry,
    MessageOut,
    MoveRequest,
    PointerOut,
    PromptChatOut,
    PromptChatRequest,
    PromptUsed,
    ResolvedOut,
    ResolveRequest,
    RetentionReport,
    RollbackRequest,
    Schema,
    ScopeIn,
    VersionCreate,
    VersionDiff,
    VersionOut,
    VersionSummary,
)
from gasworks.prompts.versions import ContentStore
from gasworks.runtime import Runtime, is_leader
from gasworks.tenancy.context import Role, TenantContext

T = TypeVar("T")

SERVICE = "prompts"

#: failures of a pointer change that are written to the dead-letter table
#: failures worth replaying: a valid request that lost a race or met a store outage. A
#: missing version or pointer (another tenant's id looks the same), no previous version, a
#: refused role or an invalid request is answered and not recorded: replaying it cannot
#: succeed, and recording it let any caller write rows without bound.
DEAD_LETTERED = (
    PromptPointerConflict,
    DatabaseUnavailable,
    BlobStoreUnavailable,
)

Op = Callable[..., Awaitable[PointerOut]]  # (session, ctx, request, *, normalize)


async def _promote(
    s: AsyncSession, ctx: TenantContext, r: CanaryDecision, *, normalize: Normalizer
) -> PointerOut:
    return await pointers.decide_canary(s, ctx, r, promote=True, normalize=normalize)


async def _abort(
    s: AsyncSession, ctx: TenantContext, r: CanaryDecision, *, normalize: Normalizer
) -> PointerOut:
    return await pointers.decide_canary(s, ctx, r, promote=False, normalize=normalize)


OPERATIONS: dict[str, tuple[type[BaseModel], Op]] = {
    "move": (MoveRequest, pointers.move_pointer),
    "rollback": (RollbackRequest, pointers.rollback_pointer),
    "canary_start": (CanaryRequest, pointers.start_canary),
    "canary_promote": (CanaryDecision, _promote),
    "canary_abort": (CanaryDecision, _abort),
}


class ReplayOut(Schema):
    dead_letter: DeadLetterOut
    pointer: PointerOut


class PromptService:
    def __init__(self, runtime: Runtime) -> None:
        s = runtime.settings
        self.db: Database = runtime.db
        self.settings = s
        self.store = ContentStore(blob_store(runtime), s.prompt_inline_max_bytes)
        models = runtime.services.get(MODELS)  # the registry's canonical ids key the scopes
        self.normalize = model_id_normalizer(models.registry if models is not None else None)
        self.resolver = Resolver(
            runtime.db,
            self.store,
            default_model=s.default_model,
            cache_size=s.prompt_cache_size,
            ttl=s.prompt_cache_ttl_seconds,
            poll_seconds=s.prompt_invalidation_poll_seconds,
            idle_poll_seconds=s.prompt_invalidation_idle_poll_seconds,
            normalize=self.normalize,
        )
        #: the periodic retention job (processes running background work; leader only)
        self.retention_task: PeriodicTask | None = None

    async def _tx(self, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with self.db.session() as s:
            return await fn(s)

    # -- versions ---------------------------------------------------------------------------

    async def create_version(self, ctx: TenantContext, data: VersionCreate) -> VersionOut:
        return await self._tx(lambda s: versions.create_version(s, ctx, self.store, data))

    async def get_version(self, ctx: TenantContext, version_id: str) -> VersionOut:
        return await self._tx(lambda s: versions.get_version(s, ctx, self.store, version_id))

    async def list_versions(
        self,
        ctx: TenantContext,
        *,
        name: str | None = None,
        include_archived: bool = False,
        page: Page = ALL,
    ) -> list[VersionSummary]:
        return await self._tx(
            lambda s: versions.list_versions(
                s, ctx, name=name, include_archived=include_archived, page=page
            )
        )

    async def archive_version(self, ctx: TenantContext, version_id: str) -> VersionSummary:
        return await self._tx(lambda s: versions.archive_version(s, ctx, version_id))

    async def diff(self, ctx: TenantContext, a: str, b: str) -> VersionDiff:
        return await self._tx(lambda s: versions.diff_versions(s, ctx, self.store, a, b))

    # -- pointers ---------------------------------------------------------------------------

    async def get_pointer(self, ctx: TenantContext, scope: ScopeIn) -> PointerOut:
        return await self._tx(
            lambda s: pointers.get_pointer(s, ctx, scope, normalize=self.normalize)
        )

    async def list_pointers(self, ctx: TenantContext, page: Page = ALL) -> list[PointerOut]:
        return await self._tx(lambda s: pointers.list_pointers(s, ctx, page))

    async def history(
        self, ctx: TenantContext, scope: ScopeIn, page: Page = ALL
    ) -> list[HistoryEntry]:
        return await self._tx(
            lambda s: pointers.pointer_history(s, ctx, scope, page, normalize=self.normalize)
        )

    async def audit(
        self, ctx: TenantContext, object_id: str | None = None, page: Page = ALL
    ) -> list[AuditEntry]:
        return await self._tx(lambda s: list_audit(s, ctx, object_id=object_id, page=page))

    async def apply(
        self, ctx: TenantContext, operation: str, request: BaseModel, *, dead_letter: bool = True
    ) -> PointerOut:
        """Run one pointer change; a failure is dead-lettered (with its request) and re-raised."""
        _model, op = OPERATIONS[operation]
        try:
            out, own = await self._tx(lambda s: self._apply_in(s, op, ctx, request))
        except DEAD_LETTERED as exc:
            if dead_letter:
                await self._dead_letter(ctx, operation, request, exc.code, exc.message, exc)
            raise
        except (SQLAlchemyError, OSError) as exc:
            err = DatabaseUnavailable(
                "The prompt store failed during the change; it was not applied.",
                details={"error": type(exc).__name__},
            )
            if dead_letter:
                await self._dead_letter(ctx, operation, request, "STORE_ERROR", err.message, err)
            raise err from exc
        scope = getattr(request, "scope", None)
        if isinstance(scope, ScopeIn):
            self.resolver.invalidate(pointers.scope_of(ctx, scope, self.normalize), own_notices=own)
        return out

    async def _apply_in(
        self, s: AsyncSession, op: Op, ctx: TenantContext, request: BaseModel
    ) -> tuple[PointerOut, list[int]]:
        """The change, and the seqs of the invalidation notices it wrote (flushed here, so
        they are known before commit): this process invalidates its own cache after commit
        and its poller skips them, instead of dropping the fresh entries a second time."""
        out = await op(s, ctx, request, normalize=self.normalize)
        notices = s.info.pop(pointers.OWN_NOTICES, [])
        if notices:
            await s.flush()
        return out, [int(n.seq) for n in notices]

    async def _dead_letter(
        self,
        ctx: TenantContext,
        operation: str,
        request: BaseModel,
        code: str,
        message: str,
        exc: GasworksError,
    ) -> None:
        dl_id = await deadletters.record(
            self.db, ctx, operation, request.model_dump(mode="json", by_alias=True), code, message
        )
        if dl_id is not None:
            exc.details["deadLetterId"] = dl_id

    async def move(self, ctx: TenantContext, req: MoveRequest) -> PointerOut:
        return await self.apply(ctx, "move", req)

    async def rollback(self, ctx: TenantContext, req: RollbackRequest) -> PointerOut:
        return await self.apply(ctx, "rollback", req)

    async def start_canary(self, ctx: TenantContext, req: CanaryRequest) -> PointerOut:
        return await self.apply(ctx, "canary_start", req)

    async def decide_canary(
        self, ctx: TenantContext, req: CanaryDecision, *, promote: bool
    ) -> PointerOut:
        return await self.apply(ctx, "canary_promote" if promote else "canary_abort", req)

    # -- dead letters -----------------------------------------------------------------------

    async def dead_letters(
        self, ctx: TenantContext, status: str | None = None, page: Page = ALL
    ) -> list[DeadLetterOut]:
        return await self._tx(
            lambda s: deadletters.list_dead_letters(s, ctx, status=status, page=page)
        )

    async def replay(self, ctx: TenantContext, dl_id: str, *, rebase: bool = False) -> ReplayOut:
        ctx.require(Role.EDITOR)
        dl = await self._tx(lambda s: deadletters.get_dead_letter(s, ctx, dl_id))
        if dl.status == "replayed":
            raise Conflict("This dead letter was already replayed.", details={"id": dl_id})
        model, _op = OPERATIONS[dl.operation]
        request: Any = model.model_validate(dl.request)
        if rebase:
            try:
                current = await self.get_pointer(ctx, request.scope)
                request.expected_version = current.version
            except PromptPointerNotFound:
                request.expected_version = 0
        try:
            out = await self.apply(ctx, dl.operation, request, dead_letter=False)
        except GasworksError as exc:
            await deadletters.mark_attempt(
                self.db, ctx, dl_id, ok=False, result={"error": exc.to_dict()}
            )
            raise
        marked = await deadletters.mark_attempt(
            self.db,
            ctx,
            dl_id,
            ok=True,
            result={"pointer": out.model_dump(mode="json", by_alias=True)},
        )
        return ReplayOut(dead_letter=marked, pointer=out)

    # -- resolution ---------------------------------------------------------------------------

    async def resolve(self, ctx: TenantContext, req: ResolveRequest) -> ResolvedOut:
        ctx.require(Role.VIEWER)
        resolved = await self.resolver.resolve(
            tenant_id=ctx.tenant_id,
            model=req.model,
            workflow_id=req.workflow_id,
            conversation_id=req.conversation_id,
        )
        values = dict(req.variables)
        if req.workflow_id is not None:
            values.setdefault("workflowId", req.workflow_id)
        if req.conversation_id is not None:
            values.setdefault("conversationId", req.conversation_id)
        history = _history(req.history)
        formatted = resolved.format(values, history, strict=req.strict)
        return resolved_out(resolved, formatted.messages, formatted.missing)

    async def chat(
        self, runtime: Runtime, ctx: TenantContext, req: PromptChatRequest
    ) -> PromptChatOut:
        """Resolve the scope's prompt, render it and call the model through the gateway."""
        from gasworks.llm.runtime import get_gateway

        scope, prepared = await self._prepare(ctx, req)
        r = await get_gateway(runtime).chat(scope, prepared.request)
        return PromptChatOut(
            text=r.text,
            model=r.model,
            provider=r.provider,
            finish_reason=r.finish_reason.value,
            input_tokens=r.usage.input_tokens,
            output_tokens=r.usage.output_tokens,
            cost=str(r.cost),
            demo=r.demo,
            prompt=prompt_used(prepared),
        )

    async def chat_stream(
        self, runtime: Runtime, ctx: TenantContext, req: PromptChatRequest
    ) -> tuple[PromptUsed, AsyncIterator[StreamChunk]]:
        """Like ``chat``, streamed: the prompt used, and the gateway's chunks (the last one
        carries usage, cost and the model that answered). Nothing is called until the caller
        iterates; budgets, breakers and the ledger apply as for any streamed call."""
        from gasworks.llm.runtime import get_gateway

        scope, prepared = await self._prepare(ctx, req)
        return prompt_used(prepared), get_gateway(runtime).stream(scope, prepared.request)

    async def _prepare(
        self, ctx: TenantContext, req: PromptChatRequest
    ) -> tuple[CallScope, PreparedCall]:
        from gasworks.observability.request_id import current_request_id

        ctx.require(Role.VIEWER)
        scope = CallScope(
            tenant_id=ctx.tenant_id,
            api_key_id=ctx.api_key_id,
            request_id=current_request_id(),
            workflow_id=req.workflow_id,
            conversation_id=req.conversation_id,
        )
        prepared = await prepare_call(
            self.resolver,
            scope,
            model=req.model,
            values=req.variables,
            history=_history(req.history),
            overrides=req.parameters,
            strict=req.strict,
        )
        prepared.request.truncate = req.truncate
        return scope, prepared

    # -- retention ----------------------------------------------------------------------------

    async def retention(
        self, ctx: TenantContext, *, days: int | None = None, dry_run: bool = False
    ) -> RetentionReport:
        return await run_retention(
            self.db,
            self.store.blobs,
            ctx,
            days=self.settings.prompt_retention_days if days is None else days,
            dry_run=dry_run,
        )


def prompt_used(prepared: PreparedCall) -> PromptUsed:
    """Which prompt a call used: level, version, where it came from, missing variables."""
    p = prepared.prompt
    return PromptUsed(
        level=p.level,
        source=p.source,
        version_id=p.version_id,
        version_number=p.version_number,
        name=p.name,
        content_hash=p.content_hash,
        canary=p.canary,
        stale=p.stale,
        missing=prepared.missing,
    )


def _history(items: list[dict[str, Any]]) -> list[Message]:
    out = []
    for m in items:
        role = m.get("role", "user")
        if role not in ("system", "user", "assistant", "tool"):
            raise ValidationFailed(
                f"History roles are system, user, assistant or tool; got {role!r}.",
                details={"role": str(role)[:50]},
            )
        out.append(Message(role=role, content=str(m.get("content", ""))))
    return out


def resolved_out(r: ResolvedPrompt, messages: list[Message], missing: list[str]) -> ResolvedOut:
    return ResolvedOut(
        level=r.level,
        source=r.source,
        model=r.model,
        version_id=r.version_id,
        version_number=r.version_number,
        name=r.name,
        content_hash=r.content_hash,
        pointer_version=r.pointer_version,
        canary=r.canary,
        stale=r.stale,
        content=r.content,
        messages=[MessageOut(role=m.role, content=m.text()) for m in messages],
        missing=missing,
        parameters=dict(r.compiled.parameters),
    )


def prompt_service(runtime: Runtime) -> PromptService:
    """The runtime's prompts service (built on first use when ``PromptsDomain`` did not run)."""
    svc = runtime.services.get(SERVICE)
    if svc is None:
        svc = PromptService(runtime)
        runtime.services[SERVICE] = svc
        with contextlib.suppress(RuntimeError):  # no running loop: resolve without polling
            asyncio.get_running_loop()
            svc.resolver.start()
    assert isinstance(svc, PromptService)
    return svc


log = get_logger("gasworks.prompts")

#: the principal the retention job's audit rows name
RETENTION_PRINCIPAL = "system:retention"


async def retention_if_leader(rt: Runtime) -> RetentionReport | None:
    """The periodic retention job: runs in the process holding the deployment's leader lease
    (``gasworks.db.leader``), so once per deployment per interval."""
    if not is_leader(rt):
        return None
    svc = prompt_service(rt)
    ctx = dataclasses.replace(TenantContext.system("system"), principal_id=RETENTION_PRINCIPAL)
    report = await svc.retention(ctx)
    if report.deleted:
        log.info("prompts.retention", deleted=len(report.deleted))
    return report


class PromptsDomain:
    """The prompt service and its resolver (``prompt_service(rt)``); start it after
    ``ModelsDomain`` so pointer scopes use the registry's canonical model ids. A process
    that runs background work also runs the retention job when it leads."""

    name = SERVICE

    async def start(self, rt: Runtime) -> None:
        svc = PromptService(rt)
        rt.services[SERVICE] = svc
        svc.resolver.start()
        every = rt.settings.prompt_retention_interval_seconds
        if rt.settings.background_work and every > 0:
            svc.retention_task = PeriodicTask(
                "prompt-retention", functools.partial(retention_if_leader, rt), every
            )
            svc.retention_task.start()

    async def stop(self, rt: Runtime) -> None:
        svc = rt.services.pop(SERVICE, None)
        if isinstance(svc, PromptService):
            if svc.retention_task is not None:
                await svc.retention_task.stop()
            await svc.resolver.stop()
