"""What a model registry entry is: provider, prices, limits, capabilities.

Entries are validated pydantic models (from YAML, the database or the API) and frozen: the hot
path reads their attributes and never copies them. Prices are ``Decimal`` per 1 000 tokens;
YAML floats are converted through their shortest text form, so ``0.0025`` stays exactly that.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, field_validator, model_validator

from gasworks.apimodel import ApiModel


def _exact_decimal(v: Any) -> Any:
    if isinstance(v, float):
        return repr(v)
    return v


Price = Annotated[Decimal, BeforeValidator(_exact_decimal), Field(ge=0)]


class ProviderName(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    BEDROCK = "bedrock"
    OPENAI_COMPATIBLE = "openai_compatible"
    DEMO = "demo"
    #: a model run inside the gasworks process (the offline default embedding model)
    LOCAL = "local"


class ModelKind(StrEnum):
    CHAT = "chat"
    EMBEDDING = "embedding"


class Capabilities(ApiModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    streaming: bool = True
    json_mode: bool = False
    function_calling: bool = False
    multimodal_input: bool = False
    embeddings: bool = False


class EmbeddingSpec(ApiModel):
    """What an embedding model produces and accepts (required on ``kind: embedding``).

    The gateway splits a request into batches of at most ``max_batch`` inputs and
    ``max_batch_tokens`` tokens, and refuses (``VALIDATION_FAILED``) an input longer than
    ``max_input_tokens``: it never truncates silently.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: the model's native dimensions (what a request without ``dimensions`` gets)
    dimensions: int = Field(ge=1, le=65536)
    #: other dimensions a request may ask for: a list, or ``any`` (every value from 1 to
    #: ``dimensions``, as text-embedding-3 allows)
    reduced_dimensions: list[int] | Literal["any"] = Field(default_factory=list)
    #: the longest input, in the model's tokens
    max_input_tokens: int = Field(default=8191, ge=1)
    #: inputs per provider call
    max_batch: int = Field(default=256, ge=1, le=100_000)
    #: tokens per provider call (None: no limit beyond ``max_batch``)
    max_batch_tokens: int | None = Field(default=None, ge=1)
    #: the vectors returned are L2-normalised (unit length; cosine = dot product)
    normalized: bool = True
    #: text prepended to inputs by purpose (e5 / nomic style models: ``query: ``)
    query_prefix: str = ""
    document_prefix: str = ""

    @field_validator("reduced_dimensions")
    @classmethod
    def _valid_reduced(cls, v: list[int] | str) -> list[int] | str:
        if isinstance(v, list) and any(d < 1 for d in v):
            raise ValueError("reduced dimensions must be positive")
        return v

    def allows(self, dimensions: int) -> bool:
        if dimensions == self.dimensions:
            return True
        if self.reduced_dimensions == "any":
            return 1 <= dimensions < self.dimensions
        return dimensions in self.reduced_dimensions

    def dimension_choices(self) -> str:
        """The allowed dimensions, in words (for error messages)."""
        if self.reduced_dimensions == "any":
            return f"1 to {self.dimensions}"
        return ", ".join(str(d) for d in sorted({self.dimensions, *self.reduced_dimensions}))


class PriceOverride(ApiModel):
    """Prices that differ in one region or inference profile (``us``, ``eu``, ``eu-west-1``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_per_1k: Price
    output_per_1k: Price
    cached_input_per_1k: Price | None = None
    cache_write_per_1k: Price | None = None


class ModelEntry(ApiModel):
    """One model a deployment can call."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")
    provider: ProviderName
    #: the provider's own id (default: ``id``)
    provider_model_id: str | None = Field(default=None, max_length=300)
    display_name: str | None = None
    kind: ModelKind = ModelKind.CHAT
    input_per_1k: Price = Decimal(0)
    output_per_1k: Price = Decimal(0)
    #: price of cache-read input tokens (default: the input price)
    cached_input_per_1k: Price | None = None
    #: price of input tokens written to the prompt cache (default: the input price)
    cache_write_per_1k: Price | None = None
    #: keyed by Bedrock inference-profile prefix (``us``, ``eu``, ``apac``, ``global``) or region
    region_prices: dict[str, PriceOverride] = Field(default_factory=dict)
    #: inference-profile prefixes this model may be called with (None: any known prefix)
    inference_profiles: list[str] | None = None
    context_window: int = Field(default=8192, ge=1)
    max_output_tokens: int = Field(default=4096, ge=1)
    #: tokens kept free of the prompt budget (system overhead, tool schemas)
    reserved_tokens: int = Field(default=0, ge=0)
    tokenizer: str = "cl100k_base"
    #: characters per token when no tokenizer is available
    fallback_token_ratio: float = Field(default=4.0, gt=0)
    capabilities: Capabilities = Field(default_factory=Capabilities)
    #: dimensions, limits and normalisation of an embedding model (``kind: embedding``)
    embedding: EmbeddingSpec | None = None
    deprecation_date: date | None = None
    #: seconds one provider attempt may take (default: GASWORKS_PROVIDER_TIMEOUT_SECONDS)
    timeout_seconds: float | None = Field(default=None, gt=0)
    #: retries after the first attempt (default: GASWORKS_PROVIDER_MAX_RETRIES)
    max_retries: int | None = Field(default=None, ge=0, le=10)
    #: registry ids tried in order when this model is unavailable
    fallbacks: list[str] = Field(default_factory=list)
    #: other ids that name this entry
    aliases: list[str] = Field(default_factory=list)
    #: endpoint override (required for openai_compatible unless set globally)
    base_url: str | None = None
    #: NAME of the environment variable / secrets-file key holding the API key (never the key)
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    enabled: bool = True
    description: str | None = None

    @field_validator("fallbacks")
    @classmethod
    def _no_self_fallback(cls, v: list[str], info: Any) -> list[str]:
        if info.data.get("id") in v:
            raise ValueError("a model cannot be its own fallback")
        return v

    @model_validator(mode="after")
    def _embedding_spec(self) -> ModelEntry:
        if self.kind is ModelKind.EMBEDDING and self.embedding is None:
            raise ValueError(
                "an embedding model needs 'embedding: {dimensions: N, max_input_tokens: N, "
                "max_batch: N}'"
            )
        if self.kind is ModelKind.CHAT and self.embedding is not None:
            raise ValueError("'embedding' is only for models of kind 'embedding'")
        return self

    @property
    def wire_id(self) -> str:
        return self.provider_model_id or self.id


#: Fields an update may change (everything but the id).
MUTABLE_FIELDS = frozenset(ModelEntry.model_fields) - {"id"}
#: ``inputPer1k`` → ``input_per_1k``: API bodies may use either spelling
FIELD_BY_ALIAS = {f.alias: name for name, f in ModelEntry.model_fields.items() if f.alias}
