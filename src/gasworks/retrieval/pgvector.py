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
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from gasworks.db.engine import Database
from gasworks.errors import ConfigurationError, DatabaseUnavailable
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
        ef_search: int = 40,
        max_scan_tuples: int = 50_000,
        m: int = 16,
        ef_construction: int = 64,
        count_ttl: float = 10.0,
        exact_fraction: float = 0.25,
        count_cap: int = 500_000,
        pool_size: int = 5,
    ) -> None:
        self.db = db
        self.exact_max_rows = exact_max_rows
        self.ef_search = ef_search
        self.max_scan_tuples = max_scan_tuples
        self.m = m
        self.ef_construction = ef_construction
        self._version: tuple[int, ...] | None = None
        self._indexed: set[str] = set()
        #: (tenant, space, allowed-set digest) -> ((allowed rows, tenant's rows), when counted)
        self._counts: dict[tuple[str, str, bytes], tuple[tuple[int, int], float]] = {}
        self.count_ttl = count_ttl
        self.exact_fraction = exact_fraction
        self.count_cap = count_cap
        self.pool_size = pool_size
        self._engine: AsyncEngine | None = None

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
        distance = f"(embedding::{kind}({d}) <=> $3::real[]::{kind}({d}))" if kind else ""
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
        plan = self.plan_for(space, await self.version())
        engine = await self._search_engine()
        vector = q.tolist()  # sent as real[] (binary), cast to the space's type by the server
        key = (tenant_id, space.key, hashlib.sha256("\x00".join(sources).encode()).digest())
        with self.db.unavailable_as_error():  # failures to connect
            for attempt in (1, 2):
                async with engine.connect() as aconn:
                    raw = (await aconn.get_raw_connection()).driver_connection
                    try:
                        return await self._search_on(raw, key, plan, space, sources, vector, k)
                    except Exception as exc:
                        await aconn.invalidate()  # a connection in an unknown state is not reused
                        if not self.db.dialect.is_unavailable(exc):
                            raise
                        if attempt == 2:  # a pooled connection the server dropped: once more
                            raise DatabaseUnavailable(
                                "The database is unreachable; try again shortly.",
                                details={"dialect": self.db.dialect.name},
                            ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _search_on(
        self,
        raw: Any,
        key: tuple[str, str, bytes],
        plan: _SpacePlan,
        space: Space,
        sources: list[str],
        vector: list[float],
        k: int,
    ) -> list[VectorMatch]:
        """The search on one search connection (autocommit, settings of ``search_settings``):
        one round trip when the counts are remembered and the session's ``ef_search`` fits."""
        tenant_id = key[0]
        counted = self._counted(key)
        if counted is None:
            row = await raw.fetchrow(self.COUNT_SQL, tenant_id, space.key, sources, self.count_cap)
            counted = (int(row[0]), int(row[1]))
            if counted[0] == 0:
                return []
            self._remember(key, counted)
        allowed, total = counted
        args = (tenant_id, sources, vector, k)
        if plan.kind is not None and not self.exact_is_cheaper(allowed, total):
            ef = self.ef_for(k, allowed, total)
            sql = self.hnsw_sql(plan, space)
            if ef == self.ef_search:  # the session's setting: the query alone
                found = self._matches(await raw.fetch(sql, *args))
            else:  # a wider candidate list for this query only (SET LOCAL)
                async with raw.transaction():
                    await raw.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
                    found = self._matches(await raw.fetch(sql, *args))
            # more than k allowed rows: anything short of k is pgvector < 0.8's post-filter
            # loss (0.8 keeps scanning), re-run exactly
            if len(found) == min(k, allowed):
                return found
        exact = await raw.fetch(self.EXACT_SQL, tenant_id, space.key, sources, vector, k)
        return self._matches(exact)

    #: the allowed rows and all the tenant's rows in the space, each counted up to ``$4``
    #: entries of the (tenant, space, source) btree (index-only)
    COUNT_SQL = (
        "SELECT (SELECT count(*) FROM (SELECT 1 FROM retrieval_vectors WHERE tenant_id = $1 "
        "AND space = $2 AND source_id = ANY($3::text[]) LIMIT $4) a), "
        "(SELECT count(*) FROM (SELECT 1 FROM retrieval_vectors WHERE tenant_id = $1 "
        "AND space = $2 LIMIT $4) b)"
    )

    def exact_is_cheaper(self, allowed: int, total: int) -> bool:
        """Whether the exact scan over the allowed rows serves this search. Few rows
        (<= ``exact_max_rows``); or a selective filter (<= ``exact_fraction`` of the tenant's
        rows in the space) over up to ``4 * exact_max_rows`` rows: a filtered HNSW walk keeps
        few of the candidates it visits, and on the measured data (100,000 x 384,
        pgvector 0.8.5, iterative scan) reached recall@10 0.91 at 10 % with ef_search 40-100,
        0.989 at 400, where the exact scan is complete."""
        if allowed <= self.exact_max_rows:
            return True
        return allowed <= 4 * self.exact_max_rows and allowed <= self.exact_fraction * total

    def ef_for(self, k: int, allowed: int, total: int) -> int:
        """``hnsw.ef_search`` for one HNSW search: ``ef_search`` when nothing (or little) is
        filtered out, scaled by the filter's selectivity otherwise (a filter keeping 1/10 of
        the rows needs ~10x the candidates for the same recall), at least k, at most 1,000
        (pgvector's limit)."""
        ef = self.ef_search if allowed >= total else -(-self.ef_search * total // allowed)
        return max(int(k), min(1000, int(ef)))

    # --- the counts of allowed rows, remembered briefly -----------------------------------

    def _counted(self, key: tuple[str, str, bytes]) -> tuple[int, int] | None:
        """Recent counts (allowed, tenant's rows in the space) of the same tenant, space and
        allowed set, or None.

        They only choose the plan, never the answer: a stale count that says "many" sends the
        search to HNSW, whose short answer is re-run exactly; one that says "few" runs the
        exact scan over the rows there are now. Zero is never remembered (an empty answer
        must come from the database). This process's writes forget the tenant's counts."""
        hit = self._counts.get(key)
        if hit is None or time.monotonic() - hit[1] > self.count_ttl:
            return None
        return hit[0]

    def _remember(self, key: tuple[str, str, bytes], counted: tuple[int, int]) -> None:
        if self.count_ttl <= 0:
            return
        if len(self._counts) >= 1024:
            self._counts.clear()
        self._counts[key] = (counted, time.monotonic())

    def _forget(self, tenant_id: str) -> None:
        for key in [key for key in self._counts if key[0] == tenant_id]:
            self._counts.pop(key, None)

    @staticmethod
    def _matches(rows: Any) -> list[VectorMatch]:
        return [VectorMatch(r[0], r[1], 1.0 - float(r[2])) for r in rows]

    # --- the search connections -----------------------------------------------------------

    def search_settings(self, version: tuple[int, ...]) -> dict[str, str]:
        """The session settings of the search connections (sent at connect, so a search is
        one statement in autocommit: no BEGIN, SET, COMMIT round trips).

        ``plan_cache_mode = force_generic_plan``: each statement is planned once per
        connection, never with the allowed set (planning a 1,000-source ``ANY`` took about
        1 ms per query); the plan is chosen here, by the counts. ``enable_sort = off``: with
        the allowed set unknown to the planner, the ordered HNSW scan is the plan of the HNSW
        statement, not the btree and a sort; the exact statement's order cannot come from an
        index (``+ 0``), so it sorts all the same. ``hnsw.ef_search``: the default candidate
        list. pgvector >= 0.8: iterative scans, so a filter that drops most candidates keeps
        walking the graph (up to ``max_scan_tuples``)."""
        settings = {
            "plan_cache_mode": "force_generic_plan",
            "enable_sort": "off",
            "hnsw.ef_search": str(int(self.ef_search)),
        }
        if version >= (0, 8):
            settings["hnsw.iterative_scan"] = "strict_order"
            settings["hnsw.max_scan_tuples"] = str(int(self.max_scan_tuples))
        return settings

    async def _search_engine(self) -> AsyncEngine:
        """A small pool of the searches' own (see ``search_settings``), made on first use."""
        if self._engine is None:
            url = self.db.engine.url
            kwargs = self.db.dialect.engine_kwargs(url, self.pool_size)
            connect_args = dict(kwargs.pop("connect_args", {}))
            connect_args["server_settings"] = self.search_settings(await self.version())
            kwargs.update(isolation_level="AUTOCOMMIT", pool_pre_ping=False)
            kwargs.update(pool_reset_on_return=None, connect_args=connect_args)
            self._engine = create_async_engine(url, **kwargs)
        return self._engine

    @staticmethod
    def hnsw_sql(plan: _SpacePlan, space: Space) -> str:
        """The query the space's HNSW index serves: its indexed expression in the ORDER BY
        and its predicate (the space key, a literal: ``[A-Za-z0-9_]`` and letters only) in the
        WHERE, so a generic plan can prove the partial index applies."""
        # plan.distance is built from a validated type name and an integer dimension
        select = "SELECT chunk_id, source_id, " + plan.distance + " AS d FROM retrieval_vectors "  # noqa: S608
        where = f"WHERE space = '{space.key}' AND tenant_id = $1 AND source_id = ANY($2::text[]) "
        return select + where + "ORDER BY " + plan.distance + " LIMIT $4"

    EXACT_SQL = (
        # ``+ 0`` keeps any vector index from serving the ORDER BY: this plan is always the
        # btree on (tenant, space, source) and a sort of exactly the allowed rows. The query
        # vector is cast once, in an InitPlan: in the generic plan ``$4::real[]::vector`` is
        # not folded and was converted again for every row (10,000 rows: 54 -> 32 ms)
        "SELECT chunk_id, source_id, (embedding <=> (SELECT $4::real[]::vector)) + 0 AS d "
        "FROM retrieval_vectors WHERE tenant_id = $1 AND space = $2 "
        "AND source_id = ANY($3::text[]) ORDER BY 3, 1 LIMIT $5"
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
        """Closes the search connections (the others belong to the runtime's ``Database``)."""
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
