"""The retention job: delete archived versions nothing needs any more.

A version is deleted when it was archived more than ``days`` ago, no pointer references it
(active, previous or canary), and no pointer-history entry younger than ``days`` names it. Its
blob is deleted too unless another version row shares the content-addressed blob key. History
rows keep the deleted version's id; each deletion is audited.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, union

from gasworks.blobs.types import BlobStore
from gasworks.db.engine import Database
from gasworks.db.types import utcnow
from gasworks.observability.logging import get_logger
from gasworks.prompts.audit import write_audit
from gasworks.prompts.schemas import RetentionReport
from gasworks.prompts.tables import (
    PromptPointerHistoryRow,
    PromptPointerRow,
    PromptVersionRow,
)
from gasworks.tenancy.context import TenantContext

log = get_logger("gasworks.prompts.retention")


async def run_retention(
    db: Database,
    blobs: BlobStore,
    ctx: TenantContext,
    *,
    days: int,
    dry_run: bool = False,
    now: datetime | None = None,
) -> RetentionReport:
    ctx.require_platform_admin()
    cutoff = (now or utcnow()) - timedelta(days=days)
    v, p, h = PromptVersionRow, PromptPointerRow, PromptPointerHistoryRow
    freed_blobs: list[str] = []
    async with db.session() as s:
        candidates = (
            await s.scalars(select(v).where(v.archived_at.is_not(None), v.archived_at < cutoff))
        ).all()
        needed_q: Any = union(
            select(p.active_version_id),
            select(p.previous_version_id).where(p.previous_version_id.is_not(None)),
            select(p.canary_version_id).where(p.canary_version_id.is_not(None)),
            select(h.from_version_id).where(h.at >= cutoff, h.from_version_id.is_not(None)),
            select(h.to_version_id).where(h.at >= cutoff, h.to_version_id.is_not(None)),
            select(h.canary_version_id).where(h.at >= cutoff, h.canary_version_id.is_not(None)),
        )
        needed = {r[0] for r in (await s.execute(needed_q)).all()}
        doomed = [row for row in candidates if row.id not in needed]
        if not dry_run and doomed:
            ids = [row.id for row in doomed]
            await s.execute(delete(v).where(v.id.in_(ids)))
            for row in doomed:
                write_audit(
                    s,
                    row.tenant_id,
                    ctx.principal_id,
                    "delete",
                    "version",
                    row.id,
                    {"name": row.name, "number": row.number, "reason": "retention"},
                )
            keys = {row.blob_key for row in doomed if row.blob_key}
            if keys:
                still = set((await s.scalars(select(v.blob_key).where(v.blob_key.in_(keys)))).all())
                freed_blobs = sorted(keys - still)
    for key in freed_blobs:
        try:
            await blobs.delete(key)
        except Exception as exc:  # an orphan blob is harmless; log it for the operator
            log.warning(
                "prompt.retention.blob_delete_failed", key=key, error_type=type(exc).__name__
            )
    return RetentionReport(
        deleted=[row.id for row in doomed],
        kept_in_use=len(candidates) - len(doomed),
        dry_run=dry_run,
    )
