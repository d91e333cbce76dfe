"""Circuit breakers per model / provider deployment, shared through the database."""

from gasworks.llm.breaker.manager import BreakerManager, BreakerView, Permit
from gasworks.llm.breaker.state import BreakerConfig, BreakerState, OutcomeKind, classify
from gasworks.llm.breaker.store import BreakerRecord, BreakerStore

__all__ = [
    "BreakerConfig",
    "BreakerManager",
    "BreakerRecord",
    "BreakerState",
    "BreakerStore",
    "BreakerView",
    "OutcomeKind",
    "Permit",
    "classify",
]
