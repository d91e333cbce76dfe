"""Compiling a validated workflow into what the runner executes.

Done once per published version (at publish and when a version is first loaded, then cached):
node configs are validated and nodes built (router conditions compiled), adjacency resolved to
tuples, timeout/retry wrappers chosen per node. Nothing on the run's hot path validates or
copies again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gasworks.errors import GasworksError, NodeTimeout
from gasworks.workflows.context import RunContext
from gasworks.workflows.definition import END, NodeSpec, RetryPolicy, WorkflowDefinition
from gasworks.workflows.nodes import default_registry
from gasworks.workflows.registry import Node, NodeRegistry
from gasworks.workflows.validator import ValidationResult, validate

Invoke = Callable[[dict[str, Any], RunContext], Awaitable[Any]]


class CompiledNode:
    __slots__ = ("branching", "id", "invoke", "max_iterations", "node", "successors", "type")

    def __init__(
        self,
        spec: NodeSpec,
        node: Node,
        successors: tuple[str, ...],
        branching: bool,
    ) -> None:
        self.id = spec.id
        self.type = spec.type
        self.node = node
        self.successors = successors
        self.branching = branching
        self.max_iterations = spec.max_iterations
        self.invoke: Invoke = _policy(spec, node)


@dataclass(slots=True)
class CompiledGraph:
    definition: WorkflowDefinition
    nodes: dict[str, CompiledNode]
    entry: tuple[str, ...]
    max_steps: int
    #: the version this graph was compiled from (0 for unpublished drafts)
    version: int = 0
    #: the node types it uses (checked once per compile, not per run)
    node_types: frozenset[str] = frozenset()

    @property
    def workflow_id(self) -> str:
        return self.definition.id


def compile_workflow(
    doc: dict[str, Any] | ValidationResult,
    registry: NodeRegistry | None = None,
    *,
    version: int = 0,
) -> CompiledGraph:
    """Validate (unless given a result) and compile; raise WORKFLOW_INVALID with every issue."""
    registry = registry or default_registry()
    result = doc if isinstance(doc, ValidationResult) else validate(doc, registry)
    result.raise_for_issues()
    d = result.definition
    topo = result.topology
    assert d is not None and topo is not None
    nodes: dict[str, CompiledNode] = {}
    for spec in d.nodes:
        nt = registry.get(spec.type)
        assert nt is not None
        node = nt.build(spec, result.configs[spec.id])
        succ = tuple(t for t in topo.successors[spec.id] if t != END)
        nodes[spec.id] = CompiledNode(spec, node, succ, nt.branching)
    types = frozenset(n.type for n in nodes.values())
    return CompiledGraph(d, nodes, tuple(topo.entry), d.max_steps, version, types)


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, GasworksError):
        return exc.retryable or exc.status >= 500
    return isinstance(exc, Exception)


def _policy(spec: NodeSpec, node: Node) -> Invoke:
    """The node's ``run`` itself when it has no timeout or retry (the fast path)."""
    timeout = spec.timeout_seconds
    retry = spec.retry or RetryPolicy()
    if timeout is None and retry.max_attempts <= 1:
        return node.run
    node_id = spec.id

    async def once(state: dict[str, Any], rc: RunContext) -> Any:
        if timeout is None:
            return await node.run(state, rc)
        try:
            async with asyncio.timeout(timeout):
                return await node.run(state, rc)
        except TimeoutError:
            raise NodeTimeout(
                f"Node '{node_id}' did not finish within {timeout:g}s.",
                details={"node": node_id, "timeoutSeconds": timeout},
            ) from None

    if retry.max_attempts <= 1:
        return once

    async def with_retry(state: dict[str, Any], rc: RunContext) -> Any:
        delay = retry.backoff_seconds
        for attempt in range(1, retry.max_attempts + 1):
            try:
                return await once(state, rc)
            except Exception as exc:
                if attempt >= retry.max_attempts or not _retryable(exc):
                    raise
                if rc.emit is not None:
                    rc.emit(
                        "node.retry",
                        {"nodeId": node_id, "attempt": attempt, "error": _describe(exc)},
                    )
            if delay > 0:
                await asyncio.sleep(delay)
                delay *= retry.backoff_multiplier
        raise AssertionError("unreachable")  # pragma: no cover

    return with_retry


def _describe(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, GasworksError):
        return {"code": exc.code, "message": exc.message}
    # a bug, not a decision: INTERNAL, nothing of its text (the runner logs the traceback)
    return {"code": "INTERNAL", "message": "An internal error occurred; it has been logged."}


def describe_error(exc: BaseException) -> dict[str, Any]:
    """An error as stored on a run / sent to the client (never a traceback)."""
    out = _describe(exc)
    if isinstance(exc, GasworksError) and exc.details:
        out["details"] = exc.details
    return out
