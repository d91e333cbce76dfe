"""A conformance suite every ``VectorIndex`` backend inherits (Haystack-style).

Usage in a backend's tests::

    class TestMyIndex(VectorIndexConformance):
        @pytest.fixture
        def make_index(self, tmp_path) -> IndexFactory:
            # each call opens a *new* backend instance on the *same* storage
            return lambda: MyIndex(tmp_path / "vectors")

The factory is called once per "process": calling it again is how the suite proves that what
was written survives a restart. Needs pytest and pytest-asyncio (auto mode) and numpy.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import pytest

from gasworks.retrieval.types import Space, VectorIndex, VectorRecord

IndexFactory = Callable[[], VectorIndex]

SPACE = Space("test-embed", 16)
OTHER_SPACE = Space("test-embed", 8)


def unit_vectors(n: int, dim: int, seed: int) -> npt.NDArray[np.float32]:
    """``n`` random unit vectors (reproducible)."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.astype(np.float32)


def records(
    vectors: npt.NDArray[np.float32], source: str | Callable[[int], str], prefix: str = "c"
) -> list[VectorRecord]:
    def src(i: int) -> str:
        return source if isinstance(source, str) else source(i)

    return [VectorRecord(f"{prefix}{i}", src(i), v.tolist()) for i, v in enumerate(vectors)]


def exact_top(
    vectors: npt.NDArray[np.float32], ids: Sequence[str], query: npt.NDArray[np.float32], k: int
) -> list[tuple[str, float]]:
    scores = vectors @ query
    order = np.argsort(-scores, kind="stable")[:k]
    return [(ids[i], float(scores[i])) for i in order]


def _near(v: npt.NDArray[np.float32], seed: str) -> npt.NDArray[np.float32]:
    """A unit vector very close to ``v`` (a deterministic small perturbation)."""
    rng = np.random.default_rng(int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16))
    w: npt.NDArray[np.float32] = v + 0.01 * rng.standard_normal(v.shape).astype(np.float32)
    out: npt.NDArray[np.float32] = (w / np.linalg.norm(w)).astype(np.float32)
    return out


class VectorIndexConformance:
    """Behaviour every backend must show. Subclasses provide the ``make_index`` fixture.

    ``large`` is how many vectors the selectivity test writes; a backend whose approximate
    index starts above that size overrides it (and its threshold) so the test exercises the
    approximate path.
    """

    large: int = 3000

    @pytest.fixture
    def index(self, make_index: IndexFactory) -> VectorIndex:
        return make_index()

    async def test_search_returns_nearest_first_with_cosine_scores(
        self, index: VectorIndex
    ) -> None:
        vecs = unit_vectors(50, SPACE.dimensions, 1)
        await index.upsert("t1", SPACE, records(vecs, lambda i: f"doc{i % 5}@1"))
        q = _near(vecs[7], "q")
        hits = await index.search(
            "t1", SPACE, q.tolist(), allowed_sources={f"doc{i}@1" for i in range(5)}, k=5
        )
        expected = exact_top(vecs, [f"c{i}" for i in range(50)], q, 5)
        assert [h.chunk_id for h in hits] == [e[0] for e in expected]
        assert hits[0].chunk_id == "c7" and hits[0].source_id == "doc2@1"
        for hit, (_, score) in zip(hits, expected, strict=True):
            assert hit.score == pytest.approx(score, abs=1e-3)

    async def test_never_returns_another_tenants_vectors(self, index: VectorIndex) -> None:
        vecs = unit_vectors(20, SPACE.dimensions, 2)
        await index.upsert("t1", SPACE, records(vecs, "same@1", prefix="a"))
        # tenant 2 holds the exact query vector under the same source and chunk ids
        await index.upsert("t2", SPACE, records(vecs, "same@1", prefix="a"))
        await index.upsert("t2", SPACE, [VectorRecord("t2-only", "same@1", vecs[0].tolist())])
        hits = await index.search("t1", SPACE, vecs[0].tolist(), allowed_sources={"same@1"}, k=50)
        assert len(hits) == 20
        assert "t2-only" not in {h.chunk_id for h in hits}
        assert (
            await index.search("t3", SPACE, vecs[0].tolist(), allowed_sources={"same@1"}, k=5) == []
        )

    async def test_never_returns_a_chunk_outside_allowed_sources_even_nearest(
        self, index: VectorIndex
    ) -> None:
        vecs = unit_vectors(30, SPACE.dimensions, 3)
        await index.upsert("t1", SPACE, records(vecs[:29], "allowed@1"))
        secret = VectorRecord("secret", "forbidden@1", vecs[29].tolist())
        await index.upsert("t1", SPACE, [secret])
        hits = await index.search(
            "t1", SPACE, vecs[29].tolist(), allowed_sources={"allowed@1"}, k=10
        )
        assert len(hits) == 10
        assert all(h.source_id == "allowed@1" for h in hits)
        assert "secret" not in {h.chunk_id for h in hits}

    async def test_empty_allowed_set_returns_nothing(self, index: VectorIndex) -> None:
        vecs = unit_vectors(10, SPACE.dimensions, 4)
        await index.upsert("t1", SPACE, records(vecs, "doc@1"))
        assert await index.search("t1", SPACE, vecs[0].tolist(), allowed_sources=set(), k=5) == []
        unknown = {"nope@1"}
        assert await index.search("t1", SPACE, vecs[0].tolist(), allowed_sources=unknown, k=5) == []

    async def test_k_larger_than_allowed_returns_all_allowed(self, index: VectorIndex) -> None:
        vecs = unit_vectors(12, SPACE.dimensions, 5)
        await index.upsert("t1", SPACE, records(vecs, lambda i: "a@1" if i < 3 else "b@1"))
        hits = await index.search("t1", SPACE, vecs[5].tolist(), allowed_sources={"a@1"}, k=10)
        assert sorted(h.chunk_id for h in hits) == ["c0", "c1", "c2"]

    async def test_selective_filter_still_returns_min_k_allowed(self, index: VectorIndex) -> None:
        """0.1% of the tenant's vectors allowed, and the query sits among the others."""
        n = self.large
        vecs = unit_vectors(n, SPACE.dimensions, 6)
        allowed_rows = set(range(0, n, 1000)) | {n - 1}  # ~0.1%

        def src(i: int) -> str:
            return "rare@1" if i in allowed_rows else f"bulk{i % 50}@1"

        for start in range(0, n, 1000):
            chunk = records(vecs[start : start + 1000], src)
            for j, r in enumerate(chunk):
                chunk[j] = VectorRecord(f"c{start + j}", src(start + j), r.vector)
            await index.upsert("t1", SPACE, chunk)
        rare_ids = [f"c{i}" for i in sorted(allowed_rows)]
        rare_vecs = vecs[sorted(allowed_rows)]
        for seed in range(5):
            q = unit_vectors(1, SPACE.dimensions, 100 + seed)[0]
            k = min(3, len(rare_ids))
            hits = await index.search("t1", SPACE, q.tolist(), allowed_sources={"rare@1"}, k=k)
            assert [h.chunk_id for h in hits] == [
                e[0] for e in exact_top(rare_vecs, rare_ids, q, k)
            ]
            many = await index.search("t1", SPACE, q.tolist(), allowed_sources={"rare@1"}, k=100)
            assert sorted(h.chunk_id for h in many) == sorted(rare_ids)

    async def test_upsert_is_idempotent_by_chunk_id(self, index: VectorIndex) -> None:
        vecs = unit_vectors(10, SPACE.dimensions, 7)
        await index.upsert("t1", SPACE, records(vecs, "doc@1"))
        await index.upsert("t1", SPACE, records(vecs, "doc@1"))
        assert await index.count("t1") == 10
        # an upsert with a new vector replaces the old one
        moved = VectorRecord("c0", "doc@1", vecs[9].tolist())
        await index.upsert("t1", SPACE, [moved])
        assert await index.count("t1") == 10
        hits = await index.search("t1", SPACE, vecs[0].tolist(), allowed_sources={"doc@1"}, k=10)
        by_id = {h.chunk_id: h.score for h in hits}
        assert by_id["c0"] < 0.99  # no longer the query's own vector
        # the same chunk id twice in one batch: the last one wins
        await index.upsert(
            "t1",
            SPACE,
            [
                VectorRecord("dup", "doc@1", vecs[1].tolist()),
                VectorRecord("dup", "doc@1", vecs[2].tolist()),
            ],
        )
        assert await index.count("t1") == 11
        top = await index.search("t1", SPACE, vecs[2].tolist(), allowed_sources={"doc@1"}, k=2)
        assert "dup" in {h.chunk_id for h in top}

    async def test_delete_sources_is_complete(self, index: VectorIndex) -> None:
        vecs = unit_vectors(40, SPACE.dimensions, 8)
        await index.upsert("t1", SPACE, records(vecs, lambda i: f"d{i % 4}@1"))
        await index.upsert("t1", OTHER_SPACE, records(unit_vectors(5, 8, 9), "d0@1", prefix="o"))
        await index.upsert("t2", SPACE, records(vecs[:5], "d0@1"))
        assert await index.count("t1", ["d0@1"]) == 15
        assert await index.delete_sources("t1", ["d0@1", "d1@1"]) == 25
        assert await index.count("t1", ["d0@1", "d1@1"]) == 0
        assert await index.count("t1") == 20
        hits = await index.search(
            "t1", SPACE, vecs[0].tolist(), allowed_sources={"d0@1", "d1@1", "d2@1"}, k=40
        )
        assert {h.source_id for h in hits} == {"d2@1"}
        assert await index.count("t2") == 5  # the other tenant's same source id untouched
        assert sorted([s async for s in index.sources("t1")]) == ["d2@1", "d3@1"]
        assert await index.delete_sources("t1", ["d0@1"]) == 0

    async def test_delete_tenant_is_complete(self, index: VectorIndex) -> None:
        vecs = unit_vectors(10, SPACE.dimensions, 10)
        await index.upsert("t1", SPACE, records(vecs, "doc@1"))
        await index.upsert("t1", OTHER_SPACE, records(unit_vectors(3, 8, 11), "x@1"))
        await index.upsert("t2", SPACE, records(vecs, "doc@1"))
        assert await index.delete_tenant("t1") == 13
        assert await index.count("t1") == 0
        assert [s async for s in index.sources("t1")] == []
        assert (
            await index.search("t1", SPACE, vecs[0].tolist(), allowed_sources={"doc@1"}, k=5) == []
        )
        assert await index.count("t2") == 10

    async def test_spaces_never_meet(self, index: VectorIndex) -> None:
        await index.upsert("t1", SPACE, records(unit_vectors(3, 16, 12), "doc@1"))
        other = unit_vectors(2, 8, 13)
        await index.upsert("t1", OTHER_SPACE, records(other, "doc@1", prefix="o"))
        hits = await index.search(
            "t1", OTHER_SPACE, other[0].tolist(), allowed_sources={"doc@1"}, k=10
        )
        assert sorted(h.chunk_id for h in hits) == ["o0", "o1"]

    async def test_survives_a_restart(self, make_index: IndexFactory) -> None:
        vecs = unit_vectors(25, SPACE.dimensions, 14)
        first = make_index()
        await first.upsert("t1", SPACE, records(vecs, lambda i: f"d{i % 2}@1"))
        await first.delete_sources("t1", ["d1@1"])
        await _close(first)
        second = make_index()
        assert await second.count("t1") == 13
        hits = await second.search(
            "t1", SPACE, vecs[4].tolist(), allowed_sources={"d0@1", "d1@1"}, k=3
        )
        assert hits[0].chunk_id == "c4"
        assert all(h.source_id == "d0@1" for h in hits)
        await _close(second)

    async def test_concurrent_upserts_are_safe(self, index: VectorIndex) -> None:
        vecs = unit_vectors(200, SPACE.dimensions, 15)
        batches = [records(vecs[i : i + 20], f"s{i // 20}@1") for i in range(0, 200, 20)]
        # give each batch its own chunk ids, then write them all at once (and one twice)
        batches = [
            [VectorRecord(f"b{n}-{r.chunk_id}", r.source_id, r.vector) for r in batch]
            for n, batch in enumerate(batches)
        ]
        await asyncio.gather(*(index.upsert("t1", SPACE, b) for b in [*batches, batches[0]]))
        assert await index.count("t1") == 200
        for n in (0, 5, 9):
            hits = await index.search(
                "t1", SPACE, vecs[n * 20].tolist(), allowed_sources={f"s{n}@1"}, k=1
            )
            assert hits[0].chunk_id == f"b{n}-c0"

    async def test_rejects_a_vector_of_the_wrong_dimension(self, index: VectorIndex) -> None:
        from gasworks.errors import ValidationFailed

        with pytest.raises(ValidationFailed):
            await index.upsert("t1", SPACE, [VectorRecord("x", "doc@1", [0.1] * 3)])
        with pytest.raises(ValidationFailed):
            await index.search("t1", SPACE, [0.1] * 3, allowed_sources={"doc@1"}, k=1)
        assert await index.count("t1") == 0


async def _close(index: VectorIndex) -> None:
    close = getattr(index, "aclose", None)
    if close is not None:
        await close()
