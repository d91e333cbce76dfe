"""The one exception tree of gasworks.

Every error has a stable machine-readable ``code``, an HTTP ``status`` and a message a user can
act on. ``details`` carries structured context (never a secret). The API renders them as
``{"error": {"code", "message", "details", "requestId"}}``; the CLI prints them and exits 1.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GasworksError(Exception):
    """Base of every error gasworks raises on purpose."""

    code: ClassVar[str] = "INTERNAL"
    status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}

    def to_dict(self, request_id: str | None = None) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "details": self.details,
            "requestId": request_id,
        }


# --- 4xx: the caller can fix it ------------------------------------------------------------


class ValidationFailed(GasworksError):
    code = "VALIDATION_FAILED"
    status = 422


class BadRequest(GasworksError):
    code = "BAD_REQUEST"
    status = 400


class Unauthenticated(GasworksError):
    code = "UNAUTHENTICATED"
    status = 401


class Forbidden(GasworksError):
    code = "FORBIDDEN"
    status = 403


class NotFound(GasworksError):
    code = "NOT_FOUND"
    status = 404


class Conflict(GasworksError):
    code = "CONFLICT"
    status = 409


class AlreadyExists(Conflict):
    code = "ALREADY_EXISTS"


class PayloadTooLarge(GasworksError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413


class RateLimited(GasworksError):
    code = "RATE_LIMITED"
    status = 429
    retryable = True


# --- 5xx: gasworks or a dependency failed ---------------------------------------------------


class InternalError(GasworksError):
    code = "INTERNAL"
    status = 500


class DatabaseUnavailable(GasworksError):
    code = "DATABASE_UNAVAILABLE"
    status = 503
    retryable = True


class ConfigurationError(GasworksError):
    code = "CONFIGURATION_ERROR"
    status = 500


class MissingDependency(ConfigurationError):
    """An optional extra is needed: the message names it (``pip install 'gasworks[openai]'``)."""

    code = "MISSING_DEPENDENCY"


def error_codes() -> dict[str, int]:
    """Every code in the tree with its HTTP status (used by docs and tests)."""
    seen: dict[str, int] = {}
    stack: list[type[GasworksError]] = [GasworksError]
    while stack:
        cls = stack.pop()
        seen.setdefault(cls.code, cls.status)
        stack.extend(cls.__subclasses__())
    return dict(sorted(seen.items()))


# --- workflows ------------------------------------------------------------------------------


class WorkflowInvalid(ValidationFailed):
    """A workflow definition failed validation; ``details.issues`` lists every problem."""

    code = "WORKFLOW_INVALID"
    status = 422


class ExpressionInvalid(ValidationFailed):
    """A router expression does not parse or is too large; ``details.column`` points at it."""

    code = "EXPRESSION_INVALID"
    status = 422


class WorkflowRunFailed(GasworksError):
    """A node failed while a workflow ran (``details`` names the node)."""

    code = "WORKFLOW_RUN_FAILED"
    status = 502


class NodeTimeout(WorkflowRunFailed):
    code = "NODE_TIMEOUT"
    status = 504
    retryable = True


class MaxStepsExceeded(WorkflowRunFailed):
    code = "MAX_STEPS_EXCEEDED"
    status = 422


class IterationLimitExceeded(WorkflowRunFailed):
    code = "ITERATION_LIMIT_EXCEEDED"
    status = 422


class RunCancelled(GasworksError):
    code = "RUN_CANCELLED"
    status = 409
