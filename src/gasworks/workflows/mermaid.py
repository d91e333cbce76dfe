"""Mermaid flowcharts of workflows (``gasworks workflows graph ID``)."""

from __future__ import annotations

from typing import Any

from gasworks.workflows.definition import END, START
from gasworks.workflows.nodes import default_registry
from gasworks.workflows.validator import validate

_SHAPES = {"Router": ("{", "}"), "IntentClassifier": ("{{", "}}"), "SlotTracker": ("{{", "}}")}


def to_mermaid(doc: dict[str, Any]) -> str:
    """A ``flowchart TD`` of the workflow with its virtual START/END edges and route labels."""
    result = validate(doc)
    d, topo = result.definition, result.topology
    if d is None or topo is None:
        result.raise_for_issues()
        raise AssertionError("unreachable")  # pragma: no cover
    registry = default_registry()
    lines = ["flowchart TD", f"  {START}([START])", f"  {END}([END])"]
    for n in d.nodes:
        left, right = _SHAPES.get(n.type, ("[", "]"))
        lines.append(f'  {_id(n.id)}{left}"{n.id}<br/><small>{n.type}</small>"{right}')
    for e in topo.entry:
        lines.append(f"  {START} --> {_id(e)}")
    for n in d.nodes:
        labels: dict[str, str] = {}
        nt = registry.get(n.type)
        cfg = result.configs.get(n.id)
        if nt is not None and cfg is not None:
            for path, target in nt.targets(cfg):
                labels.setdefault(target, _label(cfg, path))
        for t in topo.successors.get(n.id, []):
            label = labels.get(t)
            arrow = f"-->|{label}|" if label else "-->"
            lines.append(f"  {_id(n.id)} {arrow} {_id(t) if t != END else END}")
    return "\n".join(lines) + "\n"


def _id(node_id: str) -> str:
    return "n_" + node_id.replace("-", "_")


def _label(cfg: Any, path: str) -> str:
    if path.startswith("routes["):
        i = int(path[7 : path.index("]")])
        text = str(cfg.routes[i].when)
    else:
        text = path
    return text.replace('"', "'").replace("|", "/")[:60]
