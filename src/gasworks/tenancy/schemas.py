"""What callers see of tenancy objects (never ORM rows, never key hashes)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from gasworks.apimodel import ApiModel
from gasworks.tenancy.context import Role

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class _Out(ApiModel):
    model_config = ConfigDict(from_attributes=True)


class TenantOut(_Out):
    id: str
    name: str
    display_name: str
    created_at: datetime


class TenantCreate(ApiModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Lower-case slug, unique.")
    display_name: str | None = Field(default=None, max_length=200)


class PrincipalOut(_Out):
    id: str
    tenant_id: str
    name: str
    kind: Literal["user", "service"]
    role: Role
    is_platform_admin: bool
    created_at: datetime


class PrincipalCreate(ApiModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: Literal["user", "service"] = "user"
    role: Role = Role.VIEWER


class ApiKeyOut(_Out):
    id: str
    tenant_id: str
    principal_id: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreate(ApiModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="api key", min_length=1, max_length=200)
    role: Role = Field(
        default=Role.VIEWER,
        description="Role of the service account created for this key (ignored when "
        "principal_id is given).",
    )
    principal_id: str | None = Field(
        default=None, description="Existing principal to issue the key to."
    )
    expires_at: datetime | None = None


class ApiKeyCreated(ApiModel):
    """Returned once, when a key is created: ``key`` is never shown again."""

    key: str
    api_key: ApiKeyOut
    principal: PrincipalOut
