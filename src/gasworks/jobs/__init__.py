"""Durable jobs in gasworks' own database: queue, workers, retries, dead letters."""

from gasworks.jobs.queue import (
    DeadLetter,
    Job,
    JobNotFound,
    JobQueue,
    KindStats,
    LeaseLost,
    Linger,
    RetryPolicy,
    Starter,
)
from gasworks.jobs.worker import (
    BatchHandler,
    Batching,
    Handler,
    Postpone,
    Worker,
    WorkerConfig,
)

__all__ = [
    "BatchHandler",
    "Batching",
    "DeadLetter",
    "Handler",
    "Job",
    "JobNotFound",
    "JobQueue",
    "KindStats",
    "LeaseLost",
    "Linger",
    "Postpone",
    "RetryPolicy",
    "Starter",
    "Worker",
    "WorkerConfig",
]
