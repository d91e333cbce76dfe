"""``${dot.path}`` templates over the run state, split once into parts at load time."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_VAR = re.compile(r"\$\{\s*([A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*)\s*\}")


def lookup(state: Mapping[str, Any], dotted: tuple[str, ...]) -> Any:
    cur: Any = state
    for seg in dotted:
        if isinstance(cur, Mapping):
            cur = cur.get(seg)
        elif isinstance(cur, list) and seg.isdigit() and int(seg) < len(cur):
            cur = cur[int(seg)]
        else:
            return None
        if cur is None:
            return None
    return cur


def to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = getattr(value, "text", None)
    if isinstance(text, str):
        return text
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


class Template:
    """A compiled template. Missing variables render as an empty string."""

    __slots__ = ("_parts", "source", "variables")

    def __init__(self, source: str) -> None:
        self.source = source
        parts: list[str | tuple[str, ...]] = []
        pos = 0
        for m in _VAR.finditer(source):
            if m.start() > pos:
                parts.append(source[pos : m.start()])
            parts.append(tuple(m.group(1).split(".")))
            pos = m.end()
        if pos < len(source):
            parts.append(source[pos:])
        self._parts = parts
        self.variables = [p for p in parts if isinstance(p, tuple)]

    def render(self, state: Mapping[str, Any]) -> str:
        return "".join(p if isinstance(p, str) else to_text(lookup(state, p)) for p in self._parts)
