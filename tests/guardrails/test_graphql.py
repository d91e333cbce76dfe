"""Breakers, budgets and usage through GraphQL (same services and rules as REST)."""

from __future__ import annotations

from typing import Any

import gasworks.llm.guardrails_runtime  # noqa: F401  (registers the startup hook)
from tests.conftest import auth


async def gql(client: Any, key: str, query: str, **variables: Any) -> dict[str, Any]:
    r = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=auth(key)
    )
    assert r.status_code in (200, 400), r.text
    return dict(r.json())


async def test_breakers_budgets_usage(client, admin_key) -> None:
    out = await gql(
        client,
        admin_key,
        'mutation { breakerAction(breaker: "demo", action: "trip", reason: "drill") '
        "{ breaker state reason } }",
    )
    assert out["data"]["breakerAction"] == {
        "breaker": "demo",
        "state": "forced_open",
        "reason": "drill",
    }
    out = await gql(client, admin_key, "{ breakers { breaker state windowCalls } }")
    states = {b["breaker"]: b["state"] for b in out["data"]["breakers"]}
    assert states["demo"] == "forced_open"
    out = await gql(
        client,
        admin_key,
        'mutation { breakerAction(breaker: "demo", action: "explode", reason: "x") { state } }',
    )
    assert out["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"
    out = await gql(
        client,
        admin_key,
        'mutation { setBudget(period: "day", costLimit: "12.5") { period costLimit spentCost } }',
    )
    assert out["data"]["setBudget"] == {"period": "day", "costLimit": "12.5", "spentCost": "0"}
    out = await gql(client, admin_key, "{ budgets { period costLimit reservedCost } }")
    assert out["data"]["budgets"] == [{"period": "day", "costLimit": "12.5", "reservedCost": "0"}]
    out = await gql(client, admin_key, "{ usage(groupBy: [MODEL]) { model calls cost } }")
    assert out["data"]["usage"] == []


async def test_budgets_and_breakers_are_paged(client, admin_key, runtime) -> None:
    from gasworks.tenancy import service as tenancy
    from gasworks.tenancy.context import Role, TenantContext
    from gasworks.tenancy.schemas import ApiKeyCreate, TenantCreate

    h = auth(admin_key)
    keys = []
    for n in range(3):
        r = await client.post("/api/keys", json={"name": f"k{n}"}, headers=h)
        keys.append(r.json()["apiKey"]["id"])
    limits = [{"period": p} for p in ("day", "month")]
    limits += [{"period": "day", "apiKeyId": k} for k in keys]
    for body in limits:
        r = await client.put("/api/budgets", json={**body, "costLimit": "5"}, headers=h)
        assert r.status_code == 200, r.text
    async with runtime.db.session() as s:  # another tenant with a limit of its own
        t = await tenancy.create_tenant(s, TenantContext.system("-"), TenantCreate(name="acme"))
        other = await tenancy.create_api_key(
            s, TenantContext.system(t.id), ApiKeyCreate(name="acme", role=Role.ADMIN)
        )
    r = await client.put(
        "/api/budgets", json={"period": "day", "costLimit": "1"}, headers=auth(other.key)
    )
    assert r.status_code == 200, r.text
    theirs = r.json()["id"]

    everything = (await gql(client, admin_key, "{ budgets(limit: 500) { id } }"))["data"]
    ids = [b["id"] for b in everything["budgets"]]
    assert len(ids) == 5 and theirs not in ids
    pages = [
        (await gql(client, admin_key, f"{{ budgets(limit: 2, offset: {o}) {{ id }} }}"))["data"]
        for o in (0, 2, 4)
    ]
    assert [b["id"] for p in pages for b in p["budgets"]] == ids
    rest = [
        (await client.get("/api/budgets", params={"limit": 2, "offset": o}, headers=h)).json()
        for o in (0, 2, 4)
    ]
    assert [b["id"] for p in rest for b in p] == ids

    everything = (await gql(client, admin_key, "{ breakers(limit: 500) { breaker } }"))["data"]
    names = [b["breaker"] for b in everything["breakers"]]
    assert len(names) > 2 and names == sorted(names)
    page = (await gql(client, admin_key, "{ breakers(limit: 2, offset: 1) { breaker } }"))["data"]
    assert [b["breaker"] for b in page["breakers"]] == names[1:3]
    out = await gql(client, admin_key, "{ budgets(limit: 501) { id } }")
    assert out["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"
    r = await client.get("/api/breakers", params={"offset": -1}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "VALIDATION_FAILED"
