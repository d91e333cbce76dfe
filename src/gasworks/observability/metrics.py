"""Prometheus metrics shared by the whole process (one registry, exposed at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "gasworks_http_requests_total",
    "HTTP requests by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "gasworks_http_request_duration_seconds",
    "HTTP request latency by route template and method.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
AUTH_FAILURES = Counter(
    "gasworks_auth_failures_total",
    "Rejected authentication attempts by reason.",
    ["reason"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "gasworks_errors_total",
    "Errors returned to callers by stable code.",
    ["code"],
    registry=REGISTRY,
)
