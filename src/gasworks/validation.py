"""Turn pydantic validation failures into ``ValidationFailed`` naming each field path.

Used at every boundary that validates input outside FastAPI's own request parsing (GraphQL
arguments, CLI options), so a bad value is a ``VALIDATION_FAILED`` error, never a 500.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from gasworks.errors import ValidationFailed

M = TypeVar("M", bound=BaseModel)


def field_path(loc: Sequence[int | str]) -> str:
    """``("body", "items", 0, "name")`` → ``body.items.0.name``."""
    return ".".join(str(p) for p in loc)


def validation_failed(
    errors: Iterable[Mapping[str, Any]], prefix: Sequence[str] = ()
) -> ValidationFailed:
    """A ``ValidationFailed`` listing every problem; the message names the first one."""
    problems = [
        {
            "path": field_path((*prefix, *tuple(err.get("loc", ())))),
            "message": str(err.get("msg", "invalid")),
            "type": str(err.get("type", "")),
        }
        for err in errors
    ]
    first = problems[0] if problems else {"path": "", "message": "invalid input"}
    message = f"Invalid request: {first['path'] or 'input'}: {first['message']}"
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more)"
    return ValidationFailed(message, details={"errors": problems})


def validated(model: type[M], data: Any, *, prefix: Sequence[str] = ()) -> M:
    """``model.model_validate(data)``, raising ``ValidationFailed`` instead of pydantic's error."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_failed(exc.errors(), prefix) from None


def syntax_problem(exc: Exception) -> dict[str, Any]:
    """Where a YAML or JSON parser stopped: ``{"line", "column", "problem"}`` (1-based), from
    PyYAML's marks or ``json.JSONDecodeError``; ``line``/``column`` are None when unknown."""
    import json

    import yaml

    if isinstance(exc, json.JSONDecodeError):
        return {"line": exc.lineno, "column": exc.colno, "problem": exc.msg}
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        if mark is None:
            return {"line": None, "column": None, "problem": problem}
        return {"line": mark.line + 1, "column": mark.column + 1, "problem": problem}
    return {"line": None, "column": None, "problem": str(exc).splitlines()[0] if str(exc) else ""}


def where(source: str, problem: Mapping[str, Any]) -> str:
    """``file.yaml, line 3, column 7: problem``."""
    at = source
    if problem["line"]:
        at += f", line {problem['line']}, column {problem['column']}"
    return f"{at}: {problem['problem']}"


def parse_yaml_or_json(text: str, *, source: str, json_only: bool = False) -> Any:
    """YAML (a superset of JSON) or, with ``json_only``, strict JSON; a syntax error is
    ``VALIDATION_FAILED`` naming the line and column."""
    import json

    import yaml

    try:
        return json.loads(text) if json_only else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        problem = syntax_problem(exc)
        kind = "JSON" if json_only else "YAML"
        raise ValidationFailed(
            f"{where(source, problem)} (not valid {kind})",
            details={"file": source, **problem},
        ) from None
