"""OpenAI Chat Completions wire format: request validation and response rendering.

Requests are validated with pydantic and converted to the shared ``ChatRequest``; responses
and SSE chunks are rendered as plain dicts / pre-formatted strings (the streaming hot path
formats each chunk with one ``json.dumps`` of the delta text).
"""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gasworks.bounds import Money, TokenCount, TokenId
from gasworks.errors import GasworksError, ValidationFailed
from gasworks.modeltypes import (
    ChatRequest,
    ChatResult,
    EmbedRequest,
    EmbedResult,
    FinishReason,
    Message,
    StreamChunk,
    Usage,
    encode_base64_floats,
)

_ROLE_MAP = {"developer": "system"}
#: OpenAI parameters passed through to providers untouched (where they understand them)
PASS_THROUGH = frozenset(
    {
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "parallel_tool_calls",
        "reasoning_effort",
        "service_tier",
        "metadata",
        # refused by the gateway for models whose provider has none (``check_capabilities``)
        "logprobs",
        "top_logprobs",
    }
)


class WireMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    #: as OpenAI: the usage chunk (``choices: []``) is sent only when asked for
    include_usage: bool = False


class PromptScope(BaseModel):
    """gasworks extension: answer with the prompt deployed for (tenant, workflow, model)."""

    model_config = ConfigDict(extra="forbid")

    workflow_id: str | None = Field(default=None, max_length=200)
    conversation_id: str | None = Field(default=None, max_length=200)
    #: template values (``inputs``, ``slots``, ``context``...); ``inputs.user_prompt`` defaults
    #: to the last user message
    variables: dict[str, Any] = Field(default_factory=dict)
    strict: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = Field(default=None, max_length=300)
    messages: list[WireMessage] = Field(min_length=1)
    max_tokens: TokenCount | None = None
    max_completion_tokens: TokenCount | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    n: int = Field(default=1, ge=1, le=1)
    #: gasworks extensions (send with the openai client's ``extra_body``)
    cost_limit: Money | None = None
    truncate: bool = False
    prompt_scope: PromptScope | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, v: int) -> int:
        if v != 1:
            raise ValueError("only n=1 is supported")
        return v

    def to_chat_request(self) -> ChatRequest:
        extra = {k: v for k, v in (self.model_extra or {}).items() if k in PASS_THROUGH}
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        return ChatRequest(
            model=self.model or None,
            messages=[
                Message(
                    role=_ROLE_MAP.get(m.role, m.role),  # type: ignore[arg-type]
                    content=m.content if m.content is not None else "",
                    name=m.name,
                    tool_call_id=m.tool_call_id,
                    tool_calls=m.tool_calls,
                )
                for m in self.messages
            ],
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=stop,
            tools=self.tools,
            tool_choice=self.tool_choice,
            response_format=self.response_format,
            user=self.user,
            cost_limit=self.cost_limit,
            truncate=self.truncate,
            extra=extra,
        )


#: inputs per /v1/embeddings request (OpenAI's own limit); the gateway batches below it
MAX_EMBEDDING_INPUTS = 2048


class EmbeddingsRequest(BaseModel):
    """OpenAI's ``POST /v1/embeddings`` body. Token-id inputs are refused (gasworks embeds
    text: a token array means nothing to a model of another tokenizer)."""

    model_config = ConfigDict(extra="ignore")

    input: str | list[str] | list[TokenId] | list[list[TokenId]]
    model: str | None = Field(default=None, max_length=300)
    dimensions: TokenCount | None = None
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None
    #: gasworks extensions (send with the openai client's ``extra_body``)
    purpose: Literal["document", "query"] = "document"
    cost_limit: Money | None = None

    def to_embed_request(self) -> EmbedRequest:
        inputs = [self.input] if isinstance(self.input, str) else self.input
        if any(not isinstance(i, str) for i in inputs):
            raise ValidationFailed(
                "input must be a string or a list of strings; token arrays are not supported.",
                details={"param": "input"},
            )
        texts: list[str] = [i for i in inputs if isinstance(i, str)]
        if len(texts) > MAX_EMBEDDING_INPUTS:
            raise ValidationFailed(
                f"input has {len(texts)} items; at most {MAX_EMBEDDING_INPUTS} per request.",
                details={"param": "input", "limit": MAX_EMBEDDING_INPUTS},
            )
        return EmbedRequest(
            model=self.model or None,
            inputs=texts,
            dimensions=self.dimensions,
            purpose=self.purpose,
            cost_limit=self.cost_limit,
        )


def render_embeddings(result: EmbedResult, encoding: str) -> dict[str, Any]:
    """An ``EmbedResult`` in OpenAI's list shape (``base64``: little-endian float32s)."""
    encode = encode_base64_floats if encoding == "base64" else None
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(v) if encode else v}
            for i, v in enumerate(result.vectors)
        ],
        "model": result.model,
        "usage": {"prompt_tokens": result.input_tokens, "total_tokens": result.input_tokens},
        "gasworks": {
            "provider": result.provider,
            "cost": str(result.cost),
            "dimensions": result.dimensions,
        },
    }


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage_dict(u: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.total_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_input_tokens},
    }


def _gasworks_meta(
    provider: str | None, cost: Decimal | None, u: Usage | None, demo: bool, notes: dict[str, Any]
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "provider": provider,
        "cost": str(cost) if cost is not None else None,
        "usageEstimated": bool(u and u.estimated),
        "demo": demo,
    }
    meta.update(notes)
    return meta


def render_completion(result: ChatResult) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": result.text}
    if result.tool_calls:
        message["tool_calls"] = result.tool_calls
        if not result.text:
            message["content"] = None
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": result.model,
        "system_fingerprint": "gasworks-demo" if result.demo else "gasworks",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": result.finish_reason.value,
                "logprobs": result.logprobs,
            }
        ],
        "usage": usage_dict(result.usage),
        "gasworks": _gasworks_meta(
            result.provider, result.cost, result.usage, result.demo, result.notes
        ),
    }


class ChunkRenderer:
    """Formats one stream's SSE events; the per-chunk cost is one ``json.dumps``."""

    def __init__(self, model: str, include_usage: bool, demo: bool) -> None:
        self.include_usage = include_usage
        self.demo = demo
        self.model = model
        self._head = (
            f'data: {{"id":"{completion_id()}","object":"chat.completion.chunk",'
            f'"created":{int(time.time())},"model":{json.dumps(model)},'
            f'"system_fingerprint":"{"gasworks-demo" if demo else "gasworks"}",'
        )
        self._first = True

    def chunk(self, c: StreamChunk) -> str:
        out = ""
        if self._first:
            self._first = False
            out = self._head + (
                '"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
                '"finish_reason":null}]}\n\n'
            )
        if c.tool_calls:
            delta: dict[str, Any] = {"tool_calls": c.tool_calls}
            if c.delta:
                delta["content"] = c.delta
            out += (
                self._head + f'"choices":[{{"index":0,"delta":{json.dumps(delta)},'
                '"finish_reason":null}]}\n\n'
            )
        elif c.logprobs is not None:
            out += (
                self._head + f'"choices":[{{"index":0,"delta":{{"content":{json.dumps(c.delta)}}},'
                f'"logprobs":{json.dumps(c.logprobs)},"finish_reason":null}}]}}\n\n'
            )
        elif c.delta:
            out += (
                self._head + f'"choices":[{{"index":0,"delta":{{"content":{json.dumps(c.delta)}}},'
                '"finish_reason":null}]}\n\n'
            )
        if c.finish_reason is not None:
            out += self._final(c.finish_reason, c)
        return out

    def _final(self, finish: FinishReason, c: StreamChunk) -> str:
        model = c.model or self.model
        head = (
            self._head
            if model == self.model
            else self._head.replace(
                f'"model":{json.dumps(self.model)}', f'"model":{json.dumps(model)}'
            )
        )
        out = (
            head + f'"choices":[{{"index":0,"delta":{{}},"finish_reason":"{finish.value}"}}]}}\n\n'
        )
        if self.include_usage and c.usage is not None:
            meta = _gasworks_meta(None, c.cost, c.usage, c.demo, c.notes or {})
            meta.pop("provider")
            out += (
                head + f'"choices":[],"usage":{json.dumps(usage_dict(c.usage))},'
                f'"gasworks":{json.dumps(meta)}}}\n\n'
            )
        return out + "data: [DONE]\n\n"


_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(exc: GasworksError) -> dict[str, Any]:
    """OpenAI's error shape with the gasworks code inside."""
    param = exc.details.get("param")
    if param is None and exc.code == "VALIDATION_FAILED":
        errors = exc.details.get("errors") or []
        path = str(errors[0].get("path") or "") if errors else ""
        # OpenAI names the body field itself ("messages"), not its location ("body.messages")
        param = path.removeprefix("body.") or None
    if param is None and exc.code == "VALIDATION_FAILED" and "field" in exc.details:
        param = str(exc.details["field"])
    if param is None and exc.code == "MODEL_NOT_FOUND":
        param = "model"
    return {
        "error": {
            "message": exc.message,
            "type": _TYPES.get(
                exc.status, "api_error" if exc.status >= 500 else "invalid_request_error"
            ),
            "param": param,
            "code": exc.code,
        }
    }


def stream_error_event(exc: GasworksError) -> str:
    return f"data: {json.dumps(error_body(exc))}\n\n"
