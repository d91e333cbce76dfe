"""GraphQL: same authentication as REST, error codes in extensions, a query depth limit."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import strawberry

from tests.conftest import auth


async def _post(client: Any, key: str, query: str, **variables: Any) -> dict[str, Any]:
    r = await client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={**auth(key), "X-Request-ID": "gql-1"},
    )
    assert r.status_code in (200, 400), r.text
    return dict(r.json())


def _nest(outer: str, wrap: str, leaf: str, levels: int) -> str:
    """``outer`` with ``{}`` replaced by ``leaf`` wrapped ``levels`` times in ``wrap``."""
    inner = leaf
    for _ in range(levels):
        inner = wrap.replace("{}", inner)
    return outer.replace("{}", inner)


def _deep_introspection(levels: int) -> str:
    return _nest(
        "{ __schema { types { fields { type { {} } } } } }", "ofType { {} }", "name", levels
    )


async def test_me(client, admin_key):
    out = await _post(client, admin_key, "{ me { tenantId role isPlatformAdmin } }")
    assert out["data"]["me"]["role"] == "owner"
    assert out["data"]["me"]["isPlatformAdmin"] is True


@strawberry.type
class _Node:
    depth: int

    @strawberry.field
    def child(self) -> _Node:
        return _Node(depth=self.depth + 1)


@strawberry.type
class _NestedQuery:
    @strawberry.field
    def node(self) -> _Node:
        return _Node(depth=0)


@pytest.fixture
async def nested_client(runtime, monkeypatch):
    """An app whose schema has a recursive type (as later domains will) and max depth 3."""
    from gasworks.api.app import create_app
    from gasworks.api.graphql import schema

    monkeypatch.setattr(schema, "QUERIES", [*schema.QUERIES, _NestedQuery])
    runtime.settings = runtime.settings.model_copy(update={"graphql_max_depth": 3})
    app = create_app(runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gasworks.test") as c:
        yield c


def _nested(levels: int) -> str:
    return _nest("{ node { {} } }", "child { depth {} }", "depth", levels)


async def test_too_deep_query_is_rejected_with_a_code(nested_client, admin_key):
    out = await _post(nested_client, admin_key, _nested(5))
    assert out.get("data") is None
    err = out["errors"][0]
    assert err["extensions"]["code"] == "GRAPHQL_QUERY_TOO_DEEP"
    assert err["extensions"]["requestId"] == "gql-1"
    assert "depth of 3" in err["message"]


async def test_query_within_depth_limit_runs(nested_client, admin_key):
    out = await _post(nested_client, admin_key, _nested(2))
    assert "errors" not in out, out
    assert out["data"]["node"]["child"]["child"]["depth"] == 2


async def test_depth_limit_follows_fragments(nested_client, admin_key):
    q = "fragment F on _Node { child { child { child { depth } } } } { node { child { ...F } } }"
    out = await _post(nested_client, admin_key, q)
    assert out["errors"][0]["extensions"]["code"] == "GRAPHQL_QUERY_TOO_DEEP"


async def test_introspection_is_bounded_by_size(client, admin_key):
    ok = await _post(client, admin_key, _deep_introspection(8))  # GraphiQL-sized: allowed
    assert "errors" not in ok
    wide = "{ __schema { types { " + "name " * 6000 + "} } }"
    huge = await _post(client, admin_key, wide)
    assert huge["errors"][0]["extensions"]["code"] == "GRAPHQL_QUERY_TOO_LARGE"
    deep = await _post(client, admin_key, _deep_introspection(2000))
    assert deep["errors"][0]["extensions"]["code"] == "GRAPHQL_QUERY_TOO_DEEP"


async def test_many_aliases_are_rejected(client, admin_key):
    q = "{ " + " ".join(f"a{i}: me {{ role }}" for i in range(100)) + " }"
    out = await _post(client, admin_key, q)
    assert out["errors"][0]["extensions"]["code"] == "GRAPHQL_QUERY_TOO_LARGE"


async def test_syntax_error_has_a_code(client, admin_key):
    out = await _post(client, admin_key, "{ me { ")
    assert out["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_unknown_field_has_a_code(client, admin_key):
    out = await _post(client, admin_key, "{ me { nope } }")
    assert out["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_service_error_carries_its_code_and_details(client, tenant_a):
    out = await _post(client, tenant_a.viewer, 'mutation { createApiKey(name: "x") { key } }')
    err = out["errors"][0]
    assert err["extensions"]["code"] == "FORBIDDEN"
    assert err["extensions"]["details"]["required_role"] == "admin"
    assert err["extensions"]["requestId"] == "gql-1"
    assert err["path"] == ["createApiKey"]


async def test_bad_argument_is_validation_failed_not_internal(client, tenant_a):
    out = await _post(
        client, tenant_a.admin, 'mutation { createApiKey(name: "x", role: "emperor") { key } }'
    )
    err = out["errors"][0]
    assert err["extensions"]["code"] == "VALIDATION_FAILED"
    assert "role" in err["message"]


async def test_create_and_revoke_key(client, tenant_a):
    out = await _post(
        client,
        tenant_a.admin,
        'mutation { createApiKey(name: "gql", role: "editor") { key apiKey { id prefix } } }',
    )
    created = out["data"]["createApiKey"]
    assert created["key"].startswith(f"gw_{created['apiKey']['prefix']}_")
    assert (await client.get("/api/me", headers=auth(created["key"]))).json()["role"] == "editor"
    out = await _post(
        client,
        tenant_a.admin,
        "mutation($id: String!) { revokeApiKey(id: $id) { revokedAt } }",
        id=created["apiKey"]["id"],
    )
    assert out["data"]["revokeApiKey"]["revokedAt"]
    assert (await client.get("/api/me", headers=auth(created["key"]))).status_code == 401
