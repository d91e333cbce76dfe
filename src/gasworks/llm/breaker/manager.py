"""The per-process breaker front end: cheap checks and records, shared through the store.

Hot path: ``check`` is a dict lookup while a breaker is CLOSED; ``record`` adds to a local
bucket. Every ``config.sync_interval_seconds`` (at most; on the next call after it elapses)
the process flushes its counts and reads every breaker's state and window totals. A failure
that brings this process's view (shared totals + unflushed counts) over the threshold flushes
and evaluates at once, so a breaker opens at the threshold without waiting for a sync; other
processes see the new state after at most one sync interval (the documented staleness bound).

Fail-open: any error of the breaker itself (logic, database) lets the call through; it is
logged and counted in ``gasworks_guardrail_errors_total{component="breaker"}``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gasworks.db.engine import Database
from gasworks.errors import CircuitOpen
from gasworks.llm.breaker.state import BreakerConfig, BreakerState, OutcomeKind
from gasworks.llm.breaker.store import BreakerRecord, BreakerStore, Transition
from gasworks.llm.breaker.window import Counts, LocalWindow
from gasworks.llm.guardrail_metrics import (
    BREAKER_REJECTIONS,
    BREAKER_STATE,
    BREAKER_TRANSITIONS,
    GUARDRAIL_ERRORS,
)
from gasworks.observability.logging import get_logger

log = get_logger("gasworks.llm.breaker")

_AUTO_CLOSE_FROM = frozenset({BreakerState.HALF_OPEN})
_TRIP_FROM = frozenset({BreakerState.CLOSED})


@dataclass(frozen=True, slots=True)
class Permit:
    """What ``check`` handed out; given back to ``record``."""

    key: str
    generation: int
    #: this call is one of the HALF_OPEN probes (``version`` is the half-open row version)
    probe: bool = False
    version: int = 0
    #: the breaker itself failed; the call was let through
    fail_open: bool = False


@dataclass(frozen=True, slots=True)
class BreakerView:
    key: str
    state: BreakerState
    generation: int
    state_changed_at: float
    window: Counts
    reason: str | None
    changed_by: str | None


class BreakerManager:
    def __init__(
        self,
        db: Database,
        config: BreakerConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        store: BreakerStore | None = None,
    ) -> None:
        self.config = config or BreakerConfig()
        self.clock = clock
        self.store = store or BreakerStore(db)
        self._records: dict[str, BreakerRecord] = {}
        #: a count of the records this process learned one by one (a transition, a reload),
        #: and when each key was last learned so: a sync whose snapshot was read before keeps
        #: them (see ``sync``)
        self._learned = 0
        self._learned_at: dict[str, int] = {}
        self._windows: dict[str, LocalWindow] = {}
        self._last_sync = float("-inf")
        self._last_prune = float("-inf")
        self._sync_lock = asyncio.Lock()

    # --- hot path -------------------------------------------------------------------------

    async def check(self, key: str) -> Permit:
        """Allow the call or raise ``CircuitOpen`` (MODEL_UNAVAILABLE, 503)."""
        try:
            now = self.clock()
            if now - self._last_sync >= self.config.sync_interval_seconds:
                try:
                    await self.sync(now)
                except Exception:  # the store is down: decide on the last known state
                    self._fail_open("sync", key)
            rec = self._records.get(key)
            if rec is None or rec.state in (BreakerState.CLOSED, BreakerState.DISABLED):
                return Permit(key, rec.generation if rec else 0)
            if rec.state is BreakerState.OPEN:
                if now - rec.state_changed_at < self.config.cooldown_seconds:
                    self._reject(rec, now)
                moved = await self._transition(
                    key,
                    frozenset({BreakerState.OPEN}),
                    BreakerState.HALF_OPEN,
                    now,
                    reason="cool-down elapsed",
                    expected_version=rec.version,
                )
                rec = moved.after if moved else await self._reload(key, now)
            if rec.state is BreakerState.HALF_OPEN:
                if await self.store.claim_probe(key, rec.version, self.config.half_open_probes):
                    return Permit(key, rec.generation, probe=True, version=rec.version)
                if now - rec.state_changed_at >= max(self.config.cooldown_seconds, 1.0):
                    # probes handed out long ago never reported (their process died): re-arm
                    await self._transition(
                        key,
                        _AUTO_CLOSE_FROM,
                        BreakerState.HALF_OPEN,
                        now,
                        reason="probes timed out; probing again",
                        expected_version=rec.version,
                    )
                self._reject(rec, now)
            if rec.state in (BreakerState.CLOSED, BreakerState.DISABLED):
                return Permit(key, rec.generation)
            self._reject(rec, now)
        except CircuitOpen:
            raise
        except Exception:
            self._fail_open("check", key)
        return Permit(key, -1, fail_open=True)

    def permit_now(self, key: str) -> Permit | None:
        """``check``'s answer where it needs no await — the breaker closed (or disabled) and
        no sync due —, else None (then call ``check``)."""
        if self.clock() - self._last_sync >= self.config.sync_interval_seconds:
            return None
        rec = self._records.get(key)
        if rec is None:
            return Permit(key, 0)
        if rec.state is BreakerState.CLOSED or rec.state is BreakerState.DISABLED:
            return Permit(key, rec.generation)
        return None

    def record_now(
        self, permit: Permit, kind: OutcomeKind, *, latency_ms: float | None = None
    ) -> bool:
        """``record`` where it needs no await: a success that is not slow, outside the
        half-open probes (one more call in this process's window). False: nothing was
        counted, call ``record``."""
        if permit.fail_open:
            return True
        if permit.probe or kind is not OutcomeKind.SUCCESS:
            return False
        slow_ms = self.config.slow_call_ms
        if slow_ms is not None and (latency_ms or 0.0) > slow_ms:
            return False
        try:
            self._count(permit, self.clock(), failure=False, slow=False)
        except Exception:
            self._fail_open("record", permit.key)
        return True

    def _count(self, permit: Permit, now: float, *, failure: bool, slow: bool) -> bool:
        """Count a permitted call in this process's window; False when the window was reset
        since the permit (not counted)."""
        key = permit.key
        rec = self._records.get(key)
        if rec is not None and rec.state is BreakerState.DISABLED:
            return False
        win = self._windows.get(key)
        if win is None or win.generation < permit.generation:
            win = self._windows[key] = LocalWindow(permit.generation)
        elif win.generation > permit.generation:
            return False  # counted against a window that was reset meanwhile
        win.record(self.config.bucket_of(now), failure=failure, slow=slow)
        return True

    async def record(
        self, permit: Permit, kind: OutcomeKind, *, latency_ms: float | None = None
    ) -> None:
        """Count the outcome of a permitted call (never raises)."""
        if permit.fail_open:
            return
        try:
            key = permit.key
            rec = self._records.get(key)
            if rec is not None and rec.state is BreakerState.DISABLED:
                return
            now = self.clock()
            if kind is OutcomeKind.IGNORED:
                if permit.probe:
                    await self.store.release_probe(key, permit.version)
                return
            failure = kind is OutcomeKind.FAILURE
            slow_ms = self.config.slow_call_ms
            slow = not failure and slow_ms is not None and (latency_ms or 0.0) > slow_ms
            if permit.probe:
                await self._probe_result(permit, failure or slow, now)
                return
            if not self._count(permit, now, failure=failure, slow=slow):
                return
            if (failure or slow) and (rec is None or rec.state is BreakerState.CLOSED):
                view = self._windows[key].view(self.config.window_start(now))
                if self.config.should_trip(view.calls, view.bad):
                    await self._flush_and_evaluate(key, now)
        except Exception:
            self._fail_open("record", permit.key)

    # --- sharing --------------------------------------------------------------------------

    async def sync(self, now: float | None = None, *, wait: bool = False) -> None:
        """Flush local counts, read every breaker's state and window, trip where due.

        While another task of this process is syncing, the hot path (``check``, ``wait``
        False) returns at once and decides on the current view; ``wait``: this sync runs
        after that one — the background maintenance, an operator's view and the final
        sync at shutdown must hand over the counts recorded since that one took its own."""
        if self._sync_lock.locked() and not wait:
            return  # another task of this process is syncing; use the current view
        async with self._sync_lock:
            now = self.clock() if now is None else now
            self._last_sync = now
            await self._flush(now, None)
            start = self.config.window_start(now)
            seen = self._learned
            records, totals = await self.store.snapshot(start)
            # a record learned while the snapshot was read (an operator's reset in this
            # process, a trip) is newer than the snapshot's: the snapshot must not undo it
            for key, at in self._learned_at.items():
                mine, read = self._records.get(key), records.get(key)
                if at > seen and mine is not None and (read is None or mine.version > read.version):
                    records[key] = mine
            self._learned_at = {k: at for k, at in self._learned_at.items() if at > seen}
            self._records = records
            for key, rec in records.items():
                shared = totals.get((key, rec.generation), Counts())
                win = self._windows.get(key)
                if win is None or win.generation != rec.generation:
                    win = self._windows[key] = LocalWindow(rec.generation)
                win.shared = shared
                BREAKER_STATE.labels(breaker=key).set(rec.state.gauge)
                if rec.state is BreakerState.CLOSED and self.config.should_trip(
                    shared.calls, shared.bad
                ):
                    await self._trip(key, rec, shared, now)
            if now - self._last_prune >= self.config.window_seconds:
                self._last_prune = now
                await self.store.prune(start - self.config.window_seconds)

    async def _flush(self, now: float, only: str | None) -> None:
        items: list[tuple[str, int, int, Counts]] = []
        for key, win in self._windows.items():
            if only is not None and key != only:
                continue
            for bucket, c in win.take_pending().items():
                items.append((key, win.generation, bucket, c))
        try:
            await self.store.flush(items, now)
        except Exception:
            for key, gen, bucket, c in items:  # keep the counts for the next attempt
                kept = self._windows.get(key)
                if kept is not None and kept.generation == gen:
                    kept.pending.setdefault(bucket, Counts()).add(c)
            raise

    async def _flush_and_evaluate(self, key: str, now: float) -> None:
        await self._flush(now, key)
        rec = self._records.get(key) or await self._reload(key, now)
        if rec.state is not BreakerState.CLOSED:
            return
        counts = await self.store.window(key, rec.generation, self.config.window_start(now))
        win = self._windows.get(key)
        if win is not None and win.generation == rec.generation:
            win.shared = counts
        if self.config.should_trip(counts.calls, counts.bad):
            await self._trip(key, rec, counts, now)

    async def _trip(self, key: str, rec: BreakerRecord, counts: Counts, now: float) -> None:
        rate = counts.bad / counts.calls if counts.calls else 0.0
        await self._transition(
            key,
            _TRIP_FROM,
            BreakerState.OPEN,
            now,
            reason=f"failure rate {rate:.1%} over {counts.calls} calls "
            f"(threshold {self.config.failure_rate_threshold:.1%})",
            stats=counts.as_dict(),
            expected_version=rec.version,
        )

    async def _probe_result(self, permit: Permit, bad: bool, now: float) -> None:
        key = permit.key
        if bad:
            await self._transition(
                key,
                _AUTO_CLOSE_FROM,
                BreakerState.OPEN,
                now,
                reason="half-open probe failed",
                expected_version=permit.version,
            )
            return
        successes = await self.store.probe_succeeded(key, permit.version)
        if successes is not None and successes >= self.config.half_open_probes:
            await self._transition(
                key,
                _AUTO_CLOSE_FROM,
                BreakerState.CLOSED,
                now,
                reason=f"{successes} half-open probes succeeded",
                new_generation=True,
                expected_version=permit.version,
            )

    async def _reload(self, key: str, now: float) -> BreakerRecord:
        rec = await self.store.get(key) or BreakerRecord.fresh(key, now)
        self._learn(key, rec)
        return rec

    def _learn(self, key: str, rec: BreakerRecord) -> None:
        self._learned += 1
        self._learned_at[key] = self._learned
        self._records[key] = rec

    async def _transition(
        self,
        key: str,
        from_states: frozenset[BreakerState] | None,
        to_state: BreakerState,
        now: float,
        *,
        reason: str | None = None,
        actor: str | None = None,
        manual: bool = False,
        stats: dict[str, Any] | None = None,
        new_generation: bool = False,
        expected_version: int | None = None,
    ) -> Transition | None:
        moved = await self.store.transition(
            key,
            from_states,
            to_state,
            now=now,
            reason=reason,
            actor=actor,
            manual=manual,
            stats=stats,
            new_generation=new_generation or to_state is BreakerState.CLOSED,
            expected_version=expected_version,
        )
        if moved is None:
            await self._reload(key, now)
            return None
        after = moved.after
        self._learn(key, after)
        if after.generation != moved.before.generation:
            self._windows[key] = LocalWindow(after.generation)
        BREAKER_TRANSITIONS.labels(
            breaker=key,
            from_state=moved.before.state.value,
            to_state=after.state.value,
            manual=str(manual).lower(),
        ).inc()
        BREAKER_STATE.labels(breaker=key).set(after.state.gauge)
        log.warning(
            "breaker.transition",
            breaker=key,
            from_state=moved.before.state.value,
            to_state=after.state.value,
            reason=reason,
            actor=actor,
            manual=manual,
            stats=stats,
        )
        return moved

    def _reject(self, rec: BreakerRecord, now: float) -> None:
        BREAKER_REJECTIONS.labels(breaker=rec.key).inc()
        retry = None
        if rec.state is BreakerState.OPEN:
            retry = max(0.0, rec.state_changed_at + self.config.cooldown_seconds - now)
        raise CircuitOpen(
            f"Model '{rec.key}' is unavailable: its circuit breaker is {rec.state.value}.",
            details={
                "breaker": rec.key,
                "state": rec.state.value,
                "retryAfterSeconds": None if retry is None else round(retry, 3),
            },
        )

    def _fail_open(self, where: str, key: str) -> None:
        GUARDRAIL_ERRORS.labels(component="breaker").inc()
        log.exception("breaker.fail_open", where=where, breaker=key)

    # --- operators ------------------------------------------------------------------------

    async def set_manual(
        self, key: str, state: BreakerState, *, actor: str, reason: str
    ) -> BreakerRecord:
        """Trip (FORCED_OPEN), disable (DISABLED) or reset (CLOSED, window restarted)."""
        now = self.clock()
        moved = await self._transition(
            key, None, state, now, reason=reason, actor=actor, manual=True
        )
        if moved is None:  # raced with another change: apply on top of it
            moved = await self._transition(
                key, None, state, now, reason=reason, actor=actor, manual=True
            )
        if moved is None:
            raise RuntimeError(f"breaker {key} changed concurrently; try again")
        return moved.after

    async def views(self) -> list[BreakerView]:
        """Every breaker with its state and window statistics (freshly synced)."""
        await self.sync(wait=True)
        now = self.clock()
        out = []
        for key, rec in sorted(self._records.items()):
            win = self._windows.get(key)
            counts = win.view(self.config.window_start(now)) if win else Counts()
            out.append(
                BreakerView(
                    key,
                    rec.state,
                    rec.generation,
                    rec.state_changed_at,
                    counts,
                    rec.reason,
                    rec.changed_by,
                )
            )
        return out

    def state_of(self, key: str) -> BreakerState:
        rec = self._records.get(key)
        return rec.state if rec else BreakerState.CLOSED
