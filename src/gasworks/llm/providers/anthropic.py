"""Anthropic Messages API through the official ``anthropic`` SDK (``AsyncAnthropic``).

OpenAI-style requests are mapped to Messages: system messages become ``system``, tool results
become ``tool_result`` blocks, OpenAI tool definitions become ``input_schema`` tools, image
parts become image blocks. Calls go through the SDK client's ``post`` as plain JSON
(``base.sdk_post_json``): the SDK authenticates, sends, maps errors and decodes the event
stream, the answer and each event are read here as dicts. Streams use the raw server-sent
events, whose ``message_start`` / ``message_delta`` carry the usage, so stream usage is always
exact. A stream without ``message_stop`` is a cut stream. SDK retries are off: the gateway
retries.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from gasworks.errors import (
    GasworksError,
    MissingDependency,
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderStreamInterrupted,
)
from gasworks.llm.providers.base import (
    DEFAULT_KEEPALIVE_SECONDS,
    CallErrors,
    PayloadErrors,
    classify_sdk_error,
    mapped_events,
    sdk_http_client,
    sdk_post_json,
)
from gasworks.llm.registry.resolved import ResolvedModel
from gasworks.modeltypes import ChatRequest, ChatResult, FinishReason, Message, StreamChunk, Usage

try:
    import anthropic
except ImportError:  # pragma: no cover - exercised only without the extra
    anthropic = None  # type: ignore[assignment]

#: Anthropic requires max_tokens; used when the caller gives none
DEFAULT_MAX_TOKENS = 4096
#: the Messages API, posted as plain JSON (no typed models per answer or event)
_PATH = "/v1/messages"

_FINISH = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "pause_turn": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.CONTENT_FILTER,
}


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    url = str((part.get("image_url") or {}).get("url", ""))
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media = header[5:].split(";")[0] or "image/png"
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _content(content: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    out: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            out.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            out.append(_image_block(part))
        else:
            out.append(part)
    return out


def to_messages(messages: list[Message]) -> tuple[str | None, list[dict[str, Any]]]:
    """OpenAI-style messages as Anthropic's ``system`` and ``messages``."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            system.append(m.text())
        elif m.role == "tool":
            block = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.text()}
            out.append({"role": "user", "content": [block]})
        elif m.role == "assistant" and m.tool_calls:
            blocks: list[dict[str, Any]] = []
            if m.text():
                blocks.append({"type": "text", "text": m.text()})
            for call in m.tool_calls:
                fn = call.get("function", {})
                args = fn.get("arguments") or "{}"
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": fn.get("name"),
                        "input": json.loads(args) if isinstance(args, str) else args,
                    }
                )
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": m.role, "content": _content(m.content)})
    return ("\n\n".join(system) if system else None), out


def to_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for t in tools:
        fn = t.get("function", t)
        tool = {"name": fn["name"], "input_schema": fn.get("parameters") or {"type": "object"}}
        if fn.get("description"):
            tool["description"] = fn["description"]
        out.append(tool)
    return out


def to_tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if name:
            return {"type": "tool", "name": name}
    return None


def _usage(u: dict[str, Any], output_tokens: int | None = None) -> Usage:
    """Usage from a Messages ``usage`` object; input counts cache reads and writes too."""
    cache_read = u.get("cache_read_input_tokens") or 0
    cache_write = u.get("cache_creation_input_tokens") or 0
    return Usage(
        input_tokens=(u.get("input_tokens") or 0) + cache_read + cache_write,
        output_tokens=output_tokens if output_tokens is not None else (u["output_tokens"] or 0),
        cached_input_tokens=cache_read,
        cache_write_input_tokens=cache_write,
    )


def _tool_call(block: dict[str, Any]) -> dict[str, Any]:
    """A ``tool_use`` block of an answer as an OpenAI tool call."""
    return {
        "id": block["id"],
        "type": "function",
        "function": {"name": block["name"], "arguments": json.dumps(block["input"])},
    }


class _StreamEvents:
    """Reads a Messages stream's decoded events, one at a time, into ``StreamChunk`` s."""

    __slots__ = ("finish", "output_tokens", "start_usage", "stopped", "tool_index")

    def __init__(self) -> None:
        self.start_usage: dict[str, Any] | None = None
        self.output_tokens = 0
        self.finish: FinishReason = FinishReason.STOP
        self.stopped = False
        #: content block index -> tool call index (OpenAI numbers tool calls from 0)
        self.tool_index: dict[int, int] = {}

    def feed(self, ev: dict[str, Any]) -> StreamChunk | None:
        """The chunk an event carries (text or a tool call piece), or None."""
        kind = ev["type"]
        if kind == "content_block_delta":
            d = ev["delta"]
            if d["type"] == "text_delta":
                return StreamChunk(delta=d["text"])
            if d["type"] == "input_json_delta" and ev["index"] in self.tool_index:
                call = {
                    "index": self.tool_index[ev["index"]],
                    "function": {"arguments": d["partial_json"]},
                }
                return StreamChunk(tool_calls=[call])
        elif kind == "message_start":
            self.start_usage = ev["message"]["usage"]
        elif kind == "content_block_start" and ev["content_block"]["type"] == "tool_use":
            self.tool_index[ev["index"]] = len(self.tool_index)
            block = ev["content_block"]
            call = {
                "index": self.tool_index[ev["index"]],
                "id": block["id"],
                "type": "function",
                "function": {"name": block["name"], "arguments": ""},
            }
            return StreamChunk(tool_calls=[call])
        elif kind == "message_delta":
            self.output_tokens = (ev.get("usage") or {}).get("output_tokens") or self.output_tokens
            stop_reason = ev["delta"].get("stop_reason")
            if stop_reason:
                self.finish = _FINISH.get(stop_reason, FinishReason.STOP)
        elif kind == "message_stop":
            self.stopped = True
        return None


class AnthropicProvider:
    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        keepalive: float = DEFAULT_KEEPALIVE_SECONDS,
    ) -> None:
        if anthropic is None:
            raise MissingDependency.package("The Anthropic provider", "anthropic", "anthropic")
        self._error: GasworksError | None = None
        if not api_key:
            self._error = ProviderAuthFailed(
                "No API key for provider anthropic: set ANTHROPIC_API_KEY (environment or "
                "GASWORKS_SECRETS_FILE), or api_key_env on the model entry.",
                details={"provider": self.name},
            )
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key or "missing",
            base_url=base_url,
            max_retries=0,
            **sdk_http_client(anthropic, keepalive),
        )
        self._call = CallErrors(self._translate)
        self._stream_call = CallErrors(self._translate, streaming=True)
        self._payload = PayloadErrors(self.name)

    def _translate(self, exc: BaseException, streaming: bool) -> GasworksError | None:
        return classify_sdk_error(self.name, anthropic, exc, streaming=streaming)

    def _params(self, model: ResolvedModel, req: ChatRequest) -> dict[str, Any]:
        if self._error is not None:
            raise self._error
        system, messages = to_messages(req.messages)
        p: dict[str, Any] = {
            "model": model.provider_model_id,
            "messages": messages,
            "max_tokens": req.max_tokens or min(DEFAULT_MAX_TOKENS, model.entry.max_output_tokens),
        }
        if system:
            p["system"] = system
        if req.temperature is not None:
            if req.temperature > 1.0:
                # OpenAI accepts 0..2, Anthropic 0..1: refuse rather than silently change it
                raise ProviderBadRequest(
                    f"temperature {req.temperature} is out of range for Anthropic models (0-1).",
                    details={"provider": self.name, "param": "temperature"},
                )
            p["temperature"] = req.temperature
        if req.top_p is not None:
            p["top_p"] = req.top_p
        if req.stop:
            p["stop_sequences"] = req.stop
        if req.tools:
            p["tools"] = to_tools(req.tools)
        choice = to_tool_choice(req.tool_choice)
        if choice is not None:
            p["tool_choice"] = choice
        if req.user:
            p["metadata"] = {"user_id": req.user}
        if req.extra:
            p.update({k: v for k, v in req.extra.items() if k in ("top_k", "thinking")})
        return p

    async def chat(
        self, model: ResolvedModel, req: ChatRequest, attempt_timeout: float
    ) -> ChatResult:
        params = self._params(model, req)
        with self._call:
            data = await sdk_post_json(anthropic, self._client, _PATH, params, attempt_timeout)
        with self._payload:
            texts: list[str] = []
            calls: list[dict[str, Any]] = []
            for block in data["content"]:
                kind = block["type"]
                if kind == "text":
                    texts.append(block["text"])
                elif kind == "tool_use":
                    calls.append(_tool_call(block))
            usage = _usage(data["usage"])
            finish = _FINISH.get(data.get("stop_reason") or "end_turn", FinishReason.STOP)
        return ChatResult(
            text="".join(texts),
            finish_reason=finish,
            usage=usage,
            model=model.id,
            provider=self.name,
            tool_calls=calls or None,
        )

    async def stream(
        self, model: ResolvedModel, req: ChatRequest, attempt_timeout: float
    ) -> AsyncIterator[StreamChunk]:
        params = self._params(model, req)
        params["stream"] = True
        events = _StreamEvents()
        with self._stream_call:
            stream = await sdk_post_json(anthropic, self._client, _PATH, params, attempt_timeout)
        try:
            async for ev in mapped_events(stream, self._stream_call):
                with self._payload:
                    chunk = events.feed(ev)
                if chunk is not None:
                    yield chunk
        finally:
            await stream.close()
        if not events.stopped or events.start_usage is None:
            raise ProviderStreamInterrupted(
                "anthropic ended the stream before message_stop.",
                details={"provider": self.name, "model": model.id},
            )
        with self._payload:
            usage = _usage(events.start_usage, events.output_tokens)
        yield StreamChunk(finish_reason=events.finish, usage=usage)

    async def aclose(self) -> None:
        await self._client.close()
