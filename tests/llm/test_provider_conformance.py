"""Every chat adapter passes the same fault matrix (``gasworks.testing.providers``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gasworks.errors import ProviderRateLimited
from gasworks.testing import FakeAnthropic, FakeBedrock, FakeOpenAI, FakeProviderServer
from gasworks.testing.providers import ChatProviderConformance


class TestOpenAI(ChatProviderConformance):
    @pytest.fixture
    def fake(self) -> Iterator[FakeProviderServer]:
        with FakeOpenAI() as fake:
            yield fake

    def entry(self, fake: FakeProviderServer) -> dict[str, Any]:
        return {"provider": "openai", "base_url": f"{fake.url}/v1"}


class TestOpenAICompatible(ChatProviderConformance):
    @pytest.fixture
    def fake(self) -> Iterator[FakeProviderServer]:
        with FakeOpenAI() as fake:
            yield fake

    def entry(self, fake: FakeProviderServer) -> dict[str, Any]:
        return {"provider": "openai_compatible", "base_url": f"{fake.url}/v1"}


class TestAnthropic(ChatProviderConformance):
    #: message_start, content_block_start, ping, "Hello ", "from "
    events_before_text = 5

    @pytest.fixture
    def fake(self) -> Iterator[FakeProviderServer]:
        with FakeAnthropic() as fake:
            yield fake

    def entry(self, fake: FakeProviderServer) -> dict[str, Any]:
        return {"provider": "anthropic", "base_url": fake.url}


class TestBedrock(ChatProviderConformance):
    #: the fake's default in-stream exception is a throttlingException
    stream_error = ProviderRateLimited

    @pytest.fixture
    def fake(self) -> Iterator[FakeProviderServer]:
        with FakeBedrock() as fake:
            yield fake

    def entry(self, fake: FakeProviderServer) -> dict[str, Any]:
        return {"provider": "bedrock"}

    def settings(self, fake: FakeProviderServer) -> dict[str, Any]:
        return {"bedrock_endpoint_url": fake.url}
