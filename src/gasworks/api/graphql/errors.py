"""GraphQL errors carry the same stable codes as REST, in ``extensions.code``.

Errors that are not gasworks errors are masked: the client sees ``INTERNAL`` and a generic
message; the cause is logged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    OperationDefinitionNode,
    SelectionSetNode,
)
from pydantic import ValidationError
from strawberry.extensions import SchemaExtension

from gasworks.apimodel import camel
from gasworks.errors import (
    GasworksError,
    GraphQLQueryTooDeep,
    GraphQLQueryTooLarge,
    GraphQLValidationFailed,
    ValidationFailed,
)
from gasworks.observability.logging import get_logger
from gasworks.observability.request_id import current_request_id
from gasworks.validation import validation_failed

log = get_logger("gasworks.graphql")


def _document_error_code(error: GraphQLError) -> str:
    """The code of an error in the document itself (graphql-core/strawberry give no codes)."""
    if "exceeds maximum operation depth" in error.message or "nested too deeply" in error.message:
        return GraphQLQueryTooDeep.code
    if "Document contains more than" in error.message or "aliases" in error.message:
        return GraphQLQueryTooLarge.code
    return GraphQLValidationFailed.code


def _named_as_arguments(errors: Iterable[Mapping[str, Any]]) -> ValidationFailed:
    """``VALIDATION_FAILED`` naming fields as GraphQL arguments are named (``costLimit``, not
    the Python ``cost_limit`` the resolver validated)."""
    return validation_failed(
        {**e, "loc": tuple(camel(p) if isinstance(p, str) else p for p in e.get("loc", ()))}
        for e in errors
    )


class ErrorCodes(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        result.errors = [self._translate(e) for e in result.errors]

    @staticmethod
    def _translate(error: GraphQLError) -> GraphQLError:
        orig = error.original_error
        rid = current_request_id()
        if isinstance(orig, ValidationError):  # a resolver built a schema from its arguments
            orig = _named_as_arguments(orig.errors(include_url=False))
        elif type(orig) is ValidationFailed and "errors" in orig.details:
            orig = _named_as_arguments(
                {"loc": tuple(e["path"].split(".")), "msg": e["message"], "type": e["type"]}
                for e in orig.details["errors"]
            )
        if isinstance(orig, GasworksError):
            ext = {"code": orig.code, "details": orig.details, "requestId": rid}
            return GraphQLError(
                orig.message, error.nodes, error.source, error.positions, error.path, None, ext
            )
        if orig is None:  # a syntax/validation error of the query itself
            ext = {
                "code": _document_error_code(error),
                **(error.extensions or {}),
                "requestId": rid,
            }
            return GraphQLError(
                error.message, error.nodes, error.source, error.positions, error.path, None, ext
            )
        log.error("graphql.crashed", error_type=type(orig).__name__, path=error.path)
        return GraphQLError(
            "An internal error occurred; it has been logged.",
            error.nodes,
            error.source,
            error.positions,
            error.path,
            None,
            {"code": "INTERNAL", "requestId": rid},
        )


#: fragment spreads inside fragment spreads: real documents use a handful
MAX_FRAGMENT_CHAIN = 32


def fragment_chain(document: DocumentNode) -> int:
    """The longest chain of fragments spread inside one another (a cycle counts as endless).

    Iterative: graphql-core's validation rules and strawberry's depth limiter follow spreads
    by recursion, and a 300-fragment chain exhausted Python's stack.
    """
    spreads: dict[str, set[str]] = {}
    roots: set[str] = set()
    for definition in document.definitions:
        names = _spread_names(getattr(definition, "selection_set", None))
        if isinstance(definition, FragmentDefinitionNode):
            spreads[definition.name.value] = names
        elif isinstance(definition, OperationDefinitionNode):
            roots |= names
    longest: dict[str, int] = {}
    for root in roots:
        stack: list[tuple[str, bool]] = [(root, False)]
        on_path: set[str] = set()
        while stack:
            name, done = stack.pop()
            if done:
                on_path.discard(name)
                longest[name] = 1 + max(
                    (longest.get(n, 0) for n in spreads.get(name, ())), default=0
                )
                continue
            if name in longest:
                continue
            if name in on_path or len(on_path) > MAX_FRAGMENT_CHAIN:
                return MAX_FRAGMENT_CHAIN + 1
            on_path.add(name)
            stack.append((name, True))
            stack.extend((n, False) for n in spreads.get(name, ()) if n not in longest)
    return max((longest.get(r, 0) for r in roots), default=0)


def _spread_names(selection_set: SelectionSetNode | None) -> set[str]:
    names: set[str] = set()
    pending = [selection_set] if selection_set is not None else []
    while pending:
        current = pending.pop()
        for selection in current.selections:
            if isinstance(selection, FragmentSpreadNode):
                names.add(selection.name.value)
            inner = getattr(selection, "selection_set", None)
            if inner is not None:
                pending.append(inner)
    return names


#: a NUL escape in a GraphQL string (``\u0000`` or ``\u{0}``) after an even number of backslashes
_GRAPHQL_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u(?:0000|\{0+\})")


class DocumentLimits(SchemaExtension):
    """Checks on the parsed document before any validation rule (all recursive) walks it:
    fragments nested deeper than ``MAX_FRAGMENT_CHAIN`` (``GRAPHQL_QUERY_TOO_DEEP``), and
    NUL characters in string literals (``VALIDATION_FAILED``; variables are checked with the
    body by ``gasworks.inputs``)."""

    def on_validate(self) -> Iterator[None]:
        document = self.execution_context.graphql_document
        query = self.execution_context.query or ""
        if "\\u" in query and _GRAPHQL_NUL.search(query):
            self.execution_context.pre_execution_errors = [
                GraphQLError(
                    "A string in the document contains a NUL character.",
                    extensions={
                        "code": ValidationFailed.code,
                        "requestId": current_request_id(),
                    },
                )
            ]
        elif document is not None and fragment_chain(document) > MAX_FRAGMENT_CHAIN:
            self.execution_context.pre_execution_errors = [
                GraphQLError(
                    f"Fragments are nested too deeply (more than {MAX_FRAGMENT_CHAIN} "
                    "spreads inside one another, or a cycle).",
                    extensions={
                        "code": GraphQLQueryTooDeep.code,
                        "requestId": current_request_id(),
                    },
                )
            ]
        yield
