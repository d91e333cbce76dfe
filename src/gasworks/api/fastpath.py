"""``POST /v1/chat/completions`` served without FastAPI's routing and dependency solving.

The gateway's hot route is a plain ASGI handler in front of the router: it authenticates
(``api.auth.authenticate_request``, as every route, before the body is read), validates the
JSON body with the same pydantic model in one ``model_validate_json``, and calls the same
endpoint function as the FastAPI route. The route stays declared in FastAPI (the OpenAPI
schema, and any request this path passes on: another method or a body that does not say it
is JSON).

Why by hand: a streamed request through FastAPI spent ~200 µs of CPU before and around the
endpoint on the reference machine (route matching over every route, dependency solving, body
reading and a second JSON pass, two exception-handling ``send`` wrappers per stream event),
more than the gateway, the provider adapter and the rendering together; at 50 open streams
that time is on every request's time to first token. Errors are the same: the FastAPI
handlers' own rendering (the app's ``api.errors.ErrorRenderer``), in OpenAI's error shape.
Middleware outside this one (request id, access log, metrics, body limit, tracing) runs as
for every route.
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from gasworks.api.auth import authenticate_request
from gasworks.api.errors import app_errors
from gasworks.api.middleware import request_header
from gasworks.api.openai_wire import ChatCompletionRequest
from gasworks.errors import GasworksError

PATH = "/v1/chat/completions"


class ChatCompletionsFastPath:
    """Pure-ASGI middleware: serves ``POST /v1/chat/completions`` with a JSON body itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or not _json_body(scope)
        ):
            await self.app(scope, receive, send)
            return
        from gasworks.api.routes.openai_compat import chat_completions

        app = scope["app"]
        scope["route"] = _ROUTE  # the route template of the metrics and the access log
        try:
            # the key first: a caller without one never gets its body read or parsed
            ctx = await authenticate_request(scope, request_header(scope, b"authorization"))
            body = await _read_body(receive)
            try:
                request = ChatCompletionRequest.model_validate_json(body)
            except ValidationError as exc:
                response = app_errors(scope).validation_response(
                    PATH, exc.errors(), prefix=("body",)
                )
            else:
                response = await chat_completions(request, ctx, app.state.runtime)
        except (GasworksError, StarletteHTTPException) as exc:
            response = app_errors(scope).exception_response(PATH, "POST", exc)
        await response(scope, receive, send)


class _RouteLabel:
    """What ``scope["route"]`` offers the request metrics and access log: the template."""

    path = path_format = PATH


_ROUTE = _RouteLabel()


def _json_body(scope: Scope) -> bool:
    """The request says its body is JSON (or says nothing, as FastAPI then assumes)."""
    ctype = request_header(scope, b"content-type")
    if ctype is None:
        return True
    main = ctype.split(";", 1)[0].strip().lower()
    return main == "application/json" or (
        main.startswith("application/") and main.endswith("+json")
    )


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    parts = [body]
    while message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":  # the client left mid-body
            raise StarletteHTTPException(400, "The request body was not received in full.")
        parts.append(message.get("body", b""))
    return b"".join(parts)
