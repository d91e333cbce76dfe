"""Router: the first route whose condition holds wins; the default route is required."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import Field

from gasworks.errors import ExpressionInvalid
from gasworks.workflows.context import Routed, RunContext
from gasworks.workflows.definition import NodeSpec
from gasworks.workflows.expr import Expression, compile_expression
from gasworks.workflows.nodes._base import BaseNode, NodeConfig
from gasworks.workflows.registry import Issue, NodeType


class Route(NodeConfig):
    when: str = Field(min_length=1, description="A router-language condition over `state`.")
    to: str = Field(min_length=1, description="Node to run when the condition holds.")


class RouterConfig(NodeConfig):
    routes: list[Route] = Field(default_factory=list, max_length=100)
    default: str | None = Field(default=None, description="Node to run when no route matches.")


class RouterNode(BaseNode):
    __slots__ = ("_default", "_routes")

    def __init__(self, spec: NodeSpec, config: RouterConfig) -> None:
        super().__init__(spec)
        self._routes: tuple[tuple[Expression, str], ...] = tuple(
            (compile_expression(r.when), r.to) for r in config.routes
        )
        self._default = config.default or "END"

    async def run(self, state: dict[str, Any], rc: RunContext) -> Routed:
        for expr, to in self._routes:
            if expr.test(state):
                return Routed(to, to)
        return Routed(self._default, self._default)


def _targets(c: RouterConfig) -> Iterable[tuple[str, str]]:
    for i, r in enumerate(c.routes):
        yield f"routes[{i}].to", r.to
    if c.default is not None:
        yield "default", c.default


def _check(c: RouterConfig) -> Iterable[Issue]:
    if c.default is None:
        yield Issue("ROUTER_NO_DEFAULT", "default", "A router needs a default route.")
    for i, r in enumerate(c.routes):
        try:
            compile_expression(r.when)
        except ExpressionInvalid as exc:
            yield Issue("INVALID_EXPRESSION", f"routes[{i}].when", exc.message, exc.details)


TYPE = NodeType(
    name="Router",
    config=RouterConfig,
    build=RouterNode,
    description="Picks the next node: first matching condition, else the default route.",
    targets=_targets,
    check=_check,
    branching=True,
)
