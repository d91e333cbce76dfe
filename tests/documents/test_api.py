"""REST: multipart upload, status, events (JSON and SSE), collections, grants, dead letters,
delete; another tenant's ids answer 404 like missing ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import auth
from tests.documents import samples
from tests.documents.helpers import drain


@pytest.fixture
async def api(drt: Any) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    from gasworks.api.app import create_app
    from gasworks.tenancy import service

    async with drt.db.session() as s:
        _, created = await service.bootstrap(s, "default")
    assert created is not None
    app = create_app(runtime=drt)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gasworks.test") as c:
        yield c, created.key, ""


async def test_upload_status_events_and_delete(api: Any, drt: Any) -> None:
    c, key, _ = api
    h = auth(key)
    r = await c.post("/api/collections", json={"name": "policies", "chunkTokens": 200}, headers=h)
    assert r.status_code == 201, r.text
    files = [
        ("files", ("policy.md", samples.MARKDOWN, "text/plain")),
        ("files", ("page.html", samples.HTML, "application/octet-stream")),
    ]
    r = await c.post("/api/documents", files=files, data={"collection": "policies"}, headers=h)
    assert r.status_code == 201, r.text
    docs = r.json()["documents"]
    assert [d["document"]["mediaType"] for d in docs] == ["text/markdown", "text/html"]
    doc_id = docs[0]["document"]["id"]
    assert docs[0]["document"]["collections"]
    await drain(drt)
    r = await c.get(f"/api/documents/{doc_id}", headers=h)
    assert r.json()["status"] == "ready"
    r = await c.get("/api/documents", params={"collection": "policies"}, headers=h)
    assert len(r.json()) == 2
    r = await c.get(f"/api/documents/{doc_id}/events", headers=h)
    assert r.json()[0]["kind"] == "uploaded"
    async with c.stream(
        "GET", f"/api/documents/{doc_id}/events", headers={**h, "Accept": "text/event-stream"}
    ) as s:
        body = "".join([chunk async for chunk in s.aiter_text()])
    assert "event: uploaded" in body and 'event: end\ndata: {"status": "ready"}' in body
    r = await c.delete(f"/api/documents/{doc_id}", headers=h)
    assert r.status_code == 202
    r = await c.get(f"/api/documents/{doc_id}", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "DOCUMENT_NOT_FOUND"


async def test_upload_errors_have_codes(api: Any) -> None:
    c, key, _ = api
    h = auth(key)
    r = await c.post("/api/documents", files=[("files", ("e.txt", b"", "text/plain"))], headers=h)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "DOCUMENT_EMPTY")
    r = await c.post(
        "/api/documents",
        files=[("files", ("x.pdf", bytes(range(256)), "application/pdf"))],
        headers=h,
    )
    assert (r.status_code, r.json()["error"]["code"]) == (415, "DOCUMENT_TYPE_UNSUPPORTED")
    r = await c.post("/api/documents", json={"files": []}, headers=h)
    assert r.status_code == 415
    r = await c.post(
        "/api/documents",
        files=[("files", ("a.md", samples.MARKDOWN, "text/plain"))],
        data={"collection": "nope"},
        headers=h,
    )
    assert (r.status_code, r.json()["error"]["code"]) == (404, "COLLECTION_NOT_FOUND")


async def test_dead_letters_over_rest(api: Any, drt: Any) -> None:
    from gasworks.errors import ProviderUnavailable

    c, key, _ = api
    h = auth(key)
    drt.services["documents.sources"].fail = [ProviderUnavailable("down")] * 4
    r = await c.post(
        "/api/documents", files=[("files", ("a.md", samples.MARKDOWN, "text/plain"))], headers=h
    )
    doc_id = r.json()["documents"][0]["document"]["id"]
    await drain(drt)
    r = await c.get("/api/document-dead-letters", params={"stage": "index"}, headers=h)
    (dead,) = r.json()
    assert dead["errorCode"] == "PROVIDER_UNAVAILABLE" and len(dead["history"]) == 3
    r = await c.get(f"/api/document-dead-letters/{dead['id']}", headers=h)
    assert r.json()["subject"] == doc_id
    r = await c.post("/api/document-dead-letters/replay", params={"stage": "index"}, headers=h)
    assert r.json()["count"] == 1
    await drain(drt)
    assert (await c.get(f"/api/documents/{doc_id}", headers=h)).json()["status"] == "ready"
    r = await c.get("/api/document-dead-letters", params={"stage": "bogus"}, headers=h)
    assert r.json()["error"]["code"] == "VALIDATION_FAILED"
