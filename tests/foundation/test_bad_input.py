"""Bad input never produces a 500 (issue 18): every probe below was a 500 (or a plain-text
400) before; each must now be a coded error naming what is wrong. Both databases: SQLite
raised OverflowError above 2**63 and PostgreSQL refuses NUL characters."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import auth

JSON = {"content-type": "application/json"}
BIG = "9" * 30
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 60_000 + b"1" + b"}" * 60_000
DEEP_YAML_BLOCK = b"- " * 20_000 + b"x\n"  # 20 000 nested block sequences
DEEP_YAML_MAP = b"".join(b" " * i + b"k:\n" for i in range(1_000)) + b" " * 1_000 + b"v\n"

#: a multipart upload whose file name holds a NUL (httpx would percent-encode it)
NUL_FILENAME = (
    b'--b\r\nContent-Disposition: form-data; name="files"; filename="a\x00.md"\r\n'
    b"Content-Type: text/plain\r\n\r\n# x\n\r\n--b--\r\n"
)

# (method, url, request kwargs, status, code, field path named in details.errors, or None)
PROBES: list[tuple[str, str, dict[str, Any], int, str, str | None]] = [
    ("GET", f"/api/tenants?offset={BIG}", {}, 422, "VALIDATION_FAILED", "query.offset"),
    (
        "GET",
        f"/api/prompts/dead-letters?offset={BIG}",
        {},
        422,
        "VALIDATION_FAILED",
        "query.offset",
    ),
    ("GET", f"/api/workflows/x/versions/{BIG}", {}, 422, "VALIDATION_FAILED", "path.version"),
    ("GET", f"/api/workflows/x/graph?version={BIG}", {}, 422, "VALIDATION_FAILED", "query.version"),
    (
        "GET",
        f"/api/workflow-runs/r/events?after={BIG}",
        {},
        422,
        "VALIDATION_FAILED",
        "query.after",
    ),
    (
        "GET",
        "/api/workflow-runs/r/events",
        {"headers": {"Last-Event-ID": BIG}},
        422,
        "VALIDATION_FAILED",
        "header.last-event-id",
    ),
    ("POST", f"/api/prompts/retention/run?days={BIG}", {}, 422, "VALIDATION_FAILED", "query.days"),
    (
        "PUT",
        "/api/budgets",
        {"json": {"period": "day", "tokenLimit": 2**64}},
        422,
        "VALIDATION_FAILED",
        "body.tokenLimit",
    ),
    (
        "PUT",
        "/api/budgets",
        {"json": {"period": "day", "costLimit": "1e400"}},
        422,
        "VALIDATION_FAILED",
        "body.costLimit",
    ),
    (
        "PUT",
        "/api/budgets",
        {"json": {"period": "day", "costLimit": "9" * 5000}},
        422,
        "VALIDATION_FAILED",
        "body.costLimit",
    ),
    (
        "PUT",
        "/api/budgets",
        {"content": b'{"period":"day","costLimit":' + b"9" * 5000 + b"}", "headers": JSON},
        422,
        "VALIDATION_FAILED",
        "body",
    ),
    (
        "POST",
        "/api/prompts/pointer/move",
        {"json": {"scope": {"model": "m"}, "versionId": "v", "expectedVersion": 2**40}},
        422,
        "VALIDATION_FAILED",
        "body.expectedVersion",
    ),
    (
        "POST",
        "/api/workflows/x/runs",
        {"json": {"version": 2**40}},
        422,
        "VALIDATION_FAILED",
        "body.version",
    ),
    (
        "GET",
        "/api/prompts/pointer?model=demo&workflowId=",
        {},
        422,
        "VALIDATION_FAILED",
        "query.workflowId",
    ),
    (
        "GET",
        "/api/prompts/pointer/history?model=demo&workflowId=",
        {},
        422,
        "VALIDATION_FAILED",
        "query.workflowId",
    ),
    ("GET", "/api/usage?until=0", {}, 422, "VALIDATION_FAILED", "query.until"),
    (
        "POST",
        "/api/workflows/validate",
        {"content": DEEP_JSON, "headers": JSON},
        422,
        "WORKFLOW_INVALID",
        None,
    ),
    (
        "POST",
        "/api/workflows",
        {"content": DEEP_OBJECT, "headers": JSON},
        422,
        "WORKFLOW_INVALID",
        None,
    ),
    (
        "POST",
        "/api/workflows/validate",
        {"content": DEEP_YAML_BLOCK, "headers": {"content-type": "application/yaml"}},
        422,
        "WORKFLOW_INVALID",
        None,
    ),
    (
        "POST",
        "/api/workflows",
        {"content": DEEP_YAML_MAP, "headers": {"content-type": "application/yaml"}},
        422,
        "WORKFLOW_INVALID",
        None,
    ),
    (
        "POST",
        "/api/tenants",
        {"content": DEEP_JSON, "headers": JSON},
        422,
        "VALIDATION_FAILED",
        "body",
    ),
    ("POST", "/api/tenants", {"json": {"name": "a\u0000b"}}, 422, "VALIDATION_FAILED", "body"),
    (
        "POST",
        "/api/principals",
        {"content": b'{"name": "x\\u0000", "role": "viewer"}', "headers": JSON},
        422,
        "VALIDATION_FAILED",
        "body",
    ),
    (
        "POST",
        "/api/workflows/x/runs",
        {"json": {"input": {"k": "\u0000"}}},
        422,
        "VALIDATION_FAILED",
        "body",
    ),
    # the documents and search routes (#18 follow-up: landed beside the hardening)
    ("GET", f"/api/documents?offset={BIG}", {}, 422, "VALIDATION_FAILED", "query.offset"),
    ("GET", f"/api/collections?offset={BIG}", {}, 422, "VALIDATION_FAILED", "query.offset"),
    (
        "GET",
        f"/api/collections/c/grants?offset={BIG}",
        {},
        422,
        "VALIDATION_FAILED",
        "query.offset",
    ),
    (
        "GET",
        f"/api/document-dead-letters?offset={BIG}",
        {},
        422,
        "VALIDATION_FAILED",
        "query.offset",
    ),
    (
        "GET",
        f"/api/documents/d/events?offset={BIG}",
        {},
        422,
        "VALIDATION_FAILED",
        "query.offset",
    ),
    ("GET", f"/api/documents/d/events?after={BIG}", {}, 422, "VALIDATION_FAILED", "query.after"),
    ("GET", "/api/documents/doc%00x", {}, 422, "VALIDATION_FAILED", "path"),
    ("GET", "/api/documents?collection=a%00", {}, 422, "VALIDATION_FAILED", "query"),
    ("POST", "/api/collections", {"json": {"name": "a\u0000b"}}, 422, "VALIDATION_FAILED", "body"),
    (
        "POST",
        "/api/collections/c/documents",
        {"content": DEEP_JSON, "headers": JSON},
        422,
        "VALIDATION_FAILED",
        "body",
    ),
    ("POST", "/api/search", {"json": {"query": "a\u0000"}}, 422, "VALIDATION_FAILED", "body"),
    (
        "POST",
        "/api/documents",
        {"content": NUL_FILENAME, "headers": {"content-type": "multipart/form-data; boundary=b"}},
        422,
        "VALIDATION_FAILED",
        None,
    ),
    (
        "POST",
        "/api/documents",
        {"files": [("files", ("a.md", b"# x\n", "text/plain"))], "data": {"collection": "c\u0000"}},
        422,
        "VALIDATION_FAILED",
        None,
    ),
    ("GET", "/api/keys/key%00x", {}, 422, "VALIDATION_FAILED", "path"),
    ("GET", "/api/prompts/versions?name=a%00", {}, 422, "VALIDATION_FAILED", "query"),
    (
        "POST",
        "/api/tenants",
        {"content": b'{"name": "\xff"}', "headers": JSON},
        422,
        "VALIDATION_FAILED",
        "body",
    ),
    (
        "POST",
        "/api/workflows/validate",
        {"content": b'name: "a\\0b"\n', "headers": {"content-type": "application/yaml"}},
        422,
        "WORKFLOW_INVALID",
        None,
    ),
]


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status", "code", "field"),
    PROBES,
    ids=[f"{m} {u[:60]}" for m, u, *_ in PROBES],
)
async def test_bad_input_is_a_coded_error(
    client, admin_key, method, url, kwargs, status, code, field
) -> None:
    kwargs = dict(kwargs)  # PROBES is shared by both dialects: never mutate it
    headers = {**auth(admin_key), **kwargs.pop("headers", {})}
    r = await client.request(method, url, headers=headers, **kwargs)
    assert r.status_code == status, r.text[:300]
    err = r.json()["error"]
    assert err["code"] == code and err["requestId"], err
    if field is not None:
        paths = [e["path"].lower() for e in err["details"]["errors"]]
        assert field.lower() in paths, paths


GRAPHQL_BODIES = [
    (b"null", 422, "VALIDATION_FAILED"),
    (b'"x"', 422, "VALIDATION_FAILED"),
    (b"5", 422, "VALIDATION_FAILED"),
    (b'{"query": "\xff"}', 422, "VALIDATION_FAILED"),
    (b'{"query": ' + b"9" * 5000 + b"}", 422, "VALIDATION_FAILED"),
    (DEEP_JSON, 422, "VALIDATION_FAILED"),
    (b'[{"query": "{ me { tenantId } }"}]', 400, "BAD_REQUEST"),
    (b"{}", 400, "BAD_REQUEST"),
    (b"{nope", 422, "VALIDATION_FAILED"),
]


@pytest.mark.parametrize(("body", "status", "code"), GRAPHQL_BODIES)
async def test_graphql_bodies_are_refused_in_the_envelope(client, admin_key, body, status, code):
    r = await client.post("/graphql", content=body, headers={**auth(admin_key), **JSON})
    assert r.status_code == status, r.text[:300]
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["code"] == code and r.json()["error"]["requestId"]


async def test_graphql_unsupported_content_type_uses_the_envelope(client, admin_key):
    r = await client.post(
        "/graphql",
        content=b"{ me { tenantId } }",
        headers={**auth(admin_key), "content-type": "text/plain"},
    )
    assert r.status_code == 415 and r.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


# (document, variables, code, where the message or path must point)
RESOLVER_PROBES = [
    (
        'mutation { startPromptCanary(model: "demo", versionId: "x", percent: 0, '
        "expectedVersion: 1) { version } }",
        {},
        "VALIDATION_FAILED",
        "percent",
    ),
    (
        'mutation { rollbackPromptPointer(model: "demo", expectedVersion: 0) { version } }',
        {},
        "VALIDATION_FAILED",
        "expectedVersion",
    ),
    (
        'mutation { movePromptPointer(model: "demo", versionId: "x", expectedVersion: 0, '
        'workflowId: "") { version } }',
        {},
        "VALIDATION_FAILED",
        "workflowId",
    ),
    ('mutation { createPromptVersion(name: "a", content: 5) { id } }', {}, "VALIDATION_FAILED", ""),
    (
        'mutation { createPromptVersion(name: "a", content: [1, 2]) { id } }',
        {},
        "VALIDATION_FAILED",
        "",
    ),
    ('mutation { shareWorkflow(workflow: "x", kind: "bogus") }', {}, "VALIDATION_FAILED", "kind"),
    (
        "query($m: String!) { promptPointer(model: $m) { version } }",
        {"m": "m" * 300},
        "VALIDATION_FAILED",
        "model",
    ),
    (
        'mutation { setBudget(period: "day", costLimit: "1e400") { id } }',
        {},
        "VALIDATION_FAILED",
        "costLimit",
    ),
    ('mutation { createTenant(name: "a\\u0000b") { id } }', {}, "VALIDATION_FAILED", ""),
    (
        "query { me { ...F0 } }\n"
        + "\n".join(f"fragment F{i} on Me {{ ...F{i + 1} }}" for i in range(300))
        + "\nfragment F300 on Me { tenantId }",
        {},
        "GRAPHQL_QUERY_TOO_DEEP",
        "",
    ),
]


@pytest.mark.parametrize(("query", "variables", "code", "where"), RESOLVER_PROBES)
async def test_graphql_invalid_arguments_are_coded(
    client, admin_key, query, variables, code, where
):
    r = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=auth(admin_key)
    )
    assert r.status_code == 200, r.text[:300]
    (error,) = r.json()["errors"]
    assert error["extensions"]["code"] == code, error
    assert error["extensions"]["requestId"]
    assert where in json.dumps(error)
