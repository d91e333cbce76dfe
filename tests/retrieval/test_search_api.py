"""Search through every adapter: REST, GraphQL, the SDK and the CLI."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from gasworks.cli.main import app as cli_app
from gasworks.client import AsyncGasworks
from gasworks.errors import ValidationFailed
from gasworks.tenancy import service
from tests.conftest import auth
from tests.llm.conftest import serve

from .corpus import DOCS, write_corpus


async def _tenant_id(runtime: Any, name: str) -> str:
    async with runtime.db.session() as s:
        tenant = await service.find_tenant_by_name(s, name)
    assert tenant is not None
    return str(tenant.id)


@pytest.fixture
async def corpus(runtime, admin_key) -> str:
    from gasworks.retrieval.runtime import EMBEDDER_OVERRIDE

    tenant = await _tenant_id(runtime, "default")
    await write_corpus(runtime, tenant, runtime.services[EMBEDDER_OVERRIDE])
    return tenant


async def test_rest_search_with_citations(client, admin_key, corpus):
    r = await client.post(
        "/api/search",
        json={"query": "gasholder evening peak", "k": 2, "mode": "hybrid"},
        headers=auth(admin_key),
    )
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert hits[0]["citation"] == {
        "documentId": "doc-gas",
        "documentName": None,
        "chunkId": "doc-gas@1#1",
        "page": 2,
        "start": 0,
        "end": len(hits[0]["text"]),
        "heading": None,
    }
    r = await client.post(
        "/api/search",
        json={"query": "boiler", "documents": ["doc-gas"], "mode": "keyword"},
        headers=auth(admin_key),
    )
    assert r.json()["hits"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": ""}, "body.query"),
        ({"query": "x", "k": 0}, "body.k"),
        ({"query": "x", "k": 101}, "body.k"),
        ({"query": "x", "mode": "semantic"}, "body.mode"),
        ({"k": 3}, "body.query"),
    ],
)
async def test_rest_bad_input_is_422_naming_the_field(client, admin_key, body, field):
    r = await client.post("/api/search", json=body, headers=auth(admin_key))
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "VALIDATION_FAILED"
    assert field in {e["path"] for e in err["details"]["errors"]}


async def test_rest_needs_a_key_and_another_tenant_sees_nothing(client, runtime, admin_key, corpus):
    assert (await client.post("/api/search", json={"query": "boiler"})).status_code == 401
    async with runtime.db.session() as s:
        _, key = await service.bootstrap(s, "other")  # a tenant of its own, with its owner
    assert key is not None
    for mode in ("vector", "keyword", "hybrid"):
        r = await client.post(
            "/api/search", json={"query": "boiler pressure", "mode": mode}, headers=auth(key.key)
        )
        assert r.status_code == 200 and r.json()["hits"] == []


async def test_graphql_search(client, admin_key, corpus):
    q = """{ search(query: "coal retorts", k: 1, mode: "keyword") {
        text score metadata citation { documentId chunkId page heading } } }"""
    r = await client.post("/graphql", json={"query": q}, headers=auth(admin_key))
    data = r.json()
    assert "errors" not in data, data
    hit = data["data"]["search"][0]
    assert hit["citation"] == {
        "documentId": "doc-gas",
        "chunkId": "doc-gas@1#0",
        "page": 1,
        "heading": "Intro",
    }
    assert hit["metadata"] == {"lang": "en", "part": 0}
    bad = '{ search(query: "x", k: 500) { score } }'
    r = await client.post("/graphql", json={"query": bad}, headers=auth(admin_key))
    assert r.json()["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"


async def test_sdk_search(app, admin_key, corpus):
    async with serve(app) as url, AsyncGasworks(url, admin_key) as gw:
        out = await gw.search("radiators air", k=1, mode="vector")
        assert out.hits[0].citation.chunk_id == "doc-boilers@1#1"
        with pytest.raises(ValidationFailed):
            await gw.search("x", k=1, mode="keyword", collections=["nope"])


def test_cli_search_in_process(tmp_path, monkeypatch, db_url):
    import asyncio

    from gasworks.settings import Settings
    from gasworks.wiring import build_runtime

    monkeypatch.setenv("GASWORKS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GASWORKS_DATABASE_URL", db_url)
    runner = CliRunner()
    try:
        assert runner.invoke(cli_app, ["init", "--json"]).exit_code == 0

        async def fill() -> None:
            # through the documents pipeline (the CLI searches with the documents' scope), with
            # the gateway's default model, the local one, as the CLI's search will
            from gasworks.tenancy.context import TenantContext
            from tests.documents.helpers import drain, upload

            rt = build_runtime(Settings(documents_run_workers=False))
            await rt.start(migrate=False)
            try:
                operator = TenantContext.system(await _tenant_id(rt, "default"))
                text = "\n\n".join(DOCS["doc-gas"]).encode()
                await upload(rt, "gas.md", text, operator)
                await drain(rt)
            finally:
                await rt.stop()

        asyncio.run(fill())
        r = runner.invoke(cli_app, ["search", "gasholder", "--json"])
        assert r.exit_code == 0, r.output
        hits = json.loads(r.stdout)["hits"]
        assert hits and {h["citation"]["documentName"] for h in hits} == {"gas.md"}
        assert "gasholder" in hits[0]["text"]
        r = runner.invoke(cli_app, ["search", "coal", "-k", "1"])
        assert r.exit_code == 0 and "gas.md" in r.stdout and "Town gas" in r.stdout
        r = runner.invoke(cli_app, ["search", "x", "-k", "0", "--json"])
        assert r.exit_code == 1 and json.loads(r.stdout)["error"]["code"] == "VALIDATION_FAILED"
        r = runner.invoke(cli_app, ["search", "gasholder", "--mode", "vector", "--json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["hits"][0]["citation"]["documentName"] == "gas.md"
    finally:
        from gasworks.observability.logging import configure_logging

        configure_logging(json=False, level="INFO")
