"""Untrusted JSON and YAML text into plain data, bounded before anything recursive sees it.

Every body, document or file a caller sends goes through here (REST bodies via
``api.routing.GuardedRoute``, GraphQL bodies, workflow and prompt documents, CLI files):

- nesting deeper than ``MAX_DEPTH`` is refused *before* the text is parsed (the parsers, the
  YAML composer, pydantic and the JSON encoder all recurse, and a 100 000-bracket body was a
  ``RecursionError``, a 500);
- NUL characters are refused (PostgreSQL cannot store them in text or JSONB, SQLite would
  store them silently: the two databases must answer alike);
- text that is not UTF-8, and integers longer than Python converts (4 300 digits), are
  refused.

Each refusal is ``VALIDATION_FAILED`` naming where (``body``, a document's path).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import yaml

from gasworks import yamlsafe
from gasworks.errors import ValidationFailed

#: containers inside containers: far deeper than any real document, far below recursion limits
MAX_DEPTH = 64

#: a JSON string with ``\u0000`` in it: the escape preceded by an even number of backslashes
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
#: JSON strings (removed before counting brackets)
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS_ONLY = {ord(c): None for c in map(chr, range(128)) if c not in "[]{}"}
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def refuse(
    where: str, message: str, kind: str, *, line: int | None = None, column: int | None = None
) -> ValidationFailed:
    """``VALIDATION_FAILED`` naming ``where``; a parse error also says where the parser stopped
    (1-based ``line`` and ``column``)."""
    error: dict[str, object] = {"path": where, "message": message, "type": kind}
    if line is not None:
        error["line"], error["column"] = line, column
    return ValidationFailed(f"Invalid request: {where}: {message}", details={"errors": [error]})


def as_text(data: str | bytes, where: str = "body") -> str:
    """``data`` as text; bytes must be UTF-8."""
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise refuse(where, "is not valid UTF-8", "utf8_invalid") from None


def json_depth_exceeds(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON ``text`` nests containers deeper than ``limit`` (without parsing it).

    Strings are blanked by one regular expression and everything but brackets dropped by
    ``str.translate`` (both in C); only a text with more opening brackets than ``limit`` is
    then walked, and that walk stops at the first level past the limit.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    skeleton = _JSON_STRING.sub("", text).translate(_BRACKETS_ONLY)
    depth = 0
    for ch in skeleton:
        if ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def load_json(data: str | bytes, where: str = "body") -> Any:
    """Parse untrusted JSON: bounded depth, no NUL, UTF-8 only; ``VALIDATION_FAILED`` else."""
    text = as_text(data, where)
    if json_depth_exceeds(text):
        raise refuse(where, f"nests deeper than {MAX_DEPTH} levels", "too_deep")
    if "\\u0000" in text and _JSON_NUL.search(text):
        raise refuse(where, "contains a NUL character (\\u0000)", "nul_character")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise refuse(
            where,
            f"is not valid JSON ({exc.msg}: line {exc.lineno}, column {exc.colno})",
            "json_invalid",
            line=exc.lineno,
            column=exc.colno,
        ) from None
    except ValueError as exc:  # an integer of more than 4 300 digits
        raise refuse(where, f"is not acceptable JSON ({exc})", "json_invalid") from None


def load_yaml(data: str | bytes, where: str = "document") -> Any:
    """Parse untrusted YAML (a superset of JSON): bounded depth, no NUL; safe tags only, no
    anchors or aliases (``gasworks.yamlsafe``).

    The depth is measured on the parser's events (the parser is a loop; the composer that
    builds nodes recurses), so a 20 000-deep document is refused before it is built.
    """
    text = as_text(data, where)
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_YAML_LOADER):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise refuse(where, f"nests deeper than {MAX_DEPTH} levels", "too_deep")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        loaded = yamlsafe.load_yaml(text)  # safe tags, no anchors or aliases
    except yamlsafe.YamlAliasRefused as exc:
        raise refuse(where, yamlsafe.first_line(exc), "yaml_alias") from None
    except yaml.YAMLError as exc:
        mark = exc.problem_mark if isinstance(exc, yaml.MarkedYAMLError) else None
        raise refuse(
            where,
            f"is not valid YAML ({yamlsafe.first_line(exc)})",
            "yaml_invalid",
            line=mark.line + 1 if mark is not None else None,
            column=mark.column + 1 if mark is not None else None,
        ) from None
    nul = find_nul(loaded)
    if nul is not None:
        raise refuse(f"{where}{nul}", "contains a NUL character", "nul_character")
    return loaded


def find_nul(value: Any) -> str | None:
    """The path (``.a[0].b``) of the first string or key holding a NUL character, or None."""
    for path, item in _walk(value):
        if isinstance(item, str) and "\x00" in item:
            return path
    return None


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        yield path, item
        if isinstance(item, dict):
            for k, v in item.items():
                yield f"{path}.{k}", k
                stack.append((f"{path}.{k}", v))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(item))
