"""OpenAI Chat Completions through the official ``openai`` SDK (``AsyncOpenAI``).

The SDK's own retries are off (``max_retries=0``): the gateway retries. Streams ask for usage
(``stream_options.include_usage``); a server that sends none gets its usage estimated and
marked. Every SDK / transport error is classified here into the gasworks provider errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from gasworks.errors import (
    GasworksError,
    MissingDependency,
    ProviderAuthFailed,
    ProviderStreamInterrupted,
)
from gasworks.llm.estimate import estimate_prompt_tokens, estimate_tokens
from gasworks.llm.providers.base import classify_sdk_error
from gasworks.llm.providers.chat_completions import FINISH, request_params
from gasworks.llm.registry.resolved import ResolvedModel
from gasworks.llm.types import ChatRequest, ChatResult, FinishReason, StreamChunk, Usage

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
            self._client = sdk.AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0)
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
        """``chat.completions.create`` without its per-call TypedDict transform.

        ``create()`` walks every parameter against the SDK's TypedDict annotations (about
        0.3-0.5 ms per call here); our parameters are already plain JSON, so they go straight
        to the SDK's ``post`` — same transport, auth, error mapping and response models.
        """
        sdk = openai
        stream = bool(params.get("stream"))
        options: dict[str, Any] = {"timeout": attempt_timeout}
        return await client.post(
            "/chat/completions",
            body=params,
            cast_to=sdk.types.chat.ChatCompletion,
            options=options,
            stream=stream,
            stream_cls=sdk.AsyncStream[sdk.types.chat.ChatCompletionChunk] if stream else None,
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
            resp = await self._create(client, self._params(model, req), attempt_timeout)
            choice = resp.choices[0]
            msg = choice.message
            tool_calls = [tc.model_dump(exclude_none=True) for tc in msg.tool_calls or []]
            text = msg.content or ""
            usage = self._usage(resp.usage)
        except Exception as exc:
            raise classify(self.name, exc) from exc
        if usage is None:
            ratio = model.entry.fallback_token_ratio
            usage = Usage(
                input_tokens=estimate_prompt_tokens(req.messages, ratio, model.entry.tokenizer),
                output_tokens=estimate_tokens(text, ratio, model.entry.tokenizer),
                estimated=True,
            )
        return ChatResult(
            text=text,
            finish_reason=FINISH.get(choice.finish_reason or "stop", FinishReason.STOP),
            usage=usage,
            model=model.id,
            provider=self.name,
            tool_calls=tool_calls or None,
        )

    @staticmethod
    def _usage(u: Any) -> Usage | None:
        if u is None:
            return None
        details = getattr(u, "prompt_tokens_details", None)
        cached = getattr(details, "cached_tokens", None) or 0
        return Usage(
            input_tokens=u.prompt_tokens or 0,
            output_tokens=u.completion_tokens or 0,
            cached_input_tokens=cached,
        )

    async def stream(
        self, model: ResolvedModel, req: ChatRequest, attempt_timeout: float
    ) -> AsyncIterator[StreamChunk]:
        client = self._client_or_raise()
        params = self._params(model, req)
        params["stream_options"] = {"include_usage": True}
        parts: list[str] = []
        finish: FinishReason | None = None
        usage: Usage | None = None
        stream: Any = None
        try:
            params["stream"] = True
            stream = await self._create(client, params, attempt_timeout)
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = self._usage(chunk.usage)
                for choice in chunk.choices:
                    delta = choice.delta
                    text = delta.content or "" if delta is not None else ""
                    calls = delta.tool_calls if delta is not None else None
                    if text or calls:
                        parts.append(text)
                        yield StreamChunk(
                            delta=text,
                            tool_calls=[c.model_dump(exclude_none=True) for c in calls]
                            if calls
                            else None,
                        )
                    if choice.finish_reason:
                        finish = FINISH.get(choice.finish_reason, FinishReason.STOP)
        except Exception as exc:
            raise classify(self.name, exc, streaming=True) from exc
        finally:
            if stream is not None:
                await stream.close()
        if finish is None:
            raise ProviderStreamInterrupted(
                f"{self.name} ended the stream before its end (no finish reason).",
                details={"provider": self.name, "model": model.id},
            )
        if usage is None:
            ratio = model.entry.fallback_token_ratio
            usage = Usage(
                input_tokens=estimate_prompt_tokens(req.messages, ratio, model.entry.tokenizer),
                output_tokens=estimate_tokens("".join(parts), ratio, model.entry.tokenizer),
                estimated=True,
            )
        yield StreamChunk(finish_reason=finish, usage=usage)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
