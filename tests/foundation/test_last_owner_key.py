"""A tenant's last usable owner key cannot be revoked (it would lock the tenant out)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import auth


async def test_the_last_owner_key_is_not_revoked(client, tenant_a) -> None:
    r = await client.post(f"/api/keys/{tenant_a.owner_key_id}/revoke", headers=auth(tenant_a.owner))
    assert r.status_code == 409 and r.json()["error"]["code"] == "LAST_OWNER_KEY", r.text
    assert (await client.get("/api/me", headers=auth(tenant_a.owner))).status_code == 200

    # with a second owner key, either may go; then the remaining one is the last again
    r = await client.post(
        "/api/keys", json={"name": "spare", "role": "owner"}, headers=auth(tenant_a.owner)
    )
    assert r.status_code == 201, r.text
    spare, spare_id = r.json()["key"], r.json()["apiKey"]["id"]
    r = await client.post(f"/api/keys/{tenant_a.owner_key_id}/revoke", headers=auth(spare))
    assert r.status_code == 200 and r.json()["revokedAt"]
    q = "mutation($id: String!) { revokeApiKey(id: $id) { id } }"
    r = await client.post(
        "/graphql", json={"query": q, "variables": {"id": spare_id}}, headers=auth(spare)
    )
    assert r.json()["errors"][0]["extensions"]["code"] == "LAST_OWNER_KEY"
    assert (await client.get("/api/me", headers=auth(spare))).status_code == 200


async def test_an_expired_owner_key_does_not_count(client, runtime: Any, tenant_a) -> None:
    from sqlalchemy import update

    from gasworks.db.types import utcnow
    from gasworks.tenancy.tables import ApiKeyRow

    r = await client.post(
        "/api/keys", json={"name": "old", "role": "owner"}, headers=auth(tenant_a.owner)
    )
    old_id = r.json()["apiKey"]["id"]
    async with runtime.db.session() as s:
        await s.execute(update(ApiKeyRow).where(ApiKeyRow.id == old_id).values(expires_at=utcnow()))
    r = await client.post(f"/api/keys/{tenant_a.owner_key_id}/revoke", headers=auth(tenant_a.owner))
    assert r.status_code == 409 and r.json()["error"]["code"] == "LAST_OWNER_KEY"


async def test_the_operator_may_force_it(runtime: Any, tenant_a) -> None:
    """The recovery path is the operator's CLI (`gasworks keys create --role owner`); the
    CLI may also revoke the last key on purpose (`gasworks keys revoke --force`)."""
    from gasworks.errors import LastOwnerKey
    from gasworks.tenancy import service
    from gasworks.tenancy.context import TenantContext

    ctx = TenantContext.system(tenant_a.tenant_id)
    async with runtime.db.session() as s:
        with pytest.raises(LastOwnerKey):
            await service.revoke_api_key(s, ctx, tenant_a.owner_key_id)
        out = await service.revoke_api_key(s, ctx, tenant_a.owner_key_id, allow_last_owner=True)
    assert out.revoked_at is not None
