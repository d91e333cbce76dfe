"""Every embedding adapter passes the one-shot fault matrix (``gasworks.testing.providers``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gasworks.testing import FakeBedrock, FakeOpenAI, FakeProviderServer
from gasworks.testing.providers import EmbeddingProviderConformance


class TestOpenAIEmbeddings(EmbeddingProviderConformance):
    @pytest.fixture
    def fake(self) -> Iterator[FakeProviderServer]:
        with FakeOpenAI() as fake:
            yield fake

    def entry(self, fake: FakeProviderServer) -> dict[str, Any]:
        return {
            "provider": "openai",
            "base_url": f"{fake.url}/v1",
            "kind": "embedding",
            "provider_model_id": "text-embedding-3-small",
            "embedding": {"dimensions": 1536},
        }


class TestOpenAICompatibleEmbeddings(EmbeddingProviderConformance):
    @pytest.fixture
    def fake(self) -> Iterator[FakeProviderServer]:
        with FakeOpenAI() as fake:
            yield fake

    def entry(self, fake: FakeProviderServer) -> dict[str, Any]:
        return {
            "provider": "openai_compatible",
            "base_url": f"{fake.url}/v1",
            "kind": "embedding",
            "embedding": {"dimensions": 8},
        }


class TestBedrockEmbeddings(EmbeddingProviderConformance):
    @pytest.fixture
    def fake(self) -> Iterator[FakeProviderServer]:
        with FakeBedrock() as fake:
            yield fake

    def entry(self, fake: FakeProviderServer) -> dict[str, Any]:
        return {
            "provider": "bedrock",
            "kind": "embedding",
            "provider_model_id": "amazon.titan-embed-text-v2:0",
            "embedding": {"dimensions": 1024},
        }

    def settings(self, fake: FakeProviderServer) -> dict[str, Any]:
        return {"bedrock_endpoint_url": fake.url}
