"""The error envelope, request ids and the operational endpoints, over HTTP."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import APIRouter
from pydantic import BaseModel

from gasworks.errors import Conflict, GasworksError, RateLimited
from tests.conftest import auth

HEX_ID = re.compile(r"^[0-9a-f]{32}$")


class _Body(BaseModel):
    name: str
    count: int


def _add_test_routes(app: Any) -> None:
    router = APIRouter(prefix="/test")

    @router.get("/conflict")
    async def conflict() -> None:
        raise Conflict("Version 3 was moved meanwhile.", details={"expected": 3})

    @router.get("/limited")
    async def limited() -> None:
        raise RateLimited("Slow down.", details={"retryAfterSeconds": 2.5})

    @router.get("/crash")
    async def crash() -> None:
        raise RuntimeError("secret internals: password=hunter2 at /srv/db")

    @router.get("/crash-gasworks")
    async def crash_gasworks() -> None:
        raise GasworksError("base class raised directly")

    @router.post("/echo")
    async def echo(body: _Body) -> _Body:
        return body

    app.include_router(router)


@pytest.fixture
async def app_with_test_routes(app: Any) -> Any:
    _add_test_routes(app)
    return app


def _error(r: Any) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details", "requestId"}, body
    assert body["error"]["requestId"] == r.headers["x-request-id"]
    return dict(body["error"])


async def test_gasworks_error_is_rendered_in_the_envelope(client, app_with_test_routes):
    r = await client.get("/test/conflict")
    assert r.status_code == 409
    err = _error(r)
    assert err["code"] == "CONFLICT"
    assert err["message"] == "Version 3 was moved meanwhile."
    assert err["details"] == {"expected": 3}


async def test_retryable_error_sets_retry_after(client, app_with_test_routes):
    r = await client.get("/test/limited")
    assert r.status_code == 429
    assert _error(r)["code"] == "RATE_LIMITED"
    assert r.headers["retry-after"] == "2"


async def test_unknown_route_is_not_found(client):
    r = await client.get("/no/such/route")
    assert r.status_code == 404
    err = _error(r)
    assert err["code"] == "NOT_FOUND"
    assert "/no/such/route" in err["message"]


async def test_wrong_method_is_405(client):
    r = await client.delete("/healthz")
    assert r.status_code == 405
    assert _error(r)["code"] == "METHOD_NOT_ALLOWED"
    assert "GET" in r.headers["allow"]


async def test_validation_error_names_the_field_path(client, app_with_test_routes):
    r = await client.post("/test/echo", json={"name": "x", "count": "many"})
    assert r.status_code == 422
    err = _error(r)
    assert err["code"] == "VALIDATION_FAILED"
    assert [e["path"] for e in err["details"]["errors"]] == ["body.count"]
    assert "body.count" in err["message"]


async def test_validation_error_lists_every_problem(client, app_with_test_routes):
    r = await client.post("/test/echo", json={})
    err = _error(r)
    assert r.status_code == 422
    assert sorted(e["path"] for e in err["details"]["errors"]) == ["body.count", "body.name"]
    assert "(and 1 more)" in err["message"]


async def test_malformed_json_body_is_a_validation_error_not_a_500(client, app_with_test_routes):
    r = await client.post(
        "/test/echo", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert _error(r)["code"] == "VALIDATION_FAILED"


async def test_validation_on_real_route_names_nested_field(client, admin_key):
    r = await client.post("/api/tenants", json={"name": "Bad Name!"}, headers=auth(admin_key))
    assert r.status_code == 422
    err = _error(r)
    assert err["details"]["errors"][0]["path"] == "body.name"


async def test_unexpected_exception_is_500_internal_revealing_nothing(client, app_with_test_routes):
    r = await client.get("/test/crash", headers={"X-Request-ID": "crash-1"})
    assert r.status_code == 500
    err = _error(r)
    assert err["code"] == "INTERNAL"
    assert err["requestId"] == "crash-1"
    assert err["details"] == {}
    for leak in ("hunter2", "RuntimeError", "/srv/db", "Traceback"):
        assert leak not in r.text


async def test_base_gasworks_error_is_500_internal(client, app_with_test_routes):
    r = await client.get("/test/crash-gasworks")
    assert r.status_code == 500
    assert _error(r)["code"] == "INTERNAL"


async def test_request_id_is_echoed(client):
    r = await client.get("/healthz", headers={"X-Request-ID": "abc-123.x:y"})
    assert r.headers["x-request-id"] == "abc-123.x:y"


async def test_request_id_is_generated_when_absent(client):
    r1 = await client.get("/healthz")
    r2 = await client.get("/healthz")
    assert HEX_ID.match(r1.headers["x-request-id"])
    assert r1.headers["x-request-id"] != r2.headers["x-request-id"]


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "<script>", "é"])
async def test_invalid_request_id_is_replaced(client, bad):
    r = await client.get("/no/such/route", headers={"X-Request-ID": bad.encode("utf-8")})
    assert HEX_ID.match(r.headers["x-request-id"])
    assert r.json()["error"]["requestId"] == r.headers["x-request-id"]


async def test_request_id_appears_in_error_body(client):
    r = await client.get("/api/me", headers={"X-Request-ID": "trace-me-42"})
    assert r.status_code == 401
    assert _error(r)["requestId"] == "trace-me-42"


async def test_healthz(client):
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


async def test_readyz_when_database_is_reachable(client, runtime):
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "database": runtime.db.dialect.name}


async def test_openapi_document_is_served(client):
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    assert "/api/keys" in r.json()["paths"]


async def test_oversized_body_is_413_payload_too_large(runtime, admin_key):
    import httpx

    from gasworks.api.app import create_app

    runtime.settings = runtime.settings.model_copy(update={"max_request_bytes": 2048})
    app = create_app(runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gasworks.test") as c:
        r = await c.post(
            "/api/principals",
            json={"name": "x" * 5000},
            headers={"Authorization": f"Bearer {admin_key}"},
        )
        assert r.status_code == 413
        assert _error(r)["code"] == "PAYLOAD_TOO_LARGE"
        ok = await c.post(
            "/api/principals",
            json={"name": "small"},
            headers={"Authorization": f"Bearer {admin_key}"},
        )
        assert ok.status_code == 201


async def test_oversized_chunked_body_is_413(runtime, admin_key):
    import httpx

    from gasworks.api.app import create_app

    runtime.settings = runtime.settings.model_copy(update={"max_request_bytes": 2048})
    app = create_app(runtime=runtime)

    async def chunks():
        for _ in range(10):
            yield b"x" * 1000

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gasworks.test") as c:
        r = await c.post(
            "/api/principals",
            content=chunks(),
            headers={"Authorization": f"Bearer {admin_key}", "content-type": "application/json"},
        )
    assert r.status_code == 413
    assert _error(r)["code"] == "PAYLOAD_TOO_LARGE"
