"""Durable jobs in gasworks' own database: queue, workers, retries, dead letters."""

from gasworks.jobs.queue import (
    DeadLetter,
    Job,
    JobNotFound,
    JobQueue,
    KindStats,
    LeaseLost,
    RetryPolicy,
)
from gasworks.jobs.worker import Handler, Postpone, Worker, WorkerConfig

__all__ = [
    "DeadLetter",
    "Handler",
    "Job",
    "JobNotFound",
    "JobQueue",
    "KindStats",
    "LeaseLost",
    "Postpone",
    "RetryPolicy",
    "Worker",
    "WorkerConfig",
]
