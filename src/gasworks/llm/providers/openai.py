"""OpenAI Chat Completions through the official ``openai`` SDK (``AsyncOpenAI``).

The SDK's own retries are off (``max_retries=0``): the gateway retries. Streams ask for usage
(``stream_options.include_usage``); a server that sends none gets its usage estimated and
marked. Every SDK / transport error is classified here into the gasworks provider errors.

The SDK builds, authenticates and sends every request and raises its errors; what it would do
besides is left out (issue #19, ``docs/architecture.md``, "The `openai` adapter's CPU"): the
answer comes back as the SDK's raw HTTP response (``base.sdk_post_raw``), decoded with
``json.loads``, and a stream's ``data:`` lines are split from its bytes (``base.EventLines``)
as the ``openai_compatible`` adapter does, instead of through the SDK's response wrapper and
its SSE decoder; the SDK's telemetry headers are left out (``base.SDK_TELEMETRY_HEADERS``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from gasworks.errors import GasworksError, MissingDependency, ProviderAuthFailed
from gasworks.llm.providers.base import (
    DEFAULT_KEEPALIVE_SECONDS,
    CallErrors,
    EventLines,
    PayloadErrors,
    classify_sdk_error,
    mapped_events,
    sdk_http_client,
    sdk_lean_headers,
    sdk_post_raw,
)
from gasworks.llm.providers.chat_completions import (
    StreamParser,
    parse_completion,
    request_params,
)
from gasworks.llm.registry.resolved import ResolvedModel
from gasworks.modeltypes import ChatRequest, ChatResult, StreamChunk

try:
    import openai
except ImportError:  # pragma: no cover - exercised only without the extra
    openai = None  # type: ignore[assignment]

#: Chat Completions, posted as plain JSON (``base.sdk_post_raw``: no typed models per call)
_PATH = "/chat/completions"


def require_openai() -> Any:
    if openai is None:
        raise MissingDependency.package("The OpenAI provider", "openai", "openai")
    return openai


def classify(provider: str, exc: BaseException, *, streaming: bool = False) -> GasworksError | None:
    """An error of the openai SDK or its transport as a gasworks error; None if not theirs."""
    return classify_sdk_error(provider, openai, exc, streaming=streaming)


class OpenAIProvider:
    name = "openai"
    #: the parameter that bounds the answer's length
    max_tokens_param = "max_completion_tokens"

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        keepalive: float = DEFAULT_KEEPALIVE_SECONDS,
    ) -> None:
        sdk = require_openai()
        self._headers = sdk_lean_headers(sdk)
        self._error: GasworksError | None = None
        self._client: Any = None
        self._call = CallErrors(self._translate)
        self._stream_call = CallErrors(self._translate, streaming=True)
        self._payload = PayloadErrors(self.name)
        try:
            self._client = sdk.AsyncOpenAI(
                api_key=api_key,
                base_url=base_url,
                max_retries=0,
                **sdk_http_client(sdk, keepalive),
            )
        except sdk.OpenAIError:
            self._error = ProviderAuthFailed(
                f"No API key for provider {self.name}: set OPENAI_API_KEY (environment or "
                "GASWORKS_SECRETS_FILE), or api_key_env on the model entry.",
                details={"provider": self.name},
            )

    def _translate(self, exc: BaseException, streaming: bool) -> GasworksError | None:
        return classify(self.name, exc, streaming=streaming)

    def _params(self, model: ResolvedModel, req: ChatRequest) -> dict[str, Any]:
        return request_params(model, req, self.max_tokens_param)

    def _client_or_raise(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._client

    async def chat(
        self, model: ResolvedModel, req: ChatRequest, attempt_timeout: float
    ) -> ChatResult:
        client = self._client_or_raise()
        params = self._params(model, req)
        with self._call:
            r = await sdk_post_raw(client, _PATH, params, attempt_timeout, self._headers)
            data = json.loads(r.content)
        with self._payload:
            return parse_completion(self.name, model, req, data)

    async def stream(
        self, model: ResolvedModel, req: ChatRequest, attempt_timeout: float
    ) -> AsyncIterator[StreamChunk]:
        client = self._client_or_raise()
        params = self._params(model, req)
        params["stream"] = True
        params["stream_options"] = {"include_usage": True}
        parser = StreamParser(self.name)
        with self._stream_call:
            r = await sdk_post_raw(client, _PATH, params, attempt_timeout, self._headers)
        lines = EventLines()
        try:
            # read on past [DONE] to the end (b"": what is left is the last line): the
            # connection then goes back to the pool
            async for piece in mapped_events(r.aiter_bytes(), self._stream_call, end=b""):
                for data in lines.feed(piece):
                    with self._payload:
                        chunk = parser.feed(json.loads(data))
                    if chunk is not None:
                        yield chunk
        finally:
            await r.aclose()
        yield parser.last(model, req)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
