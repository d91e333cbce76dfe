"""Documents and job-queue metrics (on the process registry, exposed at ``/metrics``).

The gauges are set by ``publish`` when ``/metrics`` is scraped (``Documents.refresh_metrics``:
two grouped queries, at most once per ``METRICS_MAX_AGE`` seconds per process however often it
is scraped), so every process serving HTTP answers them, with or without workers, and an idle
process that nobody scrapes sends no query for them. Labels are job kinds and statuses only,
never tenants: the deployment-wide figures; a tenant's own are at ``GET
/api/documents/ingestion``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from gasworks.jobs.queue import KindStats
from gasworks.observability.metrics import REGISTRY

QUEUE_DEPTH = Gauge(
    "gasworks_jobs_queued",
    "Jobs waiting or running, by kind (a pipeline stage, delete, cleanup).",
    ["kind"],
    registry=REGISTRY,
)
OLDEST_AGE = Gauge(
    "gasworks_jobs_oldest_age_seconds",
    "Age of the oldest waiting or running job, by kind.",
    ["kind"],
    registry=REGISTRY,
)
RUNNING = Gauge(
    "gasworks_jobs_running",
    "Jobs a worker holds now (in flight), by kind; the rest of gasworks_jobs_queued waits.",
    ["kind"],
    registry=REGISTRY,
)
DEAD = Gauge(
    "gasworks_jobs_dead_letters",
    "Dead letters by kind (stage).",
    ["kind"],
    registry=REGISTRY,
)
DOCUMENTS = Gauge(
    "gasworks_documents",
    "Documents by status.",
    ["status"],
    registry=REGISTRY,
)
STAGE_SECONDS = Histogram(
    "gasworks_documents_stage_duration_seconds",
    "Wall time of a successful pipeline stage attempt.",
    ["stage"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
RECONCILED = Counter(
    "gasworks_documents_reconciled_total",
    "Orphans the reconciler removed, by what (blob, source, document).",
    ["what"],
    registry=REGISTRY,
)

STATUSES = (
    "queued",
    "extracting",
    "ocr",
    "chunking",
    "embedding",
    "indexing",
    "ready",
    "failed",
    "deleting",
)


def publish(stats: dict[str, KindStats], kinds: tuple[str, ...], statuses: dict[str, int]) -> None:
    for kind in kinds:
        st = stats.get(kind, KindStats(kind))
        QUEUE_DEPTH.labels(kind).set(st.queued + st.running)
        RUNNING.labels(kind).set(st.running)
        OLDEST_AGE.labels(kind).set(st.oldest_age_seconds)
        DEAD.labels(kind).set(st.dead)
    for status in STATUSES:
        DOCUMENTS.labels(status).set(statuses.get(status, 0))


#: a scrape within this many seconds of the last refresh answers the figures it set
METRICS_MAX_AGE = 5.0
#: a sample that takes longer is abandoned (Prometheus' scrape timeout is 10 s by default)
METRICS_TIMEOUT = 2.0
