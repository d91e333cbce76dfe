"""Translate every failure into the gasworks error envelope, at one boundary.

``{"error": {"code", "message", "details", "requestId"}}`` with a fitting status. Validation
errors name the offending field path. Anything unexpected is logged with its traceback and
answered as a 500 ``INTERNAL`` that reveals nothing of the cause.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path
from starlette.types import Scope

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
from gasworks.observability.request_id import current_request_id
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

#: Renders a gasworks error in another shape (the OpenAI-compatible API's).
Renderer = Callable[[GasworksError], JSONResponse]


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable machine-readable code (docs/reference/errors.md).")
    message: str = Field(description="What went wrong and what to do about it.")
    details: dict[str, Any] = Field(description="Structured context, e.g. `errors[].path`.")
    requestId: str | None = Field(description="The request id (also the X-Request-ID header).")


class ErrorEnvelope(BaseModel):
    """The body of every error answer outside ``/v1``."""

    error: ErrorInfo


class OpenAIErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None
    code: str = Field(description="The gasworks error code.")


class OpenAIErrorEnvelope(BaseModel):
    """The body of every error answer under ``/v1`` (OpenAI's shape)."""

    error: OpenAIErrorInfo


def error_responses(model: type[BaseModel] = ErrorEnvelope) -> dict[int | str, dict[str, Any]]:
    """What the OpenAPI document says every route may answer besides its success: given to
    each ``include_router`` in ``create_app``, so a new router is documented the same way
    (FastAPI's own 422 schema, which gasworks never sends, is replaced)."""
    return {
        422: {"model": model, "description": "VALIDATION_FAILED: a field is invalid."},
        "4XX": {"model": model, "description": "The request cannot be served as sent."},
        "5XX": {"model": model, "description": "gasworks or a dependency failed."},
    }


def allowed_methods(scope: MutableMapping[str, Any]) -> list[str]:
    """Every method the API documents for this path (Starlette's 405 names only the methods
    of the first route matching the path, and FastAPI makes one route per method). The table
    is built once per app from its OpenAPI document; a path it does not document keeps
    Starlette's answer."""
    app: Any = scope.get("app")
    state = getattr(app, "state", None)
    table: list[tuple[re.Pattern[str], set[str]]] | None = getattr(state, "allow_table", None)
    if table is None and state is not None and hasattr(app, "openapi"):
        table = [
            (compile_path(template)[0], {m.upper() for m in ops})
            for template, ops in app.openapi().get("paths", {}).items()
        ]
        state.allow_table = table
    path = str(scope.get("path", ""))
    methods: set[str] = set()
    for pattern, documented in table or ():
        if pattern.match(path):
            methods |= documented
    return sorted(methods)


def envelope(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "details": details or {},
            "requestId": current_request_id(),
        }
    }


class ErrorRenderer:
    """One app's error answers. Routes under a prefix of ``alternates`` (the app factory
    registers ``/v1/``) render in that prefix's shape; every other route in the envelope.
    Held by the app (``app.state.errors``), so two apps in one process never share it."""

    def __init__(self, alternates: Mapping[str, Renderer] | None = None) -> None:
        self.alternates: dict[str, Renderer] = dict(alternates or {})

    def render(self, path: str, exc: GasworksError) -> JSONResponse:
        ERRORS.labels(exc.code).inc()
        for prefix, renderer in self.alternates.items():
            if path.startswith(prefix):
                return renderer(exc)
        headers = {}
        retry_after = exc.details.get("retryAfterSeconds")
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, int(retry_after)))
        return JSONResponse(
            envelope(exc.code, exc.message, exc.details), status_code=exc.status, headers=headers
        )

    def exception_response(
        self,
        path: str,
        method: str,
        exc: Exception,
        scope: MutableMapping[str, Any] | None = None,
    ) -> JSONResponse:
        """The answer to a ``GasworksError``, a request validation error or a framework HTTP
        error: the FastAPI handlers below, and the ``/v1`` fast path (``api.fastpath``)."""
        if isinstance(exc, RequestValidationError):
            return self.validation_response(path, exc.errors())
        if isinstance(exc, GasworksError):
            if type(exc) is GasworksError:  # raised from the base class: a bug, not a decision
                log.error("request.failed", code=exc.code, error_type="GasworksError", exc_info=exc)
                return self.crash_response(path)
            if exc.status >= 500:
                log.error("request.failed", code=exc.code, error=exc.message, exc_info=exc)
            return self.render(path, exc)
        if isinstance(exc, StarletteHTTPException):
            cls = _HTTP_ERRORS.get(exc.status_code)
            if cls is None:
                cls = InternalError if exc.status_code >= 500 else BadRequest
            message = str(exc.detail) if exc.detail else cls.__name__
            if exc.status_code == 404 and message == "Not Found":
                message = f"No route matches {method} {path}."
            elif exc.status_code == 405:
                message = f"{method} is not allowed on {path}."
            response = self.render(path, cls(message))
            response.status_code = exc.status_code
            response.headers.update(exc.headers or {})
            if exc.status_code == 405 and scope is not None:
                documented = allowed_methods(scope)
                if documented:
                    response.headers["Allow"] = ", ".join(documented)
            return response
        raise TypeError(f"not an error with an answer: {type(exc).__name__}")  # pragma: no cover

    def validation_response(
        self, path: str, errors: Sequence[Any], prefix: Sequence[str] = ()
    ) -> JSONResponse:
        """``VALIDATION_FAILED`` naming each field (``prefix``: where the fields are, "body")."""
        return self.render(path, validation_failed(errors, prefix))

    def crash_response(self, path: str) -> JSONResponse:
        """The answer to an unexpected exception: 500 ``INTERNAL``, nothing of the cause.

        Called by ``RequestContextMiddleware`` (inside the request id's scope) after it has
        logged the exception with its traceback.
        """
        return self.render(path, InternalError("An internal error occurred; it has been logged."))


def app_errors(scope: Scope) -> ErrorRenderer:
    """The error renderer of the app serving this ASGI request (set by ``create_app``)."""
    app = scope.get("app")
    errors = getattr(getattr(app, "state", None), "errors", None)
    return errors if isinstance(errors, ErrorRenderer) else ErrorRenderer()


def install_error_handlers(app: FastAPI, errors: ErrorRenderer) -> None:
    app.state.errors = errors

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return errors.exception_response(request.url.path, request.method, exc, request.scope)

    app.add_exception_handler(GasworksError, handle)
    app.add_exception_handler(RequestValidationError, handle)
    app.add_exception_handler(StarletteHTTPException, handle)
