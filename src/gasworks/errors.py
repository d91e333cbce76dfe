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
    """The request is malformed; the message and details name the offending field path."""

    code = "VALIDATION_FAILED"
    status = 422


class BadRequest(GasworksError):
    """The request cannot be processed as sent."""

    code = "BAD_REQUEST"
    status = 400


class Unauthenticated(GasworksError):
    """No API key, a malformed ``Authorization`` header, or an invalid, expired or revoked key."""

    code = "UNAUTHENTICATED"
    status = 401


class Forbidden(GasworksError):
    """The caller's role does not allow this action (``details.required_role``)."""

    code = "FORBIDDEN"
    status = 403


class NotFound(GasworksError):
    """No such object, or it belongs to another tenant (the two are indistinguishable)."""

    code = "NOT_FOUND"
    status = 404


class Conflict(GasworksError):
    """The object changed meanwhile or the request clashes with its current state."""

    code = "CONFLICT"
    status = 409


class AlreadyExists(Conflict):
    """An object with this unique name already exists."""

    code = "ALREADY_EXISTS"


class LastOwnerKey(Conflict):
    """Revoking this key would leave the tenant without a usable owner key. Create another
    owner key first (or, locked out, ``gasworks keys create --tenant NAME --role owner``)."""

    code = "LAST_OWNER_KEY"


class MethodNotAllowed(GasworksError):
    """The route exists but not for this HTTP method (``Allow`` lists the accepted ones)."""

    code = "METHOD_NOT_ALLOWED"
    status = 405


class NotAcceptable(GasworksError):
    """No representation matches the request's ``Accept`` header."""

    code = "NOT_ACCEPTABLE"
    status = 406


class UnsupportedMediaType(GasworksError):
    """The request body's ``Content-Type`` is not accepted here."""

    code = "UNSUPPORTED_MEDIA_TYPE"
    status = 415


class GraphQLValidationFailed(BadRequest):
    """The GraphQL document does not parse or does not match the schema."""

    code = "GRAPHQL_VALIDATION_FAILED"


class GraphQLQueryTooDeep(GraphQLValidationFailed):
    """The GraphQL query nests deeper than ``GASWORKS_GRAPHQL_MAX_DEPTH``."""

    code = "GRAPHQL_QUERY_TOO_DEEP"


class GraphQLQueryTooLarge(GraphQLValidationFailed):
    """The GraphQL document has more tokens than allowed."""

    code = "GRAPHQL_QUERY_TOO_LARGE"


class PayloadTooLarge(GasworksError):
    """The request body is larger than allowed."""

    code = "PAYLOAD_TOO_LARGE"
    status = 413


class RateLimited(GasworksError):
    """Too many requests; ``Retry-After`` says when to try again."""

    code = "RATE_LIMITED"
    status = 429
    retryable = True


# --- 5xx: gasworks or a dependency failed ---------------------------------------------------


class InternalError(GasworksError):
    """An unexpected failure; the cause is logged under the request id, never returned."""

    code = "INTERNAL"
    status = 500


class ServerBusy(GasworksError):
    """This process is at a configured capacity limit; ``Retry-After`` says when to retry."""

    code = "SERVER_BUSY"
    status = 503
    retryable = True


class ShuttingDown(GasworksError):
    """This server process is draining for a shutdown; another process serves the retry."""

    code = "SERVER_SHUTTING_DOWN"
    status = 503
    retryable = True


class DatabaseUnavailable(GasworksError):
    """The database cannot be reached; retry shortly."""

    code = "DATABASE_UNAVAILABLE"
    status = 503
    retryable = True


class DatabaseBusy(GasworksError):
    """The database aborted the change to break a deadlock or a serialization conflict with
    concurrent work; nothing was applied and the same request may simply be sent again."""

    code = "DATABASE_BUSY"
    status = 503
    retryable = True


class ServerUnreachable(GasworksError):
    """The SDK / CLI cannot reach the gasworks server it was pointed at (``--server``,
    ``GASWORKS_URL``): refused, unresolvable or silent."""

    code = "SERVER_UNREACHABLE"
    status = 503
    retryable = True


class OperatorOnly(BadRequest):
    """A CLI command that acts on the operator's own database (``db upgrade``,
    ``keys create --platform-admin``, ...) was given ``--server`` / ``GASWORKS_URL``."""

    code = "OPERATOR_ONLY"
    status = 400


class ConfigurationError(GasworksError):
    """The deployment is misconfigured (settings, files, missing extras)."""

    code = "CONFIGURATION_ERROR"
    status = 500


class NotInitialized(ConfigurationError):
    """No gasworks database where this command looks (run ``gasworks init``, or set
    ``GASWORKS_HOME``); the CLI never creates one implicitly."""

    code = "NOT_INITIALIZED"
    status = 503


class MissingDependency(ConfigurationError):
    """A Python package this deployment needs is not installed: the message gives the exact
    install command. Not worth a retry (an OpenAI client is told so with ``x-should-retry``)."""

    code = "MISSING_DEPENDENCY"

    @classmethod
    def package(cls, what: str, package: str, extra: str) -> MissingDependency:
        """``what`` needs ``package``, installed with ``pip install 'gasworks[extra]'``."""
        install = f"pip install 'gasworks[{extra}]'"
        return cls(
            f"{what} needs the Python package {package}, which is not installed here. "
            f"Install it with: {install} "
            f"(in a source checkout: .venv/bin/pip install -e '.[{extra}]').",
            details={"package": package, "extra": extra, "install": install},
        )


# --- models and providers (llm/) ------------------------------------------------------------


class ModelNotFound(NotFound):
    """An unknown or disabled model id. Never answered by silently using another model."""

    code = "MODEL_NOT_FOUND"


class CapabilityNotSupported(BadRequest):
    """The request uses a feature (tools, JSON mode, images, streaming) the model lacks."""

    code = "MODEL_CAPABILITY_UNSUPPORTED"


class ModelUnavailable(GasworksError):
    """The model must not be called right now (e.g. its circuit breaker is open).

    Raised by call hooks; the gateway then tries the model's configured fallbacks in order.
    """

    code = "MODEL_UNAVAILABLE"
    status = 503
    retryable = True


class ProviderError(GasworksError):
    """A model provider failed. Raised only by the adapters, which classify every SDK error.

    ``retryable``: worth another attempt (the gateway retries with backoff and jitter).
    ``counts_against_provider``: a sign of provider ill-health (feeds circuit breakers),
    as opposed to a fault of the request itself.
    """

    code = "PROVIDER_ERROR"
    status = 502
    counts_against_provider: ClassVar[bool] = True

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, details=details)
        #: seconds the provider asked us to wait (Retry-After), when it said so
        self.retry_after = retry_after
        if retry_after is not None:
            self.details.setdefault("retryAfterSeconds", retry_after)


class ProviderRateLimited(ProviderError):
    code = "PROVIDER_RATE_LIMITED"
    status = 429
    retryable = True


class ProviderUnavailable(ProviderError):
    """5xx from the provider, a refused or reset connection."""

    code = "PROVIDER_UNAVAILABLE"
    status = 503
    retryable = True


class ProviderTimeout(ProviderError):
    code = "PROVIDER_TIMEOUT"
    status = 504
    retryable = True


class ProviderStreamInterrupted(ProviderError):
    """The provider's stream ended before its end marker."""

    code = "PROVIDER_STREAM_INTERRUPTED"
    status = 502
    retryable = True


class ProviderBadResponse(ProviderError):
    """The provider answered something that is not its documented wire format."""

    code = "PROVIDER_BAD_RESPONSE"
    status = 502
    retryable = True


class ProviderAuthFailed(ProviderError):
    """The deployment's provider credentials were refused (fix the configuration)."""

    code = "PROVIDER_AUTH_FAILED"
    status = 502


class ProviderBadRequest(ProviderError):
    """The provider refused the request as invalid (the caller can fix it)."""

    code = "PROVIDER_BAD_REQUEST"
    status = 400
    counts_against_provider = False


class ContentFiltered(ProviderError):
    """The provider's content filter refused the prompt or the answer."""

    code = "CONTENT_FILTERED"
    status = 400
    counts_against_provider = False


# --- guardrails: breakers, token and cost limits ----------------------------------------------


class TokenLimitExceeded(GasworksError):
    """Requested output tokens over the model's or the request's limit, or a token budget."""

    code = "TOKEN_LIMIT_EXCEEDED"
    status = 400


class CostLimitExceeded(GasworksError):
    """The call's estimated cost is over the request's cost limit or a spend limit."""

    code = "COST_LIMIT_EXCEEDED"
    status = 402


class TokenBudgetExceeded(GasworksError):
    """A per-day or per-month token limit of the tenant or API key would be exceeded."""

    code = "TOKEN_BUDGET_EXCEEDED"
    status = 402


class ContextWindowExceeded(GasworksError):
    code = "CONTEXT_WINDOW_EXCEEDED"
    status = 400


class CircuitOpen(ModelUnavailable):
    """The model's circuit breaker is open: fail fast (the gateway tries fallbacks)."""


# --- blobs ----------------------------------------------------------------------------------


class BlobNotFound(NotFound):
    code = "BLOB_NOT_FOUND"


class BlobIntegrityError(GasworksError):
    """A blob failed authentication (tampered, truncated or stored under another key)."""

    code = "BLOB_INTEGRITY_FAILED"
    status = 500


class BlobKeyUnknown(ConfigurationError):
    """A blob was wrapped by a master key this process does not hold."""

    code = "BLOB_MASTER_KEY_UNKNOWN"


class BlobStoreUnavailable(GasworksError):
    code = "BLOB_STORE_UNAVAILABLE"
    status = 503
    retryable = True


class BlobStoreAccessDenied(BlobStoreUnavailable):
    """The blob store refused the credentials or the IAM policy (an operator must fix it)."""

    code = "BLOB_STORE_ACCESS_DENIED"
    retryable = False


# --- prompts --------------------------------------------------------------------------------


class PromptVersionNotFound(NotFound):
    code = "PROMPT_VERSION_NOT_FOUND"


class PromptPointerNotFound(NotFound):
    code = "PROMPT_POINTER_NOT_FOUND"


class PromptDeadLetterNotFound(NotFound):
    code = "PROMPT_DEAD_LETTER_NOT_FOUND"


class PromptPointerConflict(Conflict):
    """The pointer moved since the caller read it: ``details.current`` is its state now."""

    code = "PROMPT_POINTER_CONFLICT"


class PromptNoPreviousVersion(Conflict):
    code = "PROMPT_NO_PREVIOUS_VERSION"


class PromptVersionInUse(Conflict):
    code = "PROMPT_VERSION_IN_USE"


class PromptIntegrityError(GasworksError):
    """Stored prompt content does not match its SHA-256: it is never served."""

    code = "PROMPT_HASH_MISMATCH"
    status = 500


class TemplateSyntaxError(ValidationFailed):
    code = "TEMPLATE_SYNTAX_ERROR"


class TemplateVariableMissing(ValidationFailed):
    """Strict rendering met a ``${path}`` with no value."""

    code = "TEMPLATE_VARIABLE_MISSING"


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


# --- documents ------------------------------------------------------------------------------


class DocumentNotFound(NotFound):
    code = "DOCUMENT_NOT_FOUND"


class CollectionNotFound(NotFound):
    code = "COLLECTION_NOT_FOUND"


class DocumentTooLarge(PayloadTooLarge):
    """A file is larger than ``GASWORKS_DOCUMENTS_MAX_BYTES``."""

    code = "DOCUMENT_TOO_LARGE"


class TooManyFiles(PayloadTooLarge):
    """More files in one upload than ``GASWORKS_DOCUMENTS_MAX_FILES``."""

    code = "TOO_MANY_FILES"


class DocumentTypeUnsupported(UnsupportedMediaType):
    """The file's bytes are not a supported type (the name is not trusted)."""

    code = "DOCUMENT_TYPE_UNSUPPORTED"


class DocumentEmpty(ValidationFailed):
    code = "DOCUMENT_EMPTY"


class ExtractionFailed(GasworksError):
    """Parsing a document failed; ``details.documentId`` names it. Base of the codes below."""

    code = "EXTRACTION_FAILED"
    status = 422


class DocumentEncrypted(ExtractionFailed):
    """The file is password-protected; upload an unprotected copy."""

    code = "DOCUMENT_ENCRYPTED"


class DocumentCorrupt(ExtractionFailed):
    """The file is truncated or malformed and cannot be parsed."""

    code = "DOCUMENT_CORRUPT"


class ExtractionLimitExceeded(ExtractionFailed):
    """Parsing needed more memory or output than allowed (a decompression bomb, say)."""

    code = "EXTRACTION_LIMIT_EXCEEDED"


class ExtractionTimeout(ExtractionFailed):
    """Parsing used more CPU time than ``GASWORKS_DOCUMENTS_PARSE_CPU_SECONDS``."""

    code = "EXTRACTION_TIMEOUT"
    retryable = True


class ExtractionCrashed(ExtractionFailed):
    """The parser process died (a signal, a native crash); retried, then a dead letter."""

    code = "EXTRACTION_CRASHED"
    retryable = True


class OcrFailed(ExtractionFailed):
    code = "OCR_FAILED"
    retryable = True


class RetrievalNotConfigured(ConfigurationError):
    """No embedder or vector index is configured for the documents pipeline."""

    code = "RETRIEVAL_NOT_CONFIGURED"
    retryable = True


class DocumentNoText(ExtractionFailed):
    """Nothing readable was found (no text layer and no OCR, or OCR read nothing)."""

    code = "DOCUMENT_NO_TEXT"


class RunInterrupted(GasworksError):
    """The server process executing a run stopped (crash, ``kill -9``, lost host) before the
    run finished: its lease expired and another process marked it failed. Start it again."""

    code = "RUN_INTERRUPTED"
    status = 503
    retryable = True
