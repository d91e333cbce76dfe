"""GraphQL errors carry the same stable codes as REST, in ``extensions.code``.

Errors that are not gasworks errors are masked: the client sees ``INTERNAL`` and a generic
message; the cause is logged.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from gasworks.errors import (
    GasworksError,
    GraphQLQueryTooDeep,
    GraphQLQueryTooLarge,
    GraphQLValidationFailed,
)
from gasworks.observability.logging import get_logger
from gasworks.observability.request_id import current_request_id

log = get_logger("gasworks.graphql")


def _document_error_code(error: GraphQLError) -> str:
    """The code of an error in the document itself (graphql-core/strawberry give no codes)."""
    if "exceeds maximum operation depth" in error.message or "nested too deeply" in error.message:
        return GraphQLQueryTooDeep.code
    if "Document contains more than" in error.message or "aliases" in error.message:
        return GraphQLQueryTooLarge.code
    return GraphQLValidationFailed.code


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
        if isinstance(orig, GasworksError):
            ext = {"code": orig.code, "details": orig.details, "requestId": rid}
            return GraphQLError(
                orig.message, error.nodes, error.source, error.positions, error.path, None, ext
            )
        if orig is None:  # a syntax/validation error of the query itself
            ext = {
                **(error.extensions or {}),
                "code": _document_error_code(error),
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
