from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gasworks.retrieval.embedded import EmbeddedVectorIndex
from gasworks.retrieval.testing import SPACE, VectorIndexConformance, records, unit_vectors

from ._writer import BATCH


class TestEmbeddedExact(VectorIndexConformance):
    """Small namespaces: exact search only."""

    @pytest.fixture
    def make_index(self, tmp_path):
        return lambda: EmbeddedVectorIndex(tmp_path / "vectors")


class TestEmbeddedGraph(VectorIndexConformance):
    """Every namespace over 100 rows gets an HNSW graph and every filter goes through it
    (``exact_max_rows=0``); an answer that is short falls back to the exact scan."""

    @pytest.fixture
    def make_index(self, tmp_path):
        return lambda: EmbeddedVectorIndex(
            tmp_path / "vectors",
            ann_min_rows=100,
            exact_max_rows=0,
            save_every=500,
            graph_node_rows=0,
        )


async def test_graph_answers_match_exact_search(tmp_path):
    index = EmbeddedVectorIndex(
        tmp_path / "v", ann_min_rows=100, exact_max_rows=0, graph_node_rows=0
    )
    vecs = unit_vectors(2000, SPACE.dimensions, 1)
    await index.upsert("t1", SPACE, records(vecs, lambda i: f"d{i % 10}@1"))
    ns = index._spaces[("t1", SPACE.key)]
    assert ns.graph is not None and ns.graph.get_current_count() == 2000
    q = unit_vectors(1, SPACE.dimensions, 9)[0].tolist()
    sources = {f"d{i}@1" for i in range(10)}
    got = await index.search("t1", SPACE, q, allowed_sources=sources, k=10)
    exact = index._exact(ns, unit_vectors(1, SPACE.dimensions, 9)[0], 10, None)
    assert len({h.chunk_id for h in got} & {h.chunk_id for h in exact}) >= 9
    half = {f"d{i}@1" for i in range(5)}
    got = await index.search("t1", SPACE, q, allowed_sources=half, k=10)
    assert len(got) == 10 and {h.source_id for h in got} <= half
    await index.aclose()
    # a new process loads the saved graph instead of rebuilding it
    again = EmbeddedVectorIndex(
        tmp_path / "v", ann_min_rows=100, exact_max_rows=0, graph_node_rows=0
    )
    assert len(await again.search("t1", SPACE, q, allowed_sources=half, k=10)) == 10
    assert again._spaces[("t1", SPACE.key)].graph_unsaved == 0
    await again.aclose()


def test_the_planner_scans_selective_filters_and_walks_the_graph_for_broad_ones(tmp_path):
    index = EmbeddedVectorIndex(tmp_path / "v")  # defaults: ef 96, a node ~ 48 rows
    assert index.plan(True, 100_000, 100_000) == "graph"  # unfiltered
    assert index.plan(True, 10_500, 100_000) == "exact"  # 10.5%: the bench's 10% level
    assert index.plan(True, 20_000, 100_000) == "exact"
    assert index.plan(True, 30_000, 100_000) == "graph"
    assert index.plan(True, 100_000, 1_000_000) == "graph"  # 10% of a million: the graph
    assert index.plan(True, 5_000, 100_000) == "exact"  # under exact_max_rows
    assert index.plan(False, 90_000, 100_000) == "exact"  # no graph yet


async def test_a_selective_filter_over_a_graph_namespace_is_exact_and_complete(tmp_path):
    """10% of a namespace with a graph, more rows than exact_max_rows: the exact scan is
    cheaper than the filtered walk, so the answer is the exact top k (recall 1.0, k hits)."""
    index = EmbeddedVectorIndex(tmp_path / "v", ann_min_rows=100, exact_max_rows=100)
    vecs = unit_vectors(3000, SPACE.dimensions, 4)
    await index.upsert("t1", SPACE, records(vecs, lambda i: f"d{i % 10}@1"))
    ns = index._spaces[("t1", SPACE.key)]
    assert ns.graph is not None
    assert index.plan(True, 300, 3000) == "exact"
    for seed in range(5):
        q = unit_vectors(1, SPACE.dimensions, 100 + seed)[0]
        got = await index.search("t1", SPACE, q.tolist(), allowed_sources={"d3@1"}, k=10)
        allowed = np.flatnonzero(np.arange(3000) % 10 == 3)
        truth = allowed[np.argsort(-(vecs[allowed] @ q))[:10]]
        assert [h.chunk_id for h in got] == [f"c{i}" for i in truth]
    await index.aclose()


async def test_a_second_process_sees_writes(tmp_path):
    a = EmbeddedVectorIndex(tmp_path / "v")
    b = EmbeddedVectorIndex(tmp_path / "v")
    vecs = unit_vectors(4, SPACE.dimensions, 2)
    await a.upsert("t1", SPACE, records(vecs[:2], "d@1"))
    assert len(await b.search("t1", SPACE, vecs[0].tolist(), allowed_sources={"d@1"}, k=5)) == 2
    await a.upsert("t1", SPACE, records(vecs[2:], "d@1", prefix="x"))
    await b.delete_sources("t1", ["nothing@1"])
    assert len(await b.search("t1", SPACE, vecs[0].tolist(), allowed_sources={"d@1"}, k=5)) == 4
    await b.delete_sources("t1", ["d@1"])
    assert await a.search("t1", SPACE, vecs[0].tolist(), allowed_sources={"d@1"}, k=5) == []
    await a.aclose()
    await b.aclose()


def test_odd_tenant_ids_get_safe_distinct_folders(tmp_path):
    from gasworks.retrieval.embedded import _dirname

    assert _dirname("ten_1") == "ten_1"
    assert "/" not in _dirname("../x") and _dirname("../x") != _dirname("../y")


@pytest.mark.parametrize("delay_batches", [4])
async def test_kill_9_during_writes_leaves_a_whole_state(tmp_path, delay_batches):
    """A writer process is killed with SIGKILL while it writes; the index it leaves opens,
    holds only whole batches, and answers searches."""
    root = tmp_path / "v"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.retrieval._writer", str(root)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert proc.stdout is not None
    committed = -1
    try:
        while committed < delay_batches:
            line = proc.stdout.readline()
            assert line, "writer died before it was killed"
            committed = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    index = EmbeddedVectorIndex(root, ann_min_rows=100, exact_max_rows=0)
    count = await index.count("t1")
    assert count % BATCH == 0  # every batch is all there or not at all
    # batches 0..committed are durable (every third one rewrites the previous batch's ids)
    assert count >= BATCH * (committed + 1 - (committed + 1) // 3)
    allowed = {f"s{i}@1" for i in range(7)}
    hits = await index.search(
        "t1", SPACE, unit_vectors(1, 16, 0)[0].tolist(), allowed_sources=allowed, k=5
    )
    assert len(hits) == 5
    assert hits[0].chunk_id == "b0-0"
    await index.aclose()
