"""VectorSearch and VectorWrite through the workflow engine (REST), on both dialects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from gasworks.retrieval.runtime import EMBEDDER_OVERRIDE, SCOPE_OVERRIDE, get_retrieval
from gasworks.retrieval.search import AllowedSources, TenantSources
from gasworks.tenancy import service
from tests.conftest import auth

from .corpus import write_corpus


class GrantScope:
    """Stands in for the documents domain's grants: ``doc-secret`` only for ``readers``."""

    def __init__(self) -> None:
        self.inner: TenantSources | None = None
        self.readers: set[str] = set()

    async def allowed(
        self,
        tenant_id: str,
        principal_id: str | None,
        *,
        collections: Sequence[str] | None = None,
        documents: Sequence[str] | None = None,
    ) -> AllowedSources:
        assert self.inner is not None
        every = await self.inner.allowed(
            tenant_id, principal_id, collections=collections, documents=documents
        )
        if principal_id in self.readers:
            return every
        keep = {s: d for s, d in every.documents.items() if d != "doc-secret"}
        return AllowedSources(frozenset(keep), keep)


@pytest.fixture
async def runtime(settings: Any) -> Any:
    from gasworks.testing import HashingEmbedder
    from gasworks.wiring import build_runtime

    rt = build_runtime(settings)
    rt.services[EMBEDDER_OVERRIDE] = HashingEmbedder()
    scope = GrantScope()
    rt.services[SCOPE_OVERRIDE] = scope
    await rt.start(migrate=False)
    svc = get_retrieval(rt)
    scope.inner = TenantSources(rt.db, svc.chunks)
    yield rt
    await rt.stop()


@pytest.fixture
async def setup(runtime: Any, admin_key: str) -> dict[str, Any]:
    async with runtime.db.session() as s:
        tenant = await service.find_tenant_by_name(s, "default")
    assert tenant is not None
    await write_corpus(runtime, tenant.id, runtime.services[EMBEDDER_OVERRIDE])
    return {"tenant": tenant.id, "scope": runtime.services[SCOPE_OVERRIDE]}


RAG = {
    "id": "rag",
    "nodes": [
        {"id": "search", "type": "VectorSearch", "config": {"query": "${input.message}", "k": 3}},
        {
            "id": "answer",
            "type": "Format",
            "config": {
                "template": "${search.text}\n--\n${search.output.hits}\n--\n${allowedDocumentIds}"
            },
        },
    ],
    "edges": [{"from": "search", "to": "answer"}],
}


async def _run(client: Any, key: str, message: str, extra: dict[str, Any] | None = None) -> Any:
    r = await client.post(
        "/api/workflows/rag/runs",
        json={"input": {"message": message, **(extra or {})}},
        headers=auth(key),
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_workflow_never_cites_a_document_the_caller_may_not_see(client, admin_key, setup):
    h = auth(admin_key)
    assert (await client.post("/api/workflows", json=RAG, headers=h)).status_code == 201
    secret = "Boiler pressure secret: the override code is 4711."
    # the caller asks for the secret word for word, and tries to widen the set through inputs
    run = await _run(client, admin_key, secret, {"allowedDocumentIds": ["doc-secret"]})
    assert run["status"] == "succeeded", run
    text, hits, allowed = run["output"].split("\n--\n")
    assert "4711" not in run["output"] and "doc-secret" not in run["output"]
    assert "(doc-boilers, p. 1, § Intro) The boiler pressure" in text
    assert allowed == '["doc-boilers", "doc-gas"]'
    assert '"chunkId": "doc-boilers@1#0"' in hits
    # the same caller, once granted, does get it (the test above can fail)
    principal = await _principal_of(client, admin_key)
    setup["scope"].readers.add(principal)
    run = await _run(client, admin_key, secret)
    assert "4711" in run["output"] and "doc-secret" in run["output"]


async def _principal_of(client: Any, key: str) -> str:
    r = await client.get("/api/me", headers=auth(key))
    assert r.status_code == 200, r.text
    return str(r.json()["principalId"])


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"k": 3}, "config.query"),
        ({"query": "${input.message}", "k": 0}, "config.k"),
        ({"query": "${input.message}", "k": 101}, "config.k"),
        ({"query": "x", "mode": "semantic"}, "config.mode"),
        ({"query": "x", "collections": []}, "config.collections"),
    ],
)
async def test_vector_search_config_is_validated(client, admin_key, config, path):
    doc = {"id": "bad", "nodes": [{"id": "s", "type": "VectorSearch", "config": config}]}
    r = await client.post("/api/workflows/validate", json=doc, headers=auth(admin_key))
    issues = r.json()["issues"]
    assert [i["code"] for i in issues] == ["INVALID_CONFIG"], issues
    assert issues[0]["path"].startswith(f"nodes[0].{path}"), issues


async def test_unknown_collection_fails_the_run_request(client, admin_key, setup):
    doc = {
        "id": "kb",
        "nodes": [
            {"id": "s", "type": "VectorSearch", "config": {"query": "x", "collections": ["kb"]}}
        ],
    }
    h = auth(admin_key)
    assert (await client.post("/api/workflows", json=doc, headers=h)).status_code == 201
    r = await client.post("/api/workflows/kb/runs", json={"input": {}}, headers=h)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "VALIDATION_FAILED"
    assert r.json()["error"]["details"]["node"] == "s"


async def test_vector_write_then_search_its_collection(client, admin_key, setup, runtime):
    h = auth(admin_key)
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
    assert (await client.post("/api/workflows", json=write, headers=h)).status_code == 201
    r = await client.post(
        "/api/workflows/remember/runs",
        json={"input": {"message": "the customer prefers gas heating"}},
        headers=h,
    )
    run = r.json()
    assert run["status"] == "succeeded", run
    chunk_ids = run["output"]["chunkIds"]
    assert len(chunk_ids) == 1
    search = {
        "id": "recall",
        "nodes": [
            {
                "id": "s",
                "type": "VectorSearch",
                "config": {"query": "${input.message}", "collections": ["notes"], "k": 5},
            }
        ],
    }
    assert (await client.post("/api/workflows", json=search, headers=h)).status_code == 201
    r = await client.post(
        "/api/workflows/recall/runs", json={"input": {"message": "gas heating"}}, headers=h
    )
    hits = r.json()["output"]["hits"]
    # only the note: the corpus's gas documents are not in the collection
    assert [x["text"] for x in hits] == ["Summary: the customer prefers gas heating"]
    assert hits[0]["metadata"]["collection"] == "notes"
    assert hits[0]["metadata"]["nodeId"] == "store"


async def test_vector_write_is_idempotent_per_run_and_node(runtime, setup):
    from gasworks.workflows.context import RunContext
    from gasworks.workflows.definition import NodeSpec
    from gasworks.workflows.nodes.vector_write import VectorWriteConfig, VectorWriteNode
    from gasworks.workflows.wiring import build_ports

    node = VectorWriteNode(
        NodeSpec(id="store", type="VectorWrite"),
        VectorWriteConfig(collection="notes", text="${input.message}"),
    )
    rc = RunContext(
        run_id="run_1", tenant_id=setup["tenant"], workflow_id="w", ports=build_ports(runtime)
    )
    state = {"input": {"message": "written once"}}
    first = await node.run(state, rc)
    again = await node.run(state, rc)  # a retried node
    assert first == again
    index = get_retrieval(runtime).index
    src = first["chunkIds"][0].split("#")[0]
    assert await index.count(setup["tenant"], [src]) == 1
    rc2 = RunContext(
        run_id="run_2", tenant_id=setup["tenant"], workflow_id="w", ports=build_ports(runtime)
    )
    other = await node.run(state, rc2)
    assert other["chunkIds"] != first["chunkIds"]


async def test_vector_search_outside_the_engine_refuses(runtime, setup):
    from gasworks.errors import ConfigurationError
    from gasworks.workflows.context import RunContext
    from gasworks.workflows.definition import NodeSpec
    from gasworks.workflows.nodes.vector_search import VectorSearchConfig, VectorSearchNode
    from gasworks.workflows.wiring import build_ports

    node = VectorSearchNode(
        NodeSpec(id="s", type="VectorSearch"), VectorSearchConfig(query="boiler")
    )
    rc = RunContext(
        run_id="r", tenant_id=setup["tenant"], workflow_id="w", ports=build_ports(runtime)
    )
    with pytest.raises(ConfigurationError):
        await node.run({}, rc)  # no allowed set computed for a caller: no search at all
