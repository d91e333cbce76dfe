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
