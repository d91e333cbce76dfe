"""The prompt audit log: every create, move, rollback, canary step, archive and deletion."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gasworks.db.paging import ALL, Page
from gasworks.db.types import new_id, utcnow
from gasworks.prompts.schemas import AuditEntry
from gasworks.prompts.tables import PromptAuditRow
from gasworks.tenancy.context import Role, TenantContext


def write_audit(
    session: AsyncSession,
    tenant_id: str,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        PromptAuditRow(
            id=new_id("pau"),
            tenant_id=tenant_id,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            details=details or {},
            at=utcnow(),
        )
    )


async def list_audit(
    session: AsyncSession, ctx: TenantContext, *, object_id: str | None = None, page: Page = ALL
) -> list[AuditEntry]:
    """Newest first (ties in time broken by id, so pages neither repeat nor skip rows)."""
    ctx.require(Role.VIEWER)
    q = select(PromptAuditRow).where(PromptAuditRow.tenant_id == ctx.tenant_id)
    if object_id:
        q = q.where(PromptAuditRow.object_id == object_id)
    q = q.order_by(PromptAuditRow.at.desc(), PromptAuditRow.id.desc())
    rows = (await session.scalars(page.apply(q))).all()
    return [AuditEntry.model_validate(r, from_attributes=True) for r in rows]
