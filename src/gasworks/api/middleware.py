"""Pure-ASGI middleware: request id, structured access log, Prometheus request metrics.

Pure ASGI (not BaseHTTPMiddleware) so streamed responses are not buffered and the per-request
overhead stays in the microseconds.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gasworks.observability.logging import access_log, enabled_for, get_logger
from gasworks.observability.metrics import HTTP_LATENCY, HTTP_REQUESTS
from gasworks.observability.request_id import REQUEST_ID

_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_QUIET = {"/healthz", "/readyz", "/metrics"}
log = get_logger("gasworks.http")


#: Routes under these path prefixes accept larger (or smaller) bodies than
#: ``GASWORKS_MAX_REQUEST_BYTES``; a domain with uploads adds its prefix here.
BODY_LIMIT_OVERRIDES: dict[str, int] = {
    # document uploads: each file is limited by GASWORKS_DOCUMENTS_MAX_BYTES while it streams,
    # the count by GASWORKS_DOCUMENTS_MAX_FILES; the request as a whole only by this guard
    "/api/documents": 64 * 1024**3,
}


def body_limit(path: str, default: int) -> int:
    for prefix, limit in BODY_LIMIT_OVERRIDES.items():
        if path.startswith(prefix):
            return limit
    return default


_Children = tuple[Any, Any]
#: (route, method, status) -> (request counter, latency histogram) children: ``labels()``
#: takes a lock and builds a key on every call; routes and statuses are few
_METRIC_CHILDREN: dict[tuple[str, str, int], _Children] = {}


def _metric_children(route: str, method: str, status: int) -> _Children:
    key = (route, method, status)
    children = _METRIC_CHILDREN.get(key)
    if children is None:
        children = (
            HTTP_REQUESTS.labels(route, method, str(status)),
            HTTP_LATENCY.labels(route, method),
        )
        if len(_METRIC_CHILDREN) < 10_000:
            _METRIC_CHILDREN[key] = children
    return children


class RequestContextMiddleware:
    """Request id, access log line (``access_log``), request metrics, body size limit."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int | None = None, *, access_log: bool = True
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = request_header(scope, b"x-request-id")
        request_id = incoming if incoming and _VALID_ID.match(incoming) else os.urandom(16).hex()
        token = REQUEST_ID.set(request_id)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(requestId=request_id)
        status = 500
        started = time.perf_counter()
        raw_id = request_id.encode()
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", raw_id))
                message["headers"] = headers
            await send(message)

        try:
            limit = body_limit(scope.get("path", ""), self.max_body_bytes or 0)
            declared = request_header(scope, b"content-length")
            if limit and declared and declared.isdigit() and int(declared) > limit:
                await _too_large(scope, limit)(scope, receive, send_wrapper)
            elif "\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b""):
                await _nul_refused(scope)(scope, receive, send_wrapper)
            else:
                app_receive = _limited(receive, limit) if limit else receive
                await self.app(scope, app_receive, send_wrapper)
        except Exception as exc:
            # Rendered here, inside the request id's scope, rather than by Starlette's
            # ServerErrorMiddleware (outside every user middleware, where the id is gone).
            log.exception("request.crashed", error_type=type(exc).__name__)
            if response_started:
                raise  # nothing can be sent any more; the server closes the connection
            from gasworks.api.errors import app_errors

            path = str(scope.get("path", ""))
            await app_errors(scope).crash_response(path)(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            method = scope.get("method", "GET")
            requests, latency = _metric_children(route, method, status)
            requests.inc()
            latency.observe(elapsed)
            if self.access_log and enabled_for(logging.INFO) and scope.get("path") not in _QUIET:
                access_log().write(method, route, status, round(elapsed * 1000, 3))
            structlog.contextvars.clear_contextvars()
            REQUEST_ID.reset(token)


def _too_large(scope: Scope, limit: int) -> Any:
    from gasworks.api.errors import app_errors
    from gasworks.errors import PayloadTooLarge

    return app_errors(scope).render(
        str(scope.get("path", "")),
        PayloadTooLarge(
            f"The request body is larger than {limit} bytes.", details={"maxBytes": limit}
        ),
    )


def _nul_refused(scope: Scope) -> Any:
    """A NUL character in the path or the query: PostgreSQL cannot compare or store it, so
    it is refused on both databases before any route sees it (bodies: ``gasworks.inputs``)."""
    from gasworks.api.errors import app_errors
    from gasworks.inputs import refuse

    where = "path" if "\x00" in scope.get("path", "") else "query"
    return app_errors(scope).render(
        str(scope.get("path", "")), refuse(where, "contains a NUL character", "nul_character")
    )


def _limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that stops a body (without Content-Length) once it exceeds ``limit``."""
    seen = 0

    async def receive_limited() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                # an HTTPException passes FastAPI's body parsing untouched → 413 envelope
                raise HTTPException(413, f"The request body is larger than {limit} bytes.")
        return message

    return receive_limited


def request_header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower-case bytes), or None."""
    for key, value in scope.get("headers", []):
        if key == name:
            try:
                return str(value.decode("latin-1"))
            except Exception:
                return None
    return None


def _route_template(scope: Scope) -> str:
    """The matched route's template (``/api/keys/{key_id}``), never the raw path.

    FastAPI ≥ 0.120 keeps a route's own path without the ``include_router(prefix=…)`` it was
    mounted under; the full template is in its effective route context. Older versions put
    the full path on the route itself.
    """
    effective: Any = (scope.get("fastapi") or {}).get("effective_route_context")
    path = getattr(effective, "path_format", None)
    if not path:
        route: Any = scope.get("route")
        path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else "unmatched"
