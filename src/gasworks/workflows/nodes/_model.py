"""Calling the model gateway from nodes: request building, streams, JSON answers."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from gasworks.errors import ConfigurationError
from gasworks.modeltypes import ChatRequest, ChatResult, Message, StreamChunk, Usage
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


async def chat(rc: RunContext, request: ChatRequest) -> ChatResult:
    result = await models(rc).chat(rc.scope(), request)
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


class ModelStream:
    """A model answer being streamed. A StreamToClient node iterates it and forwards each
    delta live; whoever finishes it records usage. ``result()`` is the finished answer."""

    __slots__ = (
        "_chunks",
        "_first",
        "_rc",
        "chunk_count",
        "cost",
        "done",
        "finish_reason",
        "model",
        "node_id",
        "started",
        "text",
        "usage",
    )

    def __init__(
        self, rc: RunContext, node_id: str, model: str | None, chunks: AsyncIterator[StreamChunk]
    ) -> None:
        self._rc = rc
        self._chunks = chunks
        self._first: StreamChunk | None = None
        self.node_id = node_id
        self.model = model
        self.text = ""
        self.usage: Usage | None = None
        self.finish_reason = "stop"
        self.done = False
        self.chunk_count = 0
        self.cost = Decimal(0)
        self.started = time.perf_counter()

    async def open(self) -> ModelStream:
        """Wait for the first chunk, so refusals (budget, breaker, context window) and
        provider errors surface in the ModelInvoke node, not downstream."""
        try:
            self._first = await anext(self._chunks)
        except StopAsyncIteration:
            self._first = None
        return self

    async def _all(self) -> AsyncIterator[StreamChunk]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        async for chunk in self._chunks:
            yield chunk

    async def deltas(self) -> AsyncIterator[str]:
        if self.done:
            return
        parts: list[str] = []
        try:
            async for chunk in self._all():
                if chunk.delta:
                    parts.append(chunk.delta)
                    self.chunk_count += 1
                    yield chunk.delta
                if chunk.usage is not None:
                    self.usage = chunk.usage
                if chunk.finish_reason is not None:
                    self.finish_reason = chunk.finish_reason.value
                cost = getattr(chunk, "cost", None)  # the gateway's last chunk carries it
                if isinstance(cost, Decimal):
                    self.cost = cost
                answered = getattr(chunk, "model", None)
                if isinstance(answered, str):
                    self.model = answered
        finally:
            self.text = "".join(parts)
            self.done = True
            usage = self.usage
            self._rc.add_usage(usage.total_tokens if usage else 0, self.cost)

    async def drain(self) -> dict[str, Any]:
        async for _ in self.deltas():
            pass
        return self.result()

    @property
    def tokens(self) -> int:
        return self.usage.total_tokens if self.usage else self.chunk_count

    def result(self) -> dict[str, Any]:
        u = self.usage or Usage()
        return {
            "text": self.text,
            "model": self.model,
            "finishReason": self.finish_reason,
            "usage": {"inputTokens": u.input_tokens, "outputTokens": u.output_tokens},
            "cost": str(self.cost),
        }
