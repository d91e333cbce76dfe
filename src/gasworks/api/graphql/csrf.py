"""Cookie-authenticated GraphQL (a signed-in browser's GraphiQL): mutations need the CSRF token.

Queries are read-only and a cross-site page cannot read their answer, so the session cookie
alone is enough for them; a mutation with the cookie must also carry ``X-CSRF-Token``
(``api/browser_auth.py``). Requests with an API key are not concerned.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import ExecutionResult, GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from gasworks.errors import Forbidden


class CookieCsrf(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        ec = self.execution_context
        request = getattr(ec.context, "request", None)
        csrf_ok = getattr(getattr(request, "state", None), "csrf_ok", True)
        if ec.operation_type == OperationType.MUTATION and not csrf_ok:
            err = Forbidden(
                "A mutation from a signed-in browser needs the X-CSRF-Token header.",
                details={"reason": "csrf", "header": "X-CSRF-Token"},
            )
            ec.result = ExecutionResult(
                data=None, errors=[GraphQLError(err.message, original_error=err)]
            )
        yield
