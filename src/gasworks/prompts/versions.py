"""Immutable, content-hashed prompt versions: create (deduplicated), read (verified), archive,
diff. Small content is stored inline; larger content in the encrypted blob store under
``<tenant>/prompt-content/<sha256>``. Every read recomputes the SHA-256 and refuses a mismatch.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gasworks.blobs.types import BlobStore, blob_key
from gasworks.db.paging import ALL, Page
from gasworks.db.types import new_id, utcnow
from gasworks.errors import PromptIntegrityError, PromptVersionInUse, PromptVersionNotFound
from gasworks.observability.logging import get_logger
from gasworks.prompts.audit import write_audit
from gasworks.prompts.content import PromptContent, canonical_bytes, describe, sha256_hex
from gasworks.prompts.schemas import VersionCreate, VersionDiff, VersionOut, VersionSummary
from gasworks.prompts.tables import PromptPointerRow, PromptVersionRow
from gasworks.tenancy.context import Role, TenantContext

log = get_logger("gasworks.prompts.versions")

BLOB_KIND = "prompt-content"


@dataclass
class ContentStore:
    """Where content bytes live, and the hash check every read goes through."""

    blobs: BlobStore
    inline_max_bytes: int = 64 * 1024

    async def load(self, row: PromptVersionRow) -> PromptContent:
        return await self.load_fields(
            row.id, row.storage, row.content, row.blob_key, row.content_hash
        )

    async def load_fields(
        self,
        version_id: str,
        storage: str,
        inline: str | None,
        key: str | None,
        digest: str,
    ) -> PromptContent:
        """Read content and verify its SHA-256: a mismatch raises, the content is not used."""
        if storage == "inline":
            data = (inline or "").encode("utf-8")
        else:
            data = await self.blobs.get(key or "")
        if sha256_hex(data) != digest:
            log.error("prompt.hash_mismatch", version_id=version_id, storage=storage)
            raise PromptIntegrityError(
                "Stored prompt content does not match its SHA-256; it was not served.",
                details={"versionId": version_id, "storage": storage},
            )
        try:
            return PromptContent.model_validate_json(data)
        except ValidationError as exc:
            raise PromptIntegrityError(
                "Stored prompt content is unreadable; it was not served.",
                details={"versionId": version_id},
            ) from exc


def summary(row: PromptVersionRow) -> VersionSummary:
    return VersionSummary.model_validate(row, from_attributes=True)


def _out(row: PromptVersionRow, content: PromptContent, created: bool) -> VersionOut:
    return VersionOut(**summary(row).model_dump(), content=content, created=created)


async def version_row(session: AsyncSession, tenant_id: str, version_id: str) -> PromptVersionRow:
    """The tenant's version; another tenant's id answers exactly like a missing one."""
    row = await session.scalar(
        select(PromptVersionRow).where(
            PromptVersionRow.id == version_id, PromptVersionRow.tenant_id == tenant_id
        )
    )
    if row is None:
        raise PromptVersionNotFound(
            f"No prompt version '{version_id}'.", details={"versionId": version_id}
        )
    return row


async def create_version(
    session: AsyncSession, ctx: TenantContext, store: ContentStore, data: VersionCreate
) -> VersionOut:
    ctx.require(Role.EDITOR)
    raw = canonical_bytes(data.content)
    digest = sha256_hex(raw)

    async def existing() -> PromptVersionRow | None:
        return await session.scalar(
            select(PromptVersionRow).where(
                PromptVersionRow.tenant_id == ctx.tenant_id,
                PromptVersionRow.name == data.name,
                PromptVersionRow.content_hash == digest,
            )
        )

    found = await existing()
    if found is not None:
        return _out(found, await store.load(found), created=False)
    inline = len(raw) <= store.inline_max_bytes
    key = None if inline else blob_key(ctx.tenant_id, BLOB_KIND, digest)
    if key is not None:
        await store.blobs.put(key, raw)  # content-addressed: a retry or a race rewrites the same
    for _attempt in range(5):
        number = (
            await session.scalar(
                select(func.max(PromptVersionRow.number)).where(
                    PromptVersionRow.tenant_id == ctx.tenant_id,
                    PromptVersionRow.name == data.name,
                )
            )
            or 0
        ) + 1
        row = PromptVersionRow(
            id=new_id("pv"),
            tenant_id=ctx.tenant_id,
            name=data.name,
            number=number,
            content_hash=digest,
            size_bytes=len(raw),
            storage="inline" if inline else "blob",
            content=raw.decode("utf-8") if inline else None,
            blob_key=key,
            author=ctx.principal_id,
            message=data.message,
            created_at=utcnow(),
        )
        try:
            async with session.begin_nested():
                session.add(row)
        except IntegrityError:
            found = await existing()  # the same content saved concurrently
            if found is not None:
                return _out(found, data.content, created=False)
            continue  # the number was taken: try the next one
        write_audit(
            session,
            ctx.tenant_id,
            ctx.principal_id,
            "create",
            "version",
            row.id,
            {"name": row.name, "number": number, "contentHash": digest, "storage": row.storage},
        )
        return _out(row, data.content, created=True)
    raise PromptVersionInUse("Too many concurrent saves of this prompt; try again.")


async def get_version(
    session: AsyncSession, ctx: TenantContext, store: ContentStore, version_id: str
) -> VersionOut:
    ctx.require(Role.VIEWER)
    row = await version_row(session, ctx.tenant_id, version_id)
    return _out(row, await store.load(row), created=False)


async def list_versions(
    session: AsyncSession,
    ctx: TenantContext,
    *,
    name: str | None = None,
    include_archived: bool = False,
    page: Page = ALL,
) -> list[VersionSummary]:
    """By name, newest first per name ((tenant, name, number) is unique)."""
    ctx.require(Role.VIEWER)
    q = select(PromptVersionRow).where(PromptVersionRow.tenant_id == ctx.tenant_id)
    if name is not None:
        q = q.where(PromptVersionRow.name == name)
    if not include_archived:
        q = q.where(PromptVersionRow.archived_at.is_(None))
    q = q.order_by(PromptVersionRow.name, PromptVersionRow.number.desc())
    rows = (await session.scalars(page.apply(q))).all()
    return [summary(r) for r in rows]


async def archive_version(
    session: AsyncSession, ctx: TenantContext, version_id: str
) -> VersionSummary:
    """Archive a version (kept until the retention job deletes it). Active and canary versions
    of a pointer cannot be archived; a pointer's previous version can (rollback still works)."""
    ctx.require(Role.EDITOR)
    row = await version_row(session, ctx.tenant_id, version_id)
    in_use = await session.scalar(
        select(PromptPointerRow.id)
        .where(
            (PromptPointerRow.active_version_id == version_id)
            | (PromptPointerRow.canary_version_id == version_id)
        )
        .limit(1)
    )
    if in_use is not None:
        raise PromptVersionInUse(
            "This version is live on a pointer; move the pointer first.",
            details={"versionId": version_id, "pointerId": in_use},
        )
    if row.archived_at is None:
        row.archived_at = utcnow()
        write_audit(session, ctx.tenant_id, ctx.principal_id, "archive", "version", row.id)
    return summary(row)


async def diff_versions(
    session: AsyncSession, ctx: TenantContext, store: ContentStore, a: str, b: str
) -> VersionDiff:
    ctx.require(Role.VIEWER)
    ra, rb = (
        await version_row(session, ctx.tenant_id, a),
        await version_row(session, ctx.tenant_id, b),
    )
    ca, cb = await store.load(ra), await store.load(rb)
    lines = difflib.unified_diff(
        describe(ca).splitlines(keepends=True),
        describe(cb).splitlines(keepends=True),
        fromfile=f"{ra.name} v{ra.number} ({ra.id})",
        tofile=f"{rb.name} v{rb.number} ({rb.id})",
    )
    text = "".join(lines)
    return VersionDiff(from_version_id=a, to_version_id=b, identical=not text, diff=text)
