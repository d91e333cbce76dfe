"""What callers see: request and response shapes of the prompts API (camelCase on the wire)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, StrictBool

from gasworks.apimodel import ApiModel
from gasworks.bounds import ExpectedVersion, VersionNumber
from gasworks.prompts.content import PromptContent

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
Level = Literal["tenant+workflow+model", "workflow+model", "tenant+model", "model", "neutral"]
Source = Literal["cache", "store", "fallback"]


class Schema(ApiModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True)
class Scope:
    """A pointer scope. ``''`` means "any" for tenant and workflow; ``model`` is normalized."""

    tenant: str
    workflow: str
    model: str

    def label(self) -> str:
        if self.tenant and self.workflow:
            return "tenant+workflow+model"
        if self.workflow:
            return "workflow+model"
        if self.tenant:
            return "tenant+model"
        return "model"


class ScopeIn(Schema):
    """A pointer's scope as callers give it: the model, optionally a workflow, and whether it
    is the caller's tenant's own pointer (default) or a platform-wide one (platform admins)."""

    model: str = Field(min_length=1, max_length=200)
    workflow_id: str | None = Field(default=None, min_length=1, max_length=200)
    tenant_scoped: StrictBool = True


class VersionCreate(Schema):
    name: str = Field(pattern=NAME_PATTERN)
    content: PromptContent
    message: str = Field(default="", max_length=10_000)


class VersionSummary(Schema):
    id: str
    name: str
    number: int
    content_hash: str
    size_bytes: int
    storage: str
    author: str
    message: str
    created_at: datetime
    archived_at: datetime | None


class VersionOut(VersionSummary):
    content: PromptContent
    #: False when identical content already existed and that version was returned
    created: bool = True


class VersionDiff(Schema):
    from_version_id: str
    to_version_id: str
    identical: bool
    diff: str


class PointerOut(Schema):
    id: str
    scope_tenant: str | None
    workflow_id: str | None
    model: str
    level: str
    active_version_id: str
    previous_version_id: str | None
    canary_version_id: str | None
    canary_percent: int
    version: int
    updated_at: datetime
    updated_by: str


class MoveRequest(Schema):
    scope: ScopeIn
    version_id: str = Field(min_length=1, max_length=40)
    #: the pointer version the caller last saw (0 when creating the pointer)
    expected_version: ExpectedVersion
    reason: str = Field(default="", max_length=2000)


class RollbackRequest(Schema):
    scope: ScopeIn
    expected_version: VersionNumber
    reason: str = Field(default="", max_length=2000)


class CanaryRequest(Schema):
    scope: ScopeIn
    version_id: str = Field(min_length=1, max_length=40)
    percent: int = Field(ge=1, le=99)
    expected_version: VersionNumber
    reason: str = Field(default="", max_length=2000)


class CanaryDecision(Schema):
    scope: ScopeIn
    expected_version: VersionNumber
    reason: str = Field(default="", max_length=2000)


class HistoryEntry(Schema):
    seq: int
    action: str
    from_version_id: str | None
    to_version_id: str | None
    canary_version_id: str | None
    canary_percent: int
    actor: str
    reason: str
    at: datetime


class AuditEntry(Schema):
    id: str
    actor: str
    action: str
    object_type: str
    object_id: str
    details: dict[str, Any]
    at: datetime


class DeadLetterOut(Schema):
    id: str
    operation: str
    request: dict[str, Any]
    actor: str
    reason_code: str
    error: str
    status: str
    attempts: int
    created_at: datetime
    last_attempt_at: datetime
    result: dict[str, Any] | None


class ReplayRequest(Schema):
    #: use the pointer's current version as the expected one (an explicit operator decision)
    rebase: StrictBool = False


class ResolveRequest(Schema):
    model: str | None = Field(default=None, max_length=200)
    workflow_id: str | None = Field(default=None, max_length=200)
    conversation_id: str | None = Field(default=None, max_length=200)
    #: template values: ``inputs``, ``slots``, ``context``, node outputs by node id
    variables: dict[str, Any] = Field(default_factory=dict)
    history: list[dict[str, Any]] = Field(default_factory=list)
    strict: StrictBool = False


class MessageOut(Schema):
    role: str
    content: str


class ResolvedOut(Schema):
    level: str
    source: str
    model: str
    version_id: str | None
    version_number: int | None
    name: str | None
    content_hash: str
    pointer_version: int | None
    canary: bool
    stale: bool
    content: PromptContent
    messages: list[MessageOut]
    missing: list[str]
    parameters: dict[str, Any]


class RetentionReport(Schema):
    deleted: list[str]
    kept_in_use: int
    dry_run: bool


class PromptChatRequest(Schema):
    """A model call with the resolved prompt of ``(tenant, workflowId, model)``."""

    model: str | None = Field(default=None, max_length=200)
    workflow_id: str | None = Field(default=None, max_length=200)
    conversation_id: str | None = Field(default=None, max_length=200)
    #: template values (``inputs``, ``slots``, ``context``, node outputs by node id)
    variables: dict[str, Any] = Field(default_factory=dict)
    history: list[dict[str, Any]] = Field(default_factory=list)
    #: model parameters that win over the prompt version's (temperature, max_tokens, ...)
    parameters: dict[str, Any] = Field(default_factory=dict)
    strict: StrictBool = False
    truncate: bool = Field(
        default=True,
        description="Fit a conversation too long for the model's context window (drop the "
        "oldest history first, shorten the system message last; the current input stays) "
        "instead of failing with CONTEXT_WINDOW_EXCEEDED.",
    )


class PromptUsed(Schema):
    level: str
    source: str
    version_id: str | None
    version_number: int | None
    name: str | None
    content_hash: str
    canary: bool
    stale: bool
    missing: list[str]


class PromptChatOut(Schema):
    text: str
    model: str
    provider: str
    finish_reason: str
    input_tokens: int
    output_tokens: int
    cost: str
    demo: bool
    prompt: PromptUsed
