"""A workflow version as an SVG drawn on the server (layered top to bottom).

Hand-written (~100 lines) instead of vendoring mermaid.js (~3 MB of JavaScript for one
diagram type) or calling Graphviz (a system binary the package cannot ship): a workflow is
small (tens of nodes), so a breadth-first layering from START with straight and curved edges
is readable, and the SVG is plain markup the page can style, label for screen readers and
light up node by node while a run streams. Nodes named by validation issues are outlined.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

from gasworks.workflows.definition import END, START
from gasworks.workflows.validator import validate

W, H, GAP_X, GAP_Y, PAD = 170, 46, 28, 58, 16
_NODE_PATH = re.compile(r"^nodes\[(\d+)\]")


@dataclass
class Drawn:
    svg: Markup
    issues: list[dict[str, Any]]
    bad_nodes: set[str]


def _edges(doc: dict[str, Any]) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """Edges with the virtual START/END ones; the validation issues found on the way."""
    result = validate(doc)
    issues = [i.to_dict() for i in result.issues]
    if result.topology is not None:
        topo = result.topology
        edges = [(START, e) for e in topo.entry]
        edges += [(a, b) for a, succ in topo.successors.items() for b in succ]
        return edges, issues
    nodes = [n.get("id") for n in doc.get("nodes") or [] if isinstance(n, dict)]
    raw = [
        (str(e.get("from")), str(e.get("to")))
        for e in doc.get("edges") or []
        if isinstance(e, dict)
    ]
    has_in = {b for _, b in raw}
    has_out = {a for a, _ in raw}
    edges = [(START, str(n)) for n in nodes if n not in has_in]
    edges += raw + [(str(n), END) for n in nodes if n not in has_out]
    return edges, issues


def node_of(issue: dict[str, Any], nodes: list[str]) -> str | None:
    """The node an issue points at (``details.node`` or a ``nodes[i]`` path)."""
    node = (issue.get("details") or {}).get("node")
    if isinstance(node, str):
        return node
    m = _NODE_PATH.match(str(issue.get("path", "")))
    if m and int(m.group(1)) < len(nodes):
        return nodes[int(m.group(1))]
    return None


def draw(doc: dict[str, Any]) -> Drawn:
    nodes_doc = [n for n in doc.get("nodes") or [] if isinstance(n, dict)]
    ids = [str(n.get("id")) for n in nodes_doc]
    types = {str(n.get("id")): str(n.get("type", "?")) for n in nodes_doc}
    edges, issues = _edges(doc)
    for i in issues:
        i["node"] = node_of(i, ids)
    bad = {i["node"] for i in issues if i.get("node")}
    succ: dict[str, list[str]] = {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
    level = {START: 0}
    queue = deque([START])
    while queue:
        n = queue.popleft()
        for m in succ.get(n, []):
            if m not in level and m != END:
                level[m] = level[n] + 1
                queue.append(m)
    for n in ids:  # unreachable nodes: on a row of their own under the rest
        level.setdefault(n, max(level.values()) + 1)
    level[END] = max(level.values()) + 1
    rows: dict[int, list[str]] = {}
    for n in [START, *ids, END]:
        rows.setdefault(level[n], []).append(n)
    width = max(len(r) for r in rows.values()) * (W + GAP_X) - GAP_X + 2 * PAD
    pos: dict[str, tuple[float, float]] = {}
    for lv, row in rows.items():
        row_w = len(row) * (W + GAP_X) - GAP_X
        x0 = (width - row_w) / 2
        for k, n in enumerate(row):
            pos[n] = (x0 + k * (W + GAP_X) + W / 2, PAD + lv * (H + GAP_Y) + H / 2)
    height = PAD * 2 + (max(rows) + 1) * (H + GAP_Y) - GAP_Y
    n_edges = len([e for e in edges if START not in e and END not in e])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" aria-labelledby="graph-title">',
        f'<title id="graph-title">{escape(doc.get("id", "workflow"))}: '
        f"{len(ids)} nodes, {n_edges} edges</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z"/></marker></defs>',
    ]
    for a, b in edges:
        if a not in pos or b not in pos:
            continue
        (x1, y1), (x2, y2) = pos[a], pos[b]
        y1 += H / 2 if a not in (START, END) else 14
        y2 -= H / 2 if b not in (START, END) else 14
        if y2 > y1:
            mid = (y1 + y2) / 2
            d = f"M{x1:.0f},{y1:.0f} C{x1:.0f},{mid:.0f} {x2:.0f},{mid:.0f} {x2:.0f},{y2:.0f}"
        else:  # a loop back up: around the right side
            side = max(x1, x2) + W / 2 + 20
            ya, yb = pos[a][1], pos[b][1]
            d = (
                f"M{x1 + W / 2:.0f},{ya:.0f} C{side:.0f},{ya:.0f} "
                f"{side:.0f},{yb:.0f} {x2 + W / 2:.0f},{yb:.0f}"
            )
        parts.append(f'<path class="edge" d="{d}" marker-end="url(#arrow)"/>')
    for n, (x, y) in pos.items():
        if n in (START, END):
            parts.append(
                f'<g class="term"><circle cx="{x:.0f}" cy="{y:.0f}" r="14"/>'
                f'<text x="{x:.0f}" y="{y + 4:.0f}" text-anchor="middle">{n[:5]}</text></g>'
            )
            continue
        cls = "node bad" if n in bad else "node"
        parts.append(
            f'<g class="{cls}" data-node="{escape(n)}">'
            f'<rect x="{x - W / 2:.0f}" y="{y - H / 2:.0f}" width="{W}" height="{H}" rx="8"/>'
            f'<text x="{x:.0f}" y="{y - 3:.0f}" text-anchor="middle">{escape(n[:24])}</text>'
            f'<text class="type" x="{x:.0f}" y="{y + 13:.0f}" text-anchor="middle">'
            f"{escape(types.get(n, '?'))}</text></g>"
        )
    parts.append("</svg>")
    return Drawn(Markup("".join(parts)), issues, bad)  # noqa: S704 (every value above is escaped)
