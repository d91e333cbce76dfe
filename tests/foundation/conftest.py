"""Helpers for the foundation suites: tenants with keys of a given role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class TenantKeys:
    tenant_id: str
    name: str
    owner: str
    admin: str
    viewer: str
    owner_key_id: str
    admin_key_id: str
    viewer_key_id: str


async def make_tenant(runtime: Any, name: str) -> TenantKeys:
    """A tenant (not platform-admin) with an owner, an admin and a viewer key."""
    from gasworks.tenancy import service
    from gasworks.tenancy.context import Role, TenantContext
    from gasworks.tenancy.schemas import ApiKeyCreate, TenantCreate

    async with runtime.db.session() as s:
        t = await service.create_tenant(s, TenantContext.system("-"), TenantCreate(name=name))
        ctx = TenantContext(tenant_id=t.id, principal_id="system", role=Role.OWNER)
        made = {
            role: await service.create_api_key(s, ctx, ApiKeyCreate(name=role.value, role=role))
            for role in (Role.OWNER, Role.ADMIN, Role.VIEWER)
        }
    return TenantKeys(
        tenant_id=t.id,
        name=name,
        owner=made[Role.OWNER].key,
        admin=made[Role.ADMIN].key,
        viewer=made[Role.VIEWER].key,
        owner_key_id=made[Role.OWNER].api_key.id,
        admin_key_id=made[Role.ADMIN].api_key.id,
        viewer_key_id=made[Role.VIEWER].api_key.id,
    )


@pytest.fixture
async def tenant_a(runtime: Any) -> TenantKeys:
    return await make_tenant(runtime, "tenant-a")


@pytest.fixture
async def tenant_b(runtime: Any) -> TenantKeys:
    return await make_tenant(runtime, "tenant-b")
