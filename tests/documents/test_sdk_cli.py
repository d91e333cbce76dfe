"""The SDK against a real server (upload, status, collections, dead letters) and the CLI
(upload of a folder and a glob with a summary, list, dead letters, reconcile)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gasworks.cli.main import app as cli_app
from gasworks.client import AsyncGasworks, Gasworks
from gasworks.errors import DocumentNotFound, DocumentTypeUnsupported
from tests.documents import samples
from tests.documents.helpers import drain
from tests.llm.conftest import serve


async def test_sdk_upload_status_and_collections(drt: Any, tmp_path: Path) -> None:
    from gasworks.api.app import create_app
    from gasworks.tenancy import service

    async with drt.db.session() as s:
        _, created = await service.bootstrap(s, "default")
    assert created is not None
    (tmp_path / "a.md").write_bytes(samples.MARKDOWN)
    (tmp_path / "b.html").write_bytes(samples.HTML)
    (tmp_path / "bad.pdf").write_bytes(bytes(range(256)))
    app = create_app(runtime=drt)

    def use(url: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        with Gasworks(url, created.key) as gw:
            gw.create_collection("kb", chunkTokens=100)
            ups = gw.upload_documents([tmp_path / "a.md", tmp_path / "b.html"], collections=["kb"])
            with pytest.raises(DocumentTypeUnsupported):
                gw.upload_documents([tmp_path / "bad.pdf"])
            return ups, gw.grant("kb", "tenant")

    async with serve(app) as url:
        ups, grant = await asyncio.to_thread(use, url)
        assert [u["document"]["status"] for u in ups] == ["queued", "queued"]
        assert grant["subject"] == "*"
        await drain(drt)
        async with AsyncGasworks(url, created.key) as gw:
            doc = await gw.document(ups[0]["document"]["id"])
            assert doc["status"] == "ready" and doc["chunks"] == 2
            await gw.delete_document(doc["id"])
            with pytest.raises(DocumentNotFound):
                await gw.document(doc["id"])


@pytest.fixture
def cli(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key in list(os.environ):
        if key.startswith("GASWORKS_") and key != "GASWORKS_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("GASWORKS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GASWORKS_DATABASE_URL", db_url)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> Any:
        result = runner.invoke(cli_app, [*args, "--json"])
        assert result.exit_code == code, result.output
        return json.loads(result.stdout)

    invoke("init")
    return invoke


def test_cli_upload_folder_and_glob_with_summary(cli: Any, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_bytes(samples.MARKDOWN)
    (folder / "sub" / "b.html").write_bytes(samples.HTML)
    (folder / ".hidden").write_bytes(b"skip me")
    (tmp_path / "c.txt").write_bytes(b"plain text file")
    (tmp_path / "empty.txt").write_bytes(b"")
    cli("documents", "collections", "create", "kb")
    out = cli(
        "documents", "upload", str(folder), str(tmp_path / "*.txt"), "-c", "kb", code=1
    )  # fmt: skip
    by_name = {Path(r["path"]).name: r for r in out}
    assert set(by_name) == {"a.md", "b.html", "c.txt", "empty.txt"}
    assert by_name["empty.txt"]["error"] == "DOCUMENT_EMPTY"
    assert by_name["a.md"]["status"] == "queued"
    again = cli("documents", "upload", str(folder / "a.md"))
    assert again[0]["status"] == "duplicate" and again[0]["id"] == by_name["a.md"]["id"]
    listed = cli("documents", "list", "--collection", "kb")
    assert len(listed) == 3
    assert cli("documents", "dead-letters", "list") == []
    rec = cli("documents", "reconcile", "--grace", "0")
    assert rec["blobsRemoved"] == 0 and rec["vectorsChecked"] is True  # the real index
    missing = cli("documents", "upload", str(tmp_path / "nope.md"), code=1)
    assert missing["error"]["code"] == "VALIDATION_FAILED"


def test_cli_list_wait_gives_up_without_a_worker_and_search_narrows_to_a_collection(
    cli: Any, tmp_path: Path
) -> None:
    """`documents list --wait` polls until every listed document is final; with no worker
    running it stops at --timeout with exit 1 and says why. `search --collection` narrows."""
    (tmp_path / "a.md").write_bytes(samples.MARKDOWN)
    cli("documents", "collections", "create", "kb")
    cli("documents", "upload", str(tmp_path / "a.md"), "-c", "kb")
    runner = CliRunner()
    result = runner.invoke(cli_app, ["documents", "list", "--wait", "--timeout", "0.6", "--json"])
    assert result.exit_code == 1, result.output
    assert [d["status"] for d in json.loads(result.stdout)] == ["queued"]
    assert "1 document(s) still in the pipeline after 0.6 s" in result.stderr
    assert cli("search", "gasholder", "--collection", "kb") == {"hits": []}
    err = cli("search", "gasholder", "--collection", "nope", code=1)
    assert err["error"]["code"] == "VALIDATION_FAILED"
    assert err["error"]["details"] == {"collections": ["nope"]}


async def test_cli_documents_through_a_server(drt: Any, tmp_path: Path) -> None:
    """`documents …` with --server: upload, list, show, delete, collections, grants and dead
    letters go through the REST API as the key's tenant; operator commands refuse."""
    from gasworks.api.app import create_app
    from gasworks.errors import ProviderUnavailable
    from gasworks.tenancy import service
    from gasworks.tenancy.context import TenantContext
    from gasworks.tenancy.schemas import ApiKeyCreate

    async with drt.db.session() as s:
        tenant, created = await service.bootstrap(s, "default")
        viewer = await service.create_api_key(
            s, TenantContext.system(tenant.id, tenant.name), ApiKeyCreate(name="viewer")
        )
    assert created is not None
    admin = created.key
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_bytes(samples.MARKDOWN)
    (folder / "empty.txt").write_bytes(b"")
    (tmp_path / "b.html").write_bytes(samples.HTML)
    nowhere = {"GASWORKS_HOME": "/nonexistent/gasworks-home"}  # nothing local may be opened
    sources = drt.services["documents.sources"]

    async with serve(create_app(runtime=drt)) as url:

        async def call(key: str, *args: str, code: int = 0) -> Any:
            argv = [*args, "--server", url, "--api-key", key, "--json"]
            r = await asyncio.to_thread(CliRunner().invoke, cli_app, argv, env=nowhere)
            assert r.exit_code == code and "Traceback" not in r.output, r.output
            return json.loads(r.stdout)

        assert (await call(admin, "documents", "collections", "create", "kb"))["name"] == "kb"
        sources.fail = [ProviderUnavailable("down")] * 4  # a.md's index job dies
        out = await call(admin, "documents", "upload", str(folder), "-c", "kb", code=1)
        by_name = {Path(r["path"]).name: r for r in out}
        assert by_name["empty.txt"]["error"] == "DOCUMENT_EMPTY"
        assert by_name["a.md"]["status"] == "queued"
        doc_id = by_name["a.md"]["id"]
        again = await call(admin, "documents", "upload", str(folder / "a.md"))
        assert again[0]["status"] == "duplicate" and again[0]["id"] == doc_id
        await drain(drt)

        (dead,) = await call(admin, "documents", "dead-letters", "list", "--stage", "index")
        assert dead["subject"] == doc_id and dead["errorCode"] == "PROVIDER_UNAVAILABLE"
        assert (await call(admin, "documents", "dead-letters", "replay"))["replayed"] == 1
        await drain(drt)
        err = await call(viewer.key, "documents", "show", doc_id, code=1)
        assert err["error"]["code"] == "DOCUMENT_NOT_FOUND"  # not granted to the viewer yet
        grant = await call(admin, "documents", "collections", "grant", "kb", "tenant")
        assert grant["subject"] == "*"
        shown = await call(viewer.key, "documents", "show", doc_id)
        assert shown["document"]["status"] == "ready" and shown["events"]
        listed = await call(viewer.key, "documents", "list", "--collection", "kb", "--wait")
        assert [d["id"] for d in listed] == [doc_id]

        sources.fail = [ProviderUnavailable("down")] * 4
        (up,) = await call(admin, "documents", "upload", str(tmp_path / "b.html"))
        await drain(drt)
        (dead,) = await call(admin, "documents", "dead-letters", "list")
        assert dead["subject"] == up["id"]
        out = await call(admin, "documents", "dead-letters", "discard", "--stage", "index")
        assert out == {"discarded": 1}
        assert await call(admin, "documents", "dead-letters", "list") == []
        err = await call(admin, "documents", "dead-letters", "discard", "job_nope", code=1)
        assert err["error"]["code"] == "JOB_NOT_FOUND"  # the server's code, whatever its class

        cols = await call(viewer.key, "documents", "collections", "list")
        assert [c["name"] for c in cols] == ["kb"]
        assert await call(admin, "documents", "delete", doc_id) == {"deleted": doc_id}
        err = await call(admin, "documents", "show", doc_id, code=1)
        assert err["error"]["code"] == "DOCUMENT_NOT_FOUND"
        assert await call(admin, "documents", "collections", "delete", "kb") == {"deleted": "kb"}

        # the server's refusals: one coded line (no --json) or a JSON error object
        r = await asyncio.to_thread(
            CliRunner().invoke,
            cli_app,
            ["documents", "dead-letters", "list", "--server", url, "--api-key", viewer.key],
            env=nowhere,
        )
        assert r.exit_code == 1 and r.stderr.startswith("FORBIDDEN: ")
        # the operator's commands refuse --server before anything is sent
        for args in (
            ["documents", "purge-tenant", "-t", "default", "--yes"],
            ["documents", "reconcile"],
            ["worker"],
            ["blobs", "rewrap"],
            ["blobs", "rotate-key"],
        ):
            r = await asyncio.to_thread(
                CliRunner().invoke, cli_app, [*args, "--server", url], env=nowhere
            )
            assert r.exit_code == 1 and r.stderr.startswith("OPERATOR_ONLY: "), (args, r.output)
