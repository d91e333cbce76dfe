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
