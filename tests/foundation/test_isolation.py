"""Tenant isolation through the HTTP API (REST and GraphQL).

A key of tenant A can neither read, list, change nor learn of tenant B's objects: another
tenant's object answers exactly like a missing one.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import auth

MISSING = {
    "tenant": "ten_00000000000000000000000000000000",
    "key": "key_00000000000000000000000000000000",
    "principal": "prn_00000000000000000000000000000000",
}


def _comparable(r: Any, real_id: str, missing_id: str) -> tuple[int, Any]:
    """Status and body with the requestId dropped and the asked-for id normalised."""
    body = r.json()
    body["error"].pop("requestId")
    text = json.dumps(body, sort_keys=True)
    return r.status_code, text.replace(real_id, "<id>").replace(missing_id, "<id>")


async def _same_as_missing(client: Any, key: str, method: str, path: str, real: str, kind: str):
    missing = MISSING[kind]
    r_real = await client.request(method, path.format(id=real), headers=auth(key))
    r_missing = await client.request(method, path.format(id=missing), headers=auth(key))
    assert r_real.status_code == 404, r_real.text
    assert r_real.json()["error"]["code"] == "NOT_FOUND"
    assert _comparable(r_real, real, missing) == _comparable(r_missing, real, missing)
    assert r_real.headers.keys() == r_missing.headers.keys()


async def test_cannot_read_another_tenants_tenant(client, tenant_a, tenant_b):
    await _same_as_missing(
        client, tenant_a.owner, "GET", "/api/tenants/{id}", tenant_b.tenant_id, "tenant"
    )


async def test_can_read_own_tenant(client, tenant_a):
    r = await client.get(f"/api/tenants/{tenant_a.tenant_id}", headers=auth(tenant_a.viewer))
    assert r.status_code == 200
    assert r.json()["name"] == "tenant-a"


async def test_cannot_read_another_tenants_key(client, tenant_a, tenant_b):
    await _same_as_missing(
        client, tenant_a.owner, "GET", "/api/keys/{id}", tenant_b.viewer_key_id, "key"
    )


async def test_cannot_revoke_another_tenants_key(client, tenant_a, tenant_b):
    await _same_as_missing(
        client, tenant_a.owner, "POST", "/api/keys/{id}/revoke", tenant_b.viewer_key_id, "key"
    )
    # and B's key still works
    assert (await client.get("/api/me", headers=auth(tenant_b.viewer))).status_code == 200


async def test_cannot_issue_a_key_to_another_tenants_principal(client, tenant_a, tenant_b):
    b_principals = (await client.get("/api/principals", headers=auth(tenant_b.admin))).json()
    b_viewer = next(p for p in b_principals if p["role"] == "viewer")

    async def issue(pid: str) -> Any:
        return await client.post(
            "/api/keys", json={"name": "x", "principal_id": pid}, headers=auth(tenant_a.owner)
        )

    r_real, r_missing = await issue(b_viewer["id"]), await issue(MISSING["principal"])
    assert r_real.status_code == 404
    assert _comparable(r_real, b_viewer["id"], MISSING["principal"]) == _comparable(
        r_missing, b_viewer["id"], MISSING["principal"]
    )


@pytest.mark.parametrize("path", ["/api/tenants", "/api/principals", "/api/keys"])
async def test_lists_hold_only_own_tenant(client, tenant_a, tenant_b, path):
    r = await client.get(path, headers=auth(tenant_a.owner))
    assert r.status_code == 200
    text = r.text
    assert tenant_b.tenant_id not in text
    assert "tenant-b" not in text
    owner_field = "id" if path == "/api/tenants" else "tenantId"
    assert r.json()
    assert {item[owner_field] for item in r.json()} == {tenant_a.tenant_id}


async def test_key_list_does_not_reveal_other_tenants_keys(client, tenant_a, tenant_b):
    ids = {k["id"] for k in (await client.get("/api/keys", headers=auth(tenant_a.owner))).json()}
    assert ids == {tenant_a.owner_key_id, tenant_a.admin_key_id, tenant_a.viewer_key_id}


async def test_platform_admin_sees_every_tenant(client, admin_key, tenant_a, tenant_b):
    names = {t["name"] for t in (await client.get("/api/tenants", headers=auth(admin_key))).json()}
    assert {"default", "tenant-a", "tenant-b"} <= names


# --- GraphQL --------------------------------------------------------------------------------


async def _gql(client: Any, key: str, query: str, **variables: Any) -> dict[str, Any]:
    r = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=auth(key)
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_graphql_lists_hold_only_own_tenant(client, tenant_a, tenant_b):
    out = await _gql(
        client,
        tenant_a.owner,
        "{ tenants { id name } principals { id } apiKeys { id } me { tenantId } }",
    )
    data = out["data"]
    assert [t["name"] for t in data["tenants"]] == ["tenant-a"]
    assert {k["id"] for k in data["apiKeys"]} == {
        tenant_a.owner_key_id,
        tenant_a.admin_key_id,
        tenant_a.viewer_key_id,
    }
    assert len(data["principals"]) == 3
    assert data["me"]["tenantId"] == tenant_a.tenant_id
    assert tenant_b.tenant_id not in str(out)


async def test_graphql_cannot_revoke_another_tenants_key(client, tenant_a, tenant_b):
    q = "mutation($id: String!) { revokeApiKey(id: $id) { id revokedAt } }"
    real = await _gql(client, tenant_a.owner, q, id=tenant_b.viewer_key_id)
    missing = await _gql(client, tenant_a.owner, q, id=MISSING["key"])
    for out in (real, missing):
        assert out["data"] is None
        assert out["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    strip = [
        {**e, "extensions": {k: v for k, v in e["extensions"].items() if k != "requestId"}}
        for e in real["errors"]
    ]
    strip_missing = [
        {**e, "extensions": {k: v for k, v in e["extensions"].items() if k != "requestId"}}
        for e in missing["errors"]
    ]
    assert str(strip).replace(tenant_b.viewer_key_id, "<id>") == str(strip_missing).replace(
        MISSING["key"], "<id>"
    )
    assert (await client.get("/api/me", headers=auth(tenant_b.viewer))).status_code == 200


async def test_graphql_requires_authentication(client):
    r = await client.post("/graphql", json={"query": "{ me { tenantId } }"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "UNAUTHENTICATED"
