"""The OpenAPI document tells the truth about every route (generated from the route table,
so a new route is checked without anyone remembering to)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import auth


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from gasworks.api.app import create_app
    from gasworks.settings import Settings

    home = tmp_path_factory.mktemp("openapi")
    return create_app(
        Settings(home=home, database_url=f"sqlite+aiosqlite:///{home}/x.db")
    ).openapi()


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def test_every_operation_documents_its_errors(doc) -> None:
    for path, method, op in _operations(doc):
        responses = op["responses"]
        for status in ("422", "4XX", "5XX"):
            assert status in responses, (method, path, status)
            ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
            shape = "OpenAIErrorEnvelope" if path.startswith("/v1/") else "ErrorEnvelope"
            assert ref.endswith("/" + shape), (method, path, ref)
    assert "HTTPValidationError" not in doc["components"]["schemas"]  # never sent


def _request_schemas(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every schema a caller fills in: parameters and request bodies, $refs followed."""
    found: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()

    def walk(where: str, schema: Any) -> None:
        if isinstance(schema, dict):
            ref = schema.get("$ref")
            if ref is not None:
                if ref not in seen:
                    seen.add(ref)
                    walk(ref, doc["components"]["schemas"][ref.rsplit("/", 1)[1]])
                return
            found.append((where, schema))
            for key, value in schema.items():
                walk(f"{where}.{key}", value)
        elif isinstance(schema, list):
            for item in schema:
                walk(where, item)

    for path, method, op in _operations(doc):
        for param in op.get("parameters", []):
            walk(f"{method} {path} {param['name']}", param["schema"])
        for media in op.get("requestBody", {}).get("content", {}).values():
            walk(f"{method} {path} body", media.get("schema", {}))
    return found


def test_every_number_a_caller_sends_is_bounded(doc) -> None:
    unbounded = [
        where
        for where, schema in _request_schemas(doc)
        if schema.get("type") in {"integer", "number"}
        and "maximum" not in schema
        and "exclusiveMaximum" not in schema
        and "enum" not in schema
    ]
    assert unbounded == []


def test_every_router_parses_bodies_through_the_guard() -> None:
    from fastapi.routing import APIRoute

    from gasworks.api.app import ROUTERS
    from gasworks.api.routing import GuardedRoute

    routes = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    assert routes and all(isinstance(r, GuardedRoute) for r in routes), [
        r.path for r in routes if not isinstance(r, GuardedRoute)
    ]


async def test_a_405_allows_every_documented_method(client, admin_key) -> None:
    from starlette.routing import compile_path

    doc = client._transport.app.openapi()
    checked = 0
    for template, ops in doc["paths"].items():
        concrete = compile_path(template)[1].format(
            **{name: "x" for name in compile_path(template)[2]}
        )
        documented = sorted(m.upper() for m in ops)
        for method in ("OPTIONS", "PATCH", "PUT", "DELETE", "POST", "GET"):
            if method in documented:
                continue
            r = await client.request(method, concrete, headers=auth(admin_key))
            if r.status_code != 405:  # another template matches the path with this method
                continue
            checked += 1
            assert r.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
            allowed = sorted(m.strip() for m in r.headers["allow"].split(","))
            assert set(documented) <= set(allowed), (template, method, allowed)
    assert checked > 40
