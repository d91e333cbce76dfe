"""OpenAI Chat Completions through the official ``openai`` SDK (``AsyncOpenAI``).

The SDK's own retries are off (``max_retries=0``): the gateway retries. Streams ask for usage
(``stream_options.include_usage``); a server that sends none gets its usage estimated and
marked. Every SDK / transport error is classified here into the gasworks provider errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from gasworks.errors import GasworksError, MissingDependency, ProviderAuthFailed
from gasworks.llm.providers.base import classify_sdk_error, sdk_http_client
from gasworks.llm.providers.chat_completions import (
    StreamParser,
    parse_completion,
    request_params,
)
from gasworks.llm.registry.resolved import ResolvedModel
from gasworks.llm.types import ChatRequest, ChatResult, StreamChunk

try:
    import openai
except ImportError:  # pragma: no cover - exercised only without the extra
    openai = None  # type: ignore[assignment]


def require_openai() -> Any:
    if openai is None:
        raise MissingDependency(
            "The OpenAI provider needs the openai SDK: pip install 'gasworks[openai]'",
            details={"extra": "openai"},
        )
    return openai


def classify(provider: str, exc: BaseException, *, streaming: bool = False) -> GasworksError:
    """Any error of the openai SDK or its transport, as a gasworks error."""
    return classify_sdk_error(provider, openai, exc, streaming=streaming)


class OpenAIProvider:
    name = "openai"
    #: the parameter that bounds the answer's length
    max_tokens_param = "max_completion_tokens"

    def __init__(self, *, api_key: str | None, base_url: str | None) -> None:
        sdk = require_openai()
        self._error: GasworksError | None = None
        self._client: Any = None
        try:
            self._client = sdk.AsyncOpenAI(
                api_key=api_key,
                base_url=base_url,
                max_retries=0,
                **sdk_http_client(sdk),
            )
        except sdk.OpenAIError:
            self._error = ProviderAuthFailed(
                f"No API key for provider {self.name}: set OPENAI_API_KEY (environment or "
                "GASWORKS_SECRETS_FILE), or api_key_env on the model entry.",
                details={"provider": self.name},
            )

    def _params(self, model: ResolvedModel, req: ChatRequest) -> dict[str, Any]:
        return request_params(model, req, self.max_tokens_param)

    @staticmethod
    async def _create(client: Any, params: dict[str, Any], attempt_timeout: float) -> Any:
        """``chat.completions.create`` as plain JSON, without the SDK's per-call typing work.

        ``create()`` walks every parameter against the SDK's TypedDict annotations (about
        0.3-0.5 ms per call here), and building a response model per answer or stream event
        cost more again (``cast_to=object`` asks the SDK for the decoded JSON). Our parameters
        are already plain JSON, so they go straight to the SDK's ``post``: same transport,
        auth, error classes and stream decoding.
        """
        sdk = openai
        stream = bool(params.get("stream"))
        return await client.post(
            "/chat/completions",
            body=params,
            cast_to=object,
            options={"timeout": attempt_timeout},
            stream=stream,
            stream_cls=sdk.AsyncStream[object] if stream else None,
        )

    def _client_or_raise(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._client

    async def chat(
        self, model: ResolvedModel, req: ChatRequest, attempt_timeout: float
    ) -> ChatResult:
        client = self._client_or_raise()
        try:
            data = await self._create(client, self._params(model, req), attempt_timeout)
            return parse_completion(self.name, model, req, data)
        except Exception as exc:
            raise classify(self.name, exc) from exc

    async def stream(
        self, model: ResolvedModel, req: ChatRequest, attempt_timeout: float
    ) -> AsyncIterator[StreamChunk]:
        client = self._client_or_raise()
        params = self._params(model, req)
        params["stream"] = True
        params["stream_options"] = {"include_usage": True}
        parser = StreamParser(self.name)
        stream: Any = None
        try:
            stream = await self._create(client, params, attempt_timeout)
            async for event in stream:
                for chunk in parser.feed(event):
                    yield chunk
        except Exception as exc:
            raise classify(self.name, exc, streaming=True) from exc
        finally:
            if stream is not None:
                await stream.close()
        yield parser.last(model, req)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
