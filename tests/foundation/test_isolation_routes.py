"""Tenant isolation generated from the route table: for every route with an id in its path,
every key of tenant B (each role) gets for tenant A's real object exactly the answer it
gets for a made-up id. The routes come from the app's OpenAPI document, so a route added
later is probed without anyone remembering to: its path parameters must be declared in
``gasworks.api.routing.ID_KINDS`` (the test fails on an undeclared one), and a new kind of
object needs a maker below that creates one in tenant A.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.conftest import auth
from tests.foundation.conftest import TenantKeys
from tests.workflows.test_http import SUPPORT

Maker = Callable[[Any, TenantKeys], Awaitable[str]]


async def _prompt_version(client: Any, a: TenantKeys) -> str:
    r = await client.post(
        "/api/prompts/versions",
        json={"name": "iso", "content": {"system": "s"}},
        headers=auth(a.owner),
    )
    assert r.status_code in (200, 201), r.text
    return str(r.json()["id"])


async def _dead_letter(client: Any, a: TenantKeys) -> str:
    body = {
        "scope": {"model": "demo"},
        "versionId": await _prompt_version(client, a),
        "expectedVersion": 0,
    }
    for _ in range(2):  # the second move conflicts: a dead letter
        r = await client.post("/api/prompts/pointer/move", json=body, headers=auth(a.owner))
    assert r.status_code == 409, r.text
    return str(r.json()["error"]["details"]["deadLetterId"])


async def _workflow(client: Any, a: TenantKeys) -> str:
    r = await client.post(
        "/api/workflows", json={**SUPPORT, "id": "iso-workflow"}, headers=auth(a.owner)
    )
    assert r.status_code in (200, 201), r.text
    return "iso-workflow"


async def _share(client: Any, a: TenantKeys) -> str:
    slug = await _workflow(client, a)
    r = await client.post(
        f"/api/workflows/{slug}/shares", json={"kind": "tenant"}, headers=auth(a.owner)
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _run(client: Any, a: TenantKeys) -> str:
    slug = await _workflow(client, a)
    r = await client.post(
        f"/api/workflows/{slug}/runs",
        json={"input": {"message": "hello"}, "conversationId": "iso-conversation"},
        headers=auth(a.owner),
    )
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    return str(r.json()["id"])


async def _conversation(client: Any, a: TenantKeys) -> str:
    await _run(client, a)
    return "iso-conversation"


async def _version(client: Any, a: TenantKeys) -> str:
    await _workflow(client, a)
    return "1"


async def _tenant(client: Any, a: TenantKeys) -> str:
    return a.tenant_id


async def _key(client: Any, a: TenantKeys) -> str:
    return a.viewer_key_id


async def _document(client: Any, a: TenantKeys) -> str:
    files = [("files", ("iso.md", b"# Isolation\n\nA private note.\n", "text/plain"))]
    r = await client.post("/api/documents", files=files, headers=auth(a.owner))
    assert r.status_code == 201, r.text
    return str(r.json()["documents"][0]["document"]["id"])


async def _collection(client: Any, a: TenantKeys) -> str:
    r = await client.get("/api/collections/iso-collection", headers=auth(a.owner))
    if r.status_code == 200:
        return "iso-collection"
    r = await client.post(
        "/api/collections", json={"name": "iso-collection"}, headers=auth(a.owner)
    )
    assert r.status_code == 201, r.text
    return "iso-collection"  # by name; another tenant's collection of the same name is not it


async def _grant(client: Any, a: TenantKeys) -> str:
    ref = await _collection(client, a)
    r = await client.post(
        f"/api/collections/{ref}/grants", json={"kind": "tenant"}, headers=auth(a.owner)
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _document_dead_letter(client: Any, a: TenantKeys) -> str:
    """A pipeline job of tenant A that has given up (written directly: no failure to stage)."""
    from gasworks.db.types import new_id, utcnow
    from gasworks.jobs.tables import JobRow

    runtime = client._transport.app.state.runtime
    job_id = new_id("job")
    async with runtime.db.session() as s:
        s.add(
            JobRow(
                id=job_id,
                tenant_id=a.tenant_id,
                kind="documents.index",
                subject="doc_00000000000000000000000000000000",
                payload={},
                status="dead",
                attempts=3,
                max_attempts=3,
                error_code="PROVIDER_UNAVAILABLE",
                error_message="down",
                dead_at=utcnow(),
            )
        )
    return job_id


#: kind -> (a maker of tenant A's object, a made-up id of the same shape)
MAKERS: dict[str, tuple[Maker, str]] = {
    "tenant": (_tenant, "ten_00000000000000000000000000000000"),
    "key": (_key, "key_00000000000000000000000000000000"),
    "prompt_version": (_prompt_version, "pv_00000000000000000000000000000000"),
    "prompt_dead_letter": (_dead_letter, "pdl_00000000000000000000000000000000"),
    "workflow": (_workflow, "no-such-workflow"),
    "workflow_version": (_version, "1"),  # not an object of its own: the workflow decides
    "workflow_share": (_share, "shr_00000000000000000000000000000000"),
    "workflow_run": (_run, "run_00000000000000000000000000000000"),
    "conversation": (_conversation, "no-such-conversation"),
    "document": (_document, "doc_00000000000000000000000000000000"),
    "collection": (_collection, "no-such-collection"),
    "collection_grant": (_grant, "grt_00000000000000000000000000000000"),
    "document_dead_letter": (_document_dead_letter, "job_00000000000000000000000000000000"),
}

#: bodies that pass validation, so the request reaches the lookup (default: none)
BODIES: dict[tuple[str, str], Any] = {
    ("post", "/api/workflows/{slug}/shares"): {"kind": "tenant"},
    ("post", "/api/workflows/{slug}/runs"): {"input": {"message": "hello"}},
    ("post", "/api/prompts/dead-letters/{dl_id}/replay"): {},
    ("post", "/api/collections/{ref}/grants"): {"kind": "tenant"},
    ("post", "/api/collections/{ref}/documents"): ["doc_00000000000000000000000000000000"],
}


def _params(template: str) -> list[str]:
    return re.findall(r"{([^}:]+)(?::[^}]*)?}", template)


def _comparable(r: Any, replace: dict[str, str]) -> tuple[int, str, list[str]]:
    try:
        body: Any = r.json()
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            body["error"].pop("requestId", None)
        text = json.dumps(body, sort_keys=True)
    except ValueError:
        text = r.text
    for value in sorted(replace, key=len, reverse=True):
        if len(value) > 3:
            text = text.replace(value, replace[value])
    headers = sorted(k for k in r.headers if k.lower() not in {"x-request-id", "content-length"})
    return r.status_code, text, headers


async def test_every_id_route_answers_another_tenants_id_like_a_missing_one(
    client, runtime, tenant_a, tenant_b
) -> None:
    from gasworks.api.routing import ID_KINDS, PLATFORM, VALUE
    from gasworks.tenancy import service
    from gasworks.tenancy.context import Role, TenantContext
    from tests.workflows.fakes import FakeModels

    runtime.services["workflows.models"] = FakeModels()
    doc = client._transport.app.openapi()
    templates = {t: ops for t, ops in doc["paths"].items() if _params(t)}
    undeclared = {p for t in templates for p in _params(t) if p not in ID_KINDS}
    assert not undeclared, f"declare these path parameters in api.routing.ID_KINDS: {undeclared}"
    kinds = {ID_KINDS[p] for t in templates for p in _params(t)} - {PLATFORM, VALUE}
    missing = kinds - set(MAKERS)
    assert not missing, f"add a maker of tenant A's object for: {missing}"

    real = {kind: await MAKERS[kind][0](client, tenant_a) for kind in sorted(kinds)}
    async with runtime.db.session() as s:
        ctx = TenantContext(tenant_id=tenant_b.tenant_id, principal_id="system", role=Role.OWNER)
        from gasworks.tenancy.schemas import ApiKeyCreate

        editor = await service.create_api_key(s, ctx, ApiKeyCreate(name="e", role=Role.EDITOR))
    b_keys = {
        "owner": tenant_b.owner,
        "admin": tenant_b.admin,
        "editor": editor.key,
        "viewer": tenant_b.viewer,
    }

    probed: set[str] = set()
    mismatches: list[str] = []
    order = {"get": 0, "post": 1, "put": 2, "patch": 3, "delete": 4}  # deletes last
    for template, ops in sorted(templates.items()):
        params = _params(template)
        if any(ID_KINDS[p] in (PLATFORM, VALUE) for p in params):
            continue
        own = {p: real[ID_KINDS[p]] for p in params}
        made_up = {p: MAKERS[ID_KINDS[p]][1] for p in params}
        replace = {v: f"<{p}>" for p, v in own.items()} | {v: f"<{p}>" for p, v in made_up.items()}
        for method in sorted(ops, key=lambda m: order.get(m, 9)):
            if method not in order:
                continue
            body = BODIES.get((method, template))
            for role, key in b_keys.items():
                answers = []
                for values in (own, made_up):
                    url = template.format(**values)
                    kwargs: dict[str, Any] = {"headers": auth(key)}
                    if body is not None:
                        kwargs["json"] = body
                    answers.append(await client.request(method.upper(), url, **kwargs))
                for_real, for_missing = (_comparable(a, replace) for a in answers)
                where = f"{method.upper()} {template} as B's {role}"
                if for_real != for_missing:
                    mismatches.append(f"{where}: {for_real} != {for_missing}")
                elif not 400 <= answers[0].status_code < 500:
                    mismatches.append(f"{where}: answered {answers[0].status_code}")
            probed.add(f"{method.upper()} {template}")
    assert not mismatches, "\n".join(mismatches)
    assert len(probed) >= 20, sorted(probed)
    # tenant A's objects are all still there
    r = await client.get(f"/api/workflows/{real['workflow']}", headers=auth(tenant_a.owner))
    assert r.status_code == 200


@pytest.mark.parametrize("template", ["/api/things/{thing_id}"])
def test_an_undeclared_parameter_is_caught(template) -> None:
    from gasworks.api.routing import ID_KINDS

    assert [p for p in _params(template) if p not in ID_KINDS] == ["thing_id"]
