"""Console pages in process on both databases (the browser tests drive the pages)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx

from gasworks.tenancy import service
from gasworks.tenancy.context import Role, TenantContext
from gasworks.tenancy.schemas import PrincipalCreate, TenantCreate
from tests.console.test_sessions import _ctx, _sign_in


async def test_actors_show_as_names_scoped_like_the_api(
    client: httpx.AsyncClient, runtime: Any, admin_key: str
) -> None:
    admin = await _ctx(runtime, admin_key)
    async with runtime.db.session() as s:
        bob = await service.create_principal(s, admin, PrincipalCreate(name="bob"))
        elsewhere = await service.create_tenant(s, admin, TenantCreate(name="elsewhere"))
        eve = await service.create_principal(
            s, TenantContext.system(elsewhere.id, elsewhere.name), PrincipalCreate(name="eve")
        )
    ids = [admin.principal_id, bob.id, eve.id, "nobody"]
    tenant_admin = replace(admin, is_platform_admin=False, role=Role.ADMIN)
    async with runtime.db.session() as s:
        # a tenant's caller learns its own tenant's names only; another tenant's id is unknown
        assert await service.principal_names(s, tenant_admin, ids) == {
            admin.principal_id: "admin",
            bob.id: "bob",
        }
        # a platform admin (breakers are shared) sees every tenant's
        assert (await service.principal_names(s, admin, ids))[eve.id] == "eve"

    csrf = await _sign_in(client, admin_key)
    budget = {"period": "day", "costLimit": "5"}
    r = await client.put("/api/budgets", json=budget, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    page = (await client.get("/console/spend")).text
    # the name, with the raw id on hover
    assert f'<span title="{admin.principal_id}">admin</span>' in page


async def test_the_overview_shows_the_background_tasks(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    await _sign_in(client, admin_key)
    page = (await client.get("/console")).text
    assert "Background tasks" in page
    loops = (
        "leader-lease",
        "models-refresh",
        "prompt-invalidations",
        "prompt-retention",
        "workflow-run-leases",
        "documents-reconcile",
    )
    for loop in loops:
        assert f'<td class="mono">{loop}</td>' in page
