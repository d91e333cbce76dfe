"""Dead letters: pointer changes that failed for a reason worth a replay (a conflict, a
store error; see ``service.DEAD_LETTERED``).

Each failure is recorded with the request and the reason, in its own transaction (the failed
one was rolled back). Records are listable and replayable; a replay re-runs the same request
(optionally *rebased* on the pointer's current version — an explicit operator decision) and
records its outcome on the dead letter.

When the database itself is unreachable, the record cannot be written there: it is logged
(``prompt.dead_letter.unrecorded``, with the request) so log shipping keeps it.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gasworks.db.engine import Database
from gasworks.db.paging import ALL, Page
from gasworks.db.types import new_id, utcnow
from gasworks.errors import PromptDeadLetterNotFound
from gasworks.observability.logging import get_logger
from gasworks.observability.metrics import REGISTRY
from gasworks.prompts.schemas import DeadLetterOut
from gasworks.prompts.tables import PromptDeadLetterRow
from gasworks.tenancy.context import Role, TenantContext

log = get_logger("gasworks.prompts.deadletters")

DEAD_LETTERS = Counter(
    "gasworks_prompt_dead_letters_total",
    "Pointer changes that failed and were recorded as dead letters (their growth).",
    registry=REGISTRY,
)

#: pending dead letters kept per tenant; past it a failure is logged, not recorded
MAX_PENDING_PER_TENANT = 1000


async def record(
    db: Database,
    ctx: TenantContext,
    operation: str,
    request: dict[str, Any],
    reason_code: str,
    error: str,
) -> str | None:
    dl_id = new_id("pdl")
    now = utcnow()
    DEAD_LETTERS.inc()
    try:
        async with db.session() as s:
            pending = await s.scalar(
                select(func.count())
                .select_from(PromptDeadLetterRow)
                .where(
                    PromptDeadLetterRow.tenant_id == ctx.tenant_id,
                    PromptDeadLetterRow.status == "pending",
                )
            )
            if (pending or 0) >= MAX_PENDING_PER_TENANT:
                log.error(
                    "prompt.dead_letter.capped",
                    operation=operation,
                    request=request,
                    reason_code=reason_code,
                    pending=pending,
                )
                return None
            s.add(
                PromptDeadLetterRow(
                    id=dl_id,
                    tenant_id=ctx.tenant_id,
                    operation=operation,
                    request=request,
                    actor=ctx.principal_id,
                    reason_code=reason_code,
                    error=error,
                    status="pending",
                    attempts=1,
                    created_at=now,
                    last_attempt_at=now,
                )
            )
    except Exception as exc:
        log.error(
            "prompt.dead_letter.unrecorded",
            operation=operation,
            request=request,
            reason_code=reason_code,
            error_type=type(exc).__name__,
        )
        return None
    log.warning("prompt.dead_letter", id=dl_id, operation=operation, reason_code=reason_code)
    return dl_id


def _out(row: PromptDeadLetterRow) -> DeadLetterOut:
    return DeadLetterOut.model_validate(row, from_attributes=True)


async def list_dead_letters(
    session: AsyncSession, ctx: TenantContext, *, status: str | None = None, page: Page = ALL
) -> list[DeadLetterOut]:
    """Newest first (ties in time broken by id)."""
    ctx.require(Role.VIEWER)
    q = select(PromptDeadLetterRow).where(PromptDeadLetterRow.tenant_id == ctx.tenant_id)
    if status:
        q = q.where(PromptDeadLetterRow.status == status)
    q = q.order_by(PromptDeadLetterRow.created_at.desc(), PromptDeadLetterRow.id.desc())
    rows = (await session.scalars(page.apply(q))).all()
    return [_out(r) for r in rows]


async def get_dead_letter(session: AsyncSession, ctx: TenantContext, dl_id: str) -> DeadLetterOut:
    ctx.require(Role.VIEWER)
    row = await _row(session, ctx, dl_id)
    return _out(row)


async def _row(session: AsyncSession, ctx: TenantContext, dl_id: str) -> PromptDeadLetterRow:
    row = await session.scalar(
        select(PromptDeadLetterRow).where(
            PromptDeadLetterRow.id == dl_id, PromptDeadLetterRow.tenant_id == ctx.tenant_id
        )
    )
    if row is None:
        raise PromptDeadLetterNotFound(f"No dead letter '{dl_id}'.", details={"id": dl_id})
    return row


async def mark_attempt(
    db: Database,
    ctx: TenantContext,
    dl_id: str,
    *,
    ok: bool,
    result: dict[str, Any],
) -> DeadLetterOut:
    async with db.session() as s:
        row = await _row(s, ctx, dl_id)
        row.attempts += 1
        row.last_attempt_at = utcnow()
        row.result = result
        if ok:
            row.status = "replayed"
        return _out(row)
