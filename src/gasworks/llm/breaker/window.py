"""Per-process aggregation of call outcomes into time buckets, flushed to the store.

A process keeps, per breaker, the counts it has not flushed yet (``pending``) and the window
totals of every process as read at the last sync (``shared``). The breaker's view of its window
is ``shared + pending``: exact for this process, at most one sync interval behind for others.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Counts:
    calls: int = 0
    failures: int = 0
    slow: int = 0

    def add(self, other: Counts) -> None:
        self.calls += other.calls
        self.failures += other.failures
        self.slow += other.slow

    @property
    def bad(self) -> int:
        """Failures plus slow successes: what the failure rate is computed from."""
        return self.failures + self.slow

    def as_dict(self) -> dict[str, int | float]:
        rate = self.bad / self.calls if self.calls else 0.0
        return {
            "calls": self.calls,
            "failures": self.failures,
            "slow": self.slow,
            "failureRate": round(rate, 4),
        }


@dataclass(slots=True)
class LocalWindow:
    """Unflushed counts of one breaker generation, by bucket start (epoch seconds)."""

    generation: int
    pending: dict[int, Counts] = field(default_factory=dict)
    #: window totals of all processes at the last sync (this process's flushed counts included)
    shared: Counts = field(default_factory=Counts)

    def record(self, bucket: int, *, failure: bool, slow: bool) -> None:
        c = self.pending.get(bucket)
        if c is None:
            c = self.pending[bucket] = Counts()
        c.calls += 1
        if failure:
            c.failures += 1
        elif slow:
            c.slow += 1

    def view(self, window_start: int) -> Counts:
        total = Counts(self.shared.calls, self.shared.failures, self.shared.slow)
        for bucket, c in self.pending.items():
            if bucket >= window_start:
                total.add(c)
        return total

    def take_pending(self) -> dict[int, Counts]:
        out, self.pending = self.pending, {}
        return out
