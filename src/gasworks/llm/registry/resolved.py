"""A registry entry resolved for one call: the exact wire id and the prices that apply."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from gasworks.modelcard import ModelEntry
from gasworks.modeltypes import Usage

_THOUSAND = Decimal(1000)


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """What the gateway needs for one call, computed once per requested id and cached."""

    #: the registry id (canonical, what results report)
    id: str
    #: the id as the caller wrote it (``us.anthropic.claude-…``)
    requested: str
    entry: ModelEntry
    #: the id sent to the provider (inference-profile prefix kept)
    provider_model_id: str
    #: the Bedrock inference profile / region whose prices apply, None for the base price
    price_key: str | None
    input_per_1k: Decimal
    output_per_1k: Decimal
    cached_input_per_1k: Decimal
    cache_write_per_1k: Decimal

    @property
    def provider(self) -> str:
        return self.entry.provider.value

    def cost(self, usage: Usage) -> Decimal:
        """Exact cost of ``usage`` at this model's (region's) prices.

        ``input_tokens`` counts every prompt token; cache reads and cache writes among them are
        priced at their own rates.
        """
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        written = min(usage.cache_write_input_tokens, usage.input_tokens - cached)
        total = (
            (usage.input_tokens - cached - written) * self.input_per_1k
            + cached * self.cached_input_per_1k
            + written * self.cache_write_per_1k
            + usage.output_tokens * self.output_per_1k
        )
        return total / _THOUSAND if total else Decimal(0)
