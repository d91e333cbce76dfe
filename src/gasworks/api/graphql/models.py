"""GraphQL types and resolvers for the model registry."""

from __future__ import annotations

from datetime import date

import strawberry

from gasworks.api.graphql.context import GqlContext
from gasworks.llm.runtime import get_registry, models_admin
from gasworks.modelcard import ModelEntry


@strawberry.type(name="ModelCapabilities")
class CapabilitiesType:
    streaming: bool
    json_mode: bool
    function_calling: bool
    multimodal_input: bool
    embeddings: bool


@strawberry.type(name="Model")
class ModelType:
    id: str
    provider: str
    provider_model_id: str
    kind: str
    display_name: str | None
    input_per_1k: str = strawberry.field(description="USD per 1K input tokens (exact decimal).")
    output_per_1k: str
    cached_input_per_1k: str | None
    cache_write_per_1k: str | None
    context_window: int
    max_output_tokens: int
    reserved_tokens: int
    tokenizer: str
    capabilities: CapabilitiesType
    deprecation_date: date | None
    fallbacks: list[str]
    enabled: bool

    @staticmethod
    def of(e: ModelEntry) -> ModelType:
        c = e.capabilities
        return ModelType(
            id=e.id,
            provider=e.provider.value,
            provider_model_id=e.wire_id,
            kind=e.kind.value,
            display_name=e.display_name,
            input_per_1k=str(e.input_per_1k),
            output_per_1k=str(e.output_per_1k),
            cached_input_per_1k=None
            if e.cached_input_per_1k is None
            else str(e.cached_input_per_1k),
            cache_write_per_1k=(
                None if e.cache_write_per_1k is None else str(e.cache_write_per_1k)
            ),
            context_window=e.context_window,
            max_output_tokens=e.max_output_tokens,
            reserved_tokens=e.reserved_tokens,
            tokenizer=e.tokenizer,
            capabilities=CapabilitiesType(
                streaming=c.streaming,
                json_mode=c.json_mode,
                function_calling=c.function_calling,
                multimodal_input=c.multimodal_input,
                embeddings=c.embeddings,
            ),
            deprecation_date=e.deprecation_date,
            fallbacks=list(e.fallbacks),
            enabled=e.enabled,
        )


@strawberry.type
class ModelsQuery:
    @strawberry.field
    def models(
        self, info: strawberry.Info[GqlContext, None], include_disabled: bool = False
    ) -> list[ModelType]:
        reg = get_registry(info.context.runtime)
        return [ModelType.of(e) for e in reg.entries(include_disabled=include_disabled)]

    @strawberry.field
    def model(self, info: strawberry.Info[GqlContext, None], id: str) -> ModelType:
        return ModelType.of(get_registry(info.context.runtime).get(id, include_disabled=True))


@strawberry.type
class ModelsMutation:
    @strawberry.mutation
    async def set_model_enabled(
        self, info: strawberry.Info[GqlContext, None], id: str, enabled: bool
    ) -> ModelType:
        """Enable or disable a model (platform administrators)."""
        admin = models_admin(info.context.runtime)
        return ModelType.of(await admin.set_enabled(info.context.ctx, id, enabled))
