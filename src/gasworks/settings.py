"""Typed settings: ``GASWORKS_*`` environment variables, an optional TOML/YAML config file.

Precedence (highest first): explicit constructor arguments, environment variables, the
config file named by ``GASWORKS_CONFIG_FILE``, defaults. Secrets are ``SecretStr`` and are
never printed (``Settings.public_dict`` masks them).
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"
    AUTO = "auto"


CONFIG_SUFFIXES = (".toml", ".yaml", ".yml")


def _config_file() -> Path | None:
    """The file named by ``GASWORKS_CONFIG_FILE``; a missing one is an error, not a no-op."""
    raw = os.environ.get("GASWORKS_CONFIG_FILE")
    if not raw:
        return None
    path = Path(raw).expanduser()
    if path.suffix not in CONFIG_SUFFIXES:
        from gasworks.errors import ConfigurationError

        raise ConfigurationError(
            f"GASWORKS_CONFIG_FILE={raw}: use a .toml, .yaml or .yml file.",
            details={"config_file": raw},
        )
    if not path.is_file():
        from gasworks.errors import ConfigurationError

        raise ConfigurationError(
            f"GASWORKS_CONFIG_FILE={raw} does not exist or is not a file.",
            details={"config_file": raw},
        )
    return path


class _YamlConfigSource(YamlConfigSettingsSource):
    """The config file through gasworks' YAML loader (anchors and aliases refused)."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        from gasworks.errors import ConfigurationError
        from gasworks.yamlsafe import DataParseError, load_data

        try:
            data = load_data(Path(file_path).read_text(encoding="utf-8"))
        except DataParseError as exc:
            raise ConfigurationError(
                f"GASWORKS_CONFIG_FILE {file_path} does not parse: {exc.reason}",
                details={"config_file": str(file_path)},
            ) from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ConfigurationError(
                f"GASWORKS_CONFIG_FILE {file_path} must hold a mapping of setting: value.",
                details={"config_file": str(file_path)},
            )
        return data


class Settings(BaseSettings):
    """Every setting of a gasworks deployment. See docs/operations.md for the reference."""

    model_config = SettingsConfigDict(
        env_prefix="GASWORKS_",
        env_nested_delimiter="__",
        extra="ignore",
        case_sensitive=False,
    )

    home: Path = Field(
        default=Path(".gasworks"),
        description="Folder for the embedded database, blobs and keys.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL. Default: SQLite file under GASWORKS_HOME. "
        "A postgresql:// URL switches to PostgreSQL (asyncpg driver).",
    )
    database_pool_size: int = Field(
        default=10,
        ge=1,
        le=500,
        description="PostgreSQL connections kept per process (as many again may overflow).",
    )
    database_echo: bool = Field(default=False, description="Log every SQL statement (debug).")
    auto_migrate: bool = Field(
        default=True, description="Upgrade the database schema on server start."
    )
    host: str = Field(default="127.0.0.1", description="Address `gasworks serve` binds.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `gasworks serve` binds.")
    background_work: bool = Field(
        default=True,
        description="Run background work in this process: document ingestion workers, and the "
        "deployment-wide periodic tasks (budget and interrupted-run sweeps, document "
        "reconciliation, prompt retention) when it holds the leader lease. "
        "`gasworks serve --no-worker` sets it false (API-only processes).",
    )
    leader_lease_seconds: float = Field(
        default=10.0,
        ge=1,
        le=3600,
        description="Leader lease lifetime: renewed every third of it; a dead holder is "
        "replaced at most this + a third later.",
    )
    shutdown_grace_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="On SIGTERM, requests in flight get this long to finish; event streams "
        "still open a second before it ends are closed with a final SERVER_SHUTTING_DOWN event.",
    )
    shutdown_readiness_delay_seconds: float = Field(
        default=0.0,
        ge=0,
        le=600,
        description="On SIGTERM, /readyz fails this long before the server stops listening "
        "(set it to the load balancer's probe interval times its failure threshold).",
    )
    workers: int = Field(
        default=1, ge=1, le=64, description="Server worker processes of `gasworks serve`."
    )
    server_keepalive_seconds: int = Field(
        default=75,
        ge=1,
        le=3600,
        description="How long `gasworks serve` keeps an idle client connection open for its "
        "next request (uvicorn's own default is 5 s). Keep it above the idle timeout of the "
        "load balancer or proxy in front (AWS ALB: 60 s), so that the client side closes "
        "first and never sends a request on a connection the server is closing.",
    )
    log_format: LogFormat = Field(
        default=LogFormat.AUTO,
        description="json, console, or auto: console on a terminal, json when the log goes "
        "to a file, a pipe or a collector, and always when GASWORKS_ENVIRONMENT=production.",
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    access_log: bool = Field(
        default=True,
        description="One `http.request` log line per request (method, route template, status, "
        "duration, request id, tenant) at INFO. Request metrics are kept either way; turning "
        "the line off saves about 30 µs of CPU per request.",
    )
    environment: str = Field(default="development", description="development or production.")
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP endpoint; tracing is exported when set."
    )
    otel_service_name: str = Field(
        default="gasworks", description="service.name of exported traces."
    )
    otel_always_instrument: bool = Field(
        default=False,
        description="Instrument requests with OpenTelemetry even when no exporter is set "
        "(to carry incoming traceparent ids into logs). Off by default: spans nobody exports "
        "cost about 0.3 ms per request.",
    )
    auth_cache_ttl_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a verified API key is trusted in-process before it is checked "
        "again (bounds how long a revoked key keeps working in another process).",
    )
    console_session_hours: float = Field(
        default=12.0,
        gt=0,
        description="A web console sign-in lasts at most this long (then the key is asked "
        "for again).",
    )
    console_idle_minutes: float = Field(
        default=60.0,
        gt=0,
        description="A web console session with no request for this long is signed out.",
    )
    key_last_used_resolution_seconds: float = Field(
        default=60.0, ge=0, description="last_used_at is written at most this often per key."
    )
    max_request_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted (413 PAYLOAD_TOO_LARGE above); a route may "
        "set its own limit.",
    )
    graphql_max_depth: int = Field(
        default=10, ge=1, le=50, description="Deepest GraphQL query accepted (introspection aside)."
    )
    master_key: SecretStr | None = Field(
        default=None,
        description="Base64 master key for envelope encryption. Default: generated once "
        "under GASWORKS_HOME/keys/master.key.",
    )
    master_keys_previous: SecretStr | None = Field(
        default=None,
        description="Comma-separated base64 master keys retired by a rotation, still used to "
        "unwrap data keys until `gasworks blobs rewrap` has re-wrapped every blob.",
    )
    # --- models and providers (llm/) -----------------------------------------------------
    models_file: Path | None = Field(default=None, description="YAML file of extra models.")
    default_model: str = Field(default="demo", description="Model used when none is given.")
    embedding_model: str = Field(
        default="local/all-minilm-l6-v2",
        description="Embedding model used when none is given (documents, search, "
        "/v1/embeddings without a model). Changing it means re-embedding: see "
        "docs/operations.md.",
    )
    local_embedding_threads: int = Field(
        default=0,
        ge=0,
        le=256,
        description="Sub-batches of a local embedding model call run at once, each on one "
        "core (0: one per core; 1: one after another).",
    )
    local_embedding_merge_max: int = Field(
        default=256,
        ge=1,
        le=4096,
        description="Texts of concurrent requests the local embedding model runs in one call, "
        "at most: requests that arrive while it is busy are merged into its next call, sorted "
        "by length together (1: each request its own call).",
    )
    models_refresh_seconds: float = Field(
        default=15.0,
        ge=0,
        description="How often each process reloads API-managed model entries from the "
        "database (0: only at start and on this process's own changes).",
    )
    secrets_file: Path | None = Field(
        default=None,
        description="YAML/JSON/dotenv file of provider credentials (OPENAI_API_KEY, "
        "ANTHROPIC_API_KEY, AWS_ACCESS_KEY_ID, ...). Environment variables win.",
    )
    provider_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Default time one provider attempt may take."
    )
    provider_max_retries: int = Field(
        default=2, ge=0, le=10, description="Default retries of a retryable provider error."
    )
    provider_keepalive_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How long an idle connection to a provider (openai, anthropic, "
        "openai_compatible) stays in this process's pool for the next call. The SDKs' own "
        "default is 5 s: a burst after a few idle seconds then opened every connection anew "
        "(a TLS handshake each against a hosted API).",
    )
    provider_retry_initial_seconds: float = Field(default=0.5, ge=0)
    provider_retry_max_seconds: float = Field(default=20.0, ge=0)
    provider_retry_after_max_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Longest Retry-After gasworks waits out; a longer one fails the attempt.",
    )
    openai_base_url: str | None = Field(
        default=None, description="OpenAI endpoint (default: OPENAI_BASE_URL or api.openai.com)."
    )
    anthropic_base_url: str | None = Field(
        default=None, description="Anthropic endpoint (default: ANTHROPIC_BASE_URL)."
    )
    openai_compatible_base_url: str | None = Field(
        default=None, description="Endpoint of openai_compatible models without their own."
    )
    bedrock_region: str | None = Field(
        default=None, description="AWS region for Bedrock (default: AWS_REGION)."
    )
    bedrock_endpoint_url: str | None = Field(
        default=None, description="Bedrock runtime endpoint override (VPC endpoint, proxy)."
    )
    demo_stream_delay_ms: float = Field(
        default=0.0, ge=0, le=5000, description="Pause between demo stream chunks."
    )

    # --- workflows ------------------------------------------------------------------------
    workflow_persist_runs: bool = Field(
        default=True,
        description="Persist runs (status, timings, tokens, cost, errors) and their events.",
    )
    workflow_event_flush_seconds: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="While a run streams, its events are written in batches this often "
        "(so a reconnecting client resumes from any server process).",
    )
    workflow_run_lease_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="A streamed run is owned by the process executing it through a lease it "
        "renews every third of this time. A run whose lease has been expired this long (its "
        "process crashed or was killed) is marked failed with RUN_INTERRUPTED by any process.",
    )
    workflow_run_sweep_seconds: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="How often each process looks for runs whose owner's lease expired (one "
        "bounded, indexed query when nothing expired).",
    )
    workflow_access_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        le=300,
        description="How long a caller's resolved (workflow, version, access) is reused before "
        "the database is asked again. Changes made in the same process apply at once; in "
        "another process after at most this long. 0 disables the cache.",
    )
    workflow_max_running: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="Runs executing at once in one process; above it a new run is refused "
        "with 503 SERVER_BUSY and Retry-After (bounded memory).",
    )
    workflow_max_pending_writes: int = Field(
        default=10_000,
        ge=1,
        le=10_000_000,
        description="Run writes waiting for the database in one process; above it a new run "
        "is refused with 503 SERVER_BUSY and Retry-After.",
    )
    workflow_max_followers_per_run: int = Field(
        default=64,
        ge=1,
        le=100_000,
        description="Event streams of one run open at once in one process (its starter and "
        "every GET /api/workflow-runs/{id}/events); one more is refused with 503 SERVER_BUSY "
        "and Retry-After.",
    )
    workflow_graph_cache_size: int = Field(
        default=256, ge=1, le=100_000, description="Compiled workflow versions kept in memory."
    )

    # --- guardrails: circuit breakers, budgets, token estimation -------------------------
    guardrails_enabled: bool = Field(
        default=True, description="Breakers, pre-call checks, budgets and the ledger."
    )
    breaker_window_seconds: int = Field(
        default=300, ge=10, description="Sliding window of the failure rate (time based)."
    )
    breaker_buckets: int = Field(
        default=10, ge=1, le=600, description="Buckets the window is split into."
    )
    breaker_failure_rate_threshold: float = Field(
        default=0.05, gt=0, le=1, description="Failure rate (0..1) at which a breaker opens."
    )
    breaker_minimum_calls: int = Field(
        default=20, ge=1, description="Calls in the window before any rate is computed."
    )
    breaker_slow_call_ms: float | None = Field(
        default=None, gt=0, description="Calls slower than this count as failures (off: None)."
    )
    breaker_cooldown_seconds: float = Field(
        default=30.0, ge=0, description="How long an open breaker waits before probing."
    )
    breaker_half_open_probes: int = Field(
        default=3, ge=1, description="Probe calls in HALF_OPEN; all must succeed to close."
    )
    breaker_sync_interval_seconds: float = Field(
        default=1.0,
        ge=0,
        description="Local counts are flushed to, and states read from, the database at "
        "least this often (bounds how stale one process's view of a breaker can be).",
    )
    budget_cache_ttl_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a process trusts its cached list of spend limits of a "
        "tenant/key (a new limit takes effect in other processes within this time).",
    )
    budget_reservation_ttl_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="A reservation not settled after this long (its process died mid-call) "
        "is released by the sweeper. Keep it above the longest call.",
    )
    budget_sweep_interval_seconds: float = Field(
        default=15.0,
        gt=0,
        description="How often expired reservations and leases are looked for (and charged).",
    )
    budget_lease_calls: int = Field(
        default=64,
        ge=0,
        le=1_000_000,
        description="Largest budget lease a process holds, in call estimates: reservations "
        "and settlements are then served from memory. 0: no leases (every call reserves in "
        "the database).",
    )
    budget_lease_min_headroom_calls: int = Field(
        default=256,
        ge=1,
        description="A lease is held only while a limit's remaining headroom is at least "
        "this many call estimates; closer to the limit every call reserves in the database.",
    )
    budget_lease_fraction: float = Field(
        default=0.1,
        gt=0,
        le=0.5,
        description="A lease takes at most this share of a limit's remaining headroom.",
    )
    budget_lease_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        description="Every lease is re-checked against its limit (resized, renewed) this "
        "often; a lease unused for one interval is returned.",
    )
    budget_lease_ttl_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A lease not renewed for this long belongs to a process that died: the "
        "sweeper charges what it held as spent. Keep it well above the lease interval.",
    )
    ledger_flush_interval_ms: float = Field(
        default=200.0,
        ge=0,
        le=60_000,
        description="Ledger rows and budget settlements are written in one transaction per "
        "batch at least this often. 0: synchronously, one transaction per call.",
    )
    ledger_flush_max_rows: int = Field(
        default=500, ge=1, description="A batch is written as soon as this many rows wait."
    )
    ledger_max_pending_rows: int = Field(
        default=100_000,
        ge=1,
        description="While the database is unreachable, ledger rows wait in memory; once "
        "this many wait, new model calls are refused with DATABASE_UNAVAILABLE (503) until "
        "they are written. No row is ever dropped.",
    )
    guardrails_maintenance_interval_seconds: float = Field(
        default=1.0,
        ge=0,
        description="Background task period: flushes breaker counts of an idle process and "
        "reads shared breaker state, runs the reservation and lease sweeper when due (0: off).",
    )
    context_safety_margin: float = Field(
        default=0.10, ge=0, lt=1, description="Share of the context window kept free."
    )
    request_max_output_tokens: int | None = Field(
        default=None, ge=1, description="Deployment-wide cap on max_tokens of one request."
    )
    default_output_reservation_tokens: int = Field(
        default=1024,
        ge=1,
        description="Output tokens reserved when neither the request nor the model says.",
    )
    token_count_cache_size: int = Field(
        default=4096, ge=0, description="Repeated texts whose token count is cached."
    )

    # --- prompts -------------------------------------------------------------------------
    prompt_inline_max_bytes: int = Field(
        default=64 * 1024,
        ge=0,
        description="Prompt content up to this size (canonical UTF-8 bytes) is stored in the "
        "database; larger content goes to the encrypted blob store.",
    )
    prompt_cache_size: int = Field(default=200, ge=1, description="Resolver LRU entries.")
    prompt_cache_ttl_seconds: float = Field(default=300.0, gt=0, description="Resolver TTL.")
    prompt_invalidation_poll_seconds: float = Field(
        default=0.2,
        gt=0,
        le=1.0,
        description="How often each process polls the invalidation table when it is not "
        "woken by PostgreSQL notices (SQLite; PostgreSQL while its LISTEN connection is down): "
        "pointer moves in another process are seen within this interval plus one query.",
    )
    prompt_invalidation_idle_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        le=1.0,
        description="PostgreSQL: how often an idle process polls the invalidation table while "
        "it LISTENs for the notices a pointer change sends (those wake it at once; this poll "
        "is the bound if a notice is lost).",
    )
    prompt_retention_days: int = Field(
        default=365, ge=0, description="Archived prompt versions older than this are deleted."
    )
    prompt_retention_interval_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="How often one process of the deployment (the leader-lease holder) runs "
        "the prompt retention job (0: never; `gasworks prompts retention` still works).",
    )
    prompt_operator_tenant: str = Field(
        default="default",
        description="Tenant (by name) owning versions the CLI pushes to platform-wide scopes.",
    )

    # --- blobs ---------------------------------------------------------------------------
    blob_url: str | None = Field(
        default=None,
        description="Blob store location: file:///path or s3://bucket/prefix. Default: "
        "file://GASWORKS_HOME/blobs. Either way AES-256-GCM envelope encryption.",
    )
    blob_s3_endpoint_url: str | None = Field(
        default=None,
        description="S3-compatible endpoint (MinIO, Ceph RGW, R2); unset for AWS S3.",
    )
    blob_s3_region: str | None = Field(
        default=None, description="S3 region (default: boto3's chain, e.g. AWS_REGION)."
    )
    blob_s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        default="auto",
        description="S3 addressing: auto, path (most MinIO/Ceph setups) or virtual.",
    )
    blob_s3_sse: Literal["none", "AES256", "aws:kms"] = Field(
        default="none",
        description="Server-side encryption on top of envelope encryption: none, AES256 "
        "(SSE-S3) or aws:kms (SSE-KMS).",
    )
    blob_s3_kms_key_id: str | None = Field(
        default=None, description="KMS key id, ARN or alias for aws:kms."
    )
    blob_s3_multipart_threshold_mb: int = Field(
        default=16, ge=5, le=5120, description="Objects above this size upload as multipart."
    )
    blob_s3_part_size_mb: int = Field(default=8, ge=5, le=5120, description="Multipart part size.")
    blob_s3_max_connections: int = Field(
        default=32, ge=1, le=1024, description="S3 connections (and threads) per process."
    )

    # --- retrieval -----------------------------------------------------------------------
    vector_index: str = Field(
        default="auto",
        pattern="^(auto|embedded|pgvector)$",
        description="Where vectors live: embedded (files under GASWORKS_HOME/vectors), "
        "pgvector (the PostgreSQL database), or auto: pgvector on PostgreSQL where the "
        "extension is installed, embedded otherwise.",
    )
    vector_exact_max_rows: int = Field(
        default=10_000,
        ge=0,
        description="A search whose allowed rows are at most this many is an exact scan over "
        "them; above it the HNSW index serves (complete either way).",
    )
    vector_ann_min_rows: int = Field(
        default=20_000,
        ge=1,
        description="Embedded index: a tenant's space gets an HNSW graph from this many vectors.",
    )
    vector_ef_search: int | None = Field(
        default=None,
        ge=10,
        le=1000,
        description="HNSW candidate list size at query time (recall against latency); unset: "
        "each index's measured default (40 on pgvector, 96 embedded).",
    )
    # --- documents -----------------------------------------------------------------------
    documents_max_bytes: int = Field(
        default=50 * 1024 * 1024, ge=1, description="Largest file one upload may carry."
    )
    documents_max_files: int = Field(
        default=100, ge=1, description="Most files one upload request may carry."
    )
    documents_run_workers: bool = Field(
        default=True,
        description="Run ingestion workers inside `gasworks serve` (off when separate "
        "`gasworks worker` processes do the work).",
    )
    documents_worker_concurrency: int = Field(
        default=2, ge=1, description="Jobs one worker runs at once."
    )
    documents_lease_seconds: float = Field(
        default=60.0, gt=0, description="A claimed job's lease, renewed every third of it."
    )
    documents_poll_max_seconds: float = Field(
        default=1.0, gt=0, description="Longest pause between claim queries of an idle worker."
    )
    documents_max_attempts: int = Field(
        default=5, ge=1, description="Attempts per pipeline stage before a dead letter."
    )
    documents_retry_base_seconds: float = Field(
        default=2.0, ge=0, description="First retry delay (doubles per attempt, with jitter)."
    )
    documents_retry_max_seconds: float = Field(
        default=300.0, ge=0, description="Longest retry delay."
    )
    documents_parse_cpu_seconds: int = Field(
        default=60, ge=1, description="CPU time one parse or OCR child process may use."
    )
    documents_parse_preload: bool = Field(
        default=True,
        description="Fork each parse or OCR child from a server process that imported the "
        "parsers once (a fork instead of a fresh interpreter per file); false starts a fresh "
        "interpreter per file.",
    )
    documents_parse_reuse_files: int = Field(
        default=16,
        ge=1,
        description="With documents_parse_preload: files of one tenant (same limits) one "
        "forked parse child may parse one after the other before a fresh one is forked; any "
        "failure in a child that parsed a file before is retried in a fresh child, so a "
        "crash, a timeout or a bomb is blamed on that file alone. 1: a fresh child per file.",
    )
    documents_chain_stages: bool = Field(
        default=True,
        description="A worker that finishes a document's stage runs the next stage itself "
        "(leased to it in the same commit, the artifact kept in memory) instead of queueing it "
        "for any worker to claim; false queues every stage.",
    )
    documents_fuse_stages: bool = Field(
        default=True,
        description="Chunk a document in the job that extracted (or OCRed) it, and index it "
        "in the job that embedded it, each pair committed in one transaction; a part that "
        "fails alone is handed on as its own documents.chunk or documents.index job (its own "
        "retries and dead letters). False runs every stage as its own job.",
    )
    documents_parse_memory_mb: int = Field(
        default=1024, ge=64, description="Address space of a parse child process (MiB)."
    )
    documents_ocr_memory_mb: int = Field(
        default=4096, ge=256, description="Address space of an OCR child process (MiB)."
    )
    documents_ocr_engine: str = Field(
        default="rapidocr", description="rapidocr (local, the 'ocr' extra), textract or none."
    )
    documents_textract_region: str | None = Field(
        default=None, description="AWS region for Textract OCR."
    )
    documents_embedding_model: str | None = Field(
        default=None, description="Embedding model of ingestion (default: the deployment's)."
    )
    documents_embed_batch: int = Field(
        default=64,
        ge=1,
        description="Chunks that make a batch of embed stages (claimed ahead of older stages: "
        "documents_embed_linger_seconds), and chunks per call of a document embedded alone.",
    )
    documents_embed_batch_documents: int = Field(
        default=16,
        ge=1,
        description="Documents of one tenant that make a batch of embed stages (more when more "
        "are ready: documents_embed_batch_max), their chunks in one shared embedding call "
        "with a ledger row per document; 1 embeds each document on its own.",
    )
    documents_embed_batch_max: int = Field(
        default=256,
        ge=1,
        description="Chunks one embedding call may hold when more embed stages are ready "
        "than make a batch (documents_embed_batch): a worker embeds one batch at a time and the "
        "next takes what became ready meanwhile, up to this (and documents_embed_batch_"
        "documents in the same proportion). The local model sorts a call's texts by length, "
        "so bigger calls pad less. Equal to documents_embed_batch: fixed batches.",
    )
    documents_embed_linger_seconds: float | None = Field(
        default=10.0,
        ge=0,
        description="Embed stages that make a batch (documents_embed_batch_documents "
        "documents, or documents_embed_batch chunks) are claimed ahead of older stages of "
        "other documents (a big upload's extractions); a smaller batch once its oldest has "
        "waited this long. null (config file): embed stages wait their turn by age.",
    )
    documents_budget_retry_seconds: float = Field(
        default=300.0, gt=0, description="Wait before retrying a stage refused by a budget."
    )
    documents_reconcile_interval_seconds: float = Field(
        default=3600.0, gt=0, description="How often one process of the deployment reconciles."
    )

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, v: Path) -> Path:
        return v.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        cfg = _config_file()
        if cfg is not None:
            if cfg.suffix in {".yaml", ".yml"}:
                sources.append(_YamlConfigSource(settings_cls, yaml_file=cfg))
            else:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cfg))
        sources.append(file_secret_settings)
        return tuple(sources)

    @property
    def resolved_database_url(self) -> str:
        """The async SQLAlchemy URL actually used."""
        if self.database_url is None:
            return f"sqlite+aiosqlite:///{(self.home / 'gasworks.db').resolve()}"
        return normalize_database_url(self.database_url.get_secret_value())

    @property
    def json_logs(self) -> bool:
        if self.log_format is LogFormat.AUTO:
            # readable in a terminal; JSON for a file, a pipe or a log collector
            return self.environment == "production" or not sys.stderr.isatty()
        return self.log_format is LogFormat.JSON

    def public_dict(self) -> dict[str, Any]:
        """Settings as a dict safe to print: secrets masked, URLs without passwords."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                out[name] = "**********" if value.get_secret_value() else ""
            elif isinstance(value, Path):
                out[name] = str(value)
            else:
                out[name] = value
        out["database_url"] = redact_url(self.resolved_database_url)
        return out


def normalize_database_url(url: str) -> str:
    """Map plain URLs to their async drivers: postgresql:// → postgresql+asyncpg://."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


def redact_url(url: str) -> str:
    """Hide the password of a database URL."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable url>"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
