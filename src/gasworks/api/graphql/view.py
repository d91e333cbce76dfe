"""Strawberry's FastAPI view, with gasworks' body parsing and error envelope.

Strawberry parses the body with ``json.loads`` and indexes the result as a mapping (a body
of ``null``, ``"x"`` or ``5`` was a 500; deep nesting a ``RecursionError``), and answers its
own refusals ("Unsupported content type", "Batching is not enabled", ...) as plain text.
Here the body goes through ``gasworks.inputs.load_json`` and must be an object, and every
refusal of the view is raised as a ``GasworksError``, which the app's handlers render as
the usual envelope with a code and the request id.
"""

from __future__ import annotations

from typing import Any

from cross_web import HTTPException as ViewHTTPException
from fastapi import Request
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from gasworks.api.graphql.context import GqlContext
from gasworks.errors import (
    BadRequest,
    GasworksError,
    MethodNotAllowed,
    NotFound,
    UnsupportedMediaType,
)
from gasworks.inputs import load_json, refuse
from gasworks.observability.logging import get_logger
from gasworks.observability.request_id import current_request_id

log = get_logger("gasworks.graphql")

_BY_STATUS: dict[int, type[GasworksError]] = {
    404: NotFound,
    405: MethodNotAllowed,
    415: UnsupportedMediaType,
}


class GuardedGraphQLRouter(GraphQLRouter[GqlContext, None]):
    def decode_json(self, data: str | bytes) -> object:
        body = load_json(data)
        if isinstance(body, list):
            raise BadRequest("Batching is not enabled: send one operation per request.")
        if not isinstance(body, dict):
            raise refuse("body", "must be a JSON object with a `query`", "object_expected")
        return body

    async def run(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().run(*args, **kwargs)
        except ViewHTTPException as exc:
            reason = str(exc.reason)
            if reason == "Unsupported content type":
                raise UnsupportedMediaType(
                    "GraphQL requests are POSTed as application/json (or sent with GET)."
                ) from None
            cls = _BY_STATUS.get(exc.status_code, BadRequest)
            raise cls(reason) from None

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        """The last net: an error that reached the answer without a code (one raised outside
        the ``ErrorCodes`` extension's reach) is ``INTERNAL`` with the request id."""
        out = await super().process_result(request, result)
        errors: list[dict[str, Any]] = list(out.get("errors") or [])  # type: ignore[arg-type]
        for error in errors:
            ext = error.setdefault("extensions", {})
            if "code" not in ext:
                log.error("graphql.uncoded_error", message=error.get("message"))
                error["message"] = "An internal error occurred; it has been logged."
                ext["code"] = "INTERNAL"
                ext["requestId"] = current_request_id()
        return out
