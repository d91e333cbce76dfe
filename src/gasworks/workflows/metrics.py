"""Workflow metrics (on the process registry, exposed at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from gasworks.observability.metrics import REGISTRY

RUNS = Counter(
    "gasworks_workflow_runs_total",
    "Finished workflow runs by status (succeeded, failed, cancelled).",
    ["status"],
    registry=REGISTRY,
)
RUN_SECONDS = Histogram(
    "gasworks_workflow_run_duration_seconds",
    "Wall time of workflow runs (engine time, model calls included).",
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
FAILURES = Counter(
    "gasworks_workflow_failures_total",
    "Failed workflow runs by node type and error code.",
    ["node_type", "code"],
    registry=REGISTRY,
)
RUNS_REFUSED = Counter(
    "gasworks_workflow_runs_refused_total",
    "Runs refused with SERVER_BUSY (back-pressure: too many running, or writes queued).",
    registry=REGISTRY,
)
WRITE_BATCH = Histogram(
    "gasworks_workflow_write_batch_size",
    "Writes committed per group-commit transaction.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200),
    registry=REGISTRY,
)


_RUN_CHILDREN = {
    status: RUNS.labels(status=status) for status in ("succeeded", "failed", "cancelled")
}


def count_run(status: str, duration_ms: float) -> None:
    """Count a finished run (labelled children are looked up once: ``labels()`` is slow)."""
    child = _RUN_CHILDREN.get(status) or RUNS.labels(status=status)
    child.inc()
    RUN_SECONDS.observe(duration_ms / 1000)
