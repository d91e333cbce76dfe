"""The ingestion queue and the documents audit outside the console: REST
(``/api/documents/ingestion``, ``/api/documents/audit``), GraphQL, the SDK, `gasworks documents
queue|audit` (local and --server) and the queue gauges at ``/metrics``. Roles as the service
rules them (the queue and the audit are tenant admins'; a collection's owner reads its own
audit), another tenant's figures and events never visible."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from gasworks.cli.main import app as cli_app
from gasworks.client import AsyncGasworks, Gasworks
from gasworks.errors import Forbidden
from tests.conftest import auth
from tests.documents import samples
from tests.documents.helpers import drain
from tests.llm.conftest import serve


@dataclass
class Keys:
    admin: str  # tenant "default": the platform admin owner
    editor: str
    viewer: str
    other: str  # an admin of tenant "acme"
    tenant_id: str


@pytest.fixture
async def keys(drt: Any) -> Keys:
    from gasworks.tenancy import service
    from gasworks.tenancy.context import Role, TenantContext
    from gasworks.tenancy.schemas import ApiKeyCreate, TenantCreate

    async with drt.db.session() as s:
        tenant, created = await service.bootstrap(s, "default")
        op = TenantContext.system(tenant.id, tenant.name)
        editor = await service.create_api_key(s, op, ApiKeyCreate(name="ed", role=Role.EDITOR))
        viewer = await service.create_api_key(s, op, ApiKeyCreate(name="vi", role=Role.VIEWER))
        acme = await service.create_tenant(s, op, TenantCreate(name="acme"))
        other = await service.create_api_key(
            s, TenantContext.system(acme.id), ApiKeyCreate(name="acme", role=Role.ADMIN)
        )
    assert created is not None
    return Keys(created.key, editor.key, viewer.key, other.key, tenant.id)


@pytest.fixture
async def client(drt: Any) -> AsyncIterator[httpx.AsyncClient]:
    from gasworks.api.app import create_app

    transport = httpx.ASGITransport(app=create_app(runtime=drt))
    async with httpx.AsyncClient(transport=transport, base_url="http://gasworks.test") as c:
        yield c


def _files(*names: str) -> list[tuple[str, tuple[str, bytes, str]]]:
    body = {"a.md": samples.MARKDOWN, "b.html": samples.HTML}
    return [("files", (n, body[n], "application/octet-stream")) for n in names]


def _stages(out: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    return {s["stage"]: (s["waiting"], s["running"], s["dead"]) for s in out["queue"]["stages"]}


async def _get(c: httpx.AsyncClient, key: str, path: str, **params: Any) -> Any:
    r = await c.get(path, params=params, headers=auth(key))
    assert r.status_code == 200, r.text
    return r.json()


async def _fail_index_once(drt: Any, c: httpx.AsyncClient, key: str) -> str:
    """Upload a.md (indexed) and b.html, whose index stage dies: one dead letter of index
    (four failures: the index part inside the embed job, then the index job's three
    attempts)."""
    from gasworks.errors import ProviderUnavailable

    r = await c.post("/api/documents", files=_files("a.md"), headers=auth(key))
    assert r.status_code == 201, r.text
    await drain(drt)
    drt.services["documents.sources"].fail = [ProviderUnavailable("down")] * 4
    r = await c.post(
        "/api/documents", files=_files("b.html"), data={"new": "true"}, headers=auth(key)
    )
    await drain(drt)
    return str(r.json()["documents"][0]["document"]["id"])


async def test_queue_per_stage_over_rest(drt: Any, client: httpx.AsyncClient, keys: Keys) -> None:
    c = client
    empty = await _get(c, keys.admin, "/api/documents/ingestion")
    assert empty["statuses"] == {}
    assert set(_stages(empty)) == {"extract", "ocr", "chunk", "embed", "index", "delete", "cleanup"}
    assert empty["queue"]["waiting"] == empty["queue"]["dead"] == 0
    assert empty["queue"]["oldestAgeSeconds"] == 0

    r = await c.post("/api/documents", files=_files("a.md", "b.html"), headers=auth(keys.admin))
    assert r.status_code == 201
    out = await _get(c, keys.admin, "/api/documents/ingestion")
    assert out["statuses"] == {"queued": 2}
    assert _stages(out)["extract"] == (2, 0, 0) and out["queue"]["waiting"] == 2
    assert out["queue"]["oldestAgeSeconds"] >= 0

    await drain(drt)
    out = await _get(c, keys.admin, "/api/documents/ingestion")
    assert out["statuses"] == {"ready": 2} and out["queue"]["waiting"] == 0

    doc_id = await _fail_index_once(drt, c, keys.admin)
    out = await _get(c, keys.admin, "/api/documents/ingestion")
    assert out["statuses"] == {"ready": 2, "failed": 1}
    assert _stages(out)["index"] == (0, 0, 1) and out["queue"]["dead"] == 1
    (dead,) = await _get(c, keys.admin, "/api/document-dead-letters")
    assert dead["subject"] == doc_id

    # a viewer sees the documents it may read (none granted) and no queue; so does an editor
    for key in (keys.viewer, keys.editor):
        assert await _get(c, key, "/api/documents/ingestion") == {"statuses": {}, "queue": None}
    # another tenant's admin: its own (empty) queue, never this tenant's figures
    other = await _get(c, keys.other, "/api/documents/ingestion")
    assert other["statuses"] == {} and other["queue"]["dead"] == other["queue"]["waiting"] == 0


async def test_audit_over_rest_paged_and_ruled(
    drt: Any, client: httpx.AsyncClient, keys: Keys
) -> None:
    c = client
    h = auth(keys.admin)
    assert (await c.post("/api/collections", json={"name": "kb"}, headers=h)).status_code == 201
    r = await c.post("/api/collections", json={"name": "mine"}, headers=auth(keys.editor))
    assert r.status_code == 201
    mine = r.json()["id"]
    r = await c.post("/api/collections/kb/grants", json={"kind": "tenant"}, headers=h)
    assert r.status_code == 201
    await _fail_index_once(drt, c, keys.admin)
    assert (await c.post("/api/document-dead-letters/discard", headers=h)).json()["count"] == 1

    events = await _get(c, keys.admin, "/api/documents/audit")
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "deadletters.discarded"  # newest first
    assert "collection.granted" in kinds and kinds.count("collection.created") == 2
    assert all(e["documentId"] is None for e in events)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs, reverse=True)
    page = await _get(c, keys.admin, "/api/documents/audit", limit=1, offset=1)
    assert [e["seq"] for e in page] == seqs[1:2]
    kb = await _get(c, keys.admin, "/api/documents/audit", collection="kb")
    assert [e["kind"] for e in kb] == ["collection.granted", "collection.created"]

    # the owner of a collection reads its audit; nobody else below admin
    own = await _get(c, keys.editor, "/api/documents/audit", collection=mine)
    assert [e["kind"] for e in own] == ["collection.created"]
    for key, params in (
        (keys.editor, {}),
        (keys.viewer, {}),
        (keys.viewer, {"collection": "kb"}),  # granted read, not management
    ):
        r = await c.get("/api/documents/audit", params=params, headers=auth(key))
        assert (r.status_code, r.json()["error"]["code"]) == (403, "FORBIDDEN"), params

    # another tenant: none of these events, and this tenant's collection is not there
    assert await _get(c, keys.other, "/api/documents/audit") == []
    for ref in ("kb", mine):
        r = await c.get(
            "/api/documents/audit", params={"collection": ref}, headers=auth(keys.other)
        )
        assert (r.status_code, r.json()["error"]["code"]) == (404, "COLLECTION_NOT_FOUND")
    r = await c.get("/api/documents/audit", params={"limit": 0}, headers=h)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "VALIDATION_FAILED")


async def test_graphql_ingestion_and_audit(drt: Any, client: httpx.AsyncClient, keys: Keys) -> None:
    c = client
    query = (
        "query($c: String) { documentIngestion { statuses { status count } queue { dead "
        "waiting running oldestAgeSeconds stages { stage waiting running dead } } } "
        "documentAudit(collection: $c, limit: 10) { seq kind actor } }"
    )

    async def gql(key: str, **variables: Any) -> Any:
        r = await c.post(
            "/graphql", json={"query": query, "variables": variables}, headers=auth(key)
        )
        return r.json()

    assert (
        await c.post("/api/collections", json={"name": "kb"}, headers=auth(keys.admin))
    ).is_success
    await _fail_index_once(drt, c, keys.admin)
    data = (await gql(keys.admin))["data"]
    ing = data["documentIngestion"]
    assert {s["status"]: s["count"] for s in ing["statuses"]} == {"ready": 1, "failed": 1}
    rest = await _get(c, keys.admin, "/api/documents/ingestion")
    assert [
        (s["stage"], s["waiting"], s["running"], s["dead"]) for s in ing["queue"]["stages"]
    ] == [(s["stage"], s["waiting"], s["running"], s["dead"]) for s in rest["queue"]["stages"]]
    assert ing["queue"]["dead"] == 1
    rest_audit = await _get(c, keys.admin, "/api/documents/audit", limit=10)
    assert [e["seq"] for e in data["documentAudit"]] == [e["seq"] for e in rest_audit]
    assert data["documentAudit"][0]["kind"] == "collection.created"

    refused = await gql(keys.viewer)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    only = await gql(keys.viewer, c="nope")
    assert only["errors"][0]["extensions"]["code"] == "COLLECTION_NOT_FOUND"
    r = await c.post(
        "/graphql",
        json={"query": "{ documentIngestion { statuses { status } queue { dead } } }"},
        headers=auth(keys.viewer),
    )
    assert r.json()["data"]["documentIngestion"] == {"statuses": [], "queue": None}
    other = (await gql(keys.other))["data"]
    assert other["documentAudit"] == [] and other["documentIngestion"]["queue"]["dead"] == 0


def _gauges(text: str, name: str) -> dict[str, float]:
    """``kind`` → value of one gauge in a Prometheus text exposition."""
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(rf'^{name}\{{kind="([^"]+)"\}} (\S+)$', text, re.MULTILINE)
    }


async def test_queue_gauges_at_scrape_time(drt: Any, client: httpx.AsyncClient, keys: Keys) -> None:
    from gasworks.documents.domain import get_documents

    c = client
    docs = get_documents(drt)
    r = await c.post("/api/documents", files=_files("a.md", "b.html"), headers=auth(keys.other))
    assert r.status_code == 201
    r = await c.post("/api/documents", files=_files("a.md"), headers=auth(keys.admin))
    assert r.status_code == 201

    text = (await c.get("/metrics")).text
    queued = _gauges(text, "gasworks_jobs_queued")
    assert queued["documents.extract"] == 3  # every tenant's, summed
    assert _gauges(text, "gasworks_jobs_running")["documents.extract"] == 0
    assert _gauges(text, "gasworks_jobs_dead_letters")["documents.index"] == 0
    assert 'gasworks_documents{status="queued"} 3.0' in text
    assert keys.tenant_id not in text and "tenant" not in "".join(
        line for line in text.splitlines() if line.startswith("gasworks_jobs")
    )

    # a scrape within METRICS_MAX_AGE answers the figures of the last one (no query)
    await drain(drt)
    again = (await c.get("/metrics")).text
    assert _gauges(again, "gasworks_jobs_queued")["documents.extract"] == 3
    assert docs.metrics_at is not None
    docs.metrics_at -= 60  # as if a minute had passed
    await _fail_index_once(drt, c, keys.admin)
    docs.metrics_at -= 60
    fresh = (await c.get("/metrics")).text
    assert _gauges(fresh, "gasworks_jobs_queued")["documents.extract"] == 0
    assert _gauges(fresh, "gasworks_jobs_dead_letters")["documents.index"] == 1
    assert 'gasworks_documents{status="failed"} 1.0' in fresh


async def test_a_failed_sample_keeps_the_last_figures(
    drt: Any, client: httpx.AsyncClient, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gasworks.documents.domain import get_documents
    from gasworks.errors import DatabaseUnavailable

    docs = get_documents(drt)
    r = await client.post("/api/documents", files=_files("a.md"), headers=auth(keys.admin))
    assert r.status_code == 201
    first = (await client.get("/metrics")).text
    assert _gauges(first, "gasworks_jobs_queued")["documents.extract"] == 1
    await drain(drt)

    async def down(tenant_id: str | None = None) -> Any:
        raise DatabaseUnavailable("The database is unreachable.")

    monkeypatch.setattr(docs.queue, "stats", down)
    assert docs.metrics_at is not None
    docs.metrics_at -= 60
    r = await client.get("/metrics")
    assert r.status_code == 200  # the scrape answers, with the last figures
    assert _gauges(r.text, "gasworks_jobs_queued")["documents.extract"] == 1
    assert "gasworks_http_requests_total" in r.text
    monkeypatch.undo()
    fresh = (await client.get("/metrics")).text  # tried again at once, not after max age
    assert _gauges(fresh, "gasworks_jobs_queued")["documents.extract"] == 0


async def test_sdk_reads_the_same(drt: Any, keys: Keys) -> None:
    from gasworks.api.app import create_app

    async with serve(create_app(runtime=drt)) as url:
        async with AsyncGasworks(url, keys.admin) as gw:
            await gw.create_collection("kb")
            out = await gw.document_ingestion()
            assert out["queue"]["waiting"] == 0 and out["statuses"] == {}
            assert [e["kind"] for e in await gw.document_audit()] == ["collection.created"]
            assert len(await gw.document_audit(collection="kb", limit=1)) == 1
        async with AsyncGasworks(url, keys.viewer) as gw:
            assert (await gw.document_ingestion())["queue"] is None
            with pytest.raises(Forbidden):
                await gw.document_audit()

        def sync() -> tuple[dict[str, Any], list[dict[str, Any]]]:
            with Gasworks(url, keys.admin) as gw:
                return gw.document_ingestion(), gw.document_audit(collection="kb")

        ing, events = await asyncio.to_thread(sync)
        assert ing["queue"]["dead"] == 0 and [e["kind"] for e in events] == ["collection.created"]


async def test_sync_sdk_documents_collections_and_dead_letters(
    drt: Any, keys: Keys, tmp_path: Any
) -> None:
    """The sync client (generated from the async one) end to end: a collection, uploads,
    paged lists, a document's events, dead letters replayed by id and discarded by stage,
    the audit, deletes; the server's errors as their ``gasworks.errors`` classes."""
    from gasworks.api.app import create_app
    from gasworks.errors import DocumentNotFound, ProviderUnavailable

    for name, body in (("a.md", samples.MARKDOWN), ("b.html", samples.HTML)):
        (tmp_path / name).write_bytes(body)
    (tmp_path / "c.txt").write_bytes(b"a third document, plain text")
    sources = drt.services["documents.sources"]

    async with serve(create_app(runtime=drt)) as url:

        def sync(fn: Any) -> Any:
            def call() -> Any:
                with Gasworks(url, keys.admin) as gw:
                    return fn(gw)

            return asyncio.to_thread(call)

        def upload(name: str) -> Any:
            def up(gw: Gasworks) -> str:
                (out,) = gw.upload_documents([tmp_path / name], collections=["kb"], new=True)
                return str(out["document"]["id"])

            return sync(up)

        created = await sync(lambda gw: gw.create_collection("kb", description="handbook"))
        assert created["name"] == "kb"
        a = await upload("a.md")
        await drain(drt)
        sources.fail = [ProviderUnavailable("down")] * 4  # b's index stage dies
        b = await upload("b.html")
        await drain(drt)

        def failed(gw: Gasworks) -> str:
            assert [c["name"] for c in gw.collections()] == ["kb"]
            assert gw.document(a)["status"] == "ready"
            assert {d["id"] for d in gw.documents(collection="kb")} == {a, b}
            assert [d["id"] for d in gw.documents(status="failed")] == [b]
            assert len(gw.documents(limit=1)) == len(gw.documents(limit=1, offset=1)) == 1
            assert gw.document_events(b)
            assert gw.document_ingestion()["queue"]["dead"] == 1
            (dead,) = gw.dead_letters(stage="index")
            assert dead["subject"] == b and gw.dead_letters(stage="embed") == []
            return str(dead["id"])

        dead = await sync(failed)
        assert await sync(lambda gw: gw.replay_dead_letters([dead])) == 1
        await drain(drt)
        assert (await sync(lambda gw: gw.document(b)))["status"] == "ready"

        sources.fail = [ProviderUnavailable("down")] * 4
        await upload("c.txt")
        await drain(drt)

        def discard(gw: Gasworks) -> None:
            assert gw.replay_dead_letters(stage="embed") == 0
            assert gw.discard_dead_letters(stage="index") == 1
            assert gw.dead_letters() == []
            kinds = [e["kind"] for e in gw.document_audit()]
            assert kinds[:2] == ["deadletters.discarded", "deadletters.replayed"]
            assert gw.document_audit(limit=1, offset=1)[0]["kind"] == "deadletters.replayed"
            assert gw.grant("kb", "tenant")["subject"] == "*"
            gw.delete_document(a)
            with pytest.raises(DocumentNotFound):
                gw.document(a)
            gw.delete_collection("kb")
            assert gw.collections() == []

        await sync(discard)


async def test_cli_queue_and_audit_local_and_remote(drt: Any, keys: Keys, tmp_path: Any) -> None:
    """`documents queue|audit`: with --server as the key's tenant under the API's rules;
    locally as the operator inside --tenant (the same database here)."""
    import os

    from gasworks.api.app import create_app

    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(runtime=drt)), base_url="http://t"
    )
    async with client:
        r = await client.post("/api/collections", json={"name": "kb"}, headers=auth(keys.admin))
        assert r.status_code == 201
        await _fail_index_once(drt, client, keys.admin)
    nowhere = {"GASWORKS_HOME": "/nonexistent/gasworks-home"}

    async with serve(create_app(runtime=drt)) as url:

        async def call(key: str, *args: str, code: int = 0, json_out: bool = True) -> Any:
            argv = [*args, "--server", url, "--api-key", key, *(["--json"] if json_out else [])]
            r = await asyncio.to_thread(CliRunner().invoke, cli_app, argv, env=nowhere)
            assert r.exit_code == code and "Traceback" not in r.output, r.output
            return json.loads(r.stdout) if json_out else r

        q = await call(keys.admin, "documents", "queue")
        assert q["statuses"] == {"ready": 1, "failed": 1} and q["queue"]["dead"] == 1
        table = await call(keys.admin, "documents", "queue", json_out=False)
        assert "ingestion queue" in table.stdout and "dead-letters list" in table.stdout
        assert re.search(r"index\s*│\s*0\s*│\s*0\s*│\s*1\s", table.stdout), table.stdout
        assert (await call(keys.viewer, "documents", "queue"))["queue"] is None
        shown = await call(keys.viewer, "documents", "queue", json_out=False)
        assert "tenant admins only" in shown.stdout
        other = await call(keys.other, "documents", "queue")
        assert other["queue"]["dead"] == 0 and other["statuses"] == {}

        events = await call(keys.admin, "documents", "audit", "--collection", "kb")
        assert [e["kind"] for e in events] == ["collection.created"]
        assert len(await call(keys.admin, "documents", "audit", "--limit", "1")) == 1
        err = await call(keys.viewer, "documents", "audit", code=1)
        assert err["error"]["code"] == "FORBIDDEN"
        err = await call(keys.other, "documents", "audit", "-c", "kb", code=1)
        assert err["error"]["code"] == "COLLECTION_NOT_FOUND"

    # locally: the operator inside a tenant, on the database the runtime uses
    env = {"GASWORKS_DATABASE_URL": drt.settings.resolved_database_url}
    env["GASWORKS_HOME"] = str(drt.settings.home)
    for k in ("GASWORKS_URL", "GASWORKS_API_KEY"):
        assert k not in os.environ

    def local(*args: str, code: int = 0) -> Any:
        r = CliRunner().invoke(cli_app, [*args, "--json"], env=env)
        assert r.exit_code == code and "Traceback" not in r.output, r.output
        return json.loads(r.stdout)

    q = await asyncio.to_thread(local, "documents", "queue")
    assert q["queue"]["dead"] == 1 and q["statuses"] == {"ready": 1, "failed": 1}
    acme = await asyncio.to_thread(local, "documents", "queue", "--tenant", "acme")
    assert acme["queue"]["dead"] == 0 and acme["statuses"] == {}
    events = await asyncio.to_thread(local, "documents", "audit")
    assert [e["kind"] for e in events] == ["collection.created"]
    assert await asyncio.to_thread(local, "documents", "audit", "--tenant", "acme") == []
    err = await asyncio.to_thread(local, "documents", "audit", "--tenant", "nope", code=1)
    assert err["error"]["code"] == "NOT_FOUND"
