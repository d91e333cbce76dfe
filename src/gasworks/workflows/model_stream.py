"""A model answer being streamed through a run: produced by the model nodes, forwarded by
StreamToClient, finished by the runner. Here rather than among the node types, so the runner
imports no node type."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

from gasworks.modeltypes import StreamChunk, Usage
from gasworks.workflows.context import RunContext


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
        "on_done",
        "prompt_version_id",
        "started",
        "text",
        "usage",
    )

    def __init__(
        self,
        rc: RunContext,
        node_id: str,
        model: str | None,
        chunks: AsyncIterator[StreamChunk],
        prompt_version_id: str | None = None,
    ) -> None:
        self._rc = rc
        self.prompt_version_id = prompt_version_id
        #: called once the answer is complete (the runner's deferred ``node.finished``)
        self.on_done: Callable[[ModelStream], None] | None = None
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
            if self.on_done is not None:
                self.on_done(self)

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
            "promptVersionId": self.prompt_version_id,
        }
