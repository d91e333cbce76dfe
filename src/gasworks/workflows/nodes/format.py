"""Format: renders a ``${dot.path}`` template over the state into a text (or JSON) output."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from gasworks.workflows.context import RunContext
from gasworks.workflows.definition import NodeSpec
from gasworks.workflows.nodes._base import BaseNode, NodeConfig
from gasworks.workflows.registry import NodeType
from gasworks.workflows.templating import Template


class FormatConfig(NodeConfig):
    template: str = Field(max_length=100_000)
    output: Literal["text", "json"] = Field(
        default="text", description="'json' parses the rendered text (falls back to text)."
    )


class FormatNode(BaseNode):
    __slots__ = ("_json", "_template")

    def __init__(self, spec: NodeSpec, config: FormatConfig) -> None:
        super().__init__(spec)
        self._template = Template(config.template)
        self._json = config.output == "json"

    async def run(self, state: dict[str, Any], rc: RunContext) -> Any:
        text = self._template.render(state)
        if self._json:
            try:
                return json.loads(text)
            except ValueError:
                return text
        return text


TYPE = NodeType(
    name="Format",
    config=FormatConfig,
    build=FormatNode,
    description="Renders a template into an output.",
)
