"""Sharing inside a tenant: one model for every domain that shares a thing (workflow shares,
collection grants). A grant row names a ``kind`` and a ``subject``:

* ``user``: one principal (its id);
* ``role``: every principal of that role and of every role above it;
* ``tenant``: every principal of the tenant (subject ``*``).

A tenant admin (or a platform admin) manages everything of the tenant; anyone else manages
what it owns. Each domain keeps its own grant table and filters it by ``ctx.tenant_id``; the
conditions and checks are these, so shares and grants can never disagree.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_

from gasworks.errors import ValidationFailed
from gasworks.tenancy.context import Role, TenantContext

#: the subject of a ``tenant`` grant
EVERYONE = "*"


def is_manager(ctx: TenantContext) -> bool:
    """A tenant admin or a platform admin: sees and manages everything of the tenant."""
    return ctx.is_platform_admin or ctx.role.allows(Role.ADMIN)


def may_manage(ctx: TenantContext, owner_id: str) -> bool:
    """Whether the caller may change (share, unshare, delete) a thing ``owner_id`` owns."""
    return is_manager(ctx) or owner_id == ctx.principal_id


def reaches(ctx: TenantContext, kind: Any, subject: Any) -> Any:
    """SQL condition on a grant table's ``kind`` and ``subject`` columns: the grant reaches
    the caller (the caller's tenant is filtered by the table's own ``tenant_id``)."""
    return or_(
        kind == "tenant",
        (kind == "user") & (subject == ctx.principal_id),
        (kind == "role") & subject.in_([r.value for r in Role if ctx.role.allows(r)]),
    )


def grant_subject(kind: str, subject: str | None, *, noun: str) -> str:
    """The stored subject of a new grant (``*`` for the tenant); a user or role grant without
    a subject, or an unknown role, is VALIDATION_FAILED (``noun``: "share", "grant")."""
    if kind == "tenant":
        return EVERYONE
    if not subject:
        raise ValidationFailed(f"A user or role {noun} needs a subject.", details={"kind": kind})
    if kind == "role" and subject not in {r.value for r in Role}:
        raise ValidationFailed(
            f"Unknown role '{subject}'.", details={"roles": [r.value for r in Role]}
        )
    return subject
