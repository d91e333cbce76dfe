"""Helpers shared by node modules."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from gasworks.workflows.definition import NodeSpec


class NodeConfig(BaseModel):
    """Base of every node config model: camelCase in documents, unknown keys rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class BaseNode:
    """Keeps the node id and config; subclasses implement ``async run(state, rc)``."""

    __slots__ = ("id",)

    def __init__(self, spec: NodeSpec) -> None:
        self.id = spec.id
