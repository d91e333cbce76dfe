"""The guardrails as one gateway call hook: pre-call checks, breaker, budget, ledger.

``before_call`` (per provider attempt), cheapest first:

1. request checks, pure CPU: ``TOKEN_LIMIT_EXCEEDED``, ``CONTEXT_WINDOW_EXCEEDED`` (or
   truncation when the request allows it), ``COST_LIMIT_EXCEEDED`` against the request's own
   cost limit;
2. the model's circuit breaker (a dict lookup while closed; ``MODEL_UNAVAILABLE`` when open,
   which makes the gateway try the model's fallbacks);
3. the budget reservation (a database round trip only when the tenant or key has limits).

``after_call`` feeds the outcome to the breaker, settles the reservation (in memory for a
leased one) and queues the ledger row; the ledger writer commits rows and settlements in
batches. Breakers fail open; budgets fail closed (a call whose reservation cannot be made is
not made — though a lease already held keeps serving while the database is unreachable, within
the limit by construction); the ledger logs and counts its own failures and keeps unwritten
rows queued.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from gasworks.db.engine import Database
from gasworks.db.types import new_ordered_id
from gasworks.errors import (
    ContextWindowExceeded,
    CostLimitExceeded,
    GasworksError,
    TokenLimitExceeded,
)
from gasworks.llm.breaker import BreakerConfig, BreakerManager, OutcomeKind, Permit
from gasworks.llm.budgets.ledger import Ledger, LedgerEntry
from gasworks.llm.budgets.limits import BudgetService, LeasePolicy, Reservation
from gasworks.llm.guardrail_metrics import GUARDRAIL_ERRORS, REJECTIONS
from gasworks.llm.tokens import UTF8_BYTES, TokenCounter, TokenCounters, TokenEstimate
from gasworks.llm.truncation import fit_messages
from gasworks.modeltypes import CallScope, ChatRequest, EmbedBatch, Message, Usage
from gasworks.observability.logging import get_logger
from gasworks.settings import Settings

log = get_logger("gasworks.llm.guardrails")

OK = "ok"
CANCELLED = "CANCELLED"


class ModelLimits(Protocol):
    """The registry entry fields the guardrails read (``ModelEntry``)."""

    @property
    def context_window(self) -> int: ...
    @property
    def max_output_tokens(self) -> int: ...
    @property
    def reserved_tokens(self) -> int: ...
    @property
    def tokenizer(self) -> str: ...
    @property
    def fallback_token_ratio(self) -> float: ...


class GuardedModel(Protocol):
    """A model resolved for one call (``ResolvedModel``)."""

    @property
    def id(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def price_key(self) -> str | None: ...
    @property
    def entry(self) -> ModelLimits: ...
    def cost(self, usage: Usage) -> Decimal: ...


class Outcome(Protocol):
    """What one provider attempt did (``hooks.CallOutcome``)."""

    status: str
    usage: Usage
    cost: Decimal
    counts_against_provider: bool
    latency_ms: float
    time_to_first_token_ms: float | None
    estimated: bool
    streamed: bool
    error: Any
    #: 1 for a call's first provider attempt, 2… for the gateway's retries
    attempt: int


def breaker_key(model: GuardedModel) -> str:
    """One breaker per model, and per provider deployment (region / inference profile)."""
    return f"{model.id}@{model.price_key}" if model.price_key else model.id


def classify_outcome(outcome: Outcome) -> OutcomeKind:
    """Success, a failure that counts against the provider, or neither (caller's 4xx, the
    client walked away, a refusal before the provider was reached)."""
    if outcome.status == OK:
        return OutcomeKind.SUCCESS
    if outcome.counts_against_provider:
        return OutcomeKind.FAILURE
    return OutcomeKind.IGNORED


def reached_provider(outcome: Outcome) -> bool:
    """False when the attempt was refused before any provider call (no ledger row)."""
    if outcome.status in (OK, CANCELLED) or outcome.error is None:
        return True
    return hasattr(outcome.error, "counts_against_provider")


@dataclass(slots=True)
class PreCheck:
    #: the exact estimate when it was made, else None and ``bound`` (see ``estimate``)
    known: TokenEstimate | None
    #: output tokens the call may produce (what is reserved)
    max_output: int
    #: the model that prices the call (``max_cost``)
    model: GuardedModel
    notes: dict[str, Any] = field(default_factory=dict)
    _max_cost: Decimal | None = None
    #: an upper bound of the prompt's tokens (``TokenCounter.bound_messages``) that decided
    #: the context-window check without the tokenizer; the exact count is made from
    #: ``counter`` and ``messages`` when something reads ``estimate``
    bound: int = 0
    counter: TokenCounter | None = None
    messages: list[Message] | None = None

    @property
    def estimate(self) -> TokenEstimate:
        """The prompt's estimate, as exact as the model's tokenizer allows: counted on first
        use when the pre-call checks decided on ``bound`` (a budget reservation, a request's
        cost limit, the ledger's cost estimate all read it; most calls need none of them)."""
        est = self.known
        if est is None:
            assert self.counter is not None and self.messages is not None
            est = self.known = self.counter.estimate_messages(self.messages)
        return est

    def note(self) -> dict[str, Any]:
        """The answer's ``estimate`` note: the exact estimate when it was made, else the upper
        bound, labelled ``utf8_bytes`` and not exact (issue #19: counting every prompt
        with the tokenizer only for this note cost more CPU than the rest of the checks)."""
        est = self.known
        if est is None:
            return {"inputTokens": self.bound, "tokenizer": UTF8_BYTES, "exact": False}
        return {"inputTokens": est.tokens, "tokenizer": est.tokenizer, "exact": est.exact}

    @property
    def max_cost(self) -> Decimal:
        """The most the call can cost: its input tokens and ``max_output``, at the model's
        prices. Worked out on first use: only a request's cost limit and a budget need it,
        and most calls have neither."""
        cost = self._max_cost
        if cost is None:
            usage = Usage(input_tokens=self.estimate.tokens, output_tokens=self.max_output)
            cost = self._max_cost = self.model.cost(usage)
        return cost


@dataclass(slots=True)
class GuardToken:
    call_id: str
    breaker: Permit
    reservation: Reservation | None
    check: PreCheck
    done: bool = False
    #: "chat" or "embedding" (the ledger row's ``kind``)
    kind: str = "chat"
    #: what an embedding call served (``{"documentId": ..}``), for the ledger row
    served: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class GuardrailConfig:
    context_safety_margin: float = 0.10
    request_max_output_tokens: int | None = None
    default_output_reservation_tokens: int = 1024

    @classmethod
    def from_settings(cls, s: Settings) -> GuardrailConfig:
        return cls(
            context_safety_margin=s.context_safety_margin,
            request_max_output_tokens=s.request_max_output_tokens,
            default_output_reservation_tokens=s.default_output_reservation_tokens,
        )


def breaker_config(s: Settings) -> BreakerConfig:
    return BreakerConfig(
        window_seconds=s.breaker_window_seconds,
        buckets=s.breaker_buckets,
        failure_rate_threshold=s.breaker_failure_rate_threshold,
        minimum_calls=s.breaker_minimum_calls,
        slow_call_ms=s.breaker_slow_call_ms,
        cooldown_seconds=s.breaker_cooldown_seconds,
        half_open_probes=s.breaker_half_open_probes,
        sync_interval_seconds=s.breaker_sync_interval_seconds,
    )


def lease_policy(s: Settings) -> LeasePolicy:
    return LeasePolicy(
        calls=s.budget_lease_calls,
        min_headroom_calls=s.budget_lease_min_headroom_calls,
        fraction=s.budget_lease_fraction,
        interval=s.budget_lease_interval_seconds,
        ttl=s.budget_lease_ttl_seconds,
    )


def _reject(exc: GasworksError) -> GasworksError:
    REJECTIONS.labels(reason=exc.code).inc()
    return exc


class Guardrails:
    """Implements the gateway's ``CallHooks``."""

    def __init__(
        self,
        db: Database,
        *,
        config: GuardrailConfig | None = None,
        breakers: BreakerManager | None = None,
        budgets: BudgetService | None = None,
        ledger: Ledger | None = None,
        counters: TokenCounters | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.config = config or GuardrailConfig()
        self.clock = clock
        self.breakers = breakers or BreakerManager(db, clock=clock)
        self.budgets = budgets or BudgetService(db, clock=clock)
        self.ledger = ledger or Ledger(db, self.budgets)
        self.counters = counters or TokenCounters()

    @classmethod
    def from_settings(
        cls, db: Database, settings: Settings, *, clock: Callable[[], float] = time.time
    ) -> Guardrails:
        budgets = BudgetService(
            db,
            cache_ttl=settings.budget_cache_ttl_seconds,
            reservation_ttl=settings.budget_reservation_ttl_seconds,
            leases=lease_policy(settings),
            clock=clock,
        )
        return cls(
            db,
            config=GuardrailConfig.from_settings(settings),
            breakers=BreakerManager(db, breaker_config(settings), clock=clock),
            budgets=budgets,
            ledger=Ledger(
                db,
                budgets,
                flush_interval=settings.ledger_flush_interval_ms / 1000,
                max_rows=settings.ledger_flush_max_rows,
                max_pending=settings.ledger_max_pending_rows,
            ),
            counters=TokenCounters(cache_size=settings.token_count_cache_size),
            clock=clock,
        )

    # --- pre-call checks (pure) -------------------------------------------------------------

    def counter_for(self, model: GuardedModel) -> TokenCounter:
        e = model.entry
        return self.counters.get(e.tokenizer, e.fallback_token_ratio)

    def precheck(self, model: GuardedModel, req: ChatRequest) -> PreCheck:
        """Token limit, context window (or truncation), request cost limit. May shorten
        ``req.messages`` when ``req.truncate``; the returned notes say what was dropped. The
        context window is decided on ``bound_messages`` (never below the exact count) when
        it fits, else on the exact count; the check counts exactly on first use of its
        ``estimate`` (the cost limit here, a budget reservation in ``before_call``)."""
        entry = model.entry
        cap = entry.max_output_tokens
        if req.max_tokens is not None:
            limit = self.config.request_max_output_tokens
            if req.max_tokens > cap or (limit is not None and req.max_tokens > limit):
                allowed = cap if limit is None else min(cap, limit)
                raise _reject(
                    TokenLimitExceeded(
                        f"max_tokens {req.max_tokens} is over the limit of {allowed} for "
                        f"model '{model.id}'.",
                        details={"model": model.id, "requested": req.max_tokens, "limit": allowed},
                    )
                )
        counter = self.counter_for(model)
        # output kept free in the context window: what was asked, else a default share
        out_ctx = req.max_tokens or min(cap, self.config.default_output_reservation_tokens)
        usable = math.floor(entry.context_window * (1 - self.config.context_safety_margin))
        prompt_budget = usable - out_ctx - entry.reserved_tokens
        max_output = req.max_tokens or cap
        bound = counter.bound_messages(req.messages)
        if bound is not None and bound <= prompt_budget:
            # fits by the upper bound: the exact count waits until something needs it
            check = PreCheck(
                None, max_output, model, bound=bound, counter=counter, messages=req.messages
            )
        else:
            check = self._precheck_counted(
                model, req, counter, max_output, (prompt_budget, out_ctx, usable)
            )
        if req.cost_limit is not None and (max_cost := check.max_cost) > req.cost_limit:
            raise _reject(
                CostLimitExceeded(
                    f"This call may cost up to {max_cost}, over its cost limit of "
                    f"{req.cost_limit}. Lower max_tokens or raise the limit.",
                    details={
                        "model": model.id,
                        "estimate": str(max_cost),
                        "limit": str(req.cost_limit),
                        "inputTokens": check.estimate.tokens,
                        "maxOutputTokens": max_output,
                    },
                )
            )
        return check

    def _precheck_counted(
        self,
        model: GuardedModel,
        req: ChatRequest,
        counter: TokenCounter,
        max_output: int,
        window: tuple[int, int, int],
    ) -> PreCheck:
        """The context-window check on the exact count (the bound did not decide it);
        ``window``: the prompt's budget, the output kept free and the usable tokens."""
        entry = model.entry
        prompt_budget, out_ctx, usable = window
        estimate = counter.estimate_messages(req.messages)
        notes: dict[str, Any] = {}
        if estimate.tokens > prompt_budget:
            details = {
                "model": model.id,
                "inputTokens": estimate.tokens,
                "reservedOutputTokens": out_ctx,
                "contextWindow": entry.context_window,
                "usableTokens": usable,
                "tokenizer": estimate.tokenizer,
                "exact": estimate.exact,
            }
            if not req.truncate:
                raise _reject(
                    ContextWindowExceeded(
                        f"The prompt (~{estimate.tokens} tokens) plus {out_ctx} output tokens "
                        f"does not fit model '{model.id}' ({entry.context_window} tokens, "
                        f"{self.config.context_safety_margin:.0%} kept free). Shorten it or "
                        "allow truncation.",
                        details=details,
                    )
                )
            fit = fit_messages(req.messages, counter, max(prompt_budget, 0))
            if not fit.fits:
                raise _reject(
                    ContextWindowExceeded(
                        "Even after dropping history and shortening the system message, the "
                        f"current message does not fit model '{model.id}'.",
                        details=details | fit.summary(),
                    )
                )
            req.messages = fit.messages
            notes["truncation"] = fit.summary()
            estimate = TokenEstimate(fit.tokens_after, estimate.tokenizer, estimate.exact)
        return PreCheck(estimate, max_output, model, notes)

    @staticmethod
    def precheck_embedding(model: GuardedModel, batch: EmbedBatch) -> PreCheck:
        """An embedding batch was validated by the gateway (input lengths, dimensions, the
        request's cost limit); what it reserves is its input tokens at the model's price."""
        tokens = TokenEstimate(batch.tokens, model.entry.tokenizer, False)
        return PreCheck(tokens, 0, model)

    # --- hooks ------------------------------------------------------------------------------

    async def before_call(
        self, scope: CallScope, model: GuardedModel, req: ChatRequest | EmbedBatch
    ) -> object:
        if isinstance(req, EmbedBatch):
            check = self.precheck_embedding(model, req)
        else:
            check = self.precheck(model, req)
        try:
            self.ledger.check_backlog()
        except GasworksError as exc:
            raise _reject(exc) from None
        # the common case without an await: a closed breaker, no limits on the caller
        key = breaker_key(model)
        permit = self.breakers.permit_now(key)
        if permit is None:
            try:
                permit = await self.breakers.check(key)
            except GasworksError as exc:
                raise _reject(exc) from None
        reservation: Reservation | None = None
        budgets = self.budgets
        if not budgets.no_limits_now(scope.tenant_id, scope.api_key_id):
            try:
                # no limits: nothing reserved, and the prompt needs no exact count for it
                if await budgets.limits_for(scope.tenant_id, scope.api_key_id):
                    reservation = await budgets.reserve(
                        scope.tenant_id,
                        scope.api_key_id,
                        check.max_cost,
                        check.estimate.tokens + check.max_output,
                    )
            except GasworksError as exc:
                await self.breakers.record(permit, OutcomeKind.IGNORED)
                raise _reject(exc) from None
            except BaseException:
                await self.breakers.record(permit, OutcomeKind.IGNORED)
                raise
        if isinstance(req, EmbedBatch):
            return GuardToken(
                new_ordered_id("call"),
                permit,
                reservation,
                check,
                kind="embedding",
                served=req.served,
            )
        notes = req.notes
        notes.update(check.notes)
        notes["estimate"] = check.note()
        return GuardToken(new_ordered_id("call"), permit, reservation, check)

    async def after_call(
        self, token: object, scope: CallScope, model: GuardedModel, outcome: Outcome
    ) -> None:
        if not isinstance(token, GuardToken) or token.done:
            return
        token.done = True
        kind = classify_outcome(outcome)
        if not self.breakers.record_now(token.breaker, kind, latency_ms=outcome.latency_ms):
            await self.breakers.record(token.breaker, kind, latency_ms=outcome.latency_ms)
        try:
            if not reached_provider(outcome):
                if token.reservation is not None:
                    await self.ledger.release(token.reservation)
                return
            entry = self.entry_for(token, scope, model, outcome)
            if self.ledger.synchronous:
                await self.ledger.record(entry, token.reservation)
            else:
                self.ledger.queue(entry, token.reservation)
        except Exception:
            GUARDRAIL_ERRORS.labels(component="ledger").inc()
            log.exception("ledger.write_failed", model=model.id, call_id=token.call_id)

    def entry_for(
        self, token: GuardToken, scope: CallScope, model: GuardedModel, outcome: Outcome
    ) -> LedgerEntry:
        usage = outcome.usage
        error = outcome.error
        return LedgerEntry(
            id=token.call_id,
            tenant_id=scope.tenant_id,
            model=model.id,
            provider=model.provider,
            status=OK if outcome.status == OK else outcome.status,
            created_at=datetime.fromtimestamp(self.clock(), UTC),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            cost=outcome.cost,
            latency_ms=outcome.latency_ms,
            ttft_ms=outcome.time_to_first_token_ms,
            estimated=outcome.estimated or usage.estimated,
            streamed=outcome.streamed,
            request_id=scope.request_id,
            api_key_id=scope.api_key_id,
            workflow_id=scope.workflow_id,
            node_id=scope.node_id,
            run_id=scope.run_id,
            error_code=getattr(error, "code", None) if outcome.status != OK else None,
            kind=token.kind,
            served=token.served or None,
            attempt=outcome.attempt,
            prompt_version_id=scope.prompt_version_id,
        )
