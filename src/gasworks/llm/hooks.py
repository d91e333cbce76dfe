"""The contract between the gateway and whatever guards model calls (breakers, budgets, ledger).

The gateway calls every registered hook around **each provider attempt** (a retry is a new
attempt, a fallback model is a new attempt on another model):

* ``before_call(scope, model, req)`` runs before the attempt and returns an opaque token (a
  budget reservation, a breaker ticket, ...). It may raise a ``GasworksError`` to refuse the
  call: ``ModelUnavailable`` (e.g. an open breaker) makes the gateway try the model's
  configured fallbacks; anything else (``COST_LIMIT_EXCEEDED``, ...) goes to the caller.
* ``after_call(token, scope, model, outcome)`` runs exactly once for every ``before_call`` that
  returned, whatever happened — success, provider error, a refusal by a *later* hook, or a
  stream abandoned by its client — with the attempt's ``CallOutcome``.

``req`` is the ``ChatRequest`` of a chat call, or the ``EmbedBatch`` of one batch of an
embedding request (``Gateway.embed``: one attempt per batch).

Hooks run in registration order; ``after_call`` runs in reverse order. A hook must be cheap: it
is on the hot path of every call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from gasworks.modeltypes import CallScope, ChatRequest, EmbedBatch, Usage

if TYPE_CHECKING:
    from gasworks.errors import GasworksError
    from gasworks.llm.registry.resolved import ResolvedModel

#: ``CallOutcome.status`` of a successful attempt (otherwise the gasworks error code)
OK = "ok"
#: ``CallOutcome.status`` of a stream its consumer stopped reading before the end
CANCELLED = "CANCELLED"


@dataclass(slots=True)
class CallOutcome:
    """What one provider attempt did."""

    #: ``"ok"``, ``"CANCELLED"`` or the gasworks error code (``PROVIDER_TIMEOUT``, ...)
    status: str
    usage: Usage = field(default_factory=Usage)
    cost: Decimal = Decimal(0)
    #: True when the failure is a sign of provider ill-health (feed it to breakers)
    counts_against_provider: bool = False
    latency_ms: float = 0.0
    time_to_first_token_ms: float | None = None
    #: usage was estimated by gasworks (the provider reported none, or the stream was cut)
    estimated: bool = False
    streamed: bool = False
    #: 1 for the first attempt on this model, 2 for its first retry, ...
    attempt: int = 1
    error: GasworksError | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK


class CallHooks(Protocol):
    async def before_call(
        self, scope: CallScope, model: ResolvedModel, req: ChatRequest | EmbedBatch
    ) -> object: ...

    async def after_call(
        self, token: object, scope: CallScope, model: ResolvedModel, outcome: CallOutcome
    ) -> None: ...
