"""The documents domain as an object with ``start``/``stop`` (the wiring convention), plus the
typed accessor the adapters use. Workers run inside the process unless
``GASWORKS_DOCUMENTS_RUN_WORKERS=false`` or ``GASWORKS_BACKGROUND_WORK=false`` (``serve
--no-worker``): then separate ``gasworks worker`` processes do. The reconciler runs in the
process holding the deployment's leader lease (``gasworks.db.leader``), once per interval."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gasworks.background import PeriodicTask
from gasworks.blobs.factory import blob_store
from gasworks.documents import sandbox
from gasworks.documents.metrics import METRICS_MAX_AGE, METRICS_TIMEOUT, publish
from gasworks.documents.pipeline import Pipeline, PipelineConfig
from gasworks.documents.reconcile import Reconciler
from gasworks.documents.scope import DocumentSources
from gasworks.documents.service import EXTRACT, KINDS, DocumentService, Limits
from gasworks.errors import ConfigurationError
from gasworks.jobs import JobQueue, RetryPolicy, Worker, WorkerConfig
from gasworks.observability.logging import get_logger
from gasworks.retrieval.types import Embedder, EmbedInputLimit, EmbedLimits, SourceWriter
from gasworks.runtime import is_leader
from gasworks.settings import Settings

if TYPE_CHECKING:
    from gasworks.runtime import Runtime

log = get_logger("gasworks.documents.domain")

SERVICE = "documents"
#: runtime.services keys that supply the pipeline's embedder and vector writer (retrieval sets
#: them; tests and embedding applications may too)
EMBEDDER = "documents.embedder"
SOURCES = "documents.sources"
TEXTRACT = "documents.textract"
#: the ``SourceScope`` search and the VectorSearch node use (joined in ``gasworks.wiring``)
ALLOWED_SOURCES = "documents.allowed_sources"


@dataclass
class Documents:
    service: DocumentService
    pipeline: Pipeline
    queue: JobQueue
    reconciler: Reconciler
    #: whether this process runs the deployment-wide work now (``db.leader.is_leader``)
    leader: Callable[[], bool] = lambda: True
    workers: list[Worker] = field(default_factory=list)
    tasks: list[PeriodicTask] = field(default_factory=list)

    #: when the gauges were last set (``time.monotonic``), and the lock that lets one of
    #: several concurrent scrapes query while the others wait for its figures
    metrics_at: float | None = None
    metrics_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def publish_metrics(self) -> None:
        publish(await self.queue.stats(), KINDS, await self.service.status_counts())

    async def refresh_metrics(self, max_age: float = METRICS_MAX_AGE) -> None:
        """Set the queue and status gauges unless they are younger than ``max_age`` seconds
        (called by ``/metrics``: a scrape storm costs one pair of grouped queries per
        ``max_age``). A database that fails or does not answer within ``METRICS_TIMEOUT``
        leaves the previous figures (and the next scrape tries again)."""
        async with self.metrics_lock:
            now = time.monotonic()
            if self.metrics_at is not None and now - self.metrics_at < max_age:
                return
            try:
                async with asyncio.timeout(METRICS_TIMEOUT):  # within a scrape's timeout
                    await self.publish_metrics()
            except Exception as exc:  # the scrape still answers, with the previous figures
                log.warning("documents.metrics_failed", error=type(exc).__name__)
                return
            self.metrics_at = now

    async def reconcile_if_leader(self) -> None:
        """Reconcile when this process holds the deployment's leader lease (one process of
        the deployment per interval; another takes over when it dies)."""
        if self.leader():
            await self.reconciler.run()

    def start_background(self, settings: Settings) -> None:
        every = settings.documents_reconcile_interval_seconds
        self.tasks = [
            PeriodicTask("documents-reconcile", self.reconcile_if_leader, every),
        ]
        for task in self.tasks:
            task.start()

    def new_worker(self, settings: Settings, *, worker_id: str | None = None) -> Worker:
        cfg = WorkerConfig(
            concurrency=settings.documents_worker_concurrency,
            lease_seconds=settings.documents_lease_seconds,
            poll_max=settings.documents_poll_max_seconds,
        )
        return Worker(
            self.queue,
            self.pipeline.handlers(),
            cfg,
            worker_id=worker_id,
            on_failure=self.pipeline.on_failure,
            batches=self.pipeline.batches(),
            starters=self.pipeline.starters(),
        )


def build(rt: Runtime) -> Documents:
    s = rt.settings
    policy = RetryPolicy(
        max_attempts=s.documents_max_attempts,
        base_delay=s.documents_retry_base_seconds,
        max_delay=s.documents_retry_max_seconds,
    )
    queue = JobQueue(rt.db, {k: policy for k in KINDS}, default_policy=policy)

    def embedder() -> Embedder | None:
        found = rt.services.get(EMBEDDER)
        if isinstance(found, Embedder):
            return found
        from gasworks.llm.runtime import SERVICE as MODELS

        models: Any = rt.services.get(MODELS)
        gateway = getattr(models, "gateway", None)
        return gateway if isinstance(gateway, Embedder) else None

    def input_limit() -> EmbedInputLimit | None:
        found = embedder()
        if isinstance(found, EmbedLimits):
            return found.embedding_input_limit(s.documents_embedding_model)
        return None

    svc = DocumentService(
        rt.db,
        blob_store(rt),
        queue,
        Limits(s.documents_max_bytes, s.documents_max_files),
        input_limit=input_limit,
    )

    def writer() -> SourceWriter | None:
        found = rt.services.get(SOURCES)
        return found if isinstance(found, SourceWriter) else None

    pipeline = Pipeline(
        svc,
        PipelineConfig(
            parse=sandbox.Limits(s.documents_parse_cpu_seconds, s.documents_parse_memory_mb),
            ocr=sandbox.Limits(s.documents_parse_cpu_seconds, s.documents_ocr_memory_mb),
            ocr_engine=s.documents_ocr_engine,
            textract_region=s.documents_textract_region,
            embedding_model=s.documents_embedding_model,
            embed_batch=s.documents_embed_batch,
            embed_batch_documents=s.documents_embed_batch_documents,
            embed_batch_max=s.documents_embed_batch_max,
            embed_linger=s.documents_embed_linger_seconds,
            budget_retry_seconds=s.documents_budget_retry_seconds,
            preload=s.documents_parse_preload,
            parse_reuse=s.documents_parse_reuse_files,
            chain=s.documents_chain_stages,
            fuse=s.documents_fuse_stages,
        ),
        embedder=embedder,
        writer=writer,
        textract=lambda: rt.services.get(TEXTRACT),
    )
    return Documents(
        svc, pipeline, queue, Reconciler(pipeline), leader=functools.partial(is_leader, rt)
    )


class DocumentsDomain:
    name = "documents"

    def __init__(self, *, run_workers: bool | None = None) -> None:
        self.run_workers = run_workers

    async def start(self, rt: Runtime) -> None:
        docs = build(rt)
        rt.services[SERVICE] = docs
        rt.services[ALLOWED_SOURCES] = DocumentSources(docs.service)
        run = rt.settings.documents_run_workers if self.run_workers is None else self.run_workers
        if run and rt.settings.background_work:
            worker = docs.new_worker(rt.settings)
            docs.workers.append(worker)
            worker.start()
            docs.start_background(rt.settings)

    async def stop(self, rt: Runtime) -> None:
        rt.services.pop(ALLOWED_SOURCES, None)
        docs: Documents | None = rt.services.pop(SERVICE, None)
        if docs is None:
            return
        for task in docs.tasks:
            await task.stop()
        for worker in docs.workers:
            await worker.stop(grace=5.0)
        await docs.pipeline.aclose()


def get_documents(rt: Runtime) -> Documents:
    docs = rt.services.get(SERVICE)
    if not isinstance(docs, Documents):
        raise ConfigurationError("The documents domain is not started (Runtime.start() first).")
    return docs


__all__ = ["EXTRACT", "Documents", "DocumentsDomain", "get_documents"]
