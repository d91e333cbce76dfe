"""GraphQL: multipart upload, documents, collections, grants, dead letters; the schema's
lists are paged like the rest."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import auth
from tests.documents import samples
from tests.documents.helpers import drain


async def _client(drt: Any) -> tuple[httpx.AsyncClient, dict[str, str]]:
    from gasworks.api.app import create_app
    from gasworks.tenancy import service

    async with drt.db.session() as s:
        _, created = await service.bootstrap(s, "default")
    assert created is not None
    c = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime=drt)),
                          base_url="http://gasworks.test")  # fmt: skip
    return c, auth(created.key)


async def gql(c: httpx.AsyncClient, h: dict[str, str], query: str, **variables: Any) -> Any:
    r = await c.post("/graphql", json={"query": query, "variables": variables}, headers=h)
    return r.json()


async def test_graphql_multipart_upload_then_status(drt: Any) -> None:
    c, h = await _client(drt)
    async with c:
        made = await gql(c, h, 'mutation { createCollection(name: "kb") { id name } }')
        assert made["data"]["createCollection"]["name"] == "kb"
        operations = {
            "query": "mutation($files: [Upload!]!, $cols: [String!]) { uploadDocuments("
            "files: $files, collections: $cols) { duplicate document { id status mediaType "
            "collections } } }",
            "variables": {"files": [None, None], "cols": ["kb"]},
        }
        r = await c.post(
            "/graphql",
            data={
                "operations": json.dumps(operations),
                "map": json.dumps({"0": ["variables.files.0"], "1": ["variables.files.1"]}),
            },
            files={"0": ("a.md", samples.MARKDOWN), "1": ("b.html", samples.HTML)},
            headers=h,
        )
        body = r.json()
        assert "errors" not in body, body
        ups = body["data"]["uploadDocuments"]
        assert [u["document"]["mediaType"] for u in ups] == ["text/markdown", "text/html"]
        await drain(drt)
        doc_id = ups[0]["document"]["id"]
        got = await gql(
            c, h,
            "query($id: String!) { document(id: $id) { status chunks events(limit: 2) { kind } } }",
            id=doc_id,
        )  # fmt: skip
        doc = got["data"]["document"]
        assert doc["status"] == "ready" and doc["events"][0]["kind"] == "uploaded"
        listed = await gql(c, h, '{ documents(collection: "kb") { id } collections { name } }')
        assert len(listed["data"]["documents"]) == 2
        grant = await gql(
            c, h, 'mutation { grantCollection(ref: "kb", kind: "tenant") { subject } }'
        )
        assert grant["data"]["grantCollection"]["subject"] == "*"
        dead = await gql(c, h, '{ documentDeadLetters(stage: "index") { id } }')
        assert dead["data"]["documentDeadLetters"] == []
        missing = await gql(c, h, '{ document(id: "doc_nope") { id } }')
        assert missing["errors"][0]["extensions"]["code"] == "DOCUMENT_NOT_FOUND"
        bad = await gql(c, h, "{ documents(limit: 0) { id } }")
        assert bad["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"
