"""/api/breakers, /api/budgets and /api/usage through the HTTP API."""

from __future__ import annotations

from decimal import Decimal

from gasworks.llm.guardrails_runtime import get_guardrails
from gasworks.modeltypes import CallScope
from tests.conftest import auth
from tests.guardrails import _budget_worker as worker
from tests.guardrails.fakes import FakeModel, failed, ok


async def make_viewer_key(client, admin_key: str) -> str:
    r = await client.post(
        "/api/principals",
        json={"name": "viewer", "kind": "service", "role": "viewer"},
        headers=auth(admin_key),
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/keys",
        json={"name": "v", "principal_id": r.json()["id"]},
        headers=auth(admin_key),
    )
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


async def test_breakers_trip_and_reset_are_audited(client, admin_key, runtime) -> None:
    h = auth(admin_key)
    r = await client.post("/api/breakers/gpt-4o@us/trip", json={"reason": "outage"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "forced_open" and r.json()["breaker"] == "gpt-4o@us"
    g = get_guardrails(runtime)
    model = FakeModel(id="gpt-4o", price_key="us")
    listed = {b["breaker"]: b for b in (await client.get("/api/breakers", headers=h)).json()}
    assert listed["gpt-4o@us"]["state"] == "forced_open"
    # models of the registry that never had a call are listed too, closed
    assert listed["demo"]["state"] == "closed" and listed["demo"]["windowCalls"] == 0
    # a call to that deployment fails fast
    from gasworks.errors import CircuitOpen

    try:
        await g.before_call(CallScope(tenant_id="t"), model, worker.request())
        raise AssertionError("expected MODEL_UNAVAILABLE")
    except CircuitOpen as exc:
        assert exc.code == "MODEL_UNAVAILABLE"
    r = await client.post("/api/breakers/gpt-4o@us/reset", json={"reason": "fixed"}, headers=h)
    assert r.json()["state"] == "closed"
    r = await client.get("/api/breakers/events", headers=h)
    events = r.json()
    assert [(e["toState"], e["reason"], e["manual"]) for e in events] == [
        ("closed", "fixed", True),
        ("forced_open", "outage", True),
    ]
    assert all(e["actor"].startswith("prn_") for e in events)


async def test_breaker_actions_need_a_reason_and_a_platform_admin(client, admin_key) -> None:
    h = auth(admin_key)
    r = await client.post("/api/breakers/demo/trip", json={"reason": ""}, headers=h)
    assert r.status_code == 422
    r = await client.post("/api/breakers/demo/explode", json={"reason": "x"}, headers=h)
    assert r.status_code == 422
    viewer = await make_viewer_key(client, admin_key)
    r = await client.post("/api/breakers/demo/trip", json={"reason": "x"}, headers=auth(viewer))
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
    r = await client.post("/api/breakers/demo/trip", json={"reason": "x"}, headers=h)
    listed = {
        b["breaker"]: b for b in (await client.get("/api/breakers", headers=auth(viewer))).json()
    }
    assert listed["demo"]["state"] == "forced_open" and listed["demo"]["changedBy"] is None
    events = (await client.get("/api/breakers/events", headers=auth(viewer))).json()
    assert events[0]["reason"] == "x" and events[0]["actor"] is None
    r = await client.put(
        "/api/budgets", json={"period": "day", "cost_limit": "1"}, headers=auth(viewer)
    )
    assert r.status_code == 403
    r = await client.post("/api/breakers/no-such-model/trip", json={"reason": "x"}, headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "MODEL_NOT_FOUND"


async def test_budgets_set_show_and_usage(client, admin_key, runtime) -> None:
    h = auth(admin_key)
    me = (await client.get("/api/me", headers=h)).json()
    r = await client.put(
        "/api/budgets",
        json={"period": "day", "cost_limit": "2.50", "token_limit": 100000},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert Decimal(r.json()["costLimit"]) == Decimal("2.5")
    assert Decimal(r.json()["spentCost"]) == 0
    g = get_guardrails(runtime)
    model = FakeModel()
    scope = CallScope(
        tenant_id=me["tenantId"], api_key_id=me["apiKeyId"], workflow_id="wf_1", request_id="r1"
    )
    for outcome in (ok(model, 100, 50), ok(model, 10, 5, streamed=True), failed()):
        token = await g.before_call(scope, model, worker.request())
        await g.after_call(token, scope, model, outcome)
    (b,) = (await client.get("/api/budgets", headers=h)).json()
    assert Decimal(b["spentCost"]) == Decimal("0.2") + Decimal("0.02")
    assert Decimal(b["reservedCost"]) == 0 and b["calls"] == 3
    r = await client.get("/api/usage", params={"groupBy": ["model", "workflow"]}, headers=h)
    assert r.status_code == 200, r.text
    (row,) = r.json()["rows"]
    assert row["group"] == {"model": "fake-model", "workflow": "wf_1"}
    assert (row["calls"], row["failedCalls"], row["inputTokens"], row["outputTokens"]) == (
        3,
        1,
        110,
        55,
    )
    assert Decimal(row["cost"]) == Decimal("0.22")
    calls = (await client.get("/api/usage/calls", headers=h)).json()
    assert len(calls) == 3 and {c["status"] for c in calls} == {"ok", "PROVIDER_UNAVAILABLE"}
    # over the limit now: 402 COST_LIMIT_EXCEEDED
    r = await client.put("/api/budgets", json={"period": "day", "cost_limit": "0.3"}, headers=h)
    assert r.status_code == 200
    try:
        await g.before_call(scope, model, worker.request())
        raise AssertionError("expected COST_LIMIT_EXCEEDED")
    except Exception as exc:
        assert getattr(exc, "code", None) == "COST_LIMIT_EXCEEDED"
    r = await client.put("/api/budgets", json={"period": "day"}, headers=h)
    assert r.status_code == 204
    assert (await client.get("/api/budgets", headers=h)).json() == []


async def test_budget_for_another_tenants_key_is_not_found(client, admin_key) -> None:
    h = auth(admin_key)
    r = await client.put(
        "/api/budgets",
        json={"period": "month", "api_key_id": "key_nope", "cost_limit": "1"},
        headers=h,
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    r = await client.put("/api/budgets", json={"period": "week", "cost_limit": "1"}, headers=h)
    assert r.status_code == 422
    r = await client.put("/api/budgets", json={"period": "day", "cost_limit": "-1"}, headers=h)
    assert r.status_code == 422


async def test_usage_reports_requests_and_attempts_and_prompt_versions(
    client, admin_key, runtime
) -> None:
    """Two requests retried three times each read as 2 requests (both failed) and 6 attempts;
    a retried request that was answered is 1 request, not failed. Rows carry the prompt
    version, and usage groups by it."""
    h = auth(admin_key)
    me = (await client.get("/api/me", headers=h)).json()
    g = get_guardrails(runtime)
    model = FakeModel()
    scope = CallScope(tenant_id=me["tenantId"], prompt_version_id="pv_one")
    outcomes = [failed(attempt=a) for _ in range(2) for a in (1, 2, 3)]
    outcomes += [failed(attempt=1), ok(model, 10, 5, attempt=2)]
    for outcome in outcomes:
        token = await g.before_call(scope, model, worker.request())
        await g.after_call(token, scope, model, outcome)
    other = CallScope(tenant_id=me["tenantId"], prompt_version_id="pv_two")
    token = await g.before_call(other, model, worker.request())
    await g.after_call(token, other, model, ok(model, 1, 1))
    await g.ledger.flush()
    r = await client.get("/api/usage", params={"groupBy": ["prompt_version"]}, headers=h)
    assert r.status_code == 200, r.text
    rows = {row["group"]["prompt_version"]: row for row in r.json()["rows"]}
    one = rows["pv_one"]
    assert (one["requests"], one["failedRequests"], one["calls"], one["failedCalls"]) == (
        3,
        2,
        8,
        7,
    )
    assert (rows["pv_two"]["requests"], rows["pv_two"]["failedRequests"]) == (1, 0)
    total = r.json()["total"]
    assert (total["requests"], total["calls"]) == (4, 9)
