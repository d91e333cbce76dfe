"""The in-process auth cache: bounded staleness, immediate local revocation, bounded size."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import update

from gasworks.db.types import utcnow
from gasworks.errors import Unauthenticated
from gasworks.tenancy.tables import ApiKeyRow
from tests.conftest import auth


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def authn(runtime: Any) -> Any:
    from gasworks.api.auth import Authenticator

    a = Authenticator(runtime.db, ttl=5.0, touch_every=60.0)
    a.monotonic = FakeMonotonic()
    return a


async def _revoke_elsewhere(runtime: Any, key_id: str) -> None:
    """A revocation made by another process: straight into the database."""
    async with runtime.db.session() as s:
        await s.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(revoked_at=utcnow()))


async def test_revocation_elsewhere_takes_effect_within_ttl(authn, runtime, tenant_a):
    header = f"Bearer {tenant_a.viewer}"
    assert (await authn.authenticate(header)).tenant_id == tenant_a.tenant_id
    await _revoke_elsewhere(runtime, tenant_a.viewer_key_id)
    authn.monotonic.now += 4.9  # still within the TTL: the cached verdict stands
    await authn.authenticate(header)
    authn.monotonic.now += 0.2  # past the TTL: checked again, refused
    with pytest.raises(Unauthenticated):
        await authn.authenticate(header)


async def test_forget_drops_a_cached_key_at_once(authn, runtime, tenant_a):
    header = f"Bearer {tenant_a.viewer}"
    await authn.authenticate(header)
    await _revoke_elsewhere(runtime, tenant_a.viewer_key_id)
    authn.forget(tenant_a.viewer_key_id)
    with pytest.raises(Unauthenticated):
        await authn.authenticate(header)


async def test_cache_is_bounded(authn, runtime, tenant_a, monkeypatch):
    import gasworks.api.auth as auth_mod

    monkeypatch.setattr(auth_mod, "_MAX_CACHE", 2)
    for key in (tenant_a.viewer, tenant_a.admin, tenant_a.owner):
        await authn.authenticate(f"Bearer {key}")
    assert len(authn._cache) <= 2


@pytest.fixture
async def cached_client(runtime: Any) -> Any:
    """An app whose auth cache trusts a key for an hour (revocations must still bite)."""
    from gasworks.api.app import create_app

    rt_settings = runtime.settings.model_copy(update={"auth_cache_ttl_seconds": 3600.0})
    runtime.settings = rt_settings
    app = create_app(runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gasworks.test") as c:
        yield c


async def test_rest_revocation_bites_at_once_despite_cache(cached_client, tenant_a):
    assert (await cached_client.get("/api/me", headers=auth(tenant_a.viewer))).status_code == 200
    r = await cached_client.post(
        f"/api/keys/{tenant_a.viewer_key_id}/revoke", headers=auth(tenant_a.admin)
    )
    assert r.status_code == 200
    assert (await cached_client.get("/api/me", headers=auth(tenant_a.viewer))).status_code == 401


async def test_graphql_revocation_bites_at_once_despite_cache(cached_client, tenant_a):
    assert (await cached_client.get("/api/me", headers=auth(tenant_a.viewer))).status_code == 200
    r = await cached_client.post(
        "/graphql",
        json={
            "query": "mutation($id: String!) { revokeApiKey(id: $id) { id } }",
            "variables": {"id": tenant_a.viewer_key_id},
        },
        headers=auth(tenant_a.admin),
    )
    assert r.json()["data"]["revokeApiKey"]["id"] == tenant_a.viewer_key_id
    assert (await cached_client.get("/api/me", headers=auth(tenant_a.viewer))).status_code == 401


async def test_a_burst_after_the_ttl_shares_one_verification(authn, tenant_a, monkeypatch):
    """When a busy key's cached verdict runs out, the requests that arrive together are
    answered by one database check (not one write transaction each, issue #19)."""
    import asyncio

    from gasworks.tenancy import service

    calls = 0
    verify = service.lookup_key

    async def counting(db: Any, token: str) -> Any:
        nonlocal calls
        calls += 1
        return await verify(db, token)

    monkeypatch.setattr(service, "lookup_key", counting)
    header = f"Bearer {tenant_a.viewer}"
    await authn.authenticate(header)
    assert calls == 1
    authn.monotonic.now += 5.1  # idle past the TTL, then 50 requests at once
    ctxs = await asyncio.gather(*(authn.authenticate(header) for _ in range(50)))
    assert {c.tenant_id for c in ctxs} == {tenant_a.tenant_id}
    assert calls == 2
    bad = await asyncio.gather(
        *(authn.authenticate(f"Bearer {tenant_a.viewer}x") for _ in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(e, Unauthenticated) for e in bad) and calls == 3
