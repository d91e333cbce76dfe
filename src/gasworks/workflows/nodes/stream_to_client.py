"""StreamToClient: sends the answer to the client as incremental chunks.

Each chunk event carries ``runId``, ``nodeId``, ``chunk``, ``chunkNumber``, ``tokensUsed``,
``generationTimeMs`` and ``isStreamingChunk`` (True for live model deltas, False for the one
chunk of an already complete text). A streaming ModelInvoke upstream is forwarded live.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field, model_validator

from gasworks.workflows.context import RunContext
from gasworks.workflows.definition import NodeSpec
from gasworks.workflows.model_stream import ModelStream
from gasworks.workflows.nodes._base import BaseNode, NodeConfig
from gasworks.workflows.registry import NodeType
from gasworks.workflows.templating import Template, to_text


class StreamToClientConfig(NodeConfig):
    source: str | None = Field(default=None, description="Node whose output to stream.")
    template: str | None = Field(default=None, description="Or: a template to render and send.")

    @model_validator(mode="after")
    def _one_of(self) -> StreamToClientConfig:
        if (self.source is None) == (self.template is None):
            raise ValueError("give exactly one of 'source' or 'template'")
        return self


class StreamToClientNode(BaseNode):
    __slots__ = ("_source", "_template")

    def __init__(self, spec: NodeSpec, config: StreamToClientConfig) -> None:
        super().__init__(spec)
        self._source = config.source
        self._template = Template(config.template) if config.template is not None else None

    async def run(self, state: dict[str, Any], rc: RunContext) -> str:
        if self._template is not None:
            value: Any = self._template.render(state)
        else:
            value = state.get(self._source) if self._source else None
        emit = rc.emit
        if isinstance(value, ModelStream):
            n = 0
            async for delta in value.deltas():
                n += 1
                if emit is not None:
                    emit("chunk", self._chunk(rc, delta, n, value.chunk_count, value.started, True))
            state[value.node_id] = value.result()
            if emit is not None:
                emit("chunk", self._chunk(rc, "", n + 1, value.tokens, value.started, True, True))
            return value.text
        text = to_text(value)
        if emit is not None:
            emit("chunk", self._chunk(rc, text, 1, 0, time.perf_counter(), False, True))
        return text

    def _chunk(
        self,
        rc: RunContext,
        delta: str,
        number: int,
        tokens: int,
        started: float,
        streaming: bool,
        last: bool = False,
    ) -> dict[str, Any]:
        return {
            "runId": rc.run_id,
            "nodeId": self.id,
            "chunk": delta,
            "chunkNumber": number,
            "tokensUsed": tokens,
            "generationTimeMs": round((time.perf_counter() - started) * 1000, 3),
            "isStreamingChunk": streaming,
            "isLast": last,
        }


TYPE = NodeType(
    name="StreamToClient",
    config=StreamToClientConfig,
    build=StreamToClientNode,
    refs=lambda c: [("source", c.source)] if c.source else [],
    description="Streams text or a model's live tokens to the client as chunks.",
)
