"""A conformance suite every provider adapter inherits: one fault matrix, the same assertions.

Like ``gasworks.blobs.testing`` (and Haystack's document-store tests): the faults a vendor can
throw at an adapter are injected by its fake server (``gasworks.testing.Fault``), and every
adapter must turn each into the same gasworks error, retried (or not) the same way:

=========================== ====================================== =========================
fault                       error                                  retried by the gateway
=========================== ====================================== =========================
429 with ``Retry-After``    ``PROVIDER_RATE_LIMITED``              yes, after Retry-After
5xx                         ``PROVIDER_UNAVAILABLE``               yes
refused connection          ``PROVIDER_UNAVAILABLE``               yes
timeout (no answer)         ``PROVIDER_TIMEOUT``                   yes
malformed answer            ``PROVIDER_BAD_RESPONSE``              yes
stall before first byte     ``PROVIDER_TIMEOUT`` (stream)          yes
stall mid-stream            ``PROVIDER_TIMEOUT``, text kept        no: text reached the caller
cut stream                  ``PROVIDER_STREAM_INTERRUPTED``        no: text reached the caller
in-stream error event       classified by the event's type         no: text reached the caller
malformed stream event      ``PROVIDER_BAD_RESPONSE``              yes
=========================== ====================================== =========================

Usage in an adapter's tests::

    class TestMyAdapter(ChatProviderConformance):
        @pytest.fixture
        def fake(self):
            with FakeMyVendor() as fake:
                yield fake

        def entry(self, fake):  # the model entry's fields that point at the fake
            return {"provider": "my_vendor", "base_url": fake.url}

``ProviderFaultMatrix`` holds the faults of a one-shot call, ``call`` makes it (a chat by
default); ``EmbeddingProviderConformance`` is that matrix for embedding adapters (one
``Gateway.embed`` call), ``ChatProviderConformance`` adds the faults of a stream.
Needs pytest and pytest-asyncio (auto mode); the fakes run on 127.0.0.1 only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gasworks.errors import (
    GasworksError,
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderStreamInterrupted,
    ProviderTimeout,
    ProviderUnavailable,
)
from gasworks.llm.gateway import Gateway
from gasworks.llm.runtime import build_services
from gasworks.modeltypes import CallScope, ChatRequest, EmbedRequest, Message
from gasworks.settings import Settings
from gasworks.testing.server import FakeProviderServer, Fault

SCOPE = CallScope(tenant_id="ten_conformance")
#: the model id the suite registers for the adapter under test
MODEL = "conformance"
#: a model's per-attempt timeout in the timeout and stall tests (seconds)
SHORT_TIMEOUT = 0.3

#: builds a gateway: ``(sleeps, **entry fields) -> Gateway``
GatewayFactory = Callable[..., Gateway]


class ProviderFaultMatrix:
    """The faults of a one-shot call. Subclasses provide the ``fake`` fixture and ``entry``."""

    def entry(self, fake: FakeProviderServer) -> dict[str, Any]:
        """The model entry's fields that aim it at ``fake`` (provider, base_url...)."""
        raise NotImplementedError

    def settings(self, fake: FakeProviderServer) -> dict[str, Any]:
        """Extra ``Settings`` fields the adapter needs to reach ``fake`` (none by default)."""
        return {}

    def capabilities(self) -> dict[str, Any]:
        return {"streaming": True}

    async def call(self, gw: Gateway) -> Any:
        """One call through the gateway to the adapter under test."""
        return await gw.chat(SCOPE, ask())

    @pytest.fixture(autouse=True)
    def _fake_credentials(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Credentials are fakes; SDK endpoint variables from the host never leak in."""
        for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-real-key")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTTESTTEST")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret-not-real")
        monkeypatch.setenv("AWS_REGION", "us-east-1")

    @pytest.fixture
    async def gateway(
        self, tmp_path: Path, fake: FakeProviderServer
    ) -> AsyncIterator[GatewayFactory]:
        """A factory of gateways wired like the server's, aimed at ``fake`` (closed after)."""
        built: list[Gateway] = []

        def make(sleeps: list[float] | None = None, **entry: Any) -> Gateway:
            fields = {
                "id": MODEL,
                "provider_model_id": "conformance-model",
                "input_per_1k": "0.001",
                "output_per_1k": "0.002",
                "capabilities": self.capabilities(),
                **self.entry(fake),
                **entry,
            }
            path = tmp_path / f"models-{len(built)}.yaml"
            path.write_text(yaml.safe_dump({"models": [fields]}))
            settings = Settings(
                home=tmp_path / "home",
                models_file=path,
                provider_retry_initial_seconds=0.001,
                provider_retry_max_seconds=0.01,
                **self.settings(fake),
            )
            gw = build_services(settings).gateway
            if sleeps is not None:

                async def record(seconds: float) -> None:
                    sleeps.append(seconds)

                gw.sleep = record
            built.append(gw)
            return gw

        yield make
        for gw in built:
            await gw.providers.aclose()

    async def test_429_waits_retry_after_then_succeeds(
        self, fake: FakeProviderServer, gateway: GatewayFactory
    ) -> None:
        fake.faults.append(Fault.rate_limit(retry_after=2))
        sleeps: list[float] = []
        assert await self.call(gateway(sleeps))
        assert sleeps == [2.0] and len(fake.requests) == 2

    async def test_429_when_retries_are_exhausted(
        self, fake: FakeProviderServer, gateway: GatewayFactory
    ) -> None:
        fake.faults.append(Fault.rate_limit(retry_after=0))
        with pytest.raises(ProviderRateLimited) as info:
            await self.call(gateway(max_retries=0))
        assert info.value.status == 429 and info.value.retryable

    async def test_5xx_is_retried_then_succeeds(
        self, fake: FakeProviderServer, gateway: GatewayFactory
    ) -> None:
        fake.faults.extend([Fault.http(500), Fault.http(503)])
        sleeps: list[float] = []
        assert await self.call(gateway(sleeps))
        assert len(fake.requests) == 3 and len(sleeps) == 2

    async def test_5xx_is_unavailable(
        self, fake: FakeProviderServer, gateway: GatewayFactory
    ) -> None:
        fake.faults.append(Fault.http(500))
        with pytest.raises(ProviderUnavailable):
            await self.call(gateway(max_retries=0))
        assert len(fake.requests) == 1  # the SDK's own retries are off

    async def test_refused_connection_is_unavailable(
        self, fake: FakeProviderServer, gateway: GatewayFactory
    ) -> None:
        fake.stop()  # nothing listens on the port any more
        with pytest.raises(ProviderUnavailable) as info:
            await self.call(gateway(max_retries=0))
        assert info.value.retryable

    async def test_timeout(self, fake: FakeProviderServer, gateway: GatewayFactory) -> None:
        fake.faults.append(Fault.slow_first_byte(5.0))
        with pytest.raises(ProviderTimeout) as info:
            await self.call(gateway(timeout_seconds=SHORT_TIMEOUT, max_retries=0))
        assert info.value.retryable and info.value.status == 504

    async def test_malformed_answer_is_a_bad_response(
        self, fake: FakeProviderServer, gateway: GatewayFactory
    ) -> None:
        fake.faults.append(Fault.malformed())
        with pytest.raises(ProviderBadResponse):
            await self.call(gateway(max_retries=0))


class ChatProviderConformance(ProviderFaultMatrix):
    """The fault matrix of a chat adapter: the one-shot faults, and those of a stream."""

    #: the error the fake's default in-stream error event stands for
    stream_error: type[ProviderError] = ProviderUnavailable
    #: stream events the fake sends before its second word (faults come after them)
    events_before_text: int = 3

    async def test_stall_before_first_byte_times_out(
        self, fake: FakeProviderServer, gateway: GatewayFactory
    ) -> None:
        fake.faults.append(Fault.slow_first_byte(5.0))
        gw = gateway(timeout_seconds=SHORT_TIMEOUT, max_retries=0)
        text, _ = await text_before_error(gw, ProviderTimeout)
        assert text == ""

    async def test_stall_mid_stream_times_out_keeping_the_text(
        self, fake: FakeProviderServer, gateway: GatewayFactory
    ) -> None:
        fake.faults.append(Fault.stall(after_chunks=self.events_before_text, seconds=10))
        gw = gateway([], timeout_seconds=SHORT_TIMEOUT)
        text, err = await text_before_error(gw, ProviderTimeout)
        assert text and fake.reply.text.startswith(text) and err.retryable
        assert len(fake.requests) == 1  # text reached the caller: no silent retry

    async def test_cut_stream_is_interrupted_keeping_the_text(
        self, fake: FakeProviderServer, gateway: GatewayFactory
    ) -> None:
        fake.faults.append(Fault.cut_stream(after_chunks=self.events_before_text))
        text, _ = await text_before_error(gateway([]), ProviderStreamInterrupted)
        assert text and fake.reply.text.startswith(text)
        assert len(fake.requests) == 1

    async def test_error_event_in_the_stream_is_classified(
        self, fake: FakeProviderServer, gateway: GatewayFactory
    ) -> None:
        fake.faults.append(Fault.stream_error(after_chunks=self.events_before_text))
        text, _ = await text_before_error(gateway([]), self.stream_error)
        assert text and fake.reply.text.startswith(text)
        assert len(fake.requests) == 1

    async def test_malformed_event_is_a_bad_response(
        self, fake: FakeProviderServer, gateway: GatewayFactory
    ) -> None:
        fake.faults.append(Fault.malformed())
        await text_before_error(gateway(max_retries=0), ProviderBadResponse)

    async def test_stream_completes_with_usage(
        self, fake: FakeProviderServer, gateway: GatewayFactory
    ) -> None:
        parts: list[str] = []
        last = None
        async for chunk in gateway().stream(SCOPE, ask()):
            parts.append(chunk.delta)
            last = chunk
        assert "".join(parts) == fake.reply.text
        assert last is not None and last.finish_reason and last.usage is not None


class EmbeddingProviderConformance(ProviderFaultMatrix):
    """The fault matrix of an embedding adapter (no streams): one ``Gateway.embed`` call.
    ``entry`` adds ``kind: embedding`` and the model's ``embedding`` spec."""

    def capabilities(self) -> dict[str, Any]:
        return {}

    async def call(self, gw: Gateway) -> Any:
        result = await gw.embed(SCOPE, EmbedRequest(model=MODEL, inputs=["Say hello"]))
        assert len(result.vectors) == 1 and result.vectors[0]
        return result


def ask(text: str = "Say hello") -> ChatRequest:
    return ChatRequest(model=MODEL, messages=[Message("user", text)])


async def text_before_error(gw: Gateway, error: type[GasworksError]) -> tuple[str, GasworksError]:
    """Stream a request that must fail with ``error``: the text that arrived, and the error."""
    parts: list[str] = []
    with pytest.raises(error) as info:
        async for chunk in gw.stream(SCOPE, ask()):
            parts.append(chunk.delta)
    return "".join(parts), info.value
