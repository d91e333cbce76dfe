"""The caller's identity, passed explicitly to every service function."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gasworks.errors import Forbidden


class Role(StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.ADMIN: 2, Role.OWNER: 3}


@dataclass(frozen=True, slots=True)
class TenantContext:
    """Who is calling, for which tenant. Every query a service runs is scoped by tenant_id."""

    tenant_id: str
    principal_id: str
    role: Role
    is_platform_admin: bool = False
    api_key_id: str | None = None
    tenant_name: str | None = None

    def require(self, needed: Role) -> None:
        """Raise FORBIDDEN unless the caller's role is at least ``needed``."""
        if not (self.is_platform_admin or self.role.allows(needed)):
            raise Forbidden(
                f"This action needs the '{needed.value}' role; your key has '{self.role.value}'.",
                details={"required_role": needed.value, "role": self.role.value},
            )

    def require_platform_admin(self) -> None:
        if not self.is_platform_admin:
            raise Forbidden(
                "This action needs a platform administrator key.",
                details={"required_role": "platform_admin"},
            )

    @classmethod
    def system(cls, tenant_id: str, tenant_name: str | None = None) -> TenantContext:
        """A context for operator tooling (the CLI) acting inside one tenant."""
        return cls(
            tenant_id=tenant_id,
            principal_id="system",
            role=Role.OWNER,
            is_platform_admin=True,
            tenant_name=tenant_name,
        )
