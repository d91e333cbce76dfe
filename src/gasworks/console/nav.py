"""The console's sections, in menu order: the one place a new page is added.

A section is shown to a caller who may use it (the pages themselves still ask the services,
which enforce roles; hiding a link is a courtesy, not the check).
"""

from __future__ import annotations

from dataclasses import dataclass

from gasworks.tenancy.context import Role, TenantContext


@dataclass(frozen=True, slots=True)
class Section:
    id: str
    title: str
    href: str
    #: the least role that can use the section (platform admins see everything)
    role: Role = Role.VIEWER


SECTIONS: tuple[Section, ...] = (
    Section("overview", "Overview", "/console"),
    Section("models", "Models", "/console/models"),
    Section("spend", "Spend", "/console/spend"),
    Section("prompts", "Prompts", "/console/prompts"),
    Section("workflows", "Workflows", "/console/workflows"),
    Section("documents", "Documents", "/console/documents"),
    Section("collections", "Collections", "/console/collections"),
    Section("tenancy", "Tenants & keys", "/console/tenancy", Role.ADMIN),
)


def sections(ctx: TenantContext) -> list[Section]:
    return [s for s in SECTIONS if ctx.is_platform_admin or ctx.role.allows(s.role)]
