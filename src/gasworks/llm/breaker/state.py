"""Breaker states, settings and the classification of call outcomes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    #: manual: reject every call until an operator resets it
    FORCED_OPEN = "forced_open"
    #: manual: allow every call, record nothing
    DISABLED = "disabled"

    @property
    def gauge(self) -> int:
        return _GAUGE[self]


_GAUGE = {
    BreakerState.CLOSED: 0,
    BreakerState.OPEN: 1,
    BreakerState.HALF_OPEN: 2,
    BreakerState.FORCED_OPEN: 3,
    BreakerState.DISABLED: 4,
}


class OutcomeKind(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    #: the caller's own fault (4xx) or a cancellation: not the model's health
    IGNORED = "ignored"


#: outcome statuses that count against a model's health
FAILURE_STATUSES = frozenset(
    {
        "error",
        "server_error",
        "timeout",
        "connection_error",
        "cut",
        "stream_cut",
        "interrupted",
        "unavailable",
        "rate_limited",
    }
)
SUCCESS_STATUSES = frozenset({"ok", "success", "completed"})


def classify(status: str, http_status: int | None = None) -> OutcomeKind:
    """Failures: 5xx, timeouts, connection errors, cut streams. Never the caller's 4xx."""
    s = status.lower()
    if http_status is not None and 400 <= http_status < 500 and http_status != 429:
        return OutcomeKind.IGNORED
    if s in SUCCESS_STATUSES:
        return OutcomeKind.SUCCESS
    if s in FAILURE_STATUSES or (http_status is not None and http_status >= 500):
        return OutcomeKind.FAILURE
    return OutcomeKind.IGNORED


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    window_seconds: int = 300
    buckets: int = 10
    failure_rate_threshold: float = 0.05
    minimum_calls: int = 20
    slow_call_ms: float | None = None
    cooldown_seconds: float = 30.0
    half_open_probes: int = 3
    sync_interval_seconds: float = 1.0

    @property
    def bucket_seconds(self) -> int:
        return max(1, self.window_seconds // self.buckets)

    def bucket_of(self, t: float) -> int:
        b = self.bucket_seconds
        return int(t // b) * b

    def window_start(self, t: float) -> int:
        """First bucket inside the window ending at ``t``."""
        return self.bucket_of(t) - (self.buckets - 1) * self.bucket_seconds

    def should_trip(self, calls: int, failures: int) -> bool:
        return calls >= self.minimum_calls and failures >= self.failure_rate_threshold * calls
