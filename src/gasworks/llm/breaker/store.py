"""The shared breaker state in the database: states (compare-and-set), buckets, events."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, delete, func, select, update

from gasworks.db.engine import Database
from gasworks.db.types import new_id
from gasworks.llm.breaker.state import BreakerState
from gasworks.llm.breaker.window import Counts
from gasworks.llm.guardrail_tables import BreakerBucketRow, BreakerEventRow, BreakerRow

B: Table = BreakerRow.__table__  # type: ignore[assignment]
K: Table = BreakerBucketRow.__table__  # type: ignore[assignment]
E: Table = BreakerEventRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class BreakerRecord:
    key: str
    state: BreakerState
    generation: int
    version: int
    #: epoch seconds
    state_changed_at: float
    probes_issued: int = 0
    probe_successes: int = 0
    reason: str | None = None
    changed_by: str | None = None

    @classmethod
    def fresh(cls, key: str, now: float) -> BreakerRecord:
        return cls(key, BreakerState.CLOSED, 0, 0, now)


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    key: str
    from_state: str
    to_state: str
    manual: bool
    actor: str | None
    reason: str | None
    stats: dict[str, Any] | None
    at: datetime


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _record(row: Any) -> BreakerRecord:
    return BreakerRecord(
        key=row.key,
        state=BreakerState(row.state),
        generation=row.generation,
        version=row.version,
        state_changed_at=row.state_changed_at.timestamp(),
        probes_issued=row.probes_issued,
        probe_successes=row.probe_successes,
        reason=row.reason,
        changed_by=row.changed_by,
    )


@dataclass(frozen=True, slots=True)
class Transition:
    before: BreakerRecord
    after: BreakerRecord


class BreakerStore:
    """Every read and write of breaker state. Each method is one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _ensure(self, session: Any, keys: Iterable[str], now: float) -> None:
        rows = [
            {
                "key": k,
                "state": BreakerState.CLOSED.value,
                "generation": 0,
                "version": 0,
                "state_changed_at": _ts(now),
                "probes_issued": 0,
                "probe_successes": 0,
            }
            for k in sorted(set(keys))
        ]
        if rows:
            stmt = self.db.dialect.insert(B).values(rows).on_conflict_do_nothing()
            await session.execute(stmt)

    async def flush(self, items: list[tuple[str, int, int, Counts]], now: float) -> None:
        """Add local counts to the shared buckets (creating breaker rows as needed)."""
        if not items:
            return
        async with self.db.session() as s:
            await self._ensure(s, (k for k, _, _, _ in items), now)
            for key, gen, bucket, c in sorted(items, key=lambda x: (x[0], x[1], x[2])):
                ins = self.db.dialect.insert(K).values(
                    key=key,
                    generation=gen,
                    bucket_start=bucket,
                    calls=c.calls,
                    failures=c.failures,
                    slow=c.slow,
                )
                await s.execute(
                    ins.on_conflict_do_update(
                        index_elements=[K.c.key, K.c.generation, K.c.bucket_start],
                        set_={
                            "calls": K.c.calls + ins.excluded.calls,
                            "failures": K.c.failures + ins.excluded.failures,
                            "slow": K.c.slow + ins.excluded.slow,
                        },
                    )
                )

    async def snapshot(
        self, window_start: int
    ) -> tuple[dict[str, BreakerRecord], dict[tuple[str, int], Counts]]:
        """Every breaker's state and window totals (by key and generation), in one read-only
        snapshot (it runs every sync interval in every process: see ``Database.read_now``)."""
        states, totals = await self.db.read_now(
            select(B),
            select(
                K.c.key,
                K.c.generation,
                func.sum(K.c.calls),
                func.sum(K.c.failures),
                func.sum(K.c.slow),
            )
            .where(K.c.bucket_start >= window_start)
            .group_by(K.c.key, K.c.generation),
        )
        records = {r.key: _record(r) for r in states}
        counts = {
            (k, int(g)): Counts(int(c or 0), int(f or 0), int(sl or 0)) for k, g, c, f, sl in totals
        }
        return records, counts

    async def get(self, key: str) -> BreakerRecord | None:
        async with self.db.session() as s:
            row = (await s.execute(select(B).where(B.c.key == key))).first()
        return _record(row) if row else None

    async def window(self, key: str, generation: int, window_start: int) -> Counts:
        async with self.db.session() as s:
            row = (
                await s.execute(
                    select(func.sum(K.c.calls), func.sum(K.c.failures), func.sum(K.c.slow)).where(
                        K.c.key == key,
                        K.c.generation == generation,
                        K.c.bucket_start >= window_start,
                    )
                )
            ).one()
        return Counts(int(row[0] or 0), int(row[1] or 0), int(row[2] or 0))

    async def transition(
        self,
        key: str,
        from_states: frozenset[BreakerState] | None,
        to_state: BreakerState,
        *,
        now: float,
        reason: str | None = None,
        actor: str | None = None,
        manual: bool = False,
        stats: dict[str, Any] | None = None,
        new_generation: bool = False,
        expected_version: int | None = None,
    ) -> Transition | None:
        """Compare-and-set the state (None when the state is not in ``from_states`` or the row
        changed meanwhile); the transition is recorded as an event in the same transaction."""
        async with self.db.session() as s:
            await self._ensure(s, [key], now)
            row = (await s.execute(select(B).where(B.c.key == key))).one()
            before = _record(row)
            if from_states is not None and before.state not in from_states:
                return None
            if expected_version is not None and before.version != expected_version:
                return None
            values: dict[str, Any] = {
                "state": to_state.value,
                "version": before.version + 1,
                "state_changed_at": _ts(now),
                "probes_issued": 0,
                "probe_successes": 0,
                "reason": reason,
                "changed_by": actor,
            }
            if new_generation:
                values["generation"] = before.generation + 1
            res = await s.execute(
                update(B).where(B.c.key == key, B.c.version == before.version).values(**values)
            )
            if res.rowcount != 1:  # type: ignore[attr-defined]
                return None
            await s.execute(
                E.insert().values(
                    id=new_id("bev"),
                    key=key,
                    version=before.version + 1,
                    from_state=before.state.value,
                    to_state=to_state.value,
                    manual=manual,
                    actor=actor,
                    reason=reason,
                    stats=stats,
                    at=_ts(now),
                )
            )
            after = BreakerRecord(
                key=key,
                state=to_state,
                generation=values.get("generation", before.generation),
                version=before.version + 1,
                state_changed_at=now,
                reason=reason,
                changed_by=actor,
            )
            return Transition(before, after)

    async def claim_probe(self, key: str, version: int, max_probes: int) -> bool:
        """Take one of the HALF_OPEN probe slots (atomic across processes)."""
        async with self.db.session() as s:
            res = await s.execute(
                update(B)
                .where(
                    B.c.key == key,
                    B.c.version == version,
                    B.c.state == BreakerState.HALF_OPEN.value,
                    B.c.probes_issued < max_probes,
                )
                .values(probes_issued=B.c.probes_issued + 1)
            )
            return bool(res.rowcount == 1)  # type: ignore[attr-defined]

    async def release_probe(self, key: str, version: int) -> None:
        """Give back a probe slot whose call told nothing (the caller's own 4xx, cancelled)."""
        async with self.db.session() as s:
            await s.execute(
                update(B)
                .where(B.c.key == key, B.c.version == version, B.c.probes_issued > 0)
                .values(probes_issued=B.c.probes_issued - 1)
            )

    async def probe_succeeded(self, key: str, version: int) -> int | None:
        """Count a successful probe; the number of successes so far (None: state moved on)."""
        async with self.db.session() as s:
            res = await s.execute(
                update(B)
                .where(B.c.key == key, B.c.version == version)
                .values(probe_successes=B.c.probe_successes + 1)
            )
            if res.rowcount != 1:  # type: ignore[attr-defined]
                return None
            value = await s.scalar(select(B.c.probe_successes).where(B.c.key == key))
            return int(value or 0)

    async def prune(self, before_bucket: int) -> None:
        async with self.db.session() as s:
            await s.execute(delete(K).where(K.c.bucket_start < before_bucket))

    async def events(self, key: str | None = None, limit: int = 50) -> list[BreakerEvent]:
        async with self.db.session() as s:
            q = select(E).order_by(E.c.at.desc(), E.c.version.desc()).limit(limit)
            if key is not None:
                q = q.where(E.c.key == key)
            rows = (await s.execute(q)).all()
        return [
            BreakerEvent(
                r.key, r.from_state, r.to_state, r.manual, r.actor, r.reason, r.stats, r.at
            )
            for r in rows
        ]
