"""The PostgreSQL vector index: pgvector in the deployment's own database.

One table, ``retrieval_vectors`` (created by the ``0006_retrieval`` migration where the
``vector`` extension exists), holds every tenant and space; the column is an untyped
``vector`` so spaces of any dimension share it. Each space gets its own *partial expression*
HNSW index, created on the first write to that space::

    CREATE INDEX … USING hnsw ((embedding::vector(384)) vector_cosine_ops)
        WHERE space = '<space key>'

How a search runs (every plan keeps the tenant and allowed-source filter inside the SQL):

1. Count the allowed rows, bounded: ``count(*)`` over at most ``exact_max_rows + 1`` entries of
   the ``(tenant_id, space, source_id)`` btree. None: return ``[]`` at once. A non-zero count
   is remembered for ``count_ttl`` seconds per (tenant, space, allowed set): it only picks
   the plan, so a stale one costs time, never completeness (see ``_counted``).
2. Few allowed rows, or no HNSW index for the space: an **exact scan** over exactly those rows
   (the btree finds them; the distance is written so that no vector index can serve the
   ORDER BY, whatever the planner settings).
3. Otherwise the HNSW index, with ``hnsw.ef_search`` and ``plan_cache_mode =
   force_custom_plan`` set for the transaction in one ``set_config`` statement (a reused
   prepared statement's generic plan would otherwise ignore the allowed set; measured: a
   generic plan of this query took 1.3 s at 100,000 rows). On pgvector >= 0.8 with
   ``hnsw.iterative_scan = strict_order``, so a filter that drops most candidates keeps
   scanning the graph; before 0.8 the filter is applied after ``ef_search`` candidates, so
   an answer shorter than ``min(k, allowed)`` is re-run as the exact scan. Results are
   complete on both.

The whole search is one connection and one transaction: BEGIN, the count (unless
remembered), the settings, the query, COMMIT. The HNSW graph must stay in memory to be fast:
size ``shared_buffers`` to hold the space's index (docs/operations.md).

Dimensions: HNSW on ``vector`` up to 2,000; up to 4,000 through ``halfvec`` (pgvector >= 0.7,
index and query cast to half precision, the stored column stays full precision); above that,
or on older versions, the space has no HNSW index and every search is the exact scan.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gasworks.db.engine import Database
from gasworks.errors import ConfigurationError
from gasworks.retrieval.types import Space, VectorMatch, VectorRecord
from gasworks.retrieval.vectors import search_query, upsert_batch

HNSW_MAX_DIMS = {"vector": 2000, "halfvec": 4000}


def _vector_literal(v: npt.NDArray[np.float32]) -> str:
    return "[" + ",".join(repr(float(x)) for x in v.tolist()) + "]"


def _version_tuple(raw: str) -> tuple[int, ...]:
    return tuple(int(p) for p in raw.split(".")[:3] if p.isdigit())


@dataclass(frozen=True, slots=True)
class _SpacePlan:
    #: ``vector`` / ``halfvec``, or None when the space has no HNSW index
    kind: str | None
    index_name: str
    distance: str  # the SQL expression the HNSW index serves


class PgVectorIndex:
    """``VectorIndex`` on PostgreSQL + pgvector."""

    def __init__(
        self,
        db: Database,
        *,
        exact_max_rows: int = 10_000,
        ef_search: int = 100,
        max_scan_tuples: int = 50_000,
        m: int = 16,
        ef_construction: int = 64,
        count_ttl: float = 10.0,
    ) -> None:
        self.db = db
        self.exact_max_rows = exact_max_rows
        self.ef_search = ef_search
        self.max_scan_tuples = max_scan_tuples
        self.m = m
        self.ef_construction = ef_construction
        self._version: tuple[int, ...] | None = None
        self._indexed: set[str] = set()
        #: (tenant, space, allowed-set digest) -> (allowed rows, when counted); see _counted
        self._counts: dict[tuple[str, str, bytes], tuple[int, float]] = {}
        self.count_ttl = count_ttl

    # --- version and per-space indexes ----------------------------------------------------

    async def version(self) -> tuple[int, ...]:
        if self._version is None:
            async with self.db.engine.connect() as conn:
                raw = (
                    await conn.execute(
                        text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
                    )
                ).scalar()
            if raw is None:
                raise ConfigurationError(
                    "The pgvector index needs the PostgreSQL extension 'vector': install "
                    "pgvector on the server and run `gasworks db upgrade` (or set "
                    "GASWORKS_VECTOR_INDEX=embedded).",
                )
            self._version = _version_tuple(str(raw))
        return self._version

    def plan_for(self, space: Space, version: tuple[int, ...]) -> _SpacePlan:
        digest = hashlib.sha256(space.key.encode()).hexdigest()[:16]
        name = f"ix_retrieval_vectors_hnsw_{digest}"
        d = space.dimensions
        if d <= HNSW_MAX_DIMS["vector"]:
            kind: str | None = "vector"
        elif d <= HNSW_MAX_DIMS["halfvec"] and version >= (0, 7):
            kind = "halfvec"
        else:
            kind = None
        distance = f"(embedding::{kind}({d}) <=> CAST(:q AS {kind}({d})))" if kind else ""
        return _SpacePlan(kind, name, distance)

    async def _ensure_index(self, conn: AsyncConnection, space: Space) -> None:
        if space.key in self._indexed:
            return
        plan = self.plan_for(space, await self.version())
        if plan.kind is not None:
            # one creator at a time across processes (CREATE INDEX IF NOT EXISTS can still
            # race on the catalog); the key is a literal: Space.key is [A-Za-z0-9_] only
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": plan.index_name}
            )
            d = space.dimensions
            await conn.execute(
                text(
                    f"CREATE INDEX IF NOT EXISTS {plan.index_name} ON retrieval_vectors "
                    f"USING hnsw ((embedding::{plan.kind}({d})) {plan.kind}_cosine_ops) "
                    f"WITH (m = {int(self.m)}, ef_construction = {int(self.ef_construction)}) "
                    f"WHERE space = '{space.key}'"
                )
            )
        self._indexed.add(space.key)

    # --- VectorIndex ----------------------------------------------------------------------

    async def upsert(self, tenant_id: str, space: Space, records: Sequence[VectorRecord]) -> None:
        if not records:
            return
        rows = [
            {"t": tenant_id, "s": space.key, "c": cid, "src": src, "v": _vector_literal(vec)}
            for cid, (src, vec) in sorted(upsert_batch(space, records).items())  # one lock order
        ]
        self._forget(tenant_id)
        async with self.db.engine.begin() as conn:
            await self._ensure_index(conn, space)
            await conn.execute(
                text(
                    "INSERT INTO retrieval_vectors (tenant_id, space, chunk_id, source_id, "
                    "embedding) VALUES (:t, :s, :c, :src, CAST(:v AS vector)) "
                    "ON CONFLICT (tenant_id, space, chunk_id) DO UPDATE SET "
                    "source_id = excluded.source_id, embedding = excluded.embedding"
                ),
                rows,
            )

    async def search(
        self,
        tenant_id: str,
        space: Space,
        query: Sequence[float],
        *,
        allowed_sources: Collection[str],
        k: int,
    ) -> list[VectorMatch]:
        q = search_query(space, query, allowed_sources, k)
        if q is None:
            return []
        sources = sorted(set(allowed_sources))
        params = {"t": tenant_id, "s": space.key, "src": sources, "q": _vector_literal(q), "k": k}
        version = await self.version()
        plan = self.plan_for(space, version)
        key = (tenant_id, space.key, hashlib.sha256("\x00".join(sources).encode()).digest())
        # one connection, one transaction: the count, the settings and the query(ies) are
        # four round trips (BEGIN, count, settings, query, COMMIT when the count is cached)
        async with self.db.engine.connect() as conn, conn.begin():
            allowed = self._counted(key)
            if allowed is None:
                allowed = (
                    await conn.execute(
                        text(self.COUNT_SQL), {**params, "n": self.exact_max_rows + 1}
                    )
                ).scalar_one()
                if allowed == 0:
                    return []
                self._remember(key, allowed)
            if plan.kind is not None and allowed > self.exact_max_rows:
                # more than exact_max_rows allowed (the count stopped there): anything short
                # of k may be the post-filter's loss, so it is re-run exactly
                await conn.execute(text(self.settings_sql(version)), self.settings_params(k))
                found = self._matches(await conn.execute(text(self.hnsw_sql(plan)), params))
                if len(found) == k:
                    return found
            return self._matches(await conn.execute(text(self.EXACT_SQL), params))

    COUNT_SQL = (
        "SELECT count(*) FROM (SELECT 1 FROM retrieval_vectors WHERE "
        "tenant_id = :t AND space = :s AND source_id = ANY(:src) LIMIT :n) x"
    )

    # --- the count of allowed rows, remembered briefly ------------------------------------

    def _counted(self, key: tuple[str, str, bytes]) -> int | None:
        """A recent count of the same tenant, space and allowed set, or None.

        It only chooses the plan, never the answer: a stale count that says "many" sends the
        search to HNSW, whose short answer is re-run exactly; one that says "few" runs the
        exact scan over the rows there are now. Zero is never remembered (an empty answer
        must come from the database). This process's writes forget the tenant's counts."""
        hit = self._counts.get(key)
        if hit is None or time.monotonic() - hit[1] > self.count_ttl:
            return None
        return hit[0]

    def _remember(self, key: tuple[str, str, bytes], allowed: int) -> None:
        if self.count_ttl <= 0:
            return
        if len(self._counts) >= 1024:
            self._counts.clear()
        self._counts[key] = (allowed, time.monotonic())

    def _forget(self, tenant_id: str) -> None:
        for key in [key for key in self._counts if key[0] == tenant_id]:
            self._counts.pop(key, None)

    @staticmethod
    def _matches(result: Any) -> list[VectorMatch]:
        return [VectorMatch(r[0], r[1], 1.0 - float(r[2])) for r in result.all()]

    def settings_sql(self, version: tuple[int, ...]) -> str:
        """The HNSW query's settings in one statement (``set_config(..., true)`` is ``SET
        LOCAL``: they end with the transaction). ``plan_cache_mode = force_custom_plan``: a
        reused prepared statement's generic plan would otherwise ignore the allowed set.
        pgvector >= 0.8: iterative scans, so a filter that drops most candidates keeps
        walking the graph (up to ``max_scan_tuples``)."""
        sql = (
            "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
            "set_config('hnsw.ef_search', :ef, true)"
        )
        if version >= (0, 8):
            sql += (
                ", set_config('hnsw.iterative_scan', 'strict_order', true)"
                ", set_config('hnsw.max_scan_tuples', :max_scan, true)"
            )
        return sql

    def settings_params(self, k: int) -> dict[str, str]:
        return {
            "ef": str(max(self.ef_search, int(k))),
            "max_scan": str(int(self.max_scan_tuples)),
        }

    @staticmethod
    def hnsw_sql(plan: _SpacePlan) -> str:
        """The query the HNSW index serves (same expression and partial-index predicate)."""
        # plan.distance is built from a validated type name and an integer dimension
        select = "SELECT chunk_id, source_id, " + plan.distance + " AS d FROM retrieval_vectors "  # noqa: S608
        where = "WHERE space = :s AND tenant_id = :t AND source_id = ANY(:src) "
        return select + where + "ORDER BY " + plan.distance + " LIMIT :k"

    EXACT_SQL = (
        # ``+ 0`` keeps any vector index from serving the ORDER BY: this plan is always the
        # btree on (tenant, space, source) and a sort of exactly the allowed rows
        "SELECT chunk_id, source_id, (embedding <=> CAST(:q AS vector)) + 0 AS d "
        "FROM retrieval_vectors WHERE tenant_id = :t AND space = :s AND source_id = ANY(:src) "
        "ORDER BY 3, 1 LIMIT :k"
    )

    async def delete_sources(self, tenant_id: str, source_ids: Collection[str]) -> int:
        if not source_ids:
            return 0
        self._forget(tenant_id)
        async with self.db.engine.begin() as conn:
            result = await conn.execute(
                text(
                    "DELETE FROM retrieval_vectors WHERE tenant_id = :t AND source_id = ANY(:src)"
                ),
                {"t": tenant_id, "src": sorted(set(source_ids))},
            )
        return int(result.rowcount)

    async def delete_tenant(self, tenant_id: str) -> int:
        self._forget(tenant_id)
        async with self.db.engine.begin() as conn:
            result = await conn.execute(
                text("DELETE FROM retrieval_vectors WHERE tenant_id = :t"), {"t": tenant_id}
            )
        return int(result.rowcount)

    async def sources(self, tenant_id: str) -> AsyncIterator[str]:
        async with self.db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT DISTINCT source_id FROM retrieval_vectors WHERE tenant_id = :t "
                        "ORDER BY 1"
                    ),
                    {"t": tenant_id},
                )
            ).all()
        for r in rows:
            yield str(r[0])

    async def count(self, tenant_id: str, source_ids: Collection[str] | None = None) -> int:
        sql = "SELECT count(*) FROM retrieval_vectors WHERE tenant_id = :t"
        params: dict[str, object] = {"t": tenant_id}
        if source_ids is not None:
            sql += " AND source_id = ANY(:src)"
            params["src"] = sorted(set(source_ids))
        async with self.db.engine.connect() as conn:
            return int((await conn.execute(text(sql), params)).scalar_one())

    async def aclose(self) -> None:
        """Nothing to close: the connections belong to the runtime's ``Database``."""
