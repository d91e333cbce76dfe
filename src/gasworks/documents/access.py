"""Who may read what: collections by owner and grants (the workflows' sharing model), documents
through their collections. List, get, search and the VectorSearch node all use these same SQL
conditions, so they can never disagree.

* A tenant admin (or a platform admin) reads every collection and document of the tenant.
* A collection is readable by its owner and by grants: a principal (``user``), a role and
  every role above it (``role``), or the whole tenant (``tenant``).
* A document is readable by its uploader and through any readable collection it belongs to.
* Anything else answers NOT_FOUND exactly like a missing id.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gasworks.documents.tables import (
    CollectionDocumentRow,
    CollectionGrantRow,
    CollectionRow,
    DocumentRow,
)
from gasworks.errors import CollectionNotFound
from gasworks.retrieval.types import source_id
from gasworks.tenancy.context import Role, TenantContext


def is_manager(ctx: TenantContext) -> bool:
    return ctx.is_platform_admin or ctx.role.allows(Role.ADMIN)


def readable_collections(ctx: TenantContext) -> Any:
    """SQL condition on ``CollectionRow``: live collections of the caller's tenant it may read."""
    live = (CollectionRow.tenant_id == ctx.tenant_id) & CollectionRow.deleted_at.is_(None)
    if is_manager(ctx):
        return live
    granted = select(CollectionGrantRow.collection_id).where(
        CollectionGrantRow.tenant_id == ctx.tenant_id,
        or_(
            CollectionGrantRow.kind == "tenant",
            (CollectionGrantRow.kind == "user") & (CollectionGrantRow.subject == ctx.principal_id),
            (CollectionGrantRow.kind == "role")
            & CollectionGrantRow.subject.in_([r.value for r in Role if ctx.role.allows(r)]),
        ),
    )
    return live & or_(CollectionRow.owner_id == ctx.principal_id, CollectionRow.id.in_(granted))


def readable_documents(ctx: TenantContext) -> Any:
    """SQL condition on ``DocumentRow``: live documents of the caller's tenant it may read."""
    live = (DocumentRow.tenant_id == ctx.tenant_id) & DocumentRow.deleted_at.is_(None)
    if is_manager(ctx):
        return live
    via = (
        select(CollectionDocumentRow.document_id)
        .join(CollectionRow, CollectionRow.id == CollectionDocumentRow.collection_id)
        .where(readable_collections(ctx))
    )
    return live & or_(DocumentRow.created_by == ctx.principal_id, DocumentRow.id.in_(via))


async def collection_row(session: AsyncSession, ctx: TenantContext, ref: str) -> CollectionRow:
    """A readable collection by id or name, else COLLECTION_NOT_FOUND."""
    row = await session.scalar(
        select(CollectionRow).where(
            readable_collections(ctx), or_(CollectionRow.id == ref, CollectionRow.name == ref)
        )
    )
    if row is None:
        raise CollectionNotFound("Collection not found.", details={"collection": ref})
    return row


async def allowed_sources(
    session: AsyncSession, ctx: TenantContext, collections: Collection[str] | None = None
) -> set[str]:
    """The active source ids (``source_id(document, generation)``) the caller may retrieve:
    ready documents it may read, in ``collections`` (ids or names, each readable, else
    COLLECTION_NOT_FOUND) when given. Computed here, never taken from the request."""
    q = select(DocumentRow.id, DocumentRow.generation).where(
        readable_documents(ctx), DocumentRow.generation.is_not(None)
    )
    if collections is not None:
        ids = [(await collection_row(session, ctx, ref)).id for ref in collections]
        q = q.where(
            DocumentRow.id.in_(
                select(CollectionDocumentRow.document_id).where(
                    CollectionDocumentRow.collection_id.in_(ids)
                )
            )
        )
    rows = (await session.execute(q)).all()
    return {source_id(doc, gen) for doc, gen in rows if gen is not None}
