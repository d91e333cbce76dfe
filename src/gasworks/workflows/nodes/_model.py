"""Calling the model gateway from nodes: request building, streams, JSON answers."""

from __future__ import annotations

import json
from typing import Any

from gasworks.errors import ConfigurationError
from gasworks.modeltypes import CallScope, ChatRequest, ChatResult, Message
from gasworks.workflows.context import RunContext
from gasworks.workflows.ports import ModelCaller


def models(rc: RunContext) -> ModelCaller:
    caller = rc.ports.models
    if caller is None:
        raise ConfigurationError(
            "No model gateway is configured for workflow runs.",
            details={"node": rc.node_id},
        )
    return caller


def result_dict(r: ChatResult) -> dict[str, Any]:
    return {
        "text": r.text,
        "model": r.model,
        "finishReason": r.finish_reason.value,
        "usage": {"inputTokens": r.usage.input_tokens, "outputTokens": r.usage.output_tokens},
        "cost": str(r.cost),
        "demo": r.demo,
    }


async def chat(rc: RunContext, request: ChatRequest, scope: CallScope | None = None) -> ChatResult:
    result = await models(rc).chat(scope or rc.scope(), request)
    rc.add_usage(result.usage.total_tokens, result.cost)
    return result


async def chat_json(rc: RunContext, model: str | None, system: str, user: str) -> dict[str, Any]:
    """A JSON-mode call; returns the parsed object ({} when the answer is not JSON)."""
    request = ChatRequest(
        model=model,
        messages=[Message("system", system), Message("user", user)],
        response_format={"type": "json_object"},
        temperature=0,
    )
    result = await chat(rc, request)
    return parse_json_object(result.text)


def parse_json_object(text: str) -> dict[str, Any]:
    text = text.strip()
    if text.startswith("```"):
        text = text.strip("`")
        text = text[text.find("{") :] if "{" in text else text
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return {}
    try:
        value = json.loads(text[start : end + 1])
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
