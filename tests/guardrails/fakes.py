"""Stand-ins for a resolved model and a call outcome, and a controllable clock."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from gasworks.modeltypes import Usage


@dataclass
class FakeClock:
    """Starts at the real time (calendar periods match the API's view), moves only when told."""

    now: float = field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class FakeEntry:
    context_window: int = 8192
    max_output_tokens: int = 1000
    reserved_tokens: int = 0
    tokenizer: str = "cl100k_base"
    fallback_token_ratio: float = 4.0


@dataclass(frozen=True)
class FakeModel:
    id: str = "fake-model"
    provider: str = "fake"
    price_key: str | None = None
    entry: FakeEntry = field(default_factory=FakeEntry)
    #: per token
    input_price: Decimal = Decimal("0.001")
    output_price: Decimal = Decimal("0.002")

    def cost(self, usage: Usage) -> Decimal:
        return usage.input_tokens * self.input_price + usage.output_tokens * self.output_price


@dataclass
class FakeOutcome:
    status: str = "ok"
    usage: Usage = field(default_factory=Usage)
    cost: Decimal = Decimal(0)
    counts_against_provider: bool = False
    latency_ms: float = 10.0
    time_to_first_token_ms: float | None = None
    estimated: bool = False
    streamed: bool = False
    attempt: int = 1
    error: Any = None


class ProviderFailure(Exception):
    """Looks like a provider error (has counts_against_provider)."""

    code = "PROVIDER_UNAVAILABLE"
    counts_against_provider = True


def ok(model: FakeModel, inp: int, out: int, **kw: Any) -> FakeOutcome:
    usage = Usage(input_tokens=inp, output_tokens=out)
    return FakeOutcome(usage=usage, cost=model.cost(usage), **kw)


def failed(**kw: Any) -> FakeOutcome:
    return FakeOutcome(
        status="PROVIDER_UNAVAILABLE",
        counts_against_provider=True,
        error=ProviderFailure(),
        **kw,
    )
