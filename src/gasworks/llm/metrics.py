"""Prometheus metrics of model calls (in the process-wide registry)."""

from __future__ import annotations

from prometheus_client import Counter

from gasworks.observability.metrics import REGISTRY

MODEL_CALLS = Counter(
    "gasworks_model_calls_total",
    "Provider attempts by registry model, provider and outcome (ok or error code).",
    ["model", "provider", "status"],
    registry=REGISTRY,
)
MODEL_TOKENS = Counter(
    "gasworks_model_tokens_total",
    "Tokens by registry model and direction (input, output).",
    ["model", "direction"],
    registry=REGISTRY,
)
MODEL_COST = Counter(
    "gasworks_model_cost_usd_total",
    "Cost of model calls in USD by registry model (the ledger holds the exact figures).",
    ["model"],
    registry=REGISTRY,
)
EMBEDDED_INPUTS = Counter(
    "gasworks_embedded_inputs_total",
    "Texts embedded by registry model (successful Gateway.embed requests).",
    ["model"],
    registry=REGISTRY,
)
