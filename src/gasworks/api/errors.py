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
from gasworks.errors import GasworksError, InternalError, ValidationFailed
from gasworks.observability.logging import get_logger
from gasworks.observability.metrics import ERRORS

log = get_logger("gasworks.api")

_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_FAILED",
    429: "RATE_LIMITED",
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
    ERRORS.labels(exc.code).inc()
    for prefix, render in ALTERNATE_RENDERERS.items():
        if request.url.path.startswith(prefix):
            rendered: JSONResponse = render(exc)
            return rendered
    headers = {}
    retry_after = exc.details.get("retryAfterSeconds")
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, int(retry_after)))
    return JSONResponse(
        envelope(exc.code, exc.message, exc.details), status_code=exc.status, headers=headers
    )


def field_path(loc: tuple[int | str, ...] | list[int | str]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:] if len(parts) > 1 else parts
    return ".".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GasworksError)
    async def _gasworks(request: Request, exc: GasworksError) -> JSONResponse:
        if exc.status >= 500:
            log.error("request.failed", code=exc.code, error=exc.message)
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {
                "path": field_path(tuple(err.get("loc", ()))),
                "message": str(err.get("msg", "invalid")),
                "type": str(err.get("type", "")),
            }
            for err in exc.errors()
        ]
        first = problems[0] if problems else {"path": "", "message": "invalid request"}
        message = f"Invalid request: {first['path'] or 'body'}: {first['message']}"
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more)"
        return error_response(request, ValidationFailed(message, details={"errors": problems}))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        message = str(exc.detail) if exc.detail else code
        if exc.status_code == 404 and message == "Not Found":
            message = f"No route matches {request.method} {request.url.path}."
        err = GasworksError(message)
        ERRORS.labels(code).inc()
        return JSONResponse(
            envelope(code, err.message), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request.crashed", error_type=type(exc).__name__)
        return error_response(
            request, InternalError("An internal error occurred; it has been logged.")
        )
