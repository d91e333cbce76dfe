"""What callers see (REST, GraphQL, CLI): pydantic models, camelCase on the wire."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import ConfigDict, Field, SkipValidation, StrictBool

from gasworks.apimodel import ApiModel
from gasworks.bounds import VersionNumber


class _Out(ApiModel):
    model_config = ConfigDict(from_attributes=True, serialize_by_alias=True)


class WorkflowOut(_Out):
    id: str
    slug: str
    name: str
    description: str | None
    owner_id: str
    latest_version: int
    created_at: datetime
    updated_at: datetime


class VersionOut(_Out):
    workflow_id: str
    slug: str
    version: int
    content_hash: str
    created_by: str
    created_at: datetime
    document: dict[str, Any]


class PublishOut(_Out):
    workflow: WorkflowOut
    version: VersionOut
    created: bool = Field(description="False when the same document was already the latest.")


class ShareIn(_Out):
    kind: Literal["user", "role", "tenant"]
    subject: str | None = Field(
        default=None, description="Principal id (user), role name (role); none for tenant."
    )


class ShareOut(_Out):
    id: str
    kind: str
    subject: str
    created_at: datetime


class RunIn(_Out):
    input: dict[str, Any] = Field(default_factory=dict)
    conversation_id: str | None = Field(default=None, max_length=100, pattern=r"^[\w\-.:]+$")
    session_id: str | None = Field(default=None, max_length=100)
    version: VersionNumber | None = Field(default=None, description="Default: the latest version.")
    stream: StrictBool = False


class RunOut(_Out):
    @classmethod
    def of(cls, run: Any, slug: str) -> RunOut:
        """A stored run (``WorkflowRunRow``) or the engine's in-memory ``RunRecord``: both
        carry every field under its own name but ``input`` (``inputs``) and ``slug``. Built
        by the model's validator from a dict (no keyword-argument call per run)."""
        cost = run.cost
        return _validate_run(
            {
                "id": run.id,
                "workflow_id": run.workflow_id,
                "slug": slug,
                "version": run.version,
                "status": run.status,
                "conversation_id": run.conversation_id,
                "input": run.inputs,
                "output": run.output,
                "error": run.error,
                "node_timings": run.node_timings,
                "steps": run.steps,
                "tokens": run.tokens,
                "cost": Decimal(0) if cost is None else cost,
                "duration_ms": run.duration_ms,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                "prompt_version_id": run.prompt_version_id,
            }
        )

    id: str
    workflow_id: str
    slug: str
    version: int
    status: str
    conversation_id: str | None
    # ``SkipValidation``: the JSON values of a run are the server's own (the runner's timings
    # and error, inputs validated by ``RunIn``, or the stored JSON of those), never a caller's;
    # walking them again cost more than the rest of the model (the schema is unchanged)
    input: SkipValidation[dict[str, Any]]
    output: Any
    error: SkipValidation[dict[str, Any] | None]
    node_timings: SkipValidation[list[dict[str, Any]]]
    steps: int
    tokens: int
    cost: Decimal
    duration_ms: float | None
    started_at: datetime
    finished_at: datetime | None
    prompt_version_id: str | None = Field(
        default=None,
        description="The prompt version that answered (pv_…): that of the run's last model "
        "call that resolved a stored version; each call's own is in its node's output and on "
        "its ledger row. None when every call used the neutral built-in prompt.",
    )


#: ``RunOut`` from a dict of its field values, in one call of pydantic-core
_validate_run = RunOut.model_validate


class MessageOut(_Out):
    seq: int
    role: str
    content: str
    run_id: str | None
    created_at: datetime


class ConversationOut(_Out):
    id: str
    workflow_id: str
    principal_id: str = Field(description="Who holds the conversation (who ran its turns).")
    #: the stored key (workflow + principal + id): never shown
    store_key: str = Field(exclude=True)
    turn: int
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    messages: list[MessageOut] = Field(default_factory=list)


class ValidationOut(_Out):
    valid: bool
    issues: list[dict[str, Any]]
