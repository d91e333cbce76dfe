"""The documents and collections pages in process on both databases: upload through the
console's form (the REST route's reader and limits), status and events, role checks as the
API's, the cascade preview, dead letters and the overview's ingestion health. The pipeline runs
with the tests' FakeEmbedder, drained in this process (tests/documents). The browser tests
drive the same pages in Chromium."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gasworks.errors import ProviderUnavailable
from gasworks.tenancy import service
from gasworks.tenancy.schemas import ApiKeyCreate
from gasworks.testing import FakeEmbedder, MemorySources
from tests.console.test_sessions import ORIGIN, _ctx, _sign_in
from tests.documents import samples
from tests.documents.helpers import drain


@pytest.fixture
async def runtime(settings: Any) -> AsyncIterator[Any]:
    """The full runtime; the pipeline embeds with FakeEmbedder and runs when drained."""
    from gasworks.documents.domain import EMBEDDER, SOURCES
    from gasworks.wiring import build_runtime

    s = settings.model_copy(
        update={
            "documents_run_workers": False,
            "documents_retry_base_seconds": 0,
            "documents_max_attempts": 2,
            "documents_ocr_engine": "none",
            "documents_max_files": 3,
        }
    )
    rt = build_runtime(s)
    rt.services[EMBEDDER] = FakeEmbedder()
    rt.services[SOURCES] = MemorySources()
    await rt.start(migrate=False)
    yield rt
    await rt.stop()


@pytest.fixture
async def app(runtime: Any) -> Any:
    from gasworks.console import create_web_app

    return create_web_app(runtime=runtime)


def _files(*named: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes]]]:
    return [("files", (name, data)) for name, data in named]


async def _upload(client: httpx.AsyncClient, csrf: str, *named: tuple[str, bytes]) -> str:
    r = await client.post(
        "/console/documents/upload",
        files=_files(*named),
        headers={"X-CSRF-Token": csrf, "HX-Request": "true", **ORIGIN},
    )
    assert r.status_code == 200, r.text
    found = re.findall(r'data-uploaded="(doc_[^"]+)"', r.text)
    assert len(found) == len(named), r.text
    return str(found[0])


async def _viewer(runtime: Any, admin_key: str) -> str:
    admin = await _ctx(runtime, admin_key)
    async with runtime.db.session() as s:
        created = await service.create_api_key(s, admin, ApiKeyCreate(name="v", role="viewer"))
    return created.key


async def test_upload_watch_it_become_ready_then_search_and_filter(
    client: httpx.AsyncClient, runtime: Any, admin_key: str
) -> None:
    csrf = await _sign_in(client, admin_key)
    doc_id = await _upload(client, csrf, ("guide.md", samples.MARKDOWN))
    # while queued the page polls its live part; once ready it stops
    page = (await client.get(f"/console/documents/{doc_id}")).text
    assert 'data-doc-status="queued"' in page and 'hx-trigger="every 1s"' in page
    await drain(runtime)
    live = (await client.get(f"/console/documents/{doc_id}/status")).text
    assert 'data-doc-status="ready"' in live and "every 1s" not in live
    assert re.search(r'data-stage="index"[^>]*>', live) and "stage.done" in live
    # the list: searchable by a part of the name, filtered by status
    assert "guide.md" in (await client.get("/console/documents?q=GUIDE")).text
    assert "guide.md" not in (await client.get("/console/documents?q=nothing-like-it")).text
    assert "guide.md" not in (await client.get("/console/documents?status=failed")).text
    # the overview counts it
    overview = (await client.get("/console")).text
    assert "Document ingestion" in overview and 'data-queue="embed"' in overview


async def test_upload_limits_and_errors_are_the_apis(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    csrf = await _sign_in(client, admin_key)
    hx = {"X-CSRF-Token": csrf, "HX-Request": "true", **ORIGIN}
    many = _files(*[(f"{i}.txt", f"file {i}".encode()) for i in range(4)])
    r = await client.post("/console/documents/upload", files=many, headers=hx)
    assert r.status_code == 413 and "TOO_MANY_FILES" in r.text
    bad = _files(("noise.pdf", bytes(range(256))))
    r = await client.post("/console/documents/upload", files=bad, headers=hx)
    assert r.status_code == 415 and "DOCUMENT_TYPE_UNSUPPORTED" in r.text
    # without the CSRF token (header or form field) nothing is stored
    r = await client.post(
        "/console/documents/upload", files=_files(("a.txt", b"hello")), headers=ORIGIN
    )
    assert r.status_code == 403
    assert "a.txt" not in (await client.get("/console/documents")).text


async def test_a_dead_letter_replayed_from_the_console(
    client: httpx.AsyncClient, runtime: Any, admin_key: str
) -> None:
    from gasworks.documents.domain import EMBEDDER

    csrf = await _sign_in(client, admin_key)
    embedder: FakeEmbedder = runtime.services[EMBEDDER]
    embedder.fail = [ProviderUnavailable("embedding provider down")] * 2
    doc_id = await _upload(client, csrf, ("notes.txt", b"Gas lamps lit the streets."))
    await drain(runtime)
    page = (await client.get(f"/console/documents/{doc_id}")).text
    assert 'data-doc-status="failed"' in page and "PROVIDER_UNAVAILABLE" in page
    dead = (await client.get("/console/document-dead-letters?stage=embed")).text
    (job_id,) = re.findall(r'data-dead-letter="([^"]+)"', dead)
    assert "notes.txt" in dead
    r = await client.post(
        f"/console/document-dead-letters/{job_id}/replay", headers={"X-CSRF-Token": csrf, **ORIGIN}
    )
    assert r.status_code == 200 and "queued again" in r.text
    await drain(runtime)
    assert 'data-doc-status="ready"' in (await client.get(f"/console/documents/{doc_id}")).text
    audit = (await client.get("/console/documents/audit")).text
    assert "deadletters.replayed" in audit


async def test_collections_grants_cascade_and_a_viewer(
    client: httpx.AsyncClient, runtime: Any, admin_key: str
) -> None:
    csrf = await _sign_in(client, admin_key)
    hdr = {"X-CSRF-Token": csrf, **ORIGIN}
    r = await client.post("/console/collections", data={"name": "handbook"}, headers=hdr)
    assert r.status_code == 200 and "Created collection handbook" in r.text
    col = re.search(r'/console/collections/(col_[^/"]+)/grants"', r.text)
    assert col is not None
    col_id = col.group(1)
    r = await client.post(
        "/console/documents/upload",
        files=[*_files(("a.md", samples.MARKDOWN)), ("collection", (None, col_id))],
        headers={**hdr, "HX-Request": "true"},
    )
    assert r.status_code == 200, r.text
    page = (await client.get(f"/console/collections/{col_id}")).text
    assert "a.md" in page and re.search(r"data-cascade-count>1<", page)

    viewer = await _viewer(runtime, admin_key)
    async with httpx.AsyncClient(transport=client._transport, base_url=client.base_url) as v:
        vcsrf = await _sign_in(v, viewer)
        assert "a.md" not in (await v.get("/console/documents")).text  # no grant yet
        assert (await v.get(f"/console/collections/{col_id}")).status_code == 404
        r = await client.post(
            f"/console/collections/{col_id}/grants",
            data={"kind": "role", "role": "viewer"},
            headers=hdr,
        )
        assert "Granted read to role viewer" in r.text
        listed = (await v.get("/console/documents")).text
        assert "a.md" in listed
        doc_id = re.findall(r'/console/documents/(doc_[^"]+)"', listed)[0]
        doc_page = (await v.get(f"/console/documents/{doc_id}")).text
        # a viewer reads it but gets no delete, re-ingest, upload or grant controls
        assert "Delete" not in doc_page and "Re-ingest" not in doc_page
        assert 'name="files"' not in listed
        assert "grant-form" not in (await v.get(f"/console/collections/{col_id}")).text
        # a forged post with the viewer's own token: the service refuses, nothing changes
        vh = {"X-CSRF-Token": vcsrf, **ORIGIN}
        r = await v.post(f"/console/documents/{doc_id}/delete", headers=vh)
        assert r.status_code == 403 and "FORBIDDEN" in r.text
        r = await v.post(f"/console/collections/{col_id}/delete", headers=vh)
        assert r.status_code == 403
        assert (await v.get(f"/console/documents/{doc_id}")).status_code == 200

    r = await client.post(f"/console/collections/{col_id}/delete", headers=hdr)
    assert "Deleting collection handbook: 1 document in no other collection" in r.text
    assert (await client.get(f"/console/collections/{col_id}")).status_code == 404
    assert (await client.get(f"/console/documents/{doc_id}")).status_code == 404
