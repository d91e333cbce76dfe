"""What a model registry entry is: provider, prices, limits, capabilities.

Entries are validated pydantic models (from YAML, the database or the API) and frozen: the hot
path reads their attributes and never copies them. Prices are ``Decimal`` per 1 000 tokens;
YAML floats are converted through their shortest text form, so ``0.0025`` stays exactly that.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, field_validator

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

    @property
    def wire_id(self) -> str:
        return self.provider_model_id or self.id


#: Fields an update may change (everything but the id).
MUTABLE_FIELDS = frozenset(ModelEntry.model_fields) - {"id"}
#: ``inputPer1k`` → ``input_per_1k``: API bodies may use either spelling
FIELD_BY_ALIAS = {f.alias: name for name, f in ModelEntry.model_fields.items() if f.alias}
