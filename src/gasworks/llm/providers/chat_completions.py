"""The OpenAI Chat Completions wire format shared by the ``openai`` (SDK) and
``openai_compatible`` (plain aiohttp) adapters: request bodies, and answers and stream events
as plain JSON (the SDK is asked for dicts, not its response models: building a pydantic
model per stream event cost more than everything else in the adapter)."""

from __future__ import annotations

from typing import Any

from gasworks.errors import ProviderStreamInterrupted
from gasworks.llm.estimate import estimate_prompt_tokens, estimate_tokens
from gasworks.llm.providers.base import classify_status, stream_error_status
from gasworks.llm.registry.resolved import ResolvedModel
from gasworks.modeltypes import ChatRequest, ChatResult, FinishReason, Message, StreamChunk, Usage

FINISH = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "content_filter": FinishReason.CONTENT_FILTER,
}


def wire_message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.name:
        out["name"] = m.name
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    if m.tool_calls:
        out["tool_calls"] = m.tool_calls
        if not m.content:
            out["content"] = None
    return out


def request_params(model: ResolvedModel, req: ChatRequest, max_tokens_param: str) -> dict[str, Any]:
    """A ``ChatRequest`` as a Chat Completions JSON body."""
    p: dict[str, Any] = {
        "model": model.provider_model_id,
        "messages": [wire_message(m) for m in req.messages],
    }
    if req.max_tokens is not None:
        p[max_tokens_param] = req.max_tokens
    if req.temperature is not None:
        p["temperature"] = req.temperature
    if req.top_p is not None:
        p["top_p"] = req.top_p
    if req.stop:
        p["stop"] = req.stop
    if req.tools:
        p["tools"] = req.tools
    if req.tool_choice is not None:
        p["tool_choice"] = req.tool_choice
    if req.response_format:
        p["response_format"] = req.response_format
    if req.user:
        p["user"] = req.user
    if req.extra:
        p.update(req.extra)
    return p


def parse_usage(u: dict[str, Any] | None) -> Usage | None:
    if not u:
        return None
    details = u.get("prompt_tokens_details") or {}
    return Usage(
        input_tokens=int(u.get("prompt_tokens") or 0),
        output_tokens=int(u.get("completion_tokens") or 0),
        cached_input_tokens=int(details.get("cached_tokens") or 0),
    )


def estimated_usage(model: ResolvedModel, req: ChatRequest, text: str) -> Usage:
    """Usage for a server that reported none (marked ``estimated``)."""
    ratio, tokenizer = model.entry.fallback_token_ratio, model.entry.tokenizer
    return Usage(
        input_tokens=estimate_prompt_tokens(req.messages, ratio, tokenizer),
        output_tokens=estimate_tokens(text, ratio, tokenizer),
        estimated=True,
    )


def parse_completion(
    provider: str, model: ResolvedModel, req: ChatRequest, data: dict[str, Any]
) -> ChatResult:
    """A Chat Completions JSON answer as a ``ChatResult`` (a missing key raises KeyError)."""
    choice = data["choices"][0]
    msg = choice.get("message") or {}
    text = msg.get("content") or ""
    return ChatResult(
        text=text,
        finish_reason=FINISH.get(choice.get("finish_reason") or "stop", FinishReason.STOP),
        usage=parse_usage(data.get("usage")) or estimated_usage(model, req, text),
        model=model.id,
        provider=provider,
        tool_calls=msg.get("tool_calls") or None,
        logprobs=choice.get("logprobs") or None,
    )


class StreamParser:
    """Turns a stream's decoded ``chat.completion.chunk`` events into ``StreamChunk`` s."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.parts: list[str] = []
        self.finish: FinishReason | None = None
        self.usage: Usage | None = None

    def feed(self, event: dict[str, Any]) -> StreamChunk | None:
        """The chunk an event carries (text or tool calls), or None (role, finish, usage)."""
        if "error" in event and not event.get("choices"):
            err = event["error"]
            message = err.get("message", "") if isinstance(err, dict) else str(err)
            kind = err.get("type") if isinstance(err, dict) else None
            # by its type, as the openai SDK path does: a rate limit is retried as one
            raise classify_status(self.provider, stream_error_status(kind, 500), str(message)[:500])
        if event.get("usage"):
            self.usage = parse_usage(event["usage"])
        choices = event.get("choices")
        if not choices:
            return None
        choice = choices[0]  # one choice: the gateway refuses n > 1
        reason = choice.get("finish_reason")
        if reason:
            self.finish = FINISH.get(reason, FinishReason.STOP)
        delta = choice.get("delta")
        if not delta:
            return None
        text, calls = delta.get("content") or "", delta.get("tool_calls")
        if text or calls:
            self.parts.append(text)
            return StreamChunk(delta=text, tool_calls=calls, logprobs=choice.get("logprobs"))
        return None

    def last(self, model: ResolvedModel, req: ChatRequest) -> StreamChunk:
        """The closing chunk (finish reason and usage); refuses a stream cut before its end."""
        if self.finish is None:
            raise ProviderStreamInterrupted(
                f"{self.provider} ended the stream before its end (no finish reason).",
                details={"provider": self.provider, "model": model.id},
            )
        usage = self.usage or estimated_usage(model, req, "".join(self.parts))
        return StreamChunk(finish_reason=self.finish, usage=usage)
