from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gasworks.errors import ValidationFailed
from gasworks.modeltypes import CallScope
from gasworks.retrieval.runtime import EMBEDDER_OVERRIDE, get_retrieval
from gasworks.retrieval.search import AllowedSources, SearchQuery, fuse
from gasworks.retrieval.types import Chunk, source_id
from gasworks.runtime import Runtime
from gasworks.testing import HashingEmbedder
from tests.retrieval.conftest import retrieval_runtime

from .corpus import write_corpus


@pytest.fixture
async def rt(settings: Any) -> AsyncIterator[Runtime]:
    runtime = retrieval_runtime(settings)
    runtime.services[EMBEDDER_OVERRIDE] = HashingEmbedder()
    await runtime.start(migrate=False)
    for tenant in ("t1", "t2"):
        await _tenant(runtime, tenant)
    await write_corpus(runtime, "t1", runtime.services[EMBEDDER_OVERRIDE])
    yield runtime
    await runtime.stop()


async def _tenant(rt: Runtime, tenant_id: str) -> None:
    from gasworks.tenancy.tables import TenantRow

    async with rt.db.session() as s:
        s.add(TenantRow(id=tenant_id, name=tenant_id, display_name=tenant_id))


def _scope(tenant: str = "t1") -> CallScope:
    return CallScope(tenant_id=tenant)


async def test_vector_search_returns_hits_with_citations(rt):
    svc = get_retrieval(rt).search
    hits = await svc.search(_scope(), SearchQuery("boiler pressure bar", k=2, mode="vector"))
    assert hits[0].citation.document_id == "doc-boilers"
    assert hits[0].citation.chunk_id == "doc-boilers@1#0"
    assert hits[0].citation.page == 1 and hits[0].citation.heading == "Intro"
    assert hits[0].text.startswith("The boiler pressure")
    assert hits[0].metadata == {"lang": "en", "part": 0}
    assert hits[0].score > hits[1].score


async def test_keyword_search_on_both_dialects(rt):
    svc = get_retrieval(rt).search
    hits = await svc.search(_scope(), SearchQuery("gasholder", k=5, mode="keyword"))
    assert [h.citation.chunk_id for h in hits] == ["doc-gas@1#1"]
    assert 0 < hits[0].score < 1
    # punctuation and quotes in the query are words, never query syntax
    odd = await svc.search(_scope(), SearchQuery('"coal" OR) retorts* NEAR(', mode="keyword"))
    assert odd[0].citation.chunk_id == "doc-gas@1#0"
    assert await svc.search(_scope(), SearchQuery("zebra", mode="keyword")) == []


async def test_hybrid_fuses_both_rankings(rt):
    svc = get_retrieval(rt).search
    hits = await svc.search(_scope(), SearchQuery("gas pressure", k=4, mode="hybrid"))
    ids = [h.citation.chunk_id for h in hits]
    assert len(ids) == len(set(ids)) == 4
    assert fuse([("a", 0.9), ("b", 0.8)], [("b", 3.0), ("c", 1.0)])[0][0] == "b"


async def test_document_filter_narrows_and_never_widens(rt):
    svc = get_retrieval(rt).search
    q = SearchQuery("boiler pressure", k=5, mode="vector", documents=["doc-gas"])
    hits = await svc.search(_scope(), q)
    assert {h.citation.document_id for h in hits} == {"doc-gas"}
    # a document id the tenant does not have (or another tenant's) finds nothing
    q = SearchQuery("boiler pressure", k=5, mode="hybrid", documents=["doc-elsewhere"])
    assert await svc.search(_scope(), q) == []


async def test_server_computed_scope_excludes_the_nearest_forbidden_chunk(rt):
    svc = get_retrieval(rt).search
    allowed = AllowedSources(
        frozenset({source_id("doc-boilers", 1), source_id("doc-gas", 1)}),
        names={"doc-boilers": "Boilers.pdf"},
    )
    for mode in ("vector", "keyword", "hybrid"):
        hits = await svc.search(
            _scope(),
            SearchQuery("boiler pressure secret override code", k=5, mode=mode),
            allowed=allowed,
        )
        assert hits and "doc-secret" not in {h.citation.document_id for h in hits}
    hits = await svc.search(_scope(), SearchQuery("boiler", k=1, mode="vector"), allowed=allowed)
    assert hits[0].citation.document_name == "Boilers.pdf"
    nothing = AllowedSources.nothing()
    assert await svc.search(_scope(), SearchQuery("boiler"), allowed=nothing) == []


async def test_other_tenant_sees_nothing(rt):
    svc = get_retrieval(rt).search
    for mode in ("vector", "keyword", "hybrid"):
        assert await svc.search(_scope("t2"), SearchQuery("boiler pressure", mode=mode)) == []


async def test_min_score_and_metadata_filters(rt):
    svc = get_retrieval(rt).search
    hits = await svc.search(
        _scope(), SearchQuery("boiler pressure", k=5, mode="vector", min_score=0.3)
    )
    assert hits and all(h.score >= 0.3 for h in hits)
    hits = await svc.search(_scope(), SearchQuery("gas pressure", k=5, metadata={"part": 1}))
    assert hits and all(h.metadata["part"] == 1 for h in hits)
    hits = await svc.search(_scope(), SearchQuery("gas pressure", k=5, metadata={"part": [0]}))
    assert hits and all(h.metadata["part"] == 0 for h in hits)


@pytest.mark.parametrize(
    "bad",
    [
        SearchQuery(""),
        SearchQuery("x", k=0),
        SearchQuery("x", k=101),
        SearchQuery("x", mode="semantic"),
    ],  # type: ignore[arg-type]
)
async def test_bad_queries_are_validation_errors(rt, bad):
    with pytest.raises(ValidationFailed):
        await get_retrieval(rt).search.search(_scope(), bad)


async def test_unknown_collection_is_a_validation_error(rt):
    with pytest.raises(ValidationFailed):
        await get_retrieval(rt).search.search(_scope(), SearchQuery("x", collections=["kb"]))


async def test_write_source_is_idempotent_and_delete_removes_chunks_and_vectors(rt):
    svc = get_retrieval(rt)
    emb: HashingEmbedder = rt.services[EMBEDDER_OVERRIDE]
    await write_corpus(rt, "t1", emb)  # the same chunks again
    assert await svc.index.count("t1") == 5
    hits = await svc.search.search(_scope(), SearchQuery("gasholder", k=10, mode="keyword"))
    assert len(hits) == 1
    removed = await svc.writer.delete_sources("t1", [source_id("doc-gas", 1)])
    assert removed == 2
    assert await svc.index.count("t1", [source_id("doc-gas", 1)]) == 0
    for mode in ("vector", "keyword", "hybrid"):
        hits = await svc.search.search(_scope(), SearchQuery("gasholder coal gas", k=10, mode=mode))
        assert "doc-gas" not in {h.citation.document_id for h in hits}


async def test_write_source_rejects_mismatched_vectors(rt):
    writer = get_retrieval(rt).writer
    chunk = Chunk("c", "d@1", "d", 0, "text")
    with pytest.raises(ValidationFailed):
        await writer.write_source("t1", HashingEmbedder().space if False else _space(), [chunk], [])


def _space():
    from gasworks.retrieval.types import Space

    return Space("fake-hashing", 64)


async def test_delete_tenant_removes_chunks_keywords_and_vectors(rt):
    svc = get_retrieval(rt)
    assert await svc.writer.delete_tenant("t1") == 5
    assert await svc.index.count("t1") == 0
    for mode in ("vector", "keyword", "hybrid"):
        assert await svc.search.search(_scope(), SearchQuery("boiler gas", mode=mode)) == []
    if rt.db.dialect.name == "sqlite":
        from sqlalchemy import text

        async with rt.db.session() as s:
            left = await s.execute(text("SELECT count(*) FROM retrieval_chunks_fts"))
            assert left.scalar_one() == 0
