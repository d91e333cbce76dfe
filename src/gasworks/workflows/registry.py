"""The node registry: node type name → config model, builder and validation hooks.

The engine only knows this interface. A new node type (VectorSearch, VectorWrite, a tenant's
own) is one module defining a ``NodeType``, listed in ``nodes.builtin_node_types`` (or added
to the registry a runtime builds) — no engine change, no registration on import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

from gasworks.workflows.context import RunContext
from gasworks.workflows.definition import NodeSpec


class Node(Protocol):
    """A built node. ``run`` returns the node's output, or a :class:`Routed` to branch."""

    id: str

    async def run(self, state: dict[str, Any], rc: RunContext) -> Any: ...


@dataclass(frozen=True, slots=True)
class Issue:
    """A validation problem found by a node type's own check (config path relative to the
    node's ``config``)."""

    code: str
    path: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeType:
    name: str
    config: type[BaseModel]
    build: Callable[[NodeSpec, Any], Node]
    description: str = ""
    #: node ids the config routes to, as (config path, node id): must be connected by edges
    targets: Callable[[Any], Iterable[tuple[str, str]]] = lambda _c: ()
    #: other nodes the config reads from, as (config path, node id): must exist
    refs: Callable[[Any], Iterable[tuple[str, str]]] = lambda _c: ()
    #: extra checks beyond the config model (router default, expressions, ...)
    check: Callable[[Any], Iterable[Issue]] = lambda _c: ()
    #: True when the node picks exactly one successor itself (returns Routed)
    branching: bool = False


class NodeRegistry:
    def __init__(self, types: Iterable[NodeType] = ()) -> None:
        self._types: dict[str, NodeType] = {t.name: t for t in types}

    def register(self, node_type: NodeType, *, replace: bool = False) -> NodeType:
        if node_type.name in self._types and not replace:
            raise ValueError(f"node type {node_type.name!r} is already registered")
        self._types[node_type.name] = node_type
        return node_type

    def get(self, name: str) -> NodeType | None:
        return self._types.get(name)

    def names(self) -> list[str]:
        return sorted(self._types)

    def copy(self) -> NodeRegistry:
        return NodeRegistry(self._types.values())

    def __contains__(self, name: object) -> bool:
        return name in self._types
