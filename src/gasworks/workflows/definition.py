"""The workflow document: what authors write (JSON or YAML) and what versions store.

Only the *shape* is checked here (pydantic); the graph rules and each node type's config are
checked by :mod:`gasworks.workflows.validator`, which reports every problem at once.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from gasworks.errors import ValidationFailed, WorkflowInvalid
from gasworks.inputs import load_json, load_yaml

START = "START"
END = "END"
#: the state key holding the document ids the run's caller may search (set by the engine)
ALLOWED_KEY = "allowedDocumentIds"
#: node types that search, for which the engine computes the caller's allowed sources
RETRIEVAL_NODE_TYPES = frozenset({"VectorSearch"})
#: ids a node may not take (virtual nodes, reserved state keys)
RESERVED_IDS = frozenset(
    {
        START,
        END,
        "input",
        "inputs",
        "slots",
        "intent",
        "confidence",
        "context",
        "turn",
        "history",
        ALLOWED_KEY,
    }
)


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class RetryPolicy(_Model):
    max_attempts: int = Field(default=1, ge=1, le=10, description="Attempts including the first.")
    backoff_seconds: float = Field(default=0.0, ge=0, le=60)
    backoff_multiplier: float = Field(default=2.0, ge=1, le=10)


class NodeSpec(_Model):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$")
    type: str = Field(min_length=1, max_length=64)
    config: dict[str, Any] = Field(default_factory=dict)
    timeout_seconds: float | None = Field(default=None, gt=0, le=3600)
    retry: RetryPolicy | None = None
    #: how often this node may run in one run; required on some node of every cycle
    max_iterations: int | None = Field(default=None, ge=1, le=10_000)
    description: str | None = None


class EdgeSpec(_Model):
    from_: str = Field(alias="from", min_length=1)
    to: str = Field(min_length=1)


class StateField(_Model):
    type: Literal["string", "number", "integer", "boolean", "object", "array", "any"] = "any"
    required: bool = False
    default: Any = None
    description: str | None = None


#: the most nodes / edges one workflow definition may have (a run stays linear up to this size;
#: bench/results/workflows.md); larger graphs are split into workflows that call each other
MAX_NODES = 500
MAX_EDGES = 2000


class WorkflowDefinition(_Model):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    name: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    nodes: list[NodeSpec] = Field(default_factory=list, max_length=MAX_NODES)
    edges: list[EdgeSpec] = Field(default_factory=list, max_length=MAX_EDGES)
    #: the inputs a run takes (checked once when a run starts)
    state: dict[str, StateField] = Field(default_factory=dict)
    max_steps: int = Field(default=100, ge=1, le=100_000)

    def to_document(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_document(text: str | bytes, *, filename: str | None = None) -> dict[str, Any]:
    """JSON or YAML text → a plain document (not yet validated). Parsed by
    ``gasworks.inputs`` (nesting bounded before parsing, no NUL, UTF-8 only; YAML through
    ``yamlsafe``: no anchors or aliases)."""
    try:
        if filename is not None and filename.endswith(".json"):
            data = load_json(text, where="document")
        else:
            data = load_yaml(text, where="document")  # YAML is a superset of JSON
    except ValidationFailed as exc:
        first = exc.details["errors"][0]
        if first["type"] == "yaml_alias":
            raise WorkflowInvalid(
                "YAML anchors and aliases are not accepted in a workflow: write each value out.",
                details={"issues": [_issue("YAML_ALIAS", "", first["message"])]},
            ) from None
        issue: dict[str, Any] = dict(_issue("PARSE_ERROR", "", first["message"]))
        if "line" in first:
            issue.update(line=first["line"], column=first["column"])
        if first["type"] in ("json_invalid", "yaml_invalid"):
            raise WorkflowInvalid(
                f"The workflow is neither valid JSON nor valid YAML: {first['message']}",
                details={"issues": [issue]},
            ) from None
        raise WorkflowInvalid(
            f"The workflow document cannot be read: {first['message']}.",
            details={"issues": [issue]},
        ) from None
    if not isinstance(data, dict):
        raise WorkflowInvalid(
            "A workflow document must be a mapping.",
            details={"issues": [_issue("PARSE_ERROR", "", "expected a mapping at the top")]},
        )
    return data


def load_definition(doc: dict[str, Any]) -> WorkflowDefinition:
    """Shape-check a document; every shape problem is reported (code ``INVALID_DOCUMENT``)."""
    try:
        return WorkflowDefinition.model_validate(doc)
    except ValidationError as exc:
        issues = [
            _issue("INVALID_DOCUMENT", _path(e["loc"]), _message(e))
            for e in exc.errors(include_url=False)
        ]
        raise WorkflowInvalid(
            f"The workflow document has {len(issues)} problem(s).", details={"issues": issues}
        ) from None


_LIMITS = {("nodes",): ("nodes", MAX_NODES), ("edges",): ("edges", MAX_EDGES)}


def _message(error: Any) -> str:
    """Pydantic's message, with the size limits said plainly (and what to do about them)."""
    limit = _LIMITS.get(tuple(error["loc"]))
    if error["type"] == "too_long" and limit is not None:
        what, most = limit
        return (
            f"A workflow may have at most {most} {what} (this one has "
            f"{error.get('ctx', {}).get('actual_length', 'more')}); merge steps into fewer "
            "nodes or split the process into several workflows."
        )
    return str(error["msg"])


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _issue(code: str, path: str, message: str) -> dict[str, str]:
    return {"code": code, "path": path, "message": message}
