"""Authentication, roles and API key storage, through the HTTP API."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update

from gasworks.tenancy.tables import ApiKeyRow
from tests.conftest import auth


def _unauthenticated(r: Any) -> None:
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "UNAUTHENTICATED"


async def test_missing_key_is_401(client):
    _unauthenticated(await client.get("/api/me"))


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "gw_abc", "Token gw_x_y"],
)
async def test_malformed_authorization_is_401(client, header):
    _unauthenticated(await client.get("/api/me", headers={"Authorization": header}))


@pytest.mark.parametrize(
    "key",
    [
        "not-a-gasworks-key",
        "gw_" + "a" * 12 + "_" + "b" * 40,  # well-formed, unknown prefix
        "gw_short_secret",
    ],
)
async def test_unknown_key_is_401(client, admin_key, key):
    _unauthenticated(await client.get("/api/me", headers=auth(key)))


async def test_right_prefix_wrong_secret_is_401(client, admin_key):
    prefix = admin_key.split("_")[1]
    forged = f"gw_{prefix}_{'Z' * 40}"
    _unauthenticated(await client.get("/api/me", headers=auth(forged)))


async def test_valid_key_authenticates(client, admin_key):
    r = await client.get("/api/me", headers=auth(admin_key))
    assert r.status_code == 200
    me = r.json()
    assert me["tenantName"] == "default"
    assert me["role"] == "owner"
    assert me["isPlatformAdmin"] is True


async def test_scheme_is_case_insensitive(client, admin_key):
    r = await client.get("/api/me", headers={"Authorization": f"bearer {admin_key}"})
    assert r.status_code == 200


async def test_revoked_key_is_401(client, tenant_a):
    assert (await client.get("/api/me", headers=auth(tenant_a.viewer))).status_code == 200
    r = await client.post(
        f"/api/keys/{tenant_a.viewer_key_id}/revoke", headers=auth(tenant_a.admin)
    )
    assert r.status_code == 200
    assert r.json()["revokedAt"] is not None
    _unauthenticated(await client.get("/api/me", headers=auth(tenant_a.viewer)))


async def test_revocation_is_idempotent(client, tenant_a):
    path = f"/api/keys/{tenant_a.viewer_key_id}/revoke"
    first = (await client.post(path, headers=auth(tenant_a.admin))).json()
    second = (await client.post(path, headers=auth(tenant_a.admin))).json()
    assert first["revokedAt"] == second["revokedAt"]


async def test_expired_key_is_401(client, runtime, tenant_a):
    async with runtime.db.session() as s:
        await s.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.id == tenant_a.viewer_key_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    _unauthenticated(await client.get("/api/me", headers=auth(tenant_a.viewer)))


async def test_key_with_future_expiry_works(client, tenant_a):
    expires = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    r = await client.post(
        "/api/keys",
        json={"name": "temp", "role": "viewer", "expires_at": expires},
        headers=auth(tenant_a.admin),
    )
    assert r.status_code == 201, r.text
    assert r.json()["apiKey"]["expiresAt"] is not None
    assert (await client.get("/api/me", headers=auth(r.json()["key"]))).status_code == 200


@pytest.mark.parametrize("expires", ["2001-01-01T00:00:00Z", "2099-01-01T00:00:00"])
async def test_past_or_naive_expiry_is_rejected(client, tenant_a, expires):
    r = await client.post(
        "/api/keys",
        json={"name": "temp", "expires_at": expires},
        headers=auth(tenant_a.admin),
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "VALIDATION_FAILED"


async def test_cached_key_stops_working_at_expiry(settings, tenant_a):
    """The auth cache must not extend a key's life past its expiry."""
    from gasworks.api.auth import Authenticator
    from gasworks.errors import Unauthenticated
    from gasworks.wiring import build_runtime

    rt = build_runtime(settings)
    try:
        authn = Authenticator(rt.db, ttl=3600, touch_every=3600)
        async with rt.db.session() as s:
            await s.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.id == tenant_a.viewer_key_id)
                .values(expires_at=datetime.now(UTC) + timedelta(hours=1))
            )
        await authn.authenticate(f"Bearer {tenant_a.viewer}")  # cached now
        authn.clock = lambda: datetime.now(UTC) + timedelta(hours=2)
        with pytest.raises(Unauthenticated):
            await authn.authenticate(f"Bearer {tenant_a.viewer}")
    finally:
        await rt.db.dispose()


# --- roles --------------------------------------------------------------------------------


def _forbidden(r: Any) -> None:
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "FORBIDDEN"


async def test_viewer_cannot_create_keys(client, tenant_a):
    _forbidden(await client.post("/api/keys", json={"name": "x"}, headers=auth(tenant_a.viewer)))


async def test_viewer_cannot_list_keys(client, tenant_a):
    _forbidden(await client.get("/api/keys", headers=auth(tenant_a.viewer)))


async def test_viewer_can_list_principals(client, tenant_a):
    r = await client.get("/api/principals", headers=auth(tenant_a.viewer))
    assert r.status_code == 200
    assert len(r.json()) == 3


async def test_admin_cannot_grant_owner(client, tenant_a):
    r = await client.post(
        "/api/keys", json={"name": "x", "role": "owner"}, headers=auth(tenant_a.admin)
    )
    _forbidden(r)
    assert r.json()["error"]["details"]["role"] == "owner"
    r = await client.post(
        "/api/principals", json={"name": "boss", "role": "owner"}, headers=auth(tenant_a.admin)
    )
    _forbidden(r)


async def test_admin_cannot_issue_key_to_an_owner_principal(client, tenant_a):
    principals = (await client.get("/api/principals", headers=auth(tenant_a.admin))).json()
    owner = next(p for p in principals if p["role"] == "owner")
    r = await client.post(
        "/api/keys", json={"name": "x", "principal_id": owner["id"]}, headers=auth(tenant_a.admin)
    )
    _forbidden(r)


async def test_admin_can_grant_admin_and_owner_can_grant_owner(client, tenant_a):
    r = await client.post(
        "/api/keys", json={"name": "x", "role": "admin"}, headers=auth(tenant_a.admin)
    )
    assert r.status_code == 201
    r = await client.post(
        "/api/keys", json={"name": "y", "role": "owner"}, headers=auth(tenant_a.owner)
    )
    assert r.status_code == 201


async def test_only_platform_admin_creates_tenants(client, tenant_a, admin_key):
    _forbidden(await client.post("/api/tenants", json={"name": "x"}, headers=auth(tenant_a.owner)))
    r = await client.post("/api/tenants", json={"name": "fresh"}, headers=auth(admin_key))
    assert r.status_code == 201
    r = await client.post("/api/tenants", json={"name": "fresh"}, headers=auth(admin_key))
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "ALREADY_EXISTS"


async def test_duplicate_principal_name_is_409(client, tenant_a):
    body = {"name": "alice", "role": "viewer"}
    assert (
        await client.post("/api/principals", json=body, headers=auth(tenant_a.admin))
    ).status_code == 201
    r = await client.post("/api/principals", json=body, headers=auth(tenant_a.admin))
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "ALREADY_EXISTS"


# --- key storage --------------------------------------------------------------------------


async def test_key_is_shown_once_and_only_its_sha256_is_stored(client, runtime, tenant_a):
    r = await client.post(
        "/api/keys", json={"name": "ci", "role": "editor"}, headers=auth(tenant_a.admin)
    )
    assert r.status_code == 201
    created = r.json()
    plaintext, key_id = created["key"], created["apiKey"]["id"]
    assert plaintext.startswith("gw_")
    assert created["principal"]["role"] == "editor"
    assert "keyHash" not in created["apiKey"]

    # never again: not by id, not in the list
    one = await client.get(f"/api/keys/{key_id}", headers=auth(tenant_a.admin))
    listed = await client.get("/api/keys", headers=auth(tenant_a.admin))
    secret = plaintext.split("_")[2]
    for resp in (one, listed):
        assert resp.status_code == 200
        assert secret not in resp.text
        assert "keyHash" not in resp.text

    # in the database: only the SHA-256, nowhere the secret
    async with runtime.db.session() as s:
        row = await s.execute(text("SELECT * FROM api_keys WHERE id = :id"), {"id": key_id})
        stored = dict(row.mappings().one())
    assert stored["key_hash"] == hashlib.sha256(plaintext.encode()).hexdigest()
    assert stored["prefix"] == plaintext.split("_")[1]
    assert not any(secret in str(v) for v in stored.values())


async def test_last_used_at_is_set_on_use(client, runtime, tenant_a):
    async def last_used() -> Any:
        async with runtime.db.session() as s:
            return await s.scalar(
                select(ApiKeyRow.last_used_at).where(ApiKeyRow.id == tenant_a.viewer_key_id)
            )

    assert await last_used() is None
    before = datetime.now(UTC)
    assert (await client.get("/api/me", headers=auth(tenant_a.viewer))).status_code == 200
    used = await last_used()
    assert used is not None
    assert before - timedelta(seconds=5) <= used <= datetime.now(UTC)
    listed = (await client.get("/api/keys", headers=auth(tenant_a.admin))).json()
    assert next(k for k in listed if k["id"] == tenant_a.viewer_key_id)["lastUsedAt"]


async def test_keys_are_distinct_and_high_entropy():
    from gasworks.tenancy import keys

    made = [keys.generate() for _ in range(200)]
    assert len({m.plaintext for m in made}) == 200
    assert len({m.prefix for m in made}) == 200
    for m in made[:5]:
        assert keys.parse_prefix(m.plaintext) == m.prefix
        assert keys.matches(m.plaintext, m.hash)
        assert not keys.matches(m.plaintext + "x", m.hash)


async def test_admin_cannot_revoke_an_owners_key_but_owner_can_revoke_an_admins(client, tenant_a):
    r = await client.post(f"/api/keys/{tenant_a.owner_key_id}/revoke", headers=auth(tenant_a.admin))
    _forbidden(r)
    assert (await client.get("/api/me", headers=auth(tenant_a.owner))).status_code == 200
    r = await client.post(f"/api/keys/{tenant_a.admin_key_id}/revoke", headers=auth(tenant_a.owner))
    assert r.status_code == 200
