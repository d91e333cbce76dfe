"""VectorSearch: search what the run's caller may see; hits with citations for the next node.

Config ``{query: "${input.message}", k: 5, collections?: [...], minScore?, mode?}``. The
allowed sources are the ones the engine computed at run start for the caller
(``state.allowedDocumentIds`` shows their documents); ``collections`` only narrows them. The
node never reads the allowed set from the state, so neither an input nor another node's output
can widen it.

Output: ``{"hits": [...], "text": "...", "output": {"hits", "text"}}``: each hit has ``text``,
``score``, ``citation`` (documentId, documentName, chunkId, page, start, end, heading) and
``metadata``; ``text`` numbers the passages with their sources, ready for a prompt
(``${search.text}``, or ``${search.output.hits}`` for the raw list).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from gasworks.errors import ConfigurationError
from gasworks.retrieval.schemas import MAX_K, hit_out
from gasworks.retrieval.search import SearchQuery
from gasworks.retrieval.types import SearchHit
from gasworks.workflows.context import RunContext
from gasworks.workflows.definition import NodeSpec
from gasworks.workflows.nodes._base import BaseNode, NodeConfig
from gasworks.workflows.registry import NodeType
from gasworks.workflows.templating import Template


class VectorSearchConfig(NodeConfig):
    query: str = Field(min_length=1, max_length=10_000, description="Template of the query.")
    k: int = Field(default=5, ge=1, le=MAX_K, description="How many hits at most.")
    collections: list[str] | None = Field(
        default=None, min_length=1, description="Only these collections (narrows, never widens)."
    )
    min_score: float | None = Field(default=None, description="Drop hits scoring below this.")
    mode: Literal["vector", "keyword", "hybrid"] = "hybrid"
    model: str | None = Field(default=None, description="Embedding model; default if unset.")


def context_text(hits: list[SearchHit]) -> str:
    lines = []
    for n, h in enumerate(hits, start=1):
        c = h.citation
        where = c.document_name or c.document_id
        if c.page is not None:
            where += f", p. {c.page}"
        if c.heading:
            where += f", § {c.heading}"
        lines.append(f"[{n}] ({where}) {h.text}")
    return "\n".join(lines)


class VectorSearchNode(BaseNode):
    __slots__ = ("_cfg", "_query", "collections")

    def __init__(self, spec: NodeSpec, config: VectorSearchConfig) -> None:
        super().__init__(spec)
        self._cfg = config
        self._query = Template(config.query)
        #: read by the engine at run start (unknown collections fail the request)
        self.collections = config.collections

    async def run(self, state: dict[str, Any], rc: RunContext) -> Any:
        port = rc.ports.retrieval
        if port is None or rc.allowed is None:
            raise ConfigurationError(
                "VectorSearch needs retrieval and the caller's allowed documents: run the "
                "workflow through the engine (REST, GraphQL, CLI or SDK).",
                details={"node": self.id},
            )
        allowed = rc.allowed
        if self.collections:
            inside = await port.allowed(rc.tenant_id, None, collections=self.collections)
            allowed = allowed.narrowed(inside)
        cfg = self._cfg
        text = self._query.render(state).strip()
        if not text:
            hits: list[SearchHit] = []
        else:
            query = SearchQuery(
                text, k=cfg.k, mode=cfg.mode, min_score=cfg.min_score, model=cfg.model
            )
            hits = await port.search(rc.scope(), query, allowed)
        out = [hit_out(h).model_dump(mode="json", by_alias=True) for h in hits]
        rendered = context_text(hits)
        return {"hits": out, "text": rendered, "output": {"hits": out, "text": rendered}}


TYPE = NodeType(
    name="VectorSearch",
    config=VectorSearchConfig,
    build=VectorSearchNode,
    description="Searches the caller's documents; hits with citations.",
)
