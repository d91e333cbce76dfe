"""Active pointers moved only by compare-and-set on the pointer version.

Every change — move, rollback, canary start / promote / abort — is one conditional
``UPDATE … WHERE id = :id AND version = :expected`` (or an ``INSERT … ON CONFLICT DO NOTHING``
for a pointer's first move, expected version 0). Zero rows changed means someone else moved the
pointer: ``PROMPT_POINTER_CONFLICT`` (409) with the current state. In the same transaction the
move appends a history row whose ``seq`` is the new pointer version (unique per pointer, so the
history can have neither gaps nor duplicates), an audit row, and an invalidation row that every
process's resolver cache polls.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gasworks.db.paging import ALL, Page
from gasworks.db.types import new_id, utcnow
from gasworks.errors import (
    PromptNoPreviousVersion,
    PromptPointerConflict,
    PromptPointerNotFound,
    ValidationFailed,
)
from gasworks.observability.metrics import REGISTRY
from gasworks.prompts.audit import write_audit
from gasworks.prompts.models import Normalizer, local_normalize
from gasworks.prompts.schemas import (
    CanaryDecision,
    CanaryRequest,
    HistoryEntry,
    MoveRequest,
    PointerOut,
    RollbackRequest,
    Scope,
    ScopeIn,
)
from gasworks.prompts.tables import (
    PromptInvalidationRow,
    PromptPointerHistoryRow,
    PromptPointerRow,
)
from gasworks.prompts.versions import version_row
from gasworks.tenancy.context import Role, TenantContext

#: ``session.info`` key: the invalidation notices this transaction wrote
OWN_NOTICES = "gasworks.prompt_notices"


def scope_of(ctx: TenantContext, s: ScopeIn, normalize: Normalizer = local_normalize) -> Scope:
    return Scope(
        tenant=ctx.tenant_id if s.tenant_scoped else "",
        workflow=s.workflow_id or "",
        model=normalize(s.model),
    )


def pointer_out(row: PromptPointerRow) -> PointerOut:
    return PointerOut(
        id=row.id,
        scope_tenant=row.scope_tenant or None,
        workflow_id=row.scope_workflow or None,
        model=row.model,
        level=Scope(row.scope_tenant, row.scope_workflow, row.model).label(),
        active_version_id=row.active_version_id,
        previous_version_id=row.previous_version_id,
        canary_version_id=row.canary_version_id,
        canary_percent=row.canary_percent,
        version=row.version,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def _where_scope(scope: Scope) -> Any:
    return (
        (PromptPointerRow.scope_tenant == scope.tenant)
        & (PromptPointerRow.scope_workflow == scope.workflow)
        & (PromptPointerRow.model == scope.model)
    )


async def _read(session: AsyncSession, scope: Scope) -> PromptPointerRow | None:
    return await session.scalar(
        select(PromptPointerRow)
        .where(_where_scope(scope))
        .execution_options(populate_existing=True)
    )


def _authorize(ctx: TenantContext, scope: Scope, needed: Role) -> None:
    ctx.require(needed)
    if not scope.tenant and needed is not Role.VIEWER:
        ctx.require_platform_admin()  # platform-wide pointers serve every tenant


async def get_pointer(
    session: AsyncSession,
    ctx: TenantContext,
    s: ScopeIn,
    *,
    normalize: Normalizer = local_normalize,
) -> PointerOut:
    scope = scope_of(ctx, s, normalize)
    _authorize(ctx, scope, Role.VIEWER)
    row = await _read(session, scope)
    if row is None:
        raise PromptPointerNotFound(
            "No pointer for this scope yet (move one there with expectedVersion 0).",
            details={"scope": s.model_dump(by_alias=True)},
        )
    return pointer_out(row)


async def list_pointers(
    session: AsyncSession, ctx: TenantContext, page: Page = ALL
) -> list[PointerOut]:
    """The caller's tenant's pointers and the platform-wide ones (model, workflow, then the
    platform-wide pointer before the tenant's: the scope is unique, so the order is total)."""
    ctx.require(Role.VIEWER)
    rows = (
        await session.scalars(
            page.apply(
                select(PromptPointerRow)
                .where(PromptPointerRow.scope_tenant.in_([ctx.tenant_id, ""]))
                .order_by(
                    PromptPointerRow.model,
                    PromptPointerRow.scope_workflow,
                    PromptPointerRow.scope_tenant,
                )
            )
        )
    ).all()
    return [pointer_out(r) for r in rows]


POINTER_CAS = Counter(
    "gasworks_prompt_pointer_cas_total",
    "Compare-and-set attempts on prompt pointers, by outcome (ok, conflict).",
    ["outcome"],
    registry=REGISTRY,
)
_CAS_OK = POINTER_CAS.labels("ok")
_CAS_CONFLICT = POINTER_CAS.labels("conflict")


def _conflict(scope: Scope, expected: int, row: PromptPointerRow | None) -> PromptPointerConflict:
    _CAS_CONFLICT.inc()
    current = pointer_out(row).model_dump(mode="json", by_alias=True) if row else None
    return PromptPointerConflict(
        f"The pointer is at version {row.version if row else 0}, not {expected}: "
        "someone moved it. Re-read it and retry.",
        details={"expectedVersion": expected, "current": current},
    )


async def _cas(
    session: AsyncSession,
    ctx: TenantContext,
    scope: Scope,
    expected: int,
    action: str,
    values: dict[str, Any],
    *,
    from_version: str | None,
    to_version: str | None,
    reason: str,
) -> PromptPointerRow:
    now = utcnow()
    result = await session.execute(
        update(PromptPointerRow)
        .where(_where_scope(scope), PromptPointerRow.version == expected)
        .values(**values, version=expected + 1, updated_at=now, updated_by=ctx.principal_id)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise _conflict(scope, expected, await _read(session, scope))
    _CAS_OK.inc()
    row = await _read(session, scope)
    assert row is not None
    _record(session, ctx, scope, row, action, from_version, to_version, reason)
    return row


def _record(
    session: AsyncSession,
    ctx: TenantContext,
    scope: Scope,
    row: PromptPointerRow,
    action: str,
    from_version: str | None,
    to_version: str | None,
    reason: str,
) -> None:
    session.add(
        PromptPointerHistoryRow(
            id=new_id("ph"),
            tenant_id=row.tenant_id,
            pointer_id=row.id,
            seq=row.version,
            action=action,
            from_version_id=from_version,
            to_version_id=to_version,
            canary_version_id=row.canary_version_id,
            canary_percent=row.canary_percent,
            actor=ctx.principal_id,
            reason=reason,
            at=row.updated_at,
        )
    )
    write_audit(
        session,
        ctx.tenant_id,
        ctx.principal_id,
        action,
        "pointer",
        row.id,
        {
            "scope": {"tenant": scope.tenant, "workflow": scope.workflow, "model": scope.model},
            "from": from_version,
            "to": to_version,
            "pointerVersion": row.version,
            "reason": reason,
        },
    )
    notice = PromptInvalidationRow(
        scope_tenant=scope.tenant, scope_workflow=scope.workflow, model=scope.model, at=utcnow()
    )
    session.add(notice)
    # the writer reads the notice's seq after flush so its own poller can skip it
    session.info.setdefault(OWN_NOTICES, []).append(notice)


async def move_pointer(
    session: AsyncSession,
    ctx: TenantContext,
    req: MoveRequest,
    *,
    normalize: Normalizer = local_normalize,
) -> PointerOut:
    scope = scope_of(ctx, req.scope, normalize)
    _authorize(ctx, scope, Role.EDITOR)
    target = await version_row(session, ctx.tenant_id, req.version_id)
    if target.archived_at is not None:
        raise ValidationFailed(
            "This version is archived; deploy a live version.",
            details={"versionId": target.id},
        )
    current = await _read(session, scope)
    if current is None:
        if req.expected_version != 0:
            raise _conflict(scope, req.expected_version, None)
        now = utcnow()
        row = PromptPointerRow(
            id=new_id("pp"),
            tenant_id=ctx.tenant_id,
            scope_tenant=scope.tenant,
            scope_workflow=scope.workflow,
            model=scope.model,
            active_version_id=target.id,
            previous_version_id=None,
            canary_version_id=None,
            canary_percent=0,
            version=1,
            created_at=now,
            updated_at=now,
            updated_by=ctx.principal_id,
        )
        try:
            async with session.begin_nested():  # a concurrent first move wins the unique key
                session.add(row)
        except IntegrityError:
            raise _conflict(scope, 0, await _read(session, scope)) from None
        _CAS_OK.inc()
        _record(session, ctx, scope, row, "move", None, target.id, req.reason)
        return pointer_out(row)
    if current.version != req.expected_version:
        raise _conflict(scope, req.expected_version, current)
    row = await _cas(
        session,
        ctx,
        scope,
        req.expected_version,
        "move",
        {"active_version_id": target.id, "previous_version_id": current.active_version_id},
        from_version=current.active_version_id,
        to_version=target.id,
        reason=req.reason,
    )
    return pointer_out(row)


async def rollback_pointer(
    session: AsyncSession,
    ctx: TenantContext,
    req: RollbackRequest,
    *,
    normalize: Normalizer = local_normalize,
) -> PointerOut:
    """Swap active and previous (a second rollback re-applies the rolled-back version)."""
    scope = scope_of(ctx, req.scope, normalize)
    _authorize(ctx, scope, Role.EDITOR)
    current = await _existing(session, scope, req.scope)
    if current.version != req.expected_version:
        raise _conflict(scope, req.expected_version, current)
    if current.previous_version_id is None:
        raise PromptNoPreviousVersion(
            "This pointer has no previous version to roll back to.",
            details={"pointerId": current.id},
        )
    row = await _cas(
        session,
        ctx,
        scope,
        req.expected_version,
        "rollback",
        {
            "active_version_id": current.previous_version_id,
            "previous_version_id": current.active_version_id,
            "canary_version_id": None,
            "canary_percent": 0,
        },
        from_version=current.active_version_id,
        to_version=current.previous_version_id,
        reason=req.reason,
    )
    return pointer_out(row)


async def start_canary(
    session: AsyncSession,
    ctx: TenantContext,
    req: CanaryRequest,
    *,
    normalize: Normalizer = local_normalize,
) -> PointerOut:
    scope = scope_of(ctx, req.scope, normalize)
    _authorize(ctx, scope, Role.EDITOR)
    target = await version_row(session, ctx.tenant_id, req.version_id)
    current = await _existing(session, scope, req.scope)
    if current.version != req.expected_version:
        raise _conflict(scope, req.expected_version, current)
    row = await _cas(
        session,
        ctx,
        scope,
        req.expected_version,
        "canary_start",
        {"canary_version_id": target.id, "canary_percent": req.percent},
        from_version=current.active_version_id,
        to_version=current.active_version_id,
        reason=req.reason,
    )
    return pointer_out(row)


async def decide_canary(
    session: AsyncSession,
    ctx: TenantContext,
    req: CanaryDecision,
    *,
    promote: bool,
    normalize: Normalizer = local_normalize,
) -> PointerOut:
    """Promote (the candidate becomes active, the old active previous) or abort the canary."""
    scope = scope_of(ctx, req.scope, normalize)
    _authorize(ctx, scope, Role.EDITOR)
    current = await _existing(session, scope, req.scope)
    if current.version != req.expected_version:
        raise _conflict(scope, req.expected_version, current)
    if current.canary_version_id is None:
        raise ValidationFailed(
            "This pointer has no canary running.", details={"pointerId": current.id}
        )
    values: dict[str, Any] = {"canary_version_id": None, "canary_percent": 0}
    to_version = current.active_version_id
    if promote:
        to_version = current.canary_version_id
        values |= {
            "active_version_id": current.canary_version_id,
            "previous_version_id": current.active_version_id,
        }
    row = await _cas(
        session,
        ctx,
        scope,
        req.expected_version,
        "canary_promote" if promote else "canary_abort",
        values,
        from_version=current.active_version_id,
        to_version=to_version,
        reason=req.reason,
    )
    return pointer_out(row)


async def _existing(session: AsyncSession, scope: Scope, s: ScopeIn) -> PromptPointerRow:
    row = await _read(session, scope)
    if row is None:
        raise PromptPointerNotFound(
            "No pointer for this scope.", details={"scope": s.model_dump(by_alias=True)}
        )
    return row


async def pointer_history(
    session: AsyncSession,
    ctx: TenantContext,
    s: ScopeIn,
    page: Page = ALL,
    *,
    normalize: Normalizer = local_normalize,
) -> list[HistoryEntry]:
    scope = scope_of(ctx, s, normalize)
    _authorize(ctx, scope, Role.VIEWER)
    row = await _existing(session, scope, s)
    rows = (
        await session.scalars(
            page.apply(
                select(PromptPointerHistoryRow)
                .where(PromptPointerHistoryRow.pointer_id == row.id)
                .order_by(PromptPointerHistoryRow.seq.desc())
            )
        )
    ).all()
    return [HistoryEntry.model_validate(r, from_attributes=True) for r in rows]
