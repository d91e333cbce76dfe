"""Workflow query functions: publish, versions, access, runs, conversations.

Each takes an explicit session (one transaction) and the caller's context; the services
compose them (``WorkflowCatalog`` for workflows, versions and shares, ``WorkflowEngine`` for
runs and conversations), and adapters call the services, never these. A workflow the caller
may not run answers NOT_FOUND exactly like a missing one (and so does another tenant's).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gasworks.db.paging import ALL, Page
from gasworks.db.types import new_id, utcnow
from gasworks.errors import Conflict, Forbidden, ModelNotFound, NotFound
from gasworks.modeltypes import Message
from gasworks.tenancy.context import Role, TenantContext
from gasworks.tenancy.grants import grant_subject, is_manager, may_manage, reaches
from gasworks.workflows import leases
from gasworks.workflows.ports import ConversationData
from gasworks.workflows.registry import NodeRegistry
from gasworks.workflows.schemas import (
    ConversationOut,
    MessageOut,
    PublishOut,
    RunOut,
    ShareIn,
    ShareOut,
    VersionOut,
    WorkflowOut,
)
from gasworks.workflows.tables import (
    ConversationMessageRow,
    ConversationRow,
    WorkflowRow,
    WorkflowRunEventRow,
    WorkflowRunRow,
    WorkflowShareRow,
    WorkflowVersionRow,
)
from gasworks.workflows.validator import ValidationIssue, ValidationResult, validate
from gasworks.workflows.writer import Rows


class ConversationConflict(Conflict):
    code = "CONVERSATION_CONFLICT"


def content_hash(doc: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


# --- access ---------------------------------------------------------------------------------


def _access_filter(ctx: TenantContext) -> Any:
    """SQL condition: workflows of the caller's tenant the caller may see and run."""
    shared = select(WorkflowShareRow.workflow_id).where(
        WorkflowShareRow.tenant_id == ctx.tenant_id,
        reaches(ctx, WorkflowShareRow.kind, WorkflowShareRow.subject),
    )
    return or_(WorkflowRow.owner_id == ctx.principal_id, WorkflowRow.id.in_(shared))


async def _get_row(session: AsyncSession, ctx: TenantContext, slug_or_id: str) -> WorkflowRow:
    query = select(WorkflowRow).where(
        WorkflowRow.tenant_id == ctx.tenant_id,
        or_(WorkflowRow.slug == slug_or_id, WorkflowRow.id == slug_or_id),
    )
    if not is_manager(ctx):
        query = query.where(_access_filter(ctx))
    row = await session.scalar(query)
    if row is None:
        raise NotFound("Workflow not found.", details={"workflow": slug_or_id})
    return row


def _require_edit(ctx: TenantContext, row: WorkflowRow) -> None:
    if not may_manage(ctx, row.owner_id):
        raise Forbidden(
            "Only the workflow's owner or a tenant admin may change it.",
            details={"workflow": row.slug},
        )


# --- workflows and versions -----------------------------------------------------------------


def _unknown_models(
    result: ValidationResult, model_exists: Callable[[str], object]
) -> list[ValidationIssue]:
    assert result.definition is not None
    issues = []
    for i, node in enumerate(result.definition.nodes):
        model = getattr(result.configs.get(node.id), "model", None)
        if not isinstance(model, str) or not model:
            continue
        try:
            model_exists(model)
        except ModelNotFound as exc:
            issues.append(
                ValidationIssue(
                    ModelNotFound.code, f"nodes[{i}].config.model", exc.message, {"model": model}
                )
            )
    return issues


async def publish(
    session: AsyncSession,
    ctx: TenantContext,
    doc: dict[str, Any],
    *,
    model_exists: Callable[[str], object] | None = None,
    registry: NodeRegistry | None = None,
) -> PublishOut:
    """Validate and publish a new immutable version (idempotent for an unchanged document).

    ``registry``: the node types the document is checked against (the engine's
    ``WorkflowEngine.nodes`` where plug-in types are registered); the built-in types if None.

    ``model_exists`` (the registry's ``get``: raises ``ModelNotFound`` for an unknown or
    disabled id) checks every model a node names, so a typo is refused at publish time,
    ``MODEL_NOT_FOUND`` at its node, not found by the first run."""
    ctx.require(Role.EDITOR)
    result = validate(doc, registry)
    if model_exists is not None and result.definition is not None:
        result.issues.extend(_unknown_models(result, model_exists))
    result.raise_for_issues()
    assert result.definition is not None
    d = result.definition
    canonical = d.to_document()
    digest = content_hash(canonical)
    row = await session.scalar(
        select(WorkflowRow).where(WorkflowRow.tenant_id == ctx.tenant_id, WorkflowRow.slug == d.id)
    )
    if row is None:
        row = WorkflowRow(
            id=new_id("wf"),
            tenant_id=ctx.tenant_id,
            slug=d.id,
            name=d.name or d.id,
            description=d.description,
            owner_id=ctx.principal_id,
            latest_version=0,
        )
        session.add(row)
        await session.flush()
    else:
        row = await _get_row(session, ctx, d.id)
        _require_edit(ctx, row)
        latest = await _version_row(session, row, None)
        if latest is not None and latest.content_hash == digest:
            return PublishOut(workflow=_wf_out(row), version=_ver_out(row, latest), created=False)
    expected = row.latest_version
    new_version = expected + 1
    now = utcnow()
    res = await session.execute(
        update(WorkflowRow)
        .where(WorkflowRow.id == row.id, WorkflowRow.latest_version == expected)
        .values(
            latest_version=new_version,
            updated_at=now,
            name=d.name or d.id,
            description=d.description,
        )
    )
    if getattr(res, "rowcount", 1) != 1:
        raise Conflict(
            "The workflow was published concurrently; retry.", details={"workflow": d.id}
        )
    ver = WorkflowVersionRow(
        id=new_id("wfv"),
        tenant_id=ctx.tenant_id,
        workflow_id=row.id,
        version=new_version,
        document=canonical,
        content_hash=digest,
        created_by=ctx.principal_id,
        created_at=now,
    )
    session.add(ver)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("The workflow was published concurrently; retry.") from exc
    await session.refresh(row)
    return PublishOut(workflow=_wf_out(row), version=_ver_out(row, ver), created=True)


async def list_workflows(
    session: AsyncSession, ctx: TenantContext, page: Page = ALL
) -> list[WorkflowOut]:
    query = select(WorkflowRow).where(WorkflowRow.tenant_id == ctx.tenant_id)
    if not is_manager(ctx):
        query = query.where(_access_filter(ctx))
    rows = await session.scalars(page.apply(query.order_by(WorkflowRow.slug)))
    return [_wf_out(r) for r in rows.all()]


async def get_workflow(session: AsyncSession, ctx: TenantContext, slug: str) -> WorkflowOut:
    return _wf_out(await _get_row(session, ctx, slug))


async def delete_workflow(session: AsyncSession, ctx: TenantContext, slug: str) -> None:
    row = await _get_row(session, ctx, slug)
    _require_edit(ctx, row)
    convs = select(ConversationRow.id).where(
        ConversationRow.tenant_id == ctx.tenant_id, ConversationRow.workflow_id == row.id
    )
    await session.execute(
        delete(ConversationMessageRow).where(
            ConversationMessageRow.tenant_id == ctx.tenant_id,
            ConversationMessageRow.conversation_id.in_(convs),
        )
    )
    await session.execute(
        delete(ConversationRow).where(
            ConversationRow.tenant_id == ctx.tenant_id, ConversationRow.workflow_id == row.id
        )
    )
    # versions, shares, runs and run events go with the workflow (ON DELETE CASCADE)
    await session.execute(delete(WorkflowRow).where(WorkflowRow.id == row.id))


async def list_versions(
    session: AsyncSession, ctx: TenantContext, slug: str, page: Page = ALL
) -> list[VersionOut]:
    row = await _get_row(session, ctx, slug)
    vers = await session.scalars(
        page.apply(
            select(WorkflowVersionRow)
            .where(WorkflowVersionRow.workflow_id == row.id)
            .order_by(WorkflowVersionRow.version.desc())
        )
    )
    return [_ver_out(row, v) for v in vers.all()]


async def get_version(
    session: AsyncSession, ctx: TenantContext, slug: str, version: int | None = None
) -> VersionOut:
    row = await _get_row(session, ctx, slug)
    ver = await _version_row(session, row, version)
    if ver is None:
        raise NotFound(
            "Workflow version not found.", details={"workflow": slug, "version": version}
        )
    return _ver_out(row, ver)


async def _version_row(
    session: AsyncSession, row: WorkflowRow, version: int | None
) -> WorkflowVersionRow | None:
    v = row.latest_version if version is None else version
    return await session.scalar(
        select(WorkflowVersionRow).where(
            WorkflowVersionRow.workflow_id == row.id, WorkflowVersionRow.version == v
        )
    )


# --- sharing --------------------------------------------------------------------------------


async def share(session: AsyncSession, ctx: TenantContext, slug: str, data: ShareIn) -> ShareOut:
    row = await _get_row(session, ctx, slug)
    _require_edit(ctx, row)
    subject = grant_subject(data.kind, data.subject, noun="share")
    existing = await session.scalar(
        select(WorkflowShareRow).where(
            WorkflowShareRow.workflow_id == row.id,
            WorkflowShareRow.kind == data.kind,
            WorkflowShareRow.subject == subject,
        )
    )
    if existing is None:
        existing = WorkflowShareRow(
            id=new_id("wfs"),
            tenant_id=ctx.tenant_id,
            workflow_id=row.id,
            kind=data.kind,
            subject=subject,
            created_at=utcnow(),
        )
        session.add(existing)
        await session.flush()
    return ShareOut.model_validate(existing)


async def list_shares(
    session: AsyncSession, ctx: TenantContext, slug: str, page: Page = ALL
) -> list[ShareOut]:
    row = await _get_row(session, ctx, slug)
    rows = await session.scalars(
        page.apply(
            select(WorkflowShareRow)
            .where(WorkflowShareRow.workflow_id == row.id)
            .order_by(WorkflowShareRow.created_at, WorkflowShareRow.id)
        )
    )
    return [ShareOut.model_validate(r) for r in rows.all()]


async def unshare(session: AsyncSession, ctx: TenantContext, slug: str, share_id: str) -> None:
    row = await _get_row(session, ctx, slug)
    _require_edit(ctx, row)
    res = await session.execute(
        delete(WorkflowShareRow).where(
            WorkflowShareRow.id == share_id, WorkflowShareRow.workflow_id == row.id
        )
    )
    if getattr(res, "rowcount", 1) == 0:
        raise NotFound("Share not found.", details={"id": share_id})


# --- runs -----------------------------------------------------------------------------------


async def resolve_run_target(
    session: AsyncSession, ctx: TenantContext, slug: str, version: int | None
) -> tuple[WorkflowRow, WorkflowVersionRow]:
    """The workflow (access-checked) and the version a new run is pinned to."""
    row = await _get_row(session, ctx, slug)
    ver = await _version_row(session, row, version)
    if ver is None:
        raise NotFound(
            "Workflow version not found.", details={"workflow": slug, "version": version}
        )
    return row, ver


async def insert_run(session: AsyncSession, run: WorkflowRunRow) -> None:
    """Queue the row; it is flushed with the transaction (many rows → one batched INSERT)."""
    session.add(run)


async def finish_run(
    session: AsyncSession,
    *,
    run: dict[str, Any],
    exists: bool,
    events: list[tuple[int, str, dict[str, Any]]],
) -> None:
    """Write a finished run (its column values), its not-yet-written events — in the writer's
    batch (``writer.queue_insert``), one transaction."""
    if exists:  # refused (RUN_INTERRUPTED) when a sweeper closed it after its lease lapsed
        await leases.finish_guard(
            session,
            run["id"],
            run["tenant_id"],
            {
                k: run[k]
                for k in (
                    "status",
                    "output",
                    "error",
                    "node_timings",
                    "steps",
                    "tokens",
                    "cost",
                    "duration_ms",
                    "finished_at",
                    "prompt_version_id",
                )
            },
        )
        event_rows(run["tenant_id"], run["id"], events).queue(session)
    else:
        rows: list[Any] = [run]
        Rows(
            (
                (WorkflowRunRow, rows),
                (WorkflowRunEventRow, _event_values(run["tenant_id"], run["id"], events)),
            )
        ).queue(session)


def new_run_rows(run: Any, events: list[tuple[int, str, dict[str, Any]]]) -> Rows:
    """A finished run not written before (a record of ``workflow_runs``: the engine's
    ``RunRecord``, see ``db/batch.py``) and its events: new rows only, so the writer can
    batch them without a session (``writer.Rows``)."""
    if not events:
        return Rows(((WorkflowRunRow, [run]),))
    return Rows(
        (
            (WorkflowRunRow, [run]),
            (WorkflowRunEventRow, _event_values(run.tenant_id, run.id, events)),
        )
    )


def event_rows(tenant_id: str, run_id: str, events: list[tuple[int, str, dict[str, Any]]]) -> Rows:
    """Events of a run already written (a checkpoint while it streams)."""
    return Rows(((WorkflowRunEventRow, _event_values(tenant_id, run_id, events)),))


def _event_values(
    tenant_id: str, run_id: str, events: list[tuple[int, str, dict[str, Any]]]
) -> list[dict[str, Any]]:
    return [
        {"run_id": run_id, "seq": s, "tenant_id": tenant_id, "type": t, "data": d}
        for s, t, d in events
    ]


async def get_run(session: AsyncSession, ctx: TenantContext, run_id: str) -> RunOut:
    pair = (
        await session.execute(
            select(WorkflowRunRow, WorkflowRow)
            .join(WorkflowRow, WorkflowRow.id == WorkflowRunRow.workflow_id)
            .where(WorkflowRunRow.id == run_id, WorkflowRunRow.tenant_id == ctx.tenant_id)
        )
    ).first()
    if pair is None:
        raise NotFound("Run not found.", details={"id": run_id})
    run, wf = pair
    await _get_row(session, ctx, wf.id)  # access check: 404 when not allowed
    return RunOut.of(run, wf.slug)


async def run_starter(session: AsyncSession, ctx: TenantContext, run_id: str) -> str | None:
    """Who started a run (already access-checked by the caller)."""
    starter: str | None = await session.scalar(
        select(WorkflowRunRow.principal_id).where(
            WorkflowRunRow.id == run_id, WorkflowRunRow.tenant_id == ctx.tenant_id
        )
    )
    return starter


def check_may_cancel(ctx: TenantContext, starter: str | None) -> None:
    """A run is cancelled by whoever started it, or by an editor (or above) of the tenant who
    can see the workflow; a viewer with a share cannot cancel another user's run."""
    if starter is None or starter != ctx.principal_id:
        ctx.require(Role.EDITOR)


async def list_runs(
    session: AsyncSession, ctx: TenantContext, slug: str, page: Page = ALL
) -> list[RunOut]:
    """Newest first (ties in time broken by id)."""
    wf = await _get_row(session, ctx, slug)
    rows = await session.scalars(
        page.apply(
            select(WorkflowRunRow)
            .where(WorkflowRunRow.tenant_id == ctx.tenant_id, WorkflowRunRow.workflow_id == wf.id)
            .order_by(WorkflowRunRow.started_at.desc(), WorkflowRunRow.id.desc())
        )
    )
    return [RunOut.of(r, wf.slug) for r in rows.all()]


async def run_events(
    session: AsyncSession, tenant_id: str, run_id: str, after: int
) -> tuple[str | None, list[tuple[int, str, dict[str, Any]]]]:
    """The run's status and its stored events after ``after`` (caller already checked access)."""
    status = await session.scalar(
        select(WorkflowRunRow.status).where(
            WorkflowRunRow.id == run_id, WorkflowRunRow.tenant_id == tenant_id
        )
    )
    rows = await session.execute(
        select(WorkflowRunEventRow.seq, WorkflowRunEventRow.type, WorkflowRunEventRow.data)
        .where(
            WorkflowRunEventRow.run_id == run_id,
            WorkflowRunEventRow.tenant_id == tenant_id,
            WorkflowRunEventRow.seq > after,
        )
        .order_by(WorkflowRunEventRow.seq)
    )
    return status, [(int(s), str(t), dict(d)) for s, t, d in rows.all()]


# --- conversations --------------------------------------------------------------------------


def conversation_key(workflow_id: str, principal_id: str, client_id: str) -> str:
    """Where a conversation is stored: its workflow, its principal and the id the caller
    chose. Another workflow's or another principal's conversation with the same id is a
    different key, so a foreign id starts a new conversation exactly like an unused one."""
    digest = hashlib.sha256(f"{workflow_id}\x00{principal_id}\x00{client_id}".encode())
    return "cv_" + digest.hexdigest()[:40]


async def load_conversation(
    session: AsyncSession, tenant_id: str, conversation_id: str, *, window: int = 200
) -> ConversationData:
    """The conversation stored under ``conversation_id`` (a ``conversation_key``)."""
    row = await session.get(ConversationRow, (tenant_id, conversation_id))
    if row is None:
        return ConversationData(id=conversation_id)
    msgs = await session.execute(
        select(ConversationMessageRow.role, ConversationMessageRow.content)
        .where(
            ConversationMessageRow.tenant_id == tenant_id,
            ConversationMessageRow.conversation_id == conversation_id,
        )
        .order_by(ConversationMessageRow.seq.desc())
        .limit(window)
    )
    history = [Message(role, content) for role, content in reversed(msgs.all())]  # type: ignore[arg-type]
    return ConversationData(id=conversation_id, history=history, data=dict(row.data), turn=row.turn)


async def save_conversation(
    session: AsyncSession,
    tenant_id: str,
    workflow_id: str,
    conv: ConversationData,
    run_id: str | None = None,
    *,
    client_id: str | None = None,
    principal_id: str = "",
) -> None:
    """Append this turn's messages and state; compare-and-set on the turn counter so two
    concurrent turns of one conversation cannot overwrite each other. ``conv.id`` is the
    stored key; ``client_id`` / ``principal_id`` are recorded when the row is created."""
    now = utcnow()
    if conv.turn == 0:
        existing = await session.get(ConversationRow, (tenant_id, conv.id))
        if existing is not None:
            raise ConversationConflict(
                "Another turn of this conversation finished first; retry.",
                details={"conversationId": conv.id},
            )
        session.add(
            ConversationRow(
                tenant_id=tenant_id,
                id=conv.id,
                workflow_id=workflow_id,
                client_id=client_id or conv.id,
                principal_id=principal_id,
                turn=1,
                data=conv.data,
                created_at=now,
                updated_at=now,
            )
        )
        try:
            await session.flush()
        except IntegrityError as exc:
            raise ConversationConflict(
                "Another turn of this conversation finished first; retry.",
                details={"conversationId": conv.id},
            ) from exc
    else:
        res = await session.execute(
            update(ConversationRow)
            .where(
                ConversationRow.tenant_id == tenant_id,
                ConversationRow.id == conv.id,
                ConversationRow.turn == conv.turn,
            )
            .values(turn=conv.turn + 1, data=conv.data, updated_at=now)
        )
        if getattr(res, "rowcount", 1) != 1:
            raise ConversationConflict(
                "Another turn of this conversation finished first; retry.",
                details={"conversationId": conv.id},
            )
    if conv.pending:
        start = await session.scalar(
            select(func.coalesce(func.max(ConversationMessageRow.seq), 0)).where(
                ConversationMessageRow.tenant_id == tenant_id,
                ConversationMessageRow.conversation_id == conv.id,
            )
        )
        session.add_all(
            ConversationMessageRow(
                tenant_id=tenant_id,
                conversation_id=conv.id,
                seq=int(start or 0) + i + 1,
                role=m.role,
                content=m.text(),
                run_id=run_id,
                created_at=now,
            )
            for i, m in enumerate(conv.pending)
        )
        await session.flush()


async def get_conversation(
    session: AsyncSession,
    ctx: TenantContext,
    conversation_id: str,
    messages: Page | None = ALL,
) -> ConversationOut:
    """The caller's conversation with this id (the most recent one if several of the
    caller's workflows use it), with a page of its messages (oldest first; ``None``: without
    them). Another principal's conversation is not found, like a missing one."""
    row = await session.scalar(
        select(ConversationRow)
        .where(
            ConversationRow.tenant_id == ctx.tenant_id,
            ConversationRow.client_id == conversation_id,
            ConversationRow.principal_id == ctx.principal_id,
        )
        .order_by(ConversationRow.updated_at.desc(), ConversationRow.id.desc())
        .limit(1)
    )
    if row is None:
        raise NotFound("Conversation not found.", details={"id": conversation_id})
    try:
        await _get_row(session, ctx, row.workflow_id)
    except NotFound:
        raise NotFound("Conversation not found.", details={"id": conversation_id}) from None
    out = _conv_out(row)
    if messages is not None:
        out.messages = await conversation_messages(session, ctx, row.id, messages)
    return out


async def conversation_messages(
    session: AsyncSession, ctx: TenantContext, conversation_id: str, page: Page = ALL
) -> list[MessageOut]:
    """Messages of a conversation (by stored key) the caller has already been allowed to
    read, oldest first."""
    msgs = await session.scalars(
        page.apply(
            select(ConversationMessageRow)
            .where(
                ConversationMessageRow.tenant_id == ctx.tenant_id,
                ConversationMessageRow.conversation_id == conversation_id,
            )
            .order_by(ConversationMessageRow.seq)
        )
    )
    return [MessageOut.model_validate(m) for m in msgs.all()]


async def list_conversations(
    session: AsyncSession, ctx: TenantContext, slug: str, page: Page = ALL
) -> list[ConversationOut]:
    """Most recently updated first (ties broken by id): the caller's own; an admin (or
    above) sees every principal's."""
    wf = await _get_row(session, ctx, slug)
    q = select(ConversationRow).where(
        ConversationRow.tenant_id == ctx.tenant_id, ConversationRow.workflow_id == wf.id
    )
    if not (ctx.is_platform_admin or ctx.role.allows(Role.ADMIN)):
        q = q.where(ConversationRow.principal_id == ctx.principal_id)
    rows = await session.scalars(
        page.apply(q.order_by(ConversationRow.updated_at.desc(), ConversationRow.id.desc()))
    )
    return [_conv_out(r) for r in rows.all()]


# --- mapping --------------------------------------------------------------------------------


def _wf_out(r: WorkflowRow) -> WorkflowOut:
    return WorkflowOut.model_validate(r)


def _ver_out(wf: WorkflowRow, v: WorkflowVersionRow) -> VersionOut:
    return VersionOut(
        workflow_id=wf.id,
        slug=wf.slug,
        version=v.version,
        content_hash=v.content_hash,
        created_by=v.created_by,
        created_at=v.created_at,
        document=v.document,
    )


def _conv_out(r: ConversationRow) -> ConversationOut:
    return ConversationOut(
        id=r.client_id,
        workflow_id=r.workflow_id,
        principal_id=r.principal_id,
        store_key=r.id,
        turn=r.turn,
        data=r.data,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def _now() -> datetime:
    return utcnow()
