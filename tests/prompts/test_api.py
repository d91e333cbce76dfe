from __future__ import annotations

import pytest

from gasworks.tenancy import service as tenancy
from gasworks.tenancy.context import Role, TenantContext
from gasworks.tenancy.schemas import ApiKeyCreate, TenantCreate
from tests.conftest import auth

SCOPE = {"model": "gpt-4o", "workflowId": "support"}


@pytest.fixture
async def other_key(runtime, admin_key):
    async with runtime.db.session() as s:
        t = await tenancy.create_tenant(s, TenantContext.system("-"), TenantCreate(name="acme"))
        created = await tenancy.create_api_key(
            s, TenantContext.system(t.id), ApiKeyCreate(name="acme", role=Role.EDITOR)
        )
    return created.key


async def _version(client, key, system):
    body = {"name": "support", "content": {"system": system, "user": "${inputs.q}"}, "message": "m"}
    r = await client.post("/api/prompts/versions", json=body, headers=auth(key))
    assert r.status_code in (200, 201), r.text
    return r.json()


async def test_push_deploy_resolve_rollback_over_rest(client, admin_key):
    h = auth(admin_key)
    v1 = await _version(client, admin_key, "You help with ${slots.product}.")
    assert v1["number"] == 1 and len(v1["contentHash"]) == 64
    r = await client.post(
        "/api/prompts/versions",
        json={
            "name": "support",
            "content": {"system": "You help with ${slots.product}.", "user": "${inputs.q}"},
        },
        headers=h,
    )
    assert r.status_code == 200 and r.json()["id"] == v1["id"] and r.json()["created"] is False
    v2 = await _version(client, admin_key, "You are an expert on ${slots.product}.")

    r = await client.post(
        "/api/prompts/pointer/move",
        json={"scope": SCOPE, "versionId": v1["id"], "expectedVersion": 0, "reason": "first"},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["level"] == "tenant+workflow+model"
    r = await client.post(
        "/api/prompts/pointer/move",
        json={"scope": SCOPE, "versionId": v2["id"], "expectedVersion": 1},
        headers=h,
    )
    assert r.json()["version"] == 2

    stale = await client.post(
        "/api/prompts/pointer/move",
        json={"scope": SCOPE, "versionId": v1["id"], "expectedVersion": 1},
        headers=h,
    )
    assert stale.status_code == 409
    err = stale.json()["error"]
    assert err["code"] == "PROMPT_POINTER_CONFLICT"
    assert err["details"]["current"]["version"] == 2 and err["details"]["deadLetterId"]

    r = await client.post(
        "/api/prompts/resolve",
        json={
            "model": "gpt-4o",
            "workflowId": "support",
            "variables": {"inputs": {"q": "Where is my order?"}, "slots": {"product": "bikes"}},
            "history": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
            ],
        },
        headers=h,
    )
    assert r.status_code == 200, r.text
    res = r.json()
    assert (res["level"], res["versionId"], res["versionNumber"]) == (
        "tenant+workflow+model",
        v2["id"],
        2,
    )
    assert [m["role"] for m in res["messages"]] == ["system", "user", "assistant", "user"]
    assert res["messages"][0]["content"] == "You are an expert on bikes."
    assert res["messages"][-1]["content"] == "Where is my order?" and res["missing"] == []

    r = await client.post(
        "/api/prompts/pointer/rollback", json={"scope": SCOPE, "expectedVersion": 2}, headers=h
    )
    assert r.json()["activeVersionId"] == v1["id"]
    r = await client.post(
        "/api/prompts/resolve", json={"model": "gpt-4o", "workflowId": "support"}, headers=h
    )
    assert r.json()["versionId"] == v1["id"] and r.json()["missing"] == [
        "slots.product",
        "inputs.q",
    ]

    params = {"model": "gpt-4o", "workflowId": "support"}
    hist = (await client.get("/api/prompts/pointer/history", params=params, headers=h)).json()
    assert [e["seq"] for e in hist] == [3, 2, 1] and hist[0]["action"] == "rollback"
    ptr = (await client.get("/api/prompts/pointer", params=params, headers=h)).json()
    assert ptr["version"] == 3

    d = (
        await client.get("/api/prompts/diff", params={"from": v1["id"], "to": v2["id"]}, headers=h)
    ).json()
    assert "+You are an expert on ${slots.product}." in d["diff"]

    dls = (await client.get("/api/prompts/dead-letters", headers=h)).json()
    assert len(dls) == 1 and dls[0]["reasonCode"] == "PROMPT_POINTER_CONFLICT"
    r = await client.post(
        f"/api/prompts/dead-letters/{dls[0]['id']}/replay", json={"rebase": True}, headers=h
    )
    assert r.status_code == 200, r.text
    assert (
        r.json()["pointer"]["activeVersionId"] == v1["id"]
        and r.json()["deadLetter"]["status"] == "replayed"
    )

    audit = (await client.get("/api/prompts/audit", headers=h)).json()
    assert {"create", "move", "rollback"} <= {a["action"] for a in audit}


async def test_tenant_isolation_over_rest(client, admin_key, other_key):
    v = await _version(client, admin_key, "default tenant's prompt")
    h = auth(other_key)
    r = await client.get(f"/api/prompts/versions/{v['id']}", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "PROMPT_VERSION_NOT_FOUND"
    r = await client.post(
        "/api/prompts/pointer/move",
        json={"scope": SCOPE, "versionId": v["id"], "expectedVersion": 0},
        headers=h,
    )
    assert r.status_code == 404
    r = await client.get("/api/prompts/diff", params={"from": v["id"], "to": v["id"]}, headers=h)
    assert r.status_code == 404
    assert (await client.get("/api/prompts/versions", headers=h)).json() == []
    # a tenant key cannot move platform-wide pointers
    own = await _version(client, other_key, "acme's")
    r = await client.post(
        "/api/prompts/pointer/move",
        json={
            "scope": {**SCOPE, "tenantScoped": False},
            "versionId": own["id"],
            "expectedVersion": 0,
        },
        headers=h,
    )
    assert r.status_code == 403


async def test_bad_input_is_422_never_500(client, admin_key):
    h = auth(admin_key)
    r = await client.post(
        "/api/prompts/versions",
        json={"name": "p", "content": {"system": "broken ${inputs"}},
        headers=h,
    )
    assert r.status_code == 422
    r = await client.post(
        "/api/prompts/versions", json={"name": "../x", "content": {"user": "x"}}, headers=h
    )
    assert r.status_code == 422
    r = await client.post(
        "/api/prompts/resolve", json={"model": "gpt-4o", "strict": True}, headers=h
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "TEMPLATE_VARIABLE_MISSING"


async def test_graphql_flow(client, admin_key):
    h = auth(admin_key)
    q = (
        "mutation($c: JSON!) "
        '{ createPromptVersion(name: "g", content: $c, message: "m") { id number created } }'
    )
    r = await client.post(
        "/graphql", json={"query": q, "variables": {"c": {"system": "hi ${inputs.x}"}}}, headers=h
    )
    assert r.status_code == 200 and "errors" not in r.json(), r.text
    vid = r.json()["data"]["createPromptVersion"]["id"]
    move = (
        "mutation($v: String!, $e: Int!) "
        '{ movePromptPointer(model: "m1", versionId: $v, expectedVersion: $e) '
        "{ version activeVersionId level } }"
    )
    r = await client.post(
        "/graphql", json={"query": move, "variables": {"v": vid, "e": 0}}, headers=h
    )
    assert r.json()["data"]["movePromptPointer"]["version"] == 1
    r = await client.post(
        "/graphql", json={"query": move, "variables": {"v": vid, "e": 0}}, headers=h
    )
    assert r.json()["errors"][0]["extensions"]["code"] == "PROMPT_POINTER_CONFLICT"
    res = (
        '{ resolvePrompt(model: "m1", variables: {inputs: {x: "there"}}) '
        "{ level versionId source messages { role content } } }"
    )
    r = await client.post("/graphql", json={"query": res}, headers=h)
    data = r.json()["data"]["resolvePrompt"]
    assert data["level"] == "tenant+model" and data["versionId"] == vid
    assert data["messages"] == [{"role": "system", "content": "hi there"}]
    r = await client.post(
        "/graphql",
        json={
            "query": '{ promptPointerHistory(model: "m1") { seq action } '
            "promptDeadLetters { reasonCode } }"
        },
        headers=h,
    )
    body = r.json()["data"]
    assert body["promptPointerHistory"] == [{"seq": 1, "action": "move"}]
    assert body["promptDeadLetters"] == [{"reasonCode": "PROMPT_POINTER_CONFLICT"}]


async def test_prompt_metrics_count_cas_conflicts_dead_letters_and_resolutions(
    client, admin_key, runtime
):
    """The metrics the original system names: compare-and-set attempts and conflicts,
    dead-letter growth, resolution latency, interpolation warnings, cache size and entry age."""
    from prometheus_client.parser import text_string_to_metric_families

    async def sample(name: str, **labels: str) -> float:
        text = (await client.get("/metrics")).text
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return float(s.value)
        return 0.0

    names = {
        "ok": ("gasworks_prompt_pointer_cas_total", {"outcome": "ok"}),
        "conflict": ("gasworks_prompt_pointer_cas_total", {"outcome": "conflict"}),
        "dead": ("gasworks_prompt_dead_letters_total", {}),
        "resolved": ("gasworks_prompt_resolve_seconds_count", {}),
        "missing": ("gasworks_prompt_missing_variables_total", {}),
        "hits": ("gasworks_prompt_cache_hit_age_seconds_count", {}),
    }
    before = {k: await sample(n, **lb) for k, (n, lb) in names.items()}
    h = auth(admin_key)
    v1 = await _version(client, admin_key, "About ${slots.product}.")
    move = {"scope": SCOPE, "versionId": v1["id"], "expectedVersion": 0}
    assert (await client.post("/api/prompts/pointer/move", json=move, headers=h)).status_code == 200
    assert (await client.post("/api/prompts/pointer/move", json=move, headers=h)).status_code == 409
    # the poller applies the move's notice now, not between the two resolves below (it would
    # drop the entry the first resolve stored, and the second would not be a hit)
    await runtime.services["prompts"].resolver.poll_once()
    body = {"model": SCOPE["model"], "workflowId": SCOPE["workflowId"], "variables": {}}
    for _ in range(2):  # a load, then a cache hit; ${slots.product} and ${inputs.q} missing
        assert (await client.post("/api/prompts/resolve", json=body, headers=h)).status_code == 200
    after = {k: await sample(n, **lb) for k, (n, lb) in names.items()}
    delta = {k: after[k] - before[k] for k in names}
    assert delta["ok"] == 1 and delta["conflict"] == 1 and delta["dead"] == 1
    assert delta["resolved"] >= 2 and delta["missing"] >= 4 and delta["hits"] >= 1
    assert await sample("gasworks_prompt_cache_entries") >= 1
