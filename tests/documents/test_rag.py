"""Documents and retrieval joined: a REST upload becomes searchable with citations; a caller
without a grant never sees it (list, get, search, a VectorSearch workflow); deleting the
collection leaves no chunk row and no vector. Both databases; the fake hashing embedder, and
one test through the real local model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import auth
from tests.documents import samples
from tests.documents.helpers import drain

SECRET = "Boiler override code 4711 opens the emergency gasholder valve."
OTHER = "Invoices are paid within thirty days of receipt."


async def _start(settings: Any, embedder: Any | None) -> Any:
    from gasworks.retrieval.runtime import EMBEDDER_OVERRIDE
    from gasworks.wiring import build_runtime

    rt = build_runtime(settings)
    if embedder is not None:
        rt.services[EMBEDDER_OVERRIDE] = embedder
    await rt.start(migrate=False)
    return rt


@pytest.fixture
async def rag(doc_settings: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient, str, str]]:
    """The default wiring (no fake writer: retrieval's index), an admin key and a viewer key."""
    from gasworks.testing import HashingEmbedder

    rt = await _start(doc_settings, HashingEmbedder())
    async with _client(rt) as (c, admin, viewer):
        yield rt, c, admin, viewer
    await rt.stop()


class _client:
    def __init__(self, rt: Any) -> None:
        self.rt = rt

    async def __aenter__(self) -> tuple[httpx.AsyncClient, str, str]:
        from gasworks.api.app import create_app
        from gasworks.tenancy import service
        from gasworks.tenancy.context import Role, TenantContext
        from gasworks.tenancy.schemas import ApiKeyCreate

        async with self.rt.db.session() as s:
            tenant, created = await service.bootstrap(s, "default")
            assert created is not None
            viewer = await service.create_api_key(
                s,
                TenantContext.system(tenant.id, tenant.name),
                ApiKeyCreate(name="viewer", role=Role.VIEWER),
            )
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(runtime=self.rt)),
            base_url="http://gasworks.test",
        )
        return self.http, created.key, viewer.key

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()


async def _upload(c: httpx.AsyncClient, key: str, collection: str) -> str:
    h = auth(key)
    r = await c.post("/api/collections", json={"name": collection}, headers=h)
    assert r.status_code == 201, r.text
    files = [
        ("files", ("manual.pdf", samples.pdf(OTHER, SECRET), "application/pdf")),
    ]
    r = await c.post("/api/documents", files=files, data={"collection": collection}, headers=h)
    assert r.status_code == 201, r.text
    return str(r.json()["documents"][0]["document"]["id"])


async def _search(c: httpx.AsyncClient, key: str, query: str, **kw: Any) -> list[Any]:
    r = await c.post("/api/search", json={"query": query, **kw}, headers=auth(key))
    assert r.status_code == 200, r.text
    return list(r.json()["hits"])


async def _stored(rt: Any) -> tuple[int, int]:
    """Chunk rows and vectors of every tenant, counted in the chunk table and the index."""
    from gasworks.retrieval.runtime import get_retrieval
    from gasworks.retrieval.tables import ChunkRow

    async with rt.db.read_session() as s:
        chunks = int(await s.scalar(select(func.count()).select_from(ChunkRow)) or 0)
        tenants = set((await s.scalars(select(ChunkRow.tenant_id).distinct())).all())
    from gasworks.tenancy.tables import TenantRow

    async with rt.db.read_session() as s:
        tenants |= set((await s.scalars(select(TenantRow.id))).all())
    index = get_retrieval(rt).index
    return chunks, sum([await index.count(t) for t in tenants])


RAG = {
    "id": "rag",
    "nodes": [
        {"id": "search", "type": "VectorSearch", "config": {"query": "${input.message}", "k": 3}},
        {"id": "answer", "type": "Format", "config": {"template": "${search.text}"}},
    ],
    "edges": [{"from": "search", "to": "answer"}],
}


async def test_upload_ready_search_access_and_cascade_delete(rag: Any) -> None:
    rt, c, admin, viewer = rag
    doc = await _upload(c, admin, "private")
    await drain(rt)
    r = await c.get(f"/api/documents/{doc}", headers=auth(admin))
    assert r.json()["status"] == "ready", r.json()
    assert _stored_nonzero(await _stored(rt))

    hits = await _search(c, admin, "boiler override code gasholder valve", k=1)
    assert hits[0]["citation"]["documentId"] == doc
    assert hits[0]["citation"]["documentName"] == "manual.pdf"
    assert hits[0]["citation"]["page"] == 2
    assert "4711" in hits[0]["text"]

    # the viewer has no grant on "private": list, get, search, a workflow never show it
    assert (await c.get("/api/documents", headers=auth(viewer))).json() == []
    r = await c.get(f"/api/documents/{doc}", headers=auth(viewer))
    assert r.status_code == 404
    assert await _search(c, viewer, SECRET) == []
    assert await _search(c, viewer, SECRET, documents=[doc]) == []
    r = await c.post(
        "/api/search", json={"query": SECRET, "collections": ["private"]}, headers=auth(viewer)
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "VALIDATION_FAILED"
    assert (await c.post("/api/workflows", json=RAG, headers=auth(admin))).status_code == 201
    r = await c.post("/api/workflows/rag/shares", json={"kind": "tenant"}, headers=auth(admin))
    assert r.status_code == 201, r.text
    run = await _run(c, viewer, SECRET, {"allowedDocumentIds": [doc]})
    assert "4711" not in run["output"] and doc not in run["output"]

    # granted, the same viewer sees it everywhere (so the checks above can fail)
    r = await c.post(
        "/api/collections/private/grants",
        json={"kind": "role", "subject": "viewer"},
        headers=auth(admin),
    )
    assert r.status_code == 201, r.text
    assert [d["id"] for d in (await c.get("/api/documents", headers=auth(viewer))).json()] == [doc]
    assert (await _search(c, viewer, SECRET, k=1))[0]["citation"]["documentId"] == doc
    run = await _run(c, viewer, SECRET)
    assert "4711" in run["output"] and "manual.pdf" in run["output"]

    r = await c.delete("/api/collections/private", headers=auth(admin))
    assert r.status_code in (202, 204), r.text
    assert await _search(c, admin, SECRET) == []
    await drain(rt)
    assert await _stored(rt) == (0, 0)


def _stored_nonzero(counts: tuple[int, int]) -> bool:
    return counts[0] > 0 and counts[0] == counts[1]


async def _run(c: httpx.AsyncClient, key: str, message: str, extra: Any = None) -> Any:
    r = await c.post(
        "/api/workflows/rag/runs",
        json={"input": {"message": message, **(extra or {})}},
        headers=auth(key),
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded", r.json()
    return r.json()


async def test_vector_write_outputs_follow_their_collections_grants(rag: Any) -> None:
    rt, c, admin, viewer = rag
    h = auth(admin)
    assert (await c.post("/api/collections", json={"name": "notes"}, headers=h)).status_code == 201
    write = {
        "id": "remember",
        "nodes": [
            {
                "id": "store",
                "type": "VectorWrite",
                "config": {"collection": "notes", "text": "Summary: ${input.message}"},
            }
        ],
    }
    assert (await c.post("/api/workflows", json=write, headers=h)).status_code == 201
    r = await c.post(
        "/api/workflows/remember/runs",
        json={"input": {"message": "the customer prefers gas heating"}},
        headers=h,
    )
    assert r.json()["status"] == "succeeded", r.json()
    hits = await _search(c, admin, "gas heating", collections=["notes"])
    assert [x["text"] for x in hits] == ["Summary: the customer prefers gas heating"]
    assert await _search(c, viewer, "gas heating") == []
    r = await c.post("/api/collections/notes/grants", json={"kind": "tenant"}, headers=h)
    assert r.status_code == 201, r.text
    assert len(await _search(c, viewer, "gas heating")) == 1
    # the documents reconciler leaves VectorWrite's sources alone
    from gasworks.documents.domain import get_documents

    await get_documents(rt).reconciler.run()
    assert len(await _search(c, viewer, "gas heating")) == 1


async def test_real_local_model_end_to_end(doc_settings: Any) -> None:
    """No embedder override: the gateway's default, ``local/all-minilm-l6-v2``, embeds the
    pipeline's chunks and the query; vector search finds the semantically matching page."""
    rt = await _start(doc_settings, None)
    try:
        async with _client(rt) as (c, admin, _):
            doc = await _upload(c, admin, "kb")
            await drain(rt)
            r = await c.get(f"/api/documents/{doc}", headers=auth(admin))
            assert r.json()["status"] == "ready", r.json()
            hits = await _search(c, admin, "how do I open the emergency valve?", mode="vector", k=2)
            assert hits[0]["citation"]["page"] == 2, hits
            assert hits[0]["citation"]["documentName"] == "manual.pdf"
            assert hits[0]["score"] > hits[1]["score"]
    finally:
        await rt.stop()
