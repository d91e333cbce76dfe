"""Builds and caches one provider client per (provider, endpoint, credential name).

Vendor modules (and so vendor SDKs) are imported only when a model of that provider is first
called; a missing SDK raises ``MISSING_DEPENDENCY`` naming the extra to install. Embedding
adapters (``embedder_for``) are built the same way; the remote ones share the chat adapter's
client of the same (provider, endpoint, credential): one connection pool per endpoint.
"""

from __future__ import annotations

from gasworks.errors import ConfigurationError
from gasworks.llm.credentials import Credentials
from gasworks.llm.providers.base import Provider
from gasworks.llm.providers.demo import DemoProvider
from gasworks.llm.providers.embeddings import EmbeddingProvider
from gasworks.llm.registry.resolved import ResolvedModel
from gasworks.modelcard import ProviderName
from gasworks.settings import Settings


class ProviderSet:
    def __init__(self, settings: Settings, credentials: Credentials | None = None) -> None:
        self.settings = settings
        self.credentials = credentials or Credentials(settings.secrets_file)
        self._clients: dict[tuple[str, str | None, str | None], Provider] = {}
        #: registry id -> provider, so the hot path is one dict hit
        self._by_model: dict[str, Provider] = {}
        #: tests and embedders may register a provider under a name of their own
        self.overrides: dict[str, Provider] = {}
        self._embedders: dict[tuple[str, str | None, str | None], EmbeddingProvider] = {}
        self._embedder_by_model: dict[str, EmbeddingProvider] = {}
        #: embedding adapters by provider name, replacing the built-in ones (tests)
        self.embedding_overrides: dict[str, EmbeddingProvider] = {}

    def for_model(self, model: ResolvedModel) -> Provider:
        p = self._by_model.get(model.id)
        if p is None:
            p = self._build(model)
            self._by_model[model.id] = p
        return p

    def forget(self) -> None:
        """Drop the per-model cache (after a registry change)."""
        self._by_model.clear()
        self._embedder_by_model.clear()

    def embedder_for(self, model: ResolvedModel) -> EmbeddingProvider:
        p = self._embedder_by_model.get(model.id)
        if p is None:
            p = self._build_embedder(model)
            self._embedder_by_model[model.id] = p
        return p

    def _build_embedder(self, model: ResolvedModel) -> EmbeddingProvider:
        entry = model.entry
        name = entry.provider
        override = self.embedding_overrides.get(name.value)
        if override is not None:
            return override
        key = (name.value, entry.base_url, entry.api_key_env)
        built = self._embedders.get(key)
        if built is not None:
            return built
        embedder: EmbeddingProvider
        if name is ProviderName.LOCAL:
            from gasworks.llm.providers.local_embeddings import LocalEmbeddingProvider

            embedder = LocalEmbeddingProvider(
                threads=self.settings.local_embedding_threads,
                merge_max=self.settings.local_embedding_merge_max,
            )
        elif name is ProviderName.OPENAI:
            from gasworks.llm.providers.openai import OpenAIProvider
            from gasworks.llm.providers.openai_embeddings import OpenAIEmbeddings

            chat = self._build(model)
            assert isinstance(chat, OpenAIProvider)
            embedder = OpenAIEmbeddings(chat)
        elif name is ProviderName.OPENAI_COMPATIBLE:
            from gasworks.llm.providers.openai_compatible import OpenAICompatibleProvider
            from gasworks.llm.providers.openai_compatible_embeddings import (
                OpenAICompatibleEmbeddings,
            )

            chat = self._build(model)
            assert isinstance(chat, OpenAICompatibleProvider)
            embedder = OpenAICompatibleEmbeddings(chat)
        elif name is ProviderName.BEDROCK:
            from gasworks.llm.providers.bedrock import BedrockProvider
            from gasworks.llm.providers.bedrock_embeddings import BedrockEmbeddings

            chat = self._build(model)
            assert isinstance(chat, BedrockProvider)
            embedder = BedrockEmbeddings(chat)
        else:
            raise ConfigurationError(
                f"Model '{entry.id}' is an embedding model of provider '{name.value}', which "
                "has no embedding adapter (local, openai, openai_compatible, bedrock do).",
                details={"model": entry.id, "provider": name.value},
            )
        self._embedders[key] = embedder
        return embedder

    def _build(self, model: ResolvedModel) -> Provider:
        entry = model.entry
        name = entry.provider
        override = self.overrides.get(name.value)
        if override is not None:
            return override
        key = (name.value, entry.base_url, entry.api_key_env)
        client = self._clients.get(key)
        if client is not None:
            return client
        s = self.settings
        client_: Provider
        if name is ProviderName.DEMO:
            client_ = DemoProvider(s.demo_stream_delay_ms)
        elif name is ProviderName.OPENAI:
            from gasworks.llm.providers.openai import OpenAIProvider

            client_ = OpenAIProvider(
                api_key=self.credentials.value(entry.api_key_env or "OPENAI_API_KEY"),
                base_url=entry.base_url or s.openai_base_url,
                keepalive=s.provider_keepalive_seconds,
            )
        elif name is ProviderName.OPENAI_COMPATIBLE:
            from gasworks.llm.providers.openai_compatible import OpenAICompatibleProvider

            base_url = entry.base_url or s.openai_compatible_base_url
            if not base_url:
                raise ConfigurationError(
                    f"Model '{entry.id}' is openai_compatible but has no base_url "
                    "(set it on the entry or GASWORKS_OPENAI_COMPATIBLE_BASE_URL).",
                    details={"model": entry.id},
                )
            client_ = OpenAICompatibleProvider(
                api_key=self.credentials.value(entry.api_key_env or "OPENAI_COMPATIBLE_API_KEY"),
                base_url=base_url,
                keepalive=s.provider_keepalive_seconds,
            )
        elif name is ProviderName.ANTHROPIC:
            from gasworks.llm.providers.anthropic import AnthropicProvider

            client_ = AnthropicProvider(
                api_key=self.credentials.value(entry.api_key_env or "ANTHROPIC_API_KEY"),
                base_url=entry.base_url or s.anthropic_base_url,
                keepalive=s.provider_keepalive_seconds,
            )
        elif name is ProviderName.BEDROCK:
            from gasworks.llm.providers.bedrock import BedrockProvider

            client_ = BedrockProvider(
                region=s.bedrock_region,
                endpoint_url=entry.base_url or s.bedrock_endpoint_url,
                credentials=self.credentials,
            )
        else:  # pragma: no cover - the enum is exhaustive
            raise ConfigurationError(f"Unknown provider {name!r}")
        self._clients[key] = client_
        return client_

    async def aclose(self) -> None:
        for embedder in self._embedders.values():
            await embedder.aclose()
        self._embedders.clear()
        self._embedder_by_model.clear()
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
        self._by_model.clear()
