"""Workflow validation: every problem at once, each with a stable code and a path.

Codes (one test each in ``tests/workflows/test_validator.py``):

=====================  ===========================================================
PARSE_ERROR            the text is neither JSON nor YAML / not a mapping
INVALID_DOCUMENT       the document's shape is wrong (missing id, bad field, ...)
NO_NODES               the workflow has no node
UNKNOWN_NODE_TYPE      a node's type is not registered
INVALID_CONFIG         a node's config does not fit its type's config model
INVALID_EXPRESSION     a router condition does not parse (details.column)
DUPLICATE_NODE_ID      two nodes share an id
RESERVED_NODE_ID       a node uses START, END or a reserved state key as id
EDGE_FROM_UNKNOWN      an edge starts at a node that does not exist
EDGE_TO_UNKNOWN        an edge ends at a node that does not exist
TARGET_UNKNOWN         a router/slot target names a node that does not exist
REFERENCE_UNKNOWN      a config names a node to read from that does not exist
TARGET_NOT_CONNECTED   a router/slot target has no edge from that node
ROUTER_NO_DEFAULT      a router has no default route
UNREACHABLE_NODE       a node cannot be reached from START
CANNOT_REACH_END       no path leads from a node to END
UNBOUNDED_CYCLE        a cycle in which no node sets maxIterations
=====================  ===========================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from gasworks.errors import WorkflowInvalid
from gasworks.workflows.definition import (
    END,
    RESERVED_IDS,
    START,
    WorkflowDefinition,
    load_definition,
)
from gasworks.workflows.nodes import default_registry
from gasworks.workflows.registry import NodeRegistry, NodeType


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    code: str
    path: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "path": self.path, "message": self.message}
        if self.details:
            out["details"] = self.details
        return out


@dataclass(slots=True)
class Topology:
    """The graph with virtual START/END edges added."""

    successors: dict[str, list[str]]
    entry: list[str]


@dataclass(slots=True)
class ValidationResult:
    definition: WorkflowDefinition | None
    issues: list[ValidationIssue]
    configs: dict[str, Any] = field(default_factory=dict)
    topology: Topology | None = None

    @property
    def ok(self) -> bool:
        return self.definition is not None and not self.issues

    def raise_for_issues(self) -> None:
        if not self.ok:
            n = len(self.issues)
            raise WorkflowInvalid(
                f"The workflow has {n} problem{'s' if n != 1 else ''}.",
                details={"issues": [i.to_dict() for i in self.issues]},
            )


def validate(doc: dict[str, Any], registry: NodeRegistry | None = None) -> ValidationResult:
    """Validate a workflow document; never raises for a bad document."""
    registry = registry or default_registry()
    try:
        definition = load_definition(doc)
    except WorkflowInvalid as exc:
        shape = [ValidationIssue(i["code"], i["path"], i["message"]) for i in exc.details["issues"]]
        return ValidationResult(None, shape)
    issues: list[ValidationIssue] = []
    configs = _check_nodes(definition, registry, issues)
    topology = _check_graph(definition, registry, configs, issues)
    return ValidationResult(definition, issues, configs, topology)


def _check_nodes(
    d: WorkflowDefinition, registry: NodeRegistry, issues: list[ValidationIssue]
) -> dict[str, Any]:
    configs: dict[str, Any] = {}
    if not d.nodes:
        issues.append(ValidationIssue("NO_NODES", "nodes", "A workflow needs at least one node."))
    seen: set[str] = set()
    for i, n in enumerate(d.nodes):
        path = f"nodes[{i}]"
        if n.id in seen:
            issues.append(
                ValidationIssue(
                    "DUPLICATE_NODE_ID", f"{path}.id", f"Node id '{n.id}' is used twice."
                )
            )
        seen.add(n.id)
        if n.id in RESERVED_IDS:
            issues.append(
                ValidationIssue("RESERVED_NODE_ID", f"{path}.id", f"'{n.id}' is a reserved id.")
            )
        nt = registry.get(n.type)
        if nt is None:
            issues.append(
                ValidationIssue(
                    "UNKNOWN_NODE_TYPE",
                    f"{path}.type",
                    f"Unknown node type '{n.type}'.",
                    {"known": registry.names()},
                )
            )
            continue
        try:
            cfg = nt.config.model_validate(n.config)
        except ValidationError as exc:
            for e in exc.errors(include_url=False):
                loc = ".".join(str(p) for p in e["loc"])
                issues.append(
                    ValidationIssue(
                        "INVALID_CONFIG", f"{path}.config{'.' + loc if loc else ''}", e["msg"]
                    )
                )
            continue
        configs[n.id] = cfg
        for issue in nt.check(cfg):
            issues.append(
                ValidationIssue(
                    issue.code, f"{path}.config.{issue.path}", issue.message, issue.details
                )
            )
    return configs


def _check_graph(
    d: WorkflowDefinition,
    registry: NodeRegistry,
    configs: dict[str, Any],
    issues: list[ValidationIssue],
) -> Topology:
    ids = {n.id for n in d.nodes}
    index = {n.id: i for i, n in enumerate(d.nodes)}
    succ: dict[str, list[str]] = {n.id: [] for n in d.nodes}
    explicit_entry: list[str] = []
    has_incoming: set[str] = set()
    for i, e in enumerate(d.edges):
        ok = True
        if e.from_ != START and e.from_ not in ids:
            issues.append(
                ValidationIssue(
                    "EDGE_FROM_UNKNOWN", f"edges[{i}].from", f"No node '{e.from_}' (edge start)."
                )
            )
            ok = False
        if e.to != END and e.to not in ids:
            issues.append(
                ValidationIssue(
                    "EDGE_TO_UNKNOWN", f"edges[{i}].to", f"No node '{e.to}' (edge end)."
                )
            )
            ok = False
        if not ok:
            continue
        if e.from_ == START:
            if e.to != END and e.to not in explicit_entry:
                explicit_entry.append(e.to)
            continue
        if e.to not in succ[e.from_]:
            succ[e.from_].append(e.to)
        if e.to != END:
            has_incoming.add(e.to)
    # router / slot targets must be connected by an edge
    for n in d.nodes:
        nt: NodeType | None = registry.get(n.type)
        if nt is None or n.id not in configs:
            continue
        for cpath, ref in nt.refs(configs[n.id]):
            if ref not in ids:
                issues.append(
                    ValidationIssue(
                        "REFERENCE_UNKNOWN",
                        f"nodes[{index[n.id]}].config.{cpath}",
                        f"No node '{ref}' to read from.",
                    )
                )
        for cpath, target in nt.targets(configs[n.id]):
            path = f"nodes[{index[n.id]}].config.{cpath}"
            if target == END:
                if END not in succ[n.id]:
                    succ[n.id].append(END)
                continue
            if target not in ids:
                issues.append(
                    ValidationIssue("TARGET_UNKNOWN", path, f"Target '{target}' is not a node.")
                )
            elif target not in succ[n.id]:
                issues.append(
                    ValidationIssue(
                        "TARGET_NOT_CONNECTED",
                        path,
                        f"Target '{target}' has no edge from '{n.id}'.",
                        {"from": n.id, "to": target},
                    )
                )
    # virtual START / END edges
    entry = explicit_entry or [n.id for n in d.nodes if n.id not in has_incoming]
    if not entry and d.nodes:
        entry = [d.nodes[0].id]
    for out in succ.values():
        if not out:
            out.append(END)
    # reachability from START
    reached = _reach(entry, succ)
    for n in d.nodes:
        if n.id not in reached:
            issues.append(
                ValidationIssue(
                    "UNREACHABLE_NODE", f"nodes[{index[n.id]}]", f"'{n.id}' is unreachable."
                )
            )
    # co-reachability of END
    pred: dict[str, list[str]] = {END: []}
    for nid, out in succ.items():
        pred.setdefault(nid, [])
        for t in out:
            pred.setdefault(t, []).append(nid)
    reaches_end = _reach([END], pred)
    for n in d.nodes:
        if n.id not in reaches_end:
            issues.append(
                ValidationIssue(
                    "CANNOT_REACH_END", f"nodes[{index[n.id]}]", f"No path from '{n.id}' to END."
                )
            )
    # cycles need an iteration limit
    limited = {n.id for n in d.nodes if n.max_iterations is not None}
    for comp in _cycles(succ):
        if not limited.intersection(comp):
            first = min(comp, key=lambda c: index[c])
            issues.append(
                ValidationIssue(
                    "UNBOUNDED_CYCLE",
                    f"nodes[{index[first]}]",
                    "A cycle through "
                    + " → ".join(sorted(comp, key=index.__getitem__))
                    + " has no node with maxIterations.",
                    {"nodes": sorted(comp, key=index.__getitem__)},
                )
            )
    return Topology(succ, entry)


def _reach(start: Iterable[str], graph: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(start)
    while stack:
        cur = stack.pop()
        if cur in seen:
            continue
        seen.add(cur)
        stack.extend(graph.get(cur, ()))
    return seen


def _cycles(succ: dict[str, list[str]]) -> list[set[str]]:
    """Strongly connected components that contain a cycle (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[set[str]] = []
    counter = 0
    for root in succ:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = [c for c in succ.get(node, ()) if c in succ]
            if i < len(children):
                work.append((node, i + 1))
                child = children[i]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                comp: set[str] = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.add(w)
                    if w == node:
                        break
                if len(comp) > 1 or node in succ.get(node, ()):
                    out.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out
