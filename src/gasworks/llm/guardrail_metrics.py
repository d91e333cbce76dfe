"""Prometheus metrics of the guardrails: breakers, budgets, usage, fail-open errors."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from gasworks.observability.metrics import REGISTRY

BREAKER_TRANSITIONS = Counter(
    "gasworks_breaker_transitions_total",
    "Circuit breaker state transitions.",
    ["breaker", "from_state", "to_state", "manual"],
    registry=REGISTRY,
)
BREAKER_STATE = Gauge(
    "gasworks_breaker_state",
    "Current breaker state as seen by this process "
    "(0 closed, 1 open, 2 half_open, 3 forced_open, 4 disabled).",
    ["breaker"],
    registry=REGISTRY,
)
BREAKER_REJECTIONS = Counter(
    "gasworks_breaker_rejections_total",
    "Calls failed fast because the breaker was open.",
    ["breaker"],
    registry=REGISTRY,
)
GUARDRAIL_ERRORS = Counter(
    "gasworks_guardrail_errors_total",
    "Internal errors of a guardrail; the call was allowed (fail-open).",
    ["component"],
    registry=REGISTRY,
)
REJECTIONS = Counter(
    "gasworks_guardrail_rejections_total",
    "Calls rejected before reaching a model, by reason (error code).",
    ["reason"],
    registry=REGISTRY,
)
USAGE_TOKENS = Counter(
    "gasworks_usage_tokens_total",
    "Tokens used by model calls, by model and kind (input, output, cached_input).",
    ["model", "kind"],
    registry=REGISTRY,
)
USAGE_COST = Counter(
    "gasworks_usage_cost_total",
    "Cost of model calls in the price currency, by model.",
    ["model"],
    registry=REGISTRY,
)
USAGE_CALLS = Counter(
    "gasworks_usage_calls_total",
    "Model calls recorded in the ledger, by model and status.",
    ["model", "status"],
    registry=REGISTRY,
)
BUDGET_RESERVATIONS = Counter(
    "gasworks_budget_reservations_total",
    "Budget reservations, by how they were made: from a process's lease (memory) or "
    "exactly, one database transaction per call.",
    ["mode"],
    registry=REGISTRY,
)
LEDGER_BATCH_ROWS = Histogram(
    "gasworks_ledger_batch_rows",
    "Ledger rows written per group-commit transaction.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
    registry=REGISTRY,
)
LEDGER_PENDING = Gauge(
    "gasworks_ledger_pending_rows",
    "Ledger rows waiting in this process for the next batch.",
    registry=REGISTRY,
)
