"""Scoped resolution that never fails, cached, with cross-process invalidation.

Precedence for a call ``(tenant, workflow, model)`` (model normalized first):
``tenant+workflow+model`` → ``workflow+model`` → ``tenant+model`` → ``model`` → the neutral
built-in prompt. One indexed query picks the best pointer and joins its active (and canary)
version; content is hash-verified before it is used.

Never fails: when the store is unreachable (or content fails its hash) the resolver answers a
stale cached entry if it has one, else the neutral prompt — logged and counted in
``gasworks_prompt_resolve_fallbacks_total``. After a store failure it does not retry the store
for ``STORE_RETRY_SECONDS``, so a dead database costs callers nothing.

Cross-process freshness: every pointer change inserts a row in ``prompt_invalidations`` in its
own transaction; each process reads the new rows and drops the affected cache keys. On
PostgreSQL a trigger sends a NOTIFY at commit and each process LISTENs (``db/notify.py``): the
notice wakes the poll at once (a move is seen everywhere within milliseconds plus one query),
and an idle process polls only every ``prompt_invalidation_idle_poll_seconds`` (default 1 s,
the safety net if a notice is lost). While the listening connection is down, and always on
SQLite, it polls every ``prompt_invalidation_poll_seconds`` (default 0.2 s). Either way a move
is seen within the 1 s bound. One query shape on both dialects.
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy import and_, bindparam, case, delete, func, literal, select
from sqlalchemy.orm import aliased

from gasworks.background import PeriodicTask
from gasworks.db.engine import Database
from gasworks.db.notify import Listener
from gasworks.db.types import utcnow
from gasworks.errors import PromptIntegrityError
from gasworks.modeltypes import Message
from gasworks.observability import tracing
from gasworks.observability.logging import get_logger
from gasworks.observability.metrics import REGISTRY
from gasworks.prompts.cache import Key, ScopeCache
from gasworks.prompts.content import CompiledPrompt, PromptContent, content_hash
from gasworks.prompts.formatter import FormattedPrompt, format_messages
from gasworks.prompts.models import Normalizer, local_normalize
from gasworks.prompts.schemas import Scope
from gasworks.prompts.tables import PromptInvalidationRow, PromptPointerRow, PromptVersionRow
from gasworks.prompts.versions import ContentStore
from gasworks.singleflight import SingleFlight

log = get_logger("gasworks.prompts.resolver")

#: the NOTIFY channel of the invalidation trigger (migration 0005_prompt_notify)
CHANNEL = "gasworks_prompt_invalidations"
#: while not listening, a new LISTEN is tried at most this often
LISTEN_RETRY_SECONDS = 5.0

FALLBACKS = Counter(
    "gasworks_prompt_resolve_fallbacks_total",
    "Resolutions answered without the store (stale cache or neutral prompt), by reason.",
    ["reason"],
    registry=REGISTRY,
)
INVALIDATIONS = Counter(
    "gasworks_prompt_invalidations_total",
    "Pointer-change notices applied to this process's prompt cache.",
    registry=REGISTRY,
)
RESOLVE_SECONDS = Histogram(
    "gasworks_prompt_resolve_seconds",
    "Time to resolve a prompt (cache hits, store loads and fallbacks alike).",
    buckets=(0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0),
    registry=REGISTRY,
)
MISSING_VARIABLES = Counter(
    "gasworks_prompt_missing_variables_total",
    "Template variables that had no value when a prompt was rendered (interpolation warnings).",
    registry=REGISTRY,
)

STORE_RETRY_SECONDS = 1.0
#: how far below the highest seen sequence number each poll looks again (PostgreSQL can commit
#: sequence numbers out of order; a notice committed late is still picked up)
POLL_WINDOW = 100
PRUNE_EVERY_SECONDS = 60.0
KEEP_NOTICES = timedelta(minutes=10)

NEUTRAL_CONTENT = PromptContent(
    system="You are a helpful assistant. Answer accurately and concisely.",
    user="${inputs.user_prompt}",
)
NEUTRAL_COMPILED = CompiledPrompt.of(NEUTRAL_CONTENT)
NEUTRAL_HASH = content_hash(NEUTRAL_CONTENT)


@dataclass(frozen=True, slots=True)
class ResolvedPrompt:
    level: str
    source: str  # cache | store | fallback
    model: str
    version_id: str | None
    version_number: int | None
    name: str | None
    content_hash: str
    pointer_version: int | None
    canary: bool
    stale: bool
    content: PromptContent
    compiled: CompiledPrompt

    def format(
        self,
        values: Mapping[str, Any],
        history: Sequence[Message] = (),
        *,
        strict: bool = False,
    ) -> FormattedPrompt:
        formatted = format_messages(self.compiled, values, history, strict=strict)
        if formatted.missing:
            MISSING_VARIABLES.inc(len(formatted.missing))
        return formatted


@dataclass(frozen=True, slots=True)
class _Loaded:
    """What the cache holds for one scope key: the answers for active and canary traffic."""

    pointer_id: str
    canary_percent: int
    active: ResolvedPrompt  # source="cache"
    canary: ResolvedPrompt | None

    def pick(self, conversation_id: str | None) -> ResolvedPrompt:
        if (
            self.canary is not None
            and conversation_id
            and canary_bucket(self.pointer_id, conversation_id) < self.canary_percent
        ):
            return self.canary
        return self.active


def canary_bucket(pointer_id: str, conversation_id: str) -> int:
    """The stable 0-99 bucket of a conversation on a pointer (sticky canary assignment)."""
    return zlib.crc32(f"{pointer_id}:{conversation_id}".encode()) % 100


def neutral(model: str, source: str = "store", *, reason: str | None = None) -> ResolvedPrompt:
    return ResolvedPrompt(
        level="neutral",
        source=source,
        model=model,
        version_id=None,
        version_number=None,
        name=None,
        content_hash=NEUTRAL_HASH,
        pointer_version=None,
        canary=False,
        stale=False,
        content=NEUTRAL_CONTENT,
        compiled=NEUTRAL_COMPILED,
    )


#: the version columns the resolve query reads, per version (``active_*`` and ``canary_*``)
_VERSION_FIELDS = ("id", "name", "number", "storage", "content", "blob_key", "content_hash")


def _version_of(row: Any, prefix: str) -> tuple[Any, ...]:
    """One version's columns of a resolve row, by name."""
    return tuple(getattr(row, f"{prefix}_{c}") for c in _VERSION_FIELDS)


def _resolve_statement() -> Any:
    """The one query of a cache miss, built once: the best pointer for a scope, joined with its
    active and canary versions. ``''`` parameters match only the "any" scopes."""
    p = PromptPointerRow
    va = aliased(PromptVersionRow)
    vc = aliased(PromptVersionRow)
    precedence = case(
        (and_(p.scope_tenant != "", p.scope_workflow != ""), 0),
        (p.scope_workflow != "", 1),
        (p.scope_tenant != "", 2),
        else_=3,
    )
    return (
        select(
            p.id.label("pointer_id"),
            p.scope_tenant,
            p.scope_workflow,
            p.version.label("pointer_version"),
            p.canary_percent,
            *(getattr(va, c).label(f"active_{c}") for c in _VERSION_FIELDS),
            *(getattr(vc, c).label(f"canary_{c}") for c in _VERSION_FIELDS),
        )
        .join(va, va.id == p.active_version_id)
        .outerjoin(vc, vc.id == p.canary_version_id)
        .where(
            p.model == bindparam("model"),
            p.scope_tenant.in_([bindparam("tenant"), literal("")]),
            p.scope_workflow.in_([bindparam("workflow"), literal("")]),
        )
        .order_by(precedence)
        .limit(1)
    )


_RESOLVE = _resolve_statement()


class Resolver:
    def __init__(
        self,
        db: Database,
        store: ContentStore,
        *,
        default_model: str,
        cache_size: int = 200,
        ttl: float = 300.0,
        poll_seconds: float = 0.2,
        idle_poll_seconds: float | None = None,
        normalize: Normalizer = local_normalize,
    ) -> None:
        self.db = db
        self.normalize = normalize
        self.store = store
        self.default_model = normalize(default_model)
        self.cache: ScopeCache[_Loaded] = ScopeCache(cache_size, ttl)
        self.poll_seconds = poll_seconds
        self._inflight: SingleFlight[Key, tuple[_Loaded | None, ResolvedPrompt]] = SingleFlight()
        self._store_down_until = 0.0
        self._poller = PeriodicTask(
            "prompt-invalidations",
            self.poll_once,
            poll_seconds,
            run_first=True,
            on_error=self._on_poll_error,
        )
        #: with a PostgreSQL LISTEN in place, polls this often (a notice wakes it at once)
        self.idle_poll_seconds = idle_poll_seconds
        self._listener: Listener | None = (
            Listener(db, CHANNEL, self._poller.wake)
            if idle_poll_seconds is not None and db.dialect.name == "postgresql"
            else None
        )
        self._next_listen = 0.0
        self._last_seq: int | None = None
        self._seen: set[int] = set()
        self._poll_failed = False
        self._last_prune = 0.0

    @property
    def poller(self) -> PeriodicTask:
        """The invalidation poller (background)."""
        return self._poller

    # -- resolution -----------------------------------------------------------------------

    async def resolve(
        self,
        *,
        tenant_id: str,
        model: str | None = None,
        workflow_id: str | None = None,
        conversation_id: str | None = None,
    ) -> ResolvedPrompt:
        """The prompt for this call. Never raises."""
        m = self.normalize(model) if model else self.default_model
        key = (tenant_id, workflow_id or "", m)
        started = time.perf_counter()
        try:
            if tracing.recording():
                with tracing.span(
                    "gasworks.prompt_resolve", tenantId=tenant_id, workflowId=workflow_id, modelId=m
                ) as current:
                    prompt = await self._resolve(key, conversation_id)
                    current.set_attribute("gasworks.level", prompt.level)
                    current.set_attribute(
                        "gasworks.promptVersionId", prompt.version_id or "neutral"
                    )
                    return prompt
            return await self._resolve(key, conversation_id)
        finally:
            RESOLVE_SECONDS.observe(time.perf_counter() - started)

    async def _resolve(self, key: Key, conversation_id: str | None) -> ResolvedPrompt:
        hit = self.cache.get(key)
        if hit is not None:
            return hit.pick(conversation_id)
        return await self._miss(key, conversation_id)

    async def _miss(self, key: Key, conversation_id: str | None) -> ResolvedPrompt:
        # one load per key at a time; the others wait for it
        loaded, answer = await self._inflight.run(key, lambda: self._load_or_fallback(key))
        if loaded is None:
            return answer
        picked = loaded.pick(conversation_id)
        return dataclasses.replace(picked, source=answer.source, stale=answer.stale)

    async def _load_or_fallback(self, key: Key) -> tuple[_Loaded | None, ResolvedPrompt]:
        model = key[2]
        if time.monotonic() < self._store_down_until:
            return self._fallback(key, "store_unavailable")
        generation = self.cache.generation
        try:
            loaded = await self._load(key)
        except PromptIntegrityError:
            return self._fallback(key, "hash_mismatch", use_stale=False)
        except Exception as exc:
            self._store_down_until = time.monotonic() + STORE_RETRY_SECONDS
            # the fallback hides the failure from the caller; the log keeps its traceback
            log.warning(
                "prompt.resolve.store_unavailable",
                error_type=type(exc).__name__,
                model=model,
                exc_info=exc,
            )
            return self._fallback(key, "store_unavailable")
        if loaded is None:
            answer = neutral(model, "store")
            loaded = _Loaded("", 0, neutral(model, "cache"), None)
        else:
            answer = dataclasses.replace(loaded.active, source="store")
        self.cache.put(key, loaded, generation=generation)
        return loaded, answer

    def _fallback(
        self, key: Key, reason: str, *, use_stale: bool = True
    ) -> tuple[_Loaded | None, ResolvedPrompt]:
        FALLBACKS.labels(reason).inc()
        stale = self.cache.get_stale(key) if use_stale else None
        if stale is not None:
            return stale, dataclasses.replace(stale.active, source="cache", stale=True)
        return None, neutral(key[2], "fallback")

    async def _load(self, key: Key) -> _Loaded | None:
        tenant, workflow, model = key
        params = {"model": model, "tenant": tenant, "workflow": workflow}
        row: Any = await self.db.read_first(_RESOLVE, params)  # a Row: columns by name
        if row is None:
            return None
        level = Scope(row.scope_tenant, row.scope_workflow, model).label()

        async def answer(cols: Sequence[Any], is_canary: bool) -> ResolvedPrompt:
            vid, name, number, storage, inline, blob, digest = cols
            content = await self.store.load_fields(vid, storage, inline, blob, digest)
            return ResolvedPrompt(
                level=level,
                source="cache",
                model=model,
                version_id=vid,
                version_number=number,
                name=name,
                content_hash=digest,
                pointer_version=row.pointer_version,
                canary=is_canary,
                stale=False,
                content=content,
                compiled=CompiledPrompt.of(content, digest),
            )

        active = await answer(_version_of(row, "active"), False)
        canary = None
        if row.canary_id is not None:
            canary = await answer(_version_of(row, "canary"), True)
        return _Loaded(row.pointer_id, row.canary_percent, active, canary)

    # -- invalidation ---------------------------------------------------------------------

    def invalidate(self, scope: Scope, *, own_notices: Sequence[int] = ()) -> int:
        """Drop the cached entries a committed change affects. ``own_notices`` are the
        seqs of the notices that change wrote: the poller will not apply them again (the
        entries cached after this call are already fresh)."""
        self._seen.update(own_notices)
        return self.cache.invalidate(scope.tenant, scope.workflow, scope.model)

    def start(self) -> None:
        """Start polling invalidation notices (needs a running event loop)."""
        self._poller.start()

    async def stop(self) -> None:
        await self._poller.stop()
        if self._listener is not None:
            await self._listener.close()

    @property
    def listening(self) -> bool:
        """Whether pointer changes wake this process (PostgreSQL LISTEN in place)."""
        return self._listener is not None and self._listener.connected

    async def _listen(self) -> None:
        """LISTEN before reading (a notice sent from now on wakes the next poll; the read
        covers everything before), and poll at the idle pace only while listening."""
        assert self._listener is not None
        now = time.monotonic()
        if not self._listener.connected and now >= self._next_listen:
            self._next_listen = now + LISTEN_RETRY_SECONDS
            await self._listener.connect()
        listening = self._listener.connected
        self._poller.every = (
            self.idle_poll_seconds
            if listening and self.idle_poll_seconds is not None
            else self.poll_seconds
        )

    def _on_poll_error(self, exc: BaseException) -> None:
        if not self._poll_failed:
            log.warning("prompt.invalidation.poll_failed", error_type=type(exc).__name__)
        self._poll_failed = True

    async def poll_once(self) -> int:
        """Apply new pointer-change notices; returns how many were applied."""
        if self._listener is not None:
            await self._listen()
        inv = PromptInvalidationRow
        if self._last_seq is None or self._poll_failed:
            # first poll, or notices may have been missed while the store was down
            top = select(func.max(inv.seq)).scalar_subquery()
            (window,) = await self.db.read_now(select(inv.seq).where(inv.seq > top - POLL_WINDOW))
            self._seen = {int(r[0]) for r in window}  # already reflected in the store
            self._last_seq = max(self._seen, default=0)
            # what was cached before this read may predate a notice in the window (a
            # resolve can run before the first poll ends): start from an empty cache
            self.cache.clear()
            self._poll_failed = False
            return 0
        low = max(0, self._last_seq - POLL_WINDOW)
        (rows,) = await self.db.read_now(
            select(inv.seq, inv.scope_tenant, inv.scope_workflow, inv.model)
            .where(inv.seq > low)
            .order_by(inv.seq)
        )
        now = time.monotonic()
        if now - self._last_prune > PRUNE_EVERY_SECONDS:
            self._last_prune = now
            async with self.db.session() as s:  # the only write: its own short transaction
                await s.execute(delete(inv).where(inv.at < utcnow() - KEEP_NOTICES))
        applied = 0
        for seq, tenant, workflow, model in rows:
            if seq in self._seen:
                continue
            self._seen.add(seq)
            self.cache.invalidate(tenant, workflow, model)
            applied += 1
            self._last_seq = max(self._last_seq, seq)
        if applied:
            INVALIDATIONS.inc(applied)
        self._seen = {s for s in self._seen if s > low}
        return applied
