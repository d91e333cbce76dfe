"""Who may read what: collections by owner and grants (``tenancy.grants``, the sharing model
of workflows too), documents through their collections. List, get, search and the
VectorSearch node all use these same SQL conditions, so they can never disagree.

* A tenant admin (or a platform admin) reads every collection and document of the tenant.
* A collection is readable by its owner and by grants: a principal (``user``), a role and
  every role above it (``role``), or the whole tenant (``tenant``).
* A document is readable by its uploader and through any readable collection it belongs to.
* Anything else answers NOT_FOUND exactly like a missing id.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gasworks.db.engine import Database
from gasworks.documents.tables import (
    CollectionDocumentRow,
    CollectionGrantRow,
    CollectionRow,
    DocumentRow,
)
from gasworks.errors import CollectionNotFound
from gasworks.retrieval.types import AllowedSources, source_id
from gasworks.tenancy.context import Role, TenantContext
from gasworks.tenancy.grants import is_manager, reaches


def readable_collections(ctx: TenantContext) -> Any:
    """SQL condition on ``CollectionRow``: live collections of the caller's tenant it may read."""
    live = (CollectionRow.tenant_id == ctx.tenant_id) & CollectionRow.deleted_at.is_(None)
    if is_manager(ctx):
        return live
    granted = select(CollectionGrantRow.collection_id).where(
        CollectionGrantRow.tenant_id == ctx.tenant_id,
        reaches(ctx, CollectionGrantRow.kind, CollectionGrantRow.subject),
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


def _by_ref(ctx: TenantContext, ref: str) -> Any:
    """SQL condition on ``CollectionRow``: a readable collection with id or name ``ref``."""
    return readable_collections(ctx) & or_(CollectionRow.id == ref, CollectionRow.name == ref)


def _not_found(ref: str) -> CollectionNotFound:
    return CollectionNotFound("Collection not found.", details={"collection": ref})


async def collection_row(session: AsyncSession, ctx: TenantContext, ref: str) -> CollectionRow:
    """A readable collection by id or name, else COLLECTION_NOT_FOUND."""
    row = await session.scalar(select(CollectionRow).where(_by_ref(ctx, ref)))
    if row is None:
        raise _not_found(ref)
    return row


#: a live collection of the tenant by id or name, built once: what a manager (who reads every
#: collection of the tenant, ``readable_collections``) may upload into; the other callers'
#: conditions depend on their grants and are built per call
_MANAGED_BY_REF = (
    select(CollectionRow.id)
    .where(
        CollectionRow.tenant_id == bindparam("tenant"),
        CollectionRow.deleted_at.is_(None),
        or_(CollectionRow.id == bindparam("ref"), CollectionRow.name == bindparam("ref")),
    )
    .limit(1)
)


async def collection_ids(db: Database, ctx: TenantContext, refs: Sequence[str]) -> list[str]:
    """The ids of readable collections by id or name (each, else COLLECTION_NOT_FOUND), in
    one read-only snapshot (``Database.read_now``: on a SQLite file no hand-off to the
    driver's thread): what an upload checks before it streams the file. A manager's (most
    uploads: an admin's key) into one collection is one statement built once
    (``Database.read_first``)."""
    if not refs:
        return []
    if len(refs) == 1 and is_manager(ctx):  # one statement: its own snapshot
        first = await db.read_first(_MANAGED_BY_REF, {"tenant": ctx.tenant_id, "ref": refs[0]})
        found: list[Sequence[Any]] = [[] if first is None else [first]]
    else:
        found = await db.read_now(
            *(select(CollectionRow.id).where(_by_ref(ctx, ref)).limit(1) for ref in refs)
        )
    out = []
    for ref, rows in zip(refs, found, strict=True):
        if not rows:
            raise _not_found(ref)
        out.append(str(rows[0][0]))
    return out


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


async def context_of(
    session: AsyncSession, tenant_id: str, principal_id: str | None
) -> TenantContext | None:
    """The context of a principal of the tenant (its role decides role grants), or ``None``."""
    from gasworks.tenancy.tables import PrincipalRow

    if principal_id is None:
        return None
    operator = TenantContext.system(tenant_id)
    if principal_id == operator.principal_id:  # the CLI in-process (never an issued id)
        return operator
    row = await session.scalar(
        select(PrincipalRow).where(
            PrincipalRow.tenant_id == tenant_id, PrincipalRow.id == principal_id
        )
    )
    if row is None:
        return None
    return TenantContext(
        tenant_id=tenant_id,
        principal_id=row.id,
        role=Role(row.role),
        is_platform_admin=row.is_platform_admin,
    )


async def readable_collection_keys(
    session: AsyncSession, tenant_id: str, principal_id: str | None
) -> set[str]:
    """Ids and names of the live collections a principal of the tenant may read."""
    ctx = await context_of(session, tenant_id, principal_id)
    if ctx is None:
        return set()
    rows = await session.execute(
        select(CollectionRow.id, CollectionRow.name).where(readable_collections(ctx))
    )
    return {key for row in rows.all() for key in row}


async def allowed_set(
    session: AsyncSession,
    tenant_id: str,
    principal_id: str | None,
    *,
    collections: Collection[str] | None = None,
    documents: Collection[str] | None = None,
) -> AllowedSources:
    """``SourceScope.allowed``: unknown or unreadable collections and
    documents contribute nothing (search must not become an oracle for names)."""
    ctx = await context_of(session, tenant_id, principal_id)
    if ctx is None:
        return AllowedSources(frozenset())
    q = select(DocumentRow.id, DocumentRow.generation, DocumentRow.name).where(
        readable_documents(ctx), DocumentRow.generation.is_not(None)
    )
    if collections is not None:
        cols = select(CollectionRow.id).where(
            readable_collections(ctx),
            or_(CollectionRow.id.in_(list(collections)), CollectionRow.name.in_(list(collections))),
        )
        q = q.where(
            DocumentRow.id.in_(
                select(CollectionDocumentRow.document_id).where(
                    CollectionDocumentRow.collection_id.in_(cols)
                )
            )
        )
    if documents is not None:
        q = q.where(DocumentRow.id.in_(list(documents)))
    by_source: dict[str, str] = {}
    names: dict[str, str] = {}
    for doc, gen, name in (await session.execute(q)).all():
        if gen is not None:
            by_source[source_id(doc, gen)] = doc
            names[doc] = name
    return AllowedSources(frozenset(by_source), by_source, names)
