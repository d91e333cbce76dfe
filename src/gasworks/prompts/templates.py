"""``${dot.path}`` templates: interpolation only — no loops, conditionals or array indexing.

Syntax
  ``${inputs.user_prompt}``, ``${nodeId.output.text}``, ``${slots.city}``,
  ``${context.sessionId}``, ``${workflowId}``, ``${conversationId}`` — a path of segments made
  of letters, digits, ``_`` and ``-``, separated by dots (surrounding spaces allowed).
  ``$${`` writes a literal ``${``. An unterminated or malformed placeholder is a
  ``TEMPLATE_SYNTAX_ERROR`` when the template is compiled (i.e. when a version is saved).

Values
  Paths walk nested mappings. Strings are inserted as they are (nothing is HTML-escaped);
  ``True``/``False`` render ``true``/``false``; numbers with ``str()``; mappings and lists as
  compact JSON. A missing path or ``None`` renders as the empty string, is logged as a warning
  and listed in ``RenderResult.missing``; ``strict=True`` raises ``TEMPLATE_VARIABLE_MISSING``.

Templates are compiled once (``compile_template`` is cached by source text; the resolver keeps
the compiled form of each version keyed by its content hash).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from gasworks.errors import TemplateSyntaxError, TemplateVariableMissing
from gasworks.observability.logging import get_logger

log = get_logger("gasworks.prompts.templates")

_PATH = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$")
_MISSING = object()

Path = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RenderResult:
    text: str
    missing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    source: str
    #: literal strings and paths, in order
    parts: tuple[str | Path, ...]

    @property
    def variables(self) -> list[str]:
        return [".".join(p) for p in self.parts if isinstance(p, tuple)]

    def render(self, values: Mapping[str, Any], *, strict: bool = False) -> RenderResult:
        if len(self.parts) == 1 and isinstance(self.parts[0], str):
            return RenderResult(self.parts[0])
        out: list[str] = []
        missing: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = lookup(values, part)
            if value is _MISSING or value is None:
                missing.append(".".join(part))
            else:
                out.append(format_value(value))
        if missing:
            if strict:
                raise TemplateVariableMissing(
                    f"No value for {', '.join('${' + m + '}' for m in missing)}.",
                    details={"missing": missing},
                )
            log.warning("prompt.template.missing_variables", missing=missing)
        return RenderResult("".join(out), tuple(missing))


def lookup(values: Mapping[str, Any], path: Path) -> Any:
    cur: Any = values
    for seg in path:
        if not isinstance(cur, Mapping) or seg not in cur:
            return _MISSING
        cur = cur[seg]
    return cur


def format_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return str(value)


def _syntax(source: str, pos: int, why: str) -> TemplateSyntaxError:
    line = source.count("\n", 0, pos) + 1
    col = pos - (source.rfind("\n", 0, pos) + 1) + 1
    return TemplateSyntaxError(
        f"Template syntax error at line {line}, column {col}: {why}.",
        details={"line": line, "column": col, "reason": why},
    )


@lru_cache(maxsize=4096)
def compile_template(source: str) -> CompiledTemplate:
    parts: list[str | Path] = []
    buf: list[str] = []
    i, n = 0, len(source)
    while i < n:
        j = source.find("$", i)
        if j < 0:
            buf.append(source[i:])
            break
        buf.append(source[i:j])
        if source.startswith("$${", j):
            buf.append("${")
            i = j + 3
        elif source.startswith("${", j):
            end = source.find("}", j + 2)
            if end < 0:
                raise _syntax(source, j, "'${' is never closed (write '$${' for a literal '${')")
            inner = source[j + 2 : end].strip()
            if not _PATH.match(inner):
                raise _syntax(
                    source, j, f"'${{{inner}}}' is not a dot path of letters, digits, '_' or '-'"
                )
            if buf:
                parts.append("".join(buf))
                buf = []
            parts.append(tuple(inner.split(".")))
            i = end + 1
        else:
            buf.append("$")
            i = j + 1
    if buf or not parts:
        parts.append("".join(buf))
    return CompiledTemplate(source, tuple(parts))


def render(source: str, values: Mapping[str, Any], *, strict: bool = False) -> RenderResult:
    """Compile (cached) and render ``source`` in one call."""
    return compile_template(source).render(values, strict=strict)


def template_values(
    *,
    inputs: Mapping[str, Any] | None = None,
    nodes: Mapping[str, Any] | None = None,
    slots: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    workflow_id: str | None = None,
    conversation_id: str | None = None,
) -> dict[str, Any]:
    """The value namespace templates see: ``inputs``, ``slots``, ``context``, ``workflowId``,
    ``conversationId`` and one entry per prior node id (``${nodeId.output.text}``)."""
    values: dict[str, Any] = dict(nodes or {})
    values["inputs"] = dict(inputs or {})
    values["slots"] = dict(slots or {})
    values["context"] = dict(context or {})
    if workflow_id is not None:
        values["workflowId"] = workflow_id
    if conversation_id is not None:
        values["conversationId"] = conversation_id
        values["context"].setdefault("conversationId", conversation_id)
    return values
