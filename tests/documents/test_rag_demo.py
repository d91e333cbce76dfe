"""The fourth demo (`demo-rag`) end to end, both databases, the default wiring and the real
local embedding model: `demo install`'s corpus goes through the documents pipeline into
``demo-handbook``; the workflow answers from it with citations on the offline demo model; a
caller whose grants do not reach the collection gets no passage and no citation from it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import auth
from tests.documents.helpers import drain
from tests.documents.test_rag import _client, _start

LEAVE = "How many days of annual leave do I get, and do unused days carry over?"


async def _ask(c: httpx.AsyncClient, key: str, question: str) -> dict[str, Any]:
    r = await c.post(
        "/api/workflows/demo-rag/runs", json={"input": {"message": question}}, headers=auth(key)
    )
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["status"] == "succeeded", run
    return dict(run)


@pytest.mark.slow  # the real pipeline (a parse child per file) and the local model
async def test_demo_rag_answers_from_the_installed_corpus_under_the_callers_grants(
    doc_settings: Any,
) -> None:
    from gasworks.documents.domain import get_documents
    from gasworks.tenancy import service
    from gasworks.tenancy.context import TenantContext
    from gasworks.workflows.demos import CORPUS_COLLECTION, install_corpus, install_demos

    rt = await _start(doc_settings, None)  # no override: local/all-minilm-l6-v2 embeds
    try:
        async with _client(rt) as (c, admin, viewer):
            async with rt.db.session() as s:
                tenant = await service.find_tenant_by_name(s, "default")
                assert tenant is not None
                operator = TenantContext.system(tenant.id, tenant.name)
                published = await install_demos(s, operator)
            assert [p.workflow.slug for p in published][-1] == "demo-rag"
            docs = get_documents(rt).service
            collection, uploads = await install_corpus(docs, operator)
            assert collection.name == CORPUS_COLLECTION
            assert sorted(u.document.name for u in uploads) == [
                "expenses.md",
                "leave.md",
                "remote-work.md",
                "security.md",
            ]
            await drain(rt)  # the real pipeline: extract, chunk, embed, index
            listed = await docs.list_documents(operator, collection=CORPUS_COLLECTION)
            assert {d.status for d in listed} == {"ready"}, listed
            # the blob and vector folders the pipeline created are private like the home
            from gasworks.home import home_warnings

            # (on PostgreSQL the vectors are in pgvector: no folder)
            embedded = {"vectors"} if rt.db.dialect.name == "sqlite" else set()
            assert {p.name for p in doc_settings.home.iterdir()} >= {"blobs", *embedded}
            assert home_warnings(doc_settings.home) == []
            # installing again changes nothing: the same bytes are the same documents
            _, again = await install_corpus(docs, operator)
            assert all(u.duplicate for u in again)
            assert {u.document.id for u in again} == {u.document.id for u in uploads}
            assert await drain(rt) == 0

            # the viewer reads demo-handbook through the tenant grant the install made
            run = await _ask(c, viewer, LEAVE)
            answer = run["output"]
            assert answer.startswith("[demo] From the documents: ")
            assert "27 days of paid annual leave" in answer and "[1]" in answer
            assert "Sources: [1] leave.md, § Annual leave" in answer
            run = await _ask(c, viewer, "What do I do if my laptop is stolen?")
            assert "extension 4400" in run["output"]
            assert "security.md, § Lost or stolen devices" in run["output"]

            # without the grant the same question finds nothing: no passage, no citation
            grants = await docs.list_grants(operator, CORPUS_COLLECTION)
            assert [(g.kind, g.subject) for g in grants] == [("tenant", "*")]
            await docs.revoke(operator, CORPUS_COLLECTION, grants[0].id)
            answer = (await _ask(c, viewer, LEAVE))["output"]
            assert answer == f'[demo] None of the documents you may read answers "{LEAVE}".'
            assert "leave.md" not in answer and "[1]" not in answer
            r = await c.post("/api/search", json={"query": LEAVE}, headers=auth(viewer))
            assert r.status_code == 200 and r.json()["hits"] == []
            # an admin reads every collection of the tenant: it still gets the cited answer
            assert "Sources: [1] leave.md" in (await _ask(c, admin, LEAVE))["output"]
    finally:
        await rt.stop()
