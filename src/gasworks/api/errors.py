"""Translate every failure into the gasworks error envelope, at one boundary.

``{"error": {"code", "message", "details", "requestId"}}`` with a fitting status. Validation
errors name the offending field path. Anything unexpected is logged with its traceback and
answered as a 500 ``INTERNAL`` that reveals nothing of the cause.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gasworks.api.middleware import current_request_id
from gasworks.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    GasworksError,
    InternalError,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthenticated,
    UnsupportedMediaType,
    ValidationFailed,
)
from gasworks.observability.logging import get_logger
from gasworks.observability.metrics import ERRORS
from gasworks.validation import validation_failed

log = get_logger("gasworks.api")

#: Framework-level HTTP errors (no route, wrong method, ...) mapped to the gasworks tree.
_HTTP_ERRORS: dict[int, type[GasworksError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthenticated,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        NotAcceptable,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        ValidationFailed,
        RateLimited,
    )
}

#: Routes under these prefixes render errors in another shape (the OpenAI-compatible API).
ALTERNATE_RENDERERS: dict[str, Any] = {}


def envelope(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "details": details or {},
            "requestId": current_request_id(),
        }
    }


def error_response(request: Request, exc: GasworksError) -> JSONResponse:
    return render(request.url.path, exc)


def render(path: str, exc: GasworksError) -> JSONResponse:
    ERRORS.labels(exc.code).inc()
    for prefix, renderer in ALTERNATE_RENDERERS.items():
        if path.startswith(prefix):
            rendered: JSONResponse = renderer(exc)
            return rendered
    headers = {}
    retry_after = exc.details.get("retryAfterSeconds")
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, int(retry_after)))
    return JSONResponse(
        envelope(exc.code, exc.message, exc.details), status_code=exc.status, headers=headers
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GasworksError)
    async def _gasworks(request: Request, exc: GasworksError) -> JSONResponse:
        if type(exc) is GasworksError:  # raised from the base class: a bug, not a decision
            log.error("request.failed", code=exc.code, error_type="GasworksError")
            return crash_response(request.url.path)
        if exc.status >= 500:
            log.error("request.failed", code=exc.code, error=exc.message)
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request, validation_failed(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        cls = _HTTP_ERRORS.get(exc.status_code)
        if cls is None:
            cls = InternalError if exc.status_code >= 500 else BadRequest
        message = str(exc.detail) if exc.detail else cls.__name__
        if exc.status_code == 404 and message == "Not Found":
            message = f"No route matches {request.method} {request.url.path}."
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}."
        response = error_response(request, cls(message))
        response.status_code = exc.status_code
        response.headers.update(exc.headers or {})
        return response


def crash_response(path: str) -> JSONResponse:
    """The answer to an unexpected exception: 500 ``INTERNAL``, nothing of the cause.

    Called by ``RequestContextMiddleware`` (inside the request id's scope) after it has logged
    the exception with its traceback.
    """
    return render(path, InternalError("An internal error occurred; it has been logged."))
