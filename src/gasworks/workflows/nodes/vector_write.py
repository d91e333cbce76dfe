"""VectorWrite: store text a run produced (a summary, an answer) into a collection.

Config ``{collection: "notes", text: "${summary}", metadata?: {...}, model?}``. The text goes
through the same embed-and-index path as documents (``Gateway.embed``, the chunk store, the
vector index) as one chunk labelled with the collection, the run and the node. Idempotent per
run and node: the chunk id is derived from both, so a retried node writes the same chunk again
instead of a second copy. Empty text writes nothing.

Output: ``{"chunkIds": [...], "collection": "..."}``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gasworks.errors import ConfigurationError
from gasworks.workflows.context import RunContext
from gasworks.workflows.definition import NodeSpec
from gasworks.workflows.nodes._base import BaseNode, NodeConfig
from gasworks.workflows.registry import NodeType
from gasworks.workflows.templating import Template


class VectorWriteConfig(NodeConfig):
    collection: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    text: str = Field(min_length=1, max_length=10_000, description="Template of the text.")
    metadata: dict[str, Any] = Field(default_factory=dict)
    model: str | None = Field(default=None, description="Embedding model; default if unset.")


class VectorWriteNode(BaseNode):
    __slots__ = ("_cfg", "_text")

    def __init__(self, spec: NodeSpec, config: VectorWriteConfig) -> None:
        super().__init__(spec)
        self._cfg = config
        self._text = Template(config.text)

    async def run(self, state: dict[str, Any], rc: RunContext) -> Any:
        port = rc.ports.retrieval
        if port is None:
            raise ConfigurationError(
                "VectorWrite needs retrieval, which this runtime does not have.",
                details={"node": self.id},
            )
        text = self._text.render(state).strip()
        ids: list[str] = []
        if text:
            ids = await port.write(
                rc.scope(),
                collection=self._cfg.collection,
                key=f"{rc.run_id}:{self.id}",
                texts=[text],
                metadata={**self._cfg.metadata, "runId": rc.run_id, "nodeId": self.id},
                model=self._cfg.model,
            )
        return {"chunkIds": ids, "collection": self._cfg.collection}


TYPE = NodeType(
    name="VectorWrite",
    config=VectorWriteConfig,
    build=VectorWriteNode,
    description="Embeds and stores text a run produced into a collection.",
)
