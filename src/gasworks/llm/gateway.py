"""The gateway: every model call in gasworks goes through ``Gateway.chat`` / ``Gateway.stream``.

For one call it resolves the model in the registry (O(1)), refuses parameters the model cannot
honour, runs the call hooks (breakers, budgets, ledger) around each provider attempt, retries
retryable provider errors with exponential backoff and jitter (tenacity) honouring
``Retry-After``, falls back to the model's configured fallbacks when the model is unavailable
or its retries are exhausted, and prices the usage exactly (``Decimal``).

Hot path (demo model, no hooks): one cached dict lookup, a capability check, the provider call
and the pricing — no tenacity object, no logging, no allocation beyond the result. Tenacity is
only entered after a first attempt failed with a retryable error.

A stream is retried (and may fall back) only until its first chunk: once text has reached the
caller, a failure is reported to the caller instead of being papered over.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from prometheus_client import Counter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from gasworks.errors import (
    CostLimitExceeded,
    GasworksError,
    ModelUnavailable,
    ProviderBadResponse,
    ProviderError,
    ProviderStreamInterrupted,
    ProviderUnavailable,
    ValidationFailed,
)
from gasworks.llm.estimate import COUNTERS, estimate_prompt_tokens, estimate_tokens
from gasworks.llm.hooks import CANCELLED, OK, CallHooks, CallOutcome
from gasworks.llm.metrics import EMBEDDED_INPUTS, MODEL_CALLS, MODEL_COST, MODEL_TOKENS
from gasworks.llm.providers.base import check_capabilities
from gasworks.llm.providers.embeddings import EmbeddingProvider
from gasworks.llm.providers.factory import ProviderSet
from gasworks.llm.registry.registry import ModelRegistry
from gasworks.llm.registry.resolved import ResolvedModel
from gasworks.modelcard import EmbeddingSpec
from gasworks.modeltypes import (
    CallScope,
    ChatRequest,
    ChatResult,
    EmbedBatch,
    EmbedInputLimit,
    EmbedRequest,
    EmbedResult,
    FinishReason,
    StreamChunk,
    Usage,
)
from gasworks.observability.logging import get_logger
from gasworks.observability.tracing import span

T = TypeVar("T")
log = get_logger("gasworks.llm.gateway")


@dataclass(slots=True)
class RetryPolicy:
    max_retries: int = 2
    initial: float = 0.5
    max_wait: float = 20.0
    #: a Retry-After longer than this is not waited out: the error goes up (or to a fallback)
    retry_after_max: float = 30.0


def _should_retry(policy: RetryPolicy) -> Callable[[BaseException], bool]:
    def check(exc: BaseException) -> bool:
        if not isinstance(exc, ProviderError) or not exc.retryable:
            return False
        return exc.retry_after is None or exc.retry_after <= policy.retry_after_max

    return check


class _RetryAfterOr:
    """tenacity wait: the provider's ``Retry-After`` when given, else the fallback strategy."""

    def __init__(self, fallback: wait_exponential_jitter) -> None:
        self.fallback = fallback

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, ProviderError) and exc.retry_after is not None:
            return exc.retry_after
        return float(self.fallback(state))


def _failure_outcome(exc: GasworksError, attempt: int, started: float) -> CallOutcome:
    return CallOutcome(
        status=exc.code,
        counts_against_provider=bool(getattr(exc, "counts_against_provider", False)),
        latency_ms=(time.perf_counter() - started) * 1000,
        attempt=attempt,
        error=exc,
    )


def _interrupted(exc: BaseException, attempt: int, started: float) -> CallOutcome:
    """The outcome of an attempt ended by cancellation or by a non-gasworks exception."""
    cancelled = isinstance(exc, asyncio.CancelledError | GeneratorExit)
    return CallOutcome(
        status=CANCELLED if cancelled else "INTERNAL",
        latency_ms=(time.perf_counter() - started) * 1000,
        attempt=attempt,
    )


class Gateway:
    def __init__(
        self,
        registry: ModelRegistry,
        providers: ProviderSet,
        *,
        default_timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.registry = registry
        self.providers = providers
        self.default_timeout = default_timeout
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        #: call hooks, run in order before and in reverse order after each attempt
        self.hooks: list[CallHooks] = []
        self._retry_check = _should_retry(self.retry)

    # --- public API -------------------------------------------------------------------------

    async def chat(self, scope: CallScope, req: ChatRequest) -> ChatResult:
        model = self.registry.resolve(req.model)
        check_capabilities(model, req, streaming=False)
        if not self.hooks and not model.entry.fallbacks:
            # the common case, kept flat
            return await self._with_retries(model, lambda a: self._chat_once(scope, model, req, a))
        tried: list[dict[str, str]] = []
        candidates = self._candidates(model, req, streaming=False)
        last = len(candidates) - 1
        for i, candidate in enumerate(candidates):
            try:
                result = await self._with_retries(
                    candidate, functools.partial(self._chat_once, scope, candidate, req)
                )
            except GasworksError as exc:
                if not self._falls_back(exc) or i == last:
                    raise
                tried.append({"model": candidate.id, "code": exc.code})
                log.warning("model.fallback", model=candidate.id, code=exc.code)
                continue
            if tried:
                result.notes["fallbacks"] = tried
                result.notes["requestedModel"] = model.id
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def stream(self, scope: CallScope, req: ChatRequest) -> AsyncIterator[StreamChunk]:
        """Chunks of the answer; the last one carries finish reason, usage, model and cost."""
        model = self.registry.resolve(req.model)
        check_capabilities(model, req, streaming=True)
        tried: list[dict[str, str]] = []
        opened: _OpenStream | None = None
        candidates = self._candidates(model, req, streaming=True)
        last = len(candidates) - 1
        for i, candidate in enumerate(candidates):
            try:
                opened = await self._with_retries(
                    candidate, functools.partial(self._open_stream, scope, candidate, req)
                )
                break
            except GasworksError as exc:
                if not self._falls_back(exc) or i == last:
                    raise
                tried.append({"model": candidate.id, "code": exc.code})
                log.warning("model.fallback", model=candidate.id, code=exc.code, streamed=True)
        assert opened is not None
        # the first chunk says which model answers (after a fallback too) and whether it is the
        # demo model: a caller rendering the stream's head needs both before the last chunk
        demo = opened.model.provider == "demo"
        opened.first.model, opened.first.demo = opened.model.id, demo
        if tried:
            req.notes["fallbacks"] = tried
            req.notes["requestedModel"] = model.id
        # the rest of the answer, in this generator (one layer less per chunk than a helper
        # generator): closing it runs the accounting below at once
        s = opened
        model = s.model
        parts: list[str] = []
        ttft: float | None = None
        status = CANCELLED
        usage: Usage | None = None
        error: GasworksError | None = None
        chunk: StreamChunk | None = s.first
        try:
            while chunk is not None:
                if chunk.delta:
                    parts.append(chunk.delta)
                    if ttft is None:
                        ttft = (time.perf_counter() - s.started) * 1000
                if chunk.usage is not None or chunk.finish_reason is not None:
                    usage = chunk.usage or self._estimate(model, req, parts)
                    chunk.usage = usage
                    chunk.model, chunk.demo = model.id, demo
                    chunk.cost = model.cost(usage)
                    chunk.finish_reason = chunk.finish_reason or FinishReason.STOP
                    chunk.notes = dict(req.notes) if req.notes else None
                    status = OK
                    yield chunk
                    break
                yield chunk
                try:
                    chunk = await s.agen.__anext__()
                except StopAsyncIteration:
                    chunk = None
            if status != OK:
                # the provider's iterator ended without a final chunk: account it ourselves
                usage = self._estimate(model, req, parts)
                status = OK
                yield StreamChunk(
                    finish_reason=FinishReason.STOP,
                    usage=usage,
                    model=model.id,
                    demo=demo,
                    cost=model.cost(usage),
                    notes=dict(req.notes) if req.notes else None,
                )
        except GasworksError as exc:
            status, error = exc.code, exc
            _count(model, exc.code)
            raise
        finally:
            await self._settle(scope, req, s, parts, ttft, status, usage, error)

    async def embed(self, scope: CallScope, req: EmbedRequest) -> EmbedResult:
        """One vector per input, in input order (``gasworks.retrieval.types.Embedder``).

        The inputs are validated as a whole first (count, emptiness, length in the model's
        tokens, dimensions, the request's cost limit): a refused request makes no call. They
        are then sent in batches of the model's ``max_batch`` inputs / ``max_batch_tokens``
        tokens, one after the other; each batch is one provider attempt for the hooks (breaker,
        budget reservation, a ledger row marked ``embedding`` with ``req.served``) and is
        retried like a chat call. Embeddings never fall back to another model: its vectors
        would live in another space. A failed batch fails the request; batches already embedded
        stay on the ledger (they were made and paid for).
        """
        p = self._prepare_embed(req)
        model, spec, dims, texts, provider, counts = (
            p.model,
            p.spec,
            p.dims,
            p.texts,
            p.provider,
            p.counts,
        )
        wire_dims = dims if dims != spec.dimensions else None
        started = time.perf_counter()
        vectors: list[list[float]] = []
        tokens = 0
        for lo, hi in _batches(counts, spec):
            batch = EmbedBatch(texts[lo:hi], dims, req.purpose, sum(counts[lo:hi]), req.served)
            part, used = await self._with_retries(
                model,
                functools.partial(self._embed_once, scope, model, provider, batch, wire_dims),
            )
            vectors.extend(part)
            tokens += used
        EMBEDDED_INPUTS.labels(model.id).inc(len(texts))
        return EmbedResult(
            model=model.id,
            provider=model.provider,
            vectors=vectors,
            dimensions=dims,
            input_tokens=tokens,
            cost=model.cost(Usage(input_tokens=tokens)),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    async def embed_many(
        self, scope: CallScope, reqs: Sequence[EmbedRequest]
    ) -> list[EmbedResult | GasworksError]:
        """Several requests of one caller (the documents pipeline: one per document) embedded
        in as few provider calls as the model's ``max_batch`` / ``max_batch_tokens`` allow,
        with one outcome per request, in order (``retrieval.types.BatchEmbedder``).

        Each request keeps what ``embed`` gives it: its own validation (a refused request
        makes no call and does not stop the others), its own budget reservation and breaker
        permit, and its own ledger row per provider call it took part in, with its own
        ``served``, tokens and cost (the call's latency). A provider call that fails after the
        gateway's retries fails every request that had inputs in it; requests for different
        models or dimensions never share a call.
        """
        results: list[EmbedResult | GasworksError | None] = [None] * len(reqs)
        groups: dict[tuple[str, int, str], list[tuple[int, _PreparedEmbed]]] = {}
        for i, req in enumerate(reqs):
            try:
                p = self._prepare_embed(req)
            except GasworksError as exc:
                results[i] = exc
                continue
            groups.setdefault((p.model.id, p.dims, req.purpose), []).append((i, p))
        for items in groups.values():
            await self._embed_group(scope, [reqs[i] for i, _ in items], items, results)
        return [r if r is not None else _unreachable() for r in results]

    async def _embed_group(
        self,
        scope: CallScope,
        reqs: list[EmbedRequest],
        items: list[tuple[int, _PreparedEmbed]],
        results: list[EmbedResult | GasworksError | None],
    ) -> None:
        first = items[0][1]
        model, spec, dims, provider = first.model, first.spec, first.dims, first.provider
        wire_dims = dims if dims != spec.dimensions else None
        owners = [n for n, (_, p) in enumerate(items) for _ in p.texts]
        texts = [t for _, p in items for t in p.texts]
        counts = [c for _, p in items for c in p.counts]
        vectors: list[list[list[float]]] = [[] for _ in items]
        tokens = [0] * len(items)
        failed: dict[int, GasworksError] = {}
        started = time.perf_counter()
        for lo, hi in _batches(counts, spec):
            runs: list[tuple[int, int, int]] = []  # (owner, lo, hi) within this provider call
            for k in range(lo, hi):
                if runs and runs[-1][0] == owners[k]:
                    runs[-1] = (owners[k], runs[-1][1], k + 1)
                else:
                    runs.append((owners[k], k, k + 1))
            parts = [
                EmbedBatch(texts[a:b], dims, reqs[o].purpose, sum(counts[a:b]), reqs[o].served)
                for o, a, b in runs
            ]
            try:
                got = await self._with_retries(
                    model,
                    functools.partial(
                        self._embed_parts_once, scope, model, provider, parts, wire_dims
                    ),
                )
            except GasworksError as exc:
                for o, _, _ in runs:
                    failed.setdefault(o, exc)
                continue
            for (o, _, _), outcome in zip(runs, got, strict=True):
                if isinstance(outcome, GasworksError):
                    failed.setdefault(o, outcome)
                else:
                    vectors[o].extend(outcome[0])
                    tokens[o] += outcome[1]
        latency = (time.perf_counter() - started) * 1000
        for n, (i, p) in enumerate(items):
            if n in failed:
                results[i] = failed[n]
                continue
            EMBEDDED_INPUTS.labels(model.id).inc(len(p.texts))
            results[i] = EmbedResult(
                model=model.id,
                provider=model.provider,
                vectors=vectors[n],
                dimensions=dims,
                input_tokens=tokens[n],
                cost=model.cost(Usage(input_tokens=tokens[n])),
                latency_ms=latency,
            )

    def _prepare_embed(self, req: EmbedRequest) -> _PreparedEmbed:
        """Resolve and validate one embedding request (no call): count, emptiness, length in
        the model's tokens, dimensions, the request's cost limit."""
        model = self.registry.resolve_embedding(req.model)
        spec = model.entry.embedding
        assert spec is not None  # the registry schema requires it on embedding models
        dims = _check_dimensions(model, spec, req.dimensions)
        prefix = spec.query_prefix if req.purpose == "query" else spec.document_prefix
        texts = [prefix + t for t in req.inputs] if prefix else req.inputs
        provider = self.providers.embedder_for(model)
        counts = _check_inputs(model, spec, texts, provider)
        total = sum(counts)
        if req.cost_limit is not None:
            cost = model.cost(Usage(input_tokens=total))
            if cost > req.cost_limit:
                raise CostLimitExceeded(
                    f"Embedding these inputs costs {cost}, over the call's cost limit of "
                    f"{req.cost_limit}.",
                    details={
                        "model": model.id,
                        "estimate": str(cost),
                        "limit": str(req.cost_limit),
                        "inputTokens": total,
                    },
                )
        return _PreparedEmbed(model, spec, dims, texts, provider, counts)

    def embedding_input_limit(self, model: str | None = None) -> EmbedInputLimit:
        """How long a document input to ``model`` (None: the default) may be, measured the way
        ``embed`` measures it (``retrieval.types.EmbedLimits``): the documents chunker uses it
        so that no chunk is ever refused for its length."""
        resolved = self.registry.resolve_embedding(model)
        spec = resolved.entry.embedding
        assert spec is not None  # the registry schema requires it on embedding models
        provider = self.providers.embedder_for(resolved)
        prefix = spec.document_prefix
        entry = resolved.entry

        def count(texts: Sequence[str]) -> list[int]:
            inputs = [prefix + t for t in texts] if prefix else list(texts)
            counts = provider.count_tokens(resolved, inputs)
            if counts is None:
                ratio, tok = entry.fallback_token_ratio, entry.tokenizer
                counts = [estimate_tokens(t, ratio, tok) for t in inputs]
            return counts

        probe = provider.count_tokens(resolved, ["x"]) is not None
        exact = probe or (
            entry.tokenizer is not None
            and COUNTERS.get(entry.tokenizer, entry.fallback_token_ratio).exact
        )
        return EmbedInputLimit(resolved.id, spec.max_input_tokens, count, exact)

    async def _embed_once(
        self,
        scope: CallScope,
        model: ResolvedModel,
        provider: EmbeddingProvider,
        batch: EmbedBatch,
        wire_dims: int | None,
        attempt: int,
    ) -> tuple[list[list[float]], int]:
        tokens = await self._before(scope, model, batch, attempt) if self.hooks else None
        started = time.perf_counter()
        try:
            out = await provider.embed(
                model, batch.inputs, wire_dims, batch.purpose, self._timeout(model)
            )
            _check_vectors(model, out.vectors, len(batch.inputs), batch.dimensions)
        except GasworksError as exc:
            _count(model, exc.code)
            if tokens:
                await self._after(tokens, scope, model, _failure_outcome(exc, attempt, started))
            raise
        except BaseException as exc:  # cancelled, or an adapter bug: hooks must still hear of it
            if tokens:
                await self._after(tokens, scope, model, _interrupted(exc, attempt, started))
            raise
        usage = Usage(
            input_tokens=batch.tokens if out.input_tokens is None else out.input_tokens,
            estimated=out.input_tokens is None,
        )
        cost = model.cost(usage)
        _account(model, usage, cost)
        if tokens:
            outcome = CallOutcome(
                status=OK,
                usage=usage,
                cost=cost,
                latency_ms=(time.perf_counter() - started) * 1000,
                estimated=usage.estimated,
                attempt=attempt,
            )
            await self._after(tokens, scope, model, outcome)
        return out.vectors, usage.input_tokens

    async def _embed_parts_once(
        self,
        scope: CallScope,
        model: ResolvedModel,
        provider: EmbeddingProvider,
        parts: list[EmbedBatch],
        wire_dims: int | None,
        attempt: int,
    ) -> list[tuple[list[list[float]], int] | GasworksError]:
        """One provider call for the inputs of several requests (``embed_many``): the hooks
        run once per part, so each request has its own reservation, breaker permit and ledger
        row; a part the hooks refuse (its budget) is left out of the call and answered with
        the refusal."""
        out: list[tuple[list[list[float]], int] | GasworksError | None] = [None] * len(parts)
        accepted: list[tuple[int, EmbedBatch, list[tuple[CallHooks, object]] | None]] = []
        for n, part in enumerate(parts):
            try:
                tokens = await self._before(scope, model, part, attempt) if self.hooks else None
            except GasworksError as exc:
                out[n] = exc
                continue
            accepted.append((n, part, tokens))
        if not accepted:
            return [o for o in out if o is not None]
        inputs = [t for _, part, _ in accepted for t in part.inputs]
        started = time.perf_counter()
        try:
            got = await provider.embed(
                model, inputs, wire_dims, parts[0].purpose, self._timeout(model)
            )
            _check_vectors(model, got.vectors, len(inputs), parts[0].dimensions)
        except GasworksError as exc:
            _count(model, exc.code)
            for _, _, tokens in accepted:
                if tokens:
                    await self._after(tokens, scope, model, _failure_outcome(exc, attempt, started))
            raise
        except BaseException as exc:  # cancelled, or an adapter bug: hooks must still hear of it
            for _, _, tokens in accepted:
                if tokens:
                    await self._after(tokens, scope, model, _interrupted(exc, attempt, started))
            raise
        latency = (time.perf_counter() - started) * 1000
        counted = sum(part.tokens for _, part, _ in accepted)
        left = counted if got.input_tokens is None else got.input_tokens
        pos = 0
        total_cost = Decimal(0)
        for k, (n, part, tokens) in enumerate(accepted):
            if got.input_tokens is None:
                used = part.tokens
            elif k == len(accepted) - 1:
                used = left  # the provider's total, shared in proportion to the counts
            else:
                used = got.input_tokens * part.tokens // max(1, counted)
            left -= used
            usage = Usage(input_tokens=used, estimated=got.input_tokens is None)
            cost = model.cost(usage)
            total_cost += cost
            if tokens:
                outcome = CallOutcome(
                    status=OK,
                    usage=usage,
                    cost=cost,
                    latency_ms=latency,
                    estimated=usage.estimated,
                    attempt=attempt,
                )
                await self._after(tokens, scope, model, outcome)
            out[n] = (got.vectors[pos : pos + len(part.inputs)], used)
            pos += len(part.inputs)
        total = Usage(
            input_tokens=counted if got.input_tokens is None else got.input_tokens,
            estimated=got.input_tokens is None,
        )
        _account(model, total, total_cost)
        return [o if o is not None else _unreachable() for o in out]

    # --- one attempt ------------------------------------------------------------------------

    def _timeout(self, model: ResolvedModel) -> float:
        return model.entry.timeout_seconds or self.default_timeout

    async def _before(
        self, scope: CallScope, model: ResolvedModel, req: ChatRequest | EmbedBatch, attempt: int
    ) -> list[tuple[CallHooks, object]]:
        tokens: list[tuple[CallHooks, object]] = []
        try:
            for hook in self.hooks:
                tokens.append((hook, await hook.before_call(scope, model, req)))
        except GasworksError as exc:
            await self._after(tokens, scope, model, _failure_outcome(exc, attempt, 0.0))
            raise
        return tokens

    @staticmethod
    async def _after(
        tokens: list[tuple[CallHooks, object]],
        scope: CallScope,
        model: ResolvedModel,
        outcome: CallOutcome,
    ) -> None:
        for hook, token in reversed(tokens):
            try:
                await hook.after_call(token, scope, model, outcome)
            except Exception:
                log.exception("model.after_call_failed", model=model.id)

    async def _chat_once(
        self, scope: CallScope, model: ResolvedModel, req: ChatRequest, attempt: int
    ) -> ChatResult:
        provider = self.providers.for_model(model)
        tokens = await self._before(scope, model, req, attempt) if self.hooks else None
        started = time.perf_counter()
        try:
            with span(
                "gasworks.provider_call",
                modelId=model.id,
                provider=model.provider,
                requestId=scope.request_id,
                workflowId=scope.workflow_id,
                attempt=attempt,
            ):
                result = await provider.chat(model, req, self._timeout(model))
        except GasworksError as exc:
            _count(model, exc.code)
            if tokens:
                await self._after(tokens, scope, model, _failure_outcome(exc, attempt, started))
            raise
        except BaseException as exc:  # cancelled, or an adapter bug: hooks must still hear of it
            if tokens:
                await self._after(tokens, scope, model, _interrupted(exc, attempt, started))
            raise
        result.latency_ms = (time.perf_counter() - started) * 1000
        result.model = model.id
        if req.notes:
            result.notes.update(req.notes)
        result.cost = cost = model.cost(result.usage)
        _account(model, result.usage, cost)
        if tokens:
            outcome = CallOutcome(
                status=OK,
                usage=result.usage,
                cost=cost,
                latency_ms=result.latency_ms,
                estimated=result.usage.estimated,
                attempt=attempt,
            )
            await self._after(tokens, scope, model, outcome)
        return result

    async def _open_stream(
        self, scope: CallScope, model: ResolvedModel, req: ChatRequest, attempt: int
    ) -> _OpenStream:
        """Start a stream and read up to its first chunk (the part that may be retried)."""
        provider = self.providers.for_model(model)
        tokens = await self._before(scope, model, req, attempt) if self.hooks else []
        started = time.perf_counter()
        agen = provider.stream(model, req, self._timeout(model)).__aiter__()
        try:
            # the span covers the attempt up to its first chunk (what is retried)
            with span(
                "gasworks.provider_call",
                modelId=model.id,
                provider=model.provider,
                requestId=scope.request_id,
                workflowId=scope.workflow_id,
                attempt=attempt,
                streamed=True,
            ):
                first = await agen.__anext__()
        except StopAsyncIteration:
            exc: GasworksError = ProviderError(
                f"{model.provider} ended the stream without any data.",
                details={"model": model.id},
            )
            await self._after(tokens, scope, model, _failure_outcome(exc, attempt, started))
            raise exc from None
        except GasworksError as exc:
            if type(exc) is ProviderStreamInterrupted:
                # nothing was streamed yet (a refused or reset connection): unavailable, as
                # the same failure is without streaming
                exc = ProviderUnavailable(exc.message, details=exc.details)
            _count(model, exc.code)
            await aclose_stream(agen)
            await self._after(tokens, scope, model, _failure_outcome(exc, attempt, started))
            raise exc from exc.__cause__
        except BaseException as exc:  # cancelled, or an adapter bug: hooks must still hear of it
            await aclose_stream(agen)
            await self._after(tokens, scope, model, _interrupted(exc, attempt, started))
            raise
        return _OpenStream(model, agen, first, tokens, started, attempt)

    async def _settle(
        self,
        scope: CallScope,
        req: ChatRequest,
        s: _OpenStream,
        parts: list[str],
        ttft: float | None,
        status: str,
        usage: Usage | None,
        error: GasworksError | None,
    ) -> None:
        """A stream's end, however it ended: close the provider's stream, account, run hooks."""
        model = s.model
        await aclose_stream(s.agen)
        if usage is None:
            usage = self._estimate(model, req, parts)
        cost = model.cost(usage)
        if status == OK:
            _account(model, usage, cost)
        if s.tokens:
            outcome = CallOutcome(
                status=status,
                usage=usage,
                cost=cost,
                counts_against_provider=bool(
                    error is not None and getattr(error, "counts_against_provider", False)
                ),
                latency_ms=(time.perf_counter() - s.started) * 1000,
                time_to_first_token_ms=ttft,
                estimated=usage.estimated,
                streamed=True,
                attempt=s.attempt,
                error=error,
            )
            await self._after(s.tokens, scope, model, outcome)

    @staticmethod
    def _estimate(model: ResolvedModel, req: ChatRequest, parts: list[str]) -> Usage:
        ratio = model.entry.fallback_token_ratio
        return Usage(
            input_tokens=estimate_prompt_tokens(req.messages, ratio, model.entry.tokenizer),
            output_tokens=estimate_tokens("".join(parts), ratio, model.entry.tokenizer),
            estimated=True,
        )

    # --- retries and fallbacks --------------------------------------------------------------

    async def _with_retries(self, model: ResolvedModel, fn: Callable[[int], Awaitable[T]]) -> T:
        try:
            return await fn(1)
        except ProviderError as exc:
            retries = model.entry.max_retries
            if retries is None:
                retries = self.retry.max_retries
            if retries == 0 or not self._retry_check(exc):
                raise
            first = exc
        p = self.retry
        wait = _RetryAfterOr(
            wait_exponential_jitter(multiplier=p.initial * 2, max=p.max_wait, jitter=p.initial)
        )
        first_wait = first.retry_after
        if first_wait is None:
            first_wait = p.initial + random.uniform(0, p.initial)
        log.warning("model.retry", model=model.id, code=first.code, attempt=1, wait=first_wait)
        await self.sleep(first_wait)
        attempt = 1
        async for state in AsyncRetrying(
            stop=stop_after_attempt(retries),
            wait=wait,
            retry=retry_if_exception(self._retry_check),
            sleep=self.sleep,
            reraise=True,
            before_sleep=lambda rs: log.warning(
                "model.retry", model=model.id, attempt=rs.attempt_number + 1
            ),
        ):
            with state:
                attempt += 1
                return await fn(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _falls_back(exc: GasworksError) -> bool:
        return isinstance(exc, ModelUnavailable) or (
            isinstance(exc, ProviderError) and exc.retryable
        )

    def _candidates(
        self, model: ResolvedModel, req: ChatRequest, *, streaming: bool
    ) -> list[ResolvedModel]:
        out = [model]
        for fid in model.entry.fallbacks:
            try:
                fb = self.registry.resolve(fid)
                check_capabilities(fb, req, streaming=streaming)
            except GasworksError as exc:
                log.warning("model.fallback_skipped", model=model.id, fallback=fid, code=exc.code)
                continue
            out.append(fb)
        return out


@dataclass(slots=True)
class _OpenStream:
    model: ResolvedModel
    agen: AsyncIterator[StreamChunk]
    first: StreamChunk
    tokens: list[tuple[CallHooks, object]]
    started: float
    attempt: int


async def aclose_stream(agen: AsyncIterator[StreamChunk]) -> None:
    """Close a stream of chunks now (its ``finally`` blocks, accounting included, run at
    once); a failure to close is logged, never raised over the error that ended it."""
    close = getattr(agen, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:
            log.debug("model.stream_close_failed")


def _check_dimensions(model: ResolvedModel, spec: EmbeddingSpec, asked: int | None) -> int:
    if asked is None:
        return spec.dimensions
    if not spec.allows(asked):
        raise ValidationFailed(
            f"Model '{model.id}' cannot produce {asked} dimensions (it offers "
            f"{spec.dimension_choices()}).",
            details={"model": model.id, "field": "dimensions", "dimensions": asked},
        )
    return asked


def _check_inputs(
    model: ResolvedModel, spec: EmbeddingSpec, texts: list[str], provider: EmbeddingProvider
) -> list[int]:
    """Token counts of the inputs; refuses none, an empty one or one over the model's limit."""
    if not texts:
        raise ValidationFailed(
            "Nothing to embed: give at least one input.", details={"field": "input"}
        )
    for i, t in enumerate(texts):
        if not t.strip():
            raise ValidationFailed(
                f"Input {i} is empty; every input needs some text.",
                details={"field": "input", "index": i},
            )
    counts = provider.count_tokens(model, texts)
    if counts is None:
        e = model.entry
        counts = [estimate_tokens(t, e.fallback_token_ratio, e.tokenizer) for t in texts]
    limit = spec.max_input_tokens
    for i, n in enumerate(counts):
        if n > limit:
            raise ValidationFailed(
                f"Input {i} is {n} tokens long; model '{model.id}' takes at most {limit}. "
                "Split it into smaller chunks (gasworks never truncates an input silently).",
                details={
                    "field": "input",
                    "index": i,
                    "tokens": n,
                    "limit": limit,
                    "model": model.id,
                },
            )
    return counts


@dataclass(slots=True, frozen=True)
class _PreparedEmbed:
    """One validated embedding request, ready to be sent."""

    model: ResolvedModel
    spec: EmbeddingSpec
    dims: int
    texts: list[str]
    provider: EmbeddingProvider
    counts: list[int]


def _unreachable() -> GasworksError:  # pragma: no cover - every request gets an outcome
    raise AssertionError("an embedding request got no outcome")


def _batches(counts: list[int], spec: EmbeddingSpec) -> list[tuple[int, int]]:
    """``[lo, hi)`` ranges of at most ``max_batch`` inputs and ``max_batch_tokens`` tokens."""
    out: list[tuple[int, int]] = []
    lo, tokens = 0, 0
    cap = spec.max_batch_tokens
    for i, n in enumerate(counts):
        full = i - lo >= spec.max_batch or (cap is not None and tokens + n > cap and i > lo)
        if full:
            out.append((lo, i))
            lo, tokens = i, 0
        tokens += n
    out.append((lo, len(counts)))
    return out


def _check_vectors(model: ResolvedModel, vectors: list[list[float]], count: int, dims: int) -> None:
    if len(vectors) != count or any(len(v) != dims for v in vectors):
        got = {len(v) for v in vectors}
        raise ProviderBadResponse(
            f"{model.provider} returned {len(vectors)} vectors of {sorted(got)} dimensions "
            f"for {count} inputs at {dims} dimensions.",
            details={"provider": model.provider, "model": model.id},
        )


_Children = tuple[Counter, Counter, Counter, Counter]
_CHILDREN: dict[str, _Children] = {}


def _count(model: ResolvedModel, status: str) -> None:
    MODEL_CALLS.labels(model.id, model.provider, status).inc()


def _account(model: ResolvedModel, usage: Usage, cost: Decimal) -> None:
    children = _CHILDREN.get(model.id)
    if children is None:
        children = (
            MODEL_CALLS.labels(model.id, model.provider, OK),
            MODEL_TOKENS.labels(model.id, "input"),
            MODEL_TOKENS.labels(model.id, "output"),
            MODEL_COST.labels(model.id),
        )
        _CHILDREN[model.id] = children
    calls, tin, tout, cst = children
    calls.inc()
    tin.inc(usage.input_tokens)
    tout.inc(usage.output_tokens)
    if cost:
        cst.inc(float(cost))
