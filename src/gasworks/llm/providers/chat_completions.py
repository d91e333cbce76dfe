"""The OpenAI Chat Completions wire format shared by the ``openai`` (SDK) and
``openai_compatible`` (plain httpx) adapters: request bodies and finish reasons."""

from __future__ import annotations

from typing import Any

from gasworks.llm.registry.resolved import ResolvedModel
from gasworks.llm.types import ChatRequest, FinishReason, Message

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
