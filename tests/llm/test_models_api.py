"""Model management over REST and GraphQL, on both databases."""

from __future__ import annotations

from gasworks.llm.runtime import get_registry
from tests.conftest import auth


async def viewer_key(client, admin_key) -> str:
    r = await client.post(
        "/api/keys", json={"name": "v", "role": "viewer"}, headers=auth(admin_key)
    )
    assert r.status_code == 201, r.text
    return r.json()["key"]


async def test_list_and_show(client, admin_key) -> None:
    r = await client.get("/api/models", headers=auth(admin_key))
    assert r.status_code == 200
    ids = [m["id"] for m in r.json()]
    assert "demo" in ids
    r = await client.get("/api/models/bedrock/claude-sonnet-4-5", headers=auth(admin_key))
    assert r.status_code == 200
    m = r.json()
    assert m["provider"] == "bedrock" and m["source"] == "catalog"
    assert m["regionPrices"]["us"]["inputPer1k"] == "0.0033"
    r = await client.get("/api/models/nope", headers=auth(admin_key))
    assert r.status_code == 404 and r.json()["error"]["code"] == "MODEL_NOT_FOUND"


async def test_platform_admin_creates_updates_disables_and_resets(
    client, admin_key, runtime
) -> None:
    spec = {
        "id": "team-llama",
        "provider": "openai_compatible",
        "provider_model_id": "llama3.1:8b",
        "base_url": "http://127.0.0.1:11434/v1",
        "input_per_1k": "0.0001",
    }
    r = await client.post("/api/models", json=spec, headers=auth(admin_key))
    assert r.status_code == 201, r.text
    assert r.json()["source"] == "api"
    r = await client.post("/api/models", json=spec, headers=auth(admin_key))
    assert r.status_code == 409

    r = await client.patch(
        "/api/models/team-llama", json={"outputPer1k": "0.0002"}, headers=auth(admin_key)
    )  # a body may use the wire (camelCase) or the Python (snake_case) names
    assert r.status_code == 200 and r.json()["outputPer1k"] == "0.0002"
    assert r.json()["inputPer1k"] == "0.0001"

    # change a catalog model: a patch, shown as overridden
    r = await client.patch(
        "/api/models/gpt-4o", json={"timeout_seconds": 12}, headers=auth(admin_key)
    )
    assert r.status_code == 200 and r.json()["overridden"] is True
    assert get_registry(runtime).get("gpt-4o").timeout_seconds == 12

    # disabling makes the model unknown to callers, with no silent fallback
    r = await client.put(
        "/api/models/demo/enabled", json={"enabled": False}, headers=auth(admin_key)
    )
    assert r.status_code == 200 and r.json()["enabled"] is False
    body = {"model": "demo", "messages": [{"role": "user", "content": "x"}]}
    r = await client.post("/v1/chat/completions", json=body, headers=auth(admin_key))
    assert r.status_code == 404 and r.json()["error"]["code"] == "MODEL_NOT_FOUND"
    r = await client.get("/api/models", headers=auth(admin_key))
    assert "demo" not in [m["id"] for m in r.json()]
    r = await client.get("/api/models?includeDisabled=true", headers=auth(admin_key))
    assert "demo" in [m["id"] for m in r.json()]

    # reset: the catalog entry comes back as shipped; an API entry goes away
    assert (await client.delete("/api/models/demo", headers=auth(admin_key))).status_code == 204
    r = await client.post("/v1/chat/completions", json=body, headers=auth(admin_key))
    assert r.status_code == 200
    r = await client.delete("/api/models/team-llama", headers=auth(admin_key))
    assert r.status_code == 204
    r = await client.get("/api/models/team-llama", headers=auth(admin_key))
    assert r.status_code == 404


async def test_invalid_entries_are_422_naming_the_field(client, admin_key) -> None:
    r = await client.post(
        "/api/models",
        json={"id": "x", "provider": "demo", "input_per_1k": "-1"},
        headers=auth(admin_key),
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"]["errors"][0]["path"] == "input_per_1k"
    r = await client.patch("/api/models/gpt-4o", json={"id": "y"}, headers=auth(admin_key))
    assert r.status_code == 422


async def test_only_platform_admins_change_models(client, admin_key) -> None:
    key = await viewer_key(client, admin_key)
    r = await client.get("/api/models", headers=auth(key))
    assert r.status_code == 200
    r = await client.post("/api/models", json={"id": "mine", "provider": "demo"}, headers=auth(key))
    assert r.status_code == 403
    r = await client.put("/api/models/demo/enabled", json={"enabled": False}, headers=auth(key))
    assert r.status_code == 403


async def test_changes_persist_for_a_new_process(client, admin_key, runtime, settings) -> None:
    from gasworks.wiring import build_runtime

    r = await client.patch(
        "/api/models/gpt-4o-mini", json={"enabled": False}, headers=auth(admin_key)
    )
    assert r.status_code == 200
    other = build_runtime(settings)
    await other.start(migrate=False)
    try:
        reg = get_registry(other)
        assert reg.get("gpt-4o-mini", include_disabled=True).enabled is False
    finally:
        await other.stop()


async def test_graphql_models(client, admin_key) -> None:
    q = (
        "{ models { id provider inputPer1k capabilities { streaming } } "
        'model(id: "gpt-4o") { contextWindow } }'
    )
    r = await client.post("/graphql", json={"query": q}, headers=auth(admin_key))
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    demo = next(m for m in data["models"] if m["id"] == "demo")
    assert demo["provider"] == "demo" and demo["capabilities"]["streaming"] is True
    assert data["model"]["contextWindow"] == 128000
    m = 'mutation { setModelEnabled(id: "gpt-4o", enabled: false) { enabled } }'
    r = await client.post("/graphql", json={"query": m}, headers=auth(admin_key))
    assert r.json()["data"]["setModelEnabled"]["enabled"] is False
