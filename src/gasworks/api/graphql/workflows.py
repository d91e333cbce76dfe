"""GraphQL types and resolvers for workflows, versions, runs and conversations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from gasworks.api.graphql.context import GqlContext
from gasworks.api.graphql.paging import DEFAULT_LIMIT, Limit, Offset, page_of
from gasworks.workflows import service, workflow_engine
from gasworks.workflows.schemas import (
    ConversationOut,
    RunIn,
    RunOut,
    ShareIn,
    VersionOut,
    WorkflowOut,
)
from gasworks.workflows.validator import validate

Info = strawberry.Info[GqlContext, None]


@strawberry.type(name="WorkflowVersion")
class VersionType:
    version: int
    content_hash: str
    created_by: str
    created_at: datetime
    document: JSON

    @staticmethod
    def of(v: VersionOut) -> VersionType:
        return VersionType(
            version=v.version,
            content_hash=v.content_hash,
            created_by=v.created_by,
            created_at=v.created_at,
            document=JSON(v.document),
        )


@strawberry.type(name="Workflow")
class WorkflowType:
    id: str
    slug: str
    name: str
    description: str | None
    owner_id: str
    latest_version: int
    created_at: datetime
    updated_at: datetime

    @strawberry.field
    async def versions(
        self, info: Info, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> list[VersionType]:
        """Published versions, newest first."""
        items = await page_of(
            info, limit, offset, lambda s, c, p: service.list_versions(s, c, self.slug, p)
        )
        return [VersionType.of(v) for v in items]

    @strawberry.field
    async def runs(self, info: Info, limit: Limit = 20, offset: Offset = 0) -> list[RunType]:
        """Runs, newest first."""
        await workflow_engine(info.context.runtime).drain()
        items = await page_of(
            info, limit, offset, lambda s, c, p: service.list_runs(s, c, self.slug, p)
        )
        return [RunType.of(r) for r in items]

    @strawberry.field
    async def conversations(
        self, info: Info, limit: Limit = 20, offset: Offset = 0
    ) -> list[ConversationType]:
        """Conversations, most recently updated first."""
        await workflow_engine(info.context.runtime).drain()
        items = await page_of(
            info, limit, offset, lambda s, c, p: service.list_conversations(s, c, self.slug, p)
        )
        return [ConversationType.of(c) for c in items]

    @staticmethod
    def of(w: WorkflowOut) -> WorkflowType:
        return WorkflowType(**w.model_dump(by_alias=False))


@strawberry.type(name="WorkflowRun")
class RunType:
    id: str
    slug: str
    version: int
    status: str
    conversation_id: str | None
    input: JSON
    output: JSON | None
    error: JSON | None
    node_timings: JSON
    steps: int
    tokens: int
    cost: str
    duration_ms: float | None
    started_at: datetime
    finished_at: datetime | None
    prompt_version_id: str | None = strawberry.field(
        description="The prompt version that answered (that of the run's last model call "
        "that resolved a stored version); null for the neutral built-in prompt."
    )

    @staticmethod
    def of(r: RunOut) -> RunType:
        data = r.model_dump(mode="json", by_alias=False, exclude={"workflow_id"})
        for key in ("input", "output", "error", "node_timings"):
            data[key] = None if data[key] is None else JSON(data[key])
        data["started_at"], data["finished_at"] = r.started_at, r.finished_at
        return RunType(**data)


@strawberry.type(name="ConversationMessage")
class MessageType:
    seq: int
    role: str
    content: str
    run_id: str | None
    created_at: datetime


@strawberry.type(name="Conversation")
class ConversationType:
    id: str
    principal_id: str
    store_key: strawberry.Private[str]
    turn: int
    data: JSON
    created_at: datetime
    updated_at: datetime

    @strawberry.field
    async def messages(
        self, info: Info, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> list[MessageType]:
        """Oldest first (a Conversation is only reached through an access check)."""
        items = await page_of(
            info,
            limit,
            offset,
            lambda s, c, p: service.conversation_messages(s, c, self.store_key, p),
        )
        return [MessageType(**m.model_dump(by_alias=False)) for m in items]

    @staticmethod
    def of(c: ConversationOut) -> ConversationType:
        return ConversationType(
            id=c.id,
            principal_id=c.principal_id,
            store_key=c.store_key,
            turn=c.turn,
            data=JSON(c.data),
            created_at=c.created_at,
            updated_at=c.updated_at,
        )


@strawberry.type(name="WorkflowValidation")
class ValidationType:
    valid: bool
    issues: JSON


@strawberry.type
class WorkflowsQuery:
    @strawberry.field
    async def workflows(
        self, info: Info, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> list[WorkflowType]:
        """Workflows the caller may run, by slug."""
        items = await page_of(info, limit, offset, service.list_workflows)
        return [WorkflowType.of(w) for w in items]

    @strawberry.field
    async def workflow(self, info: Info, id: str) -> WorkflowType:
        async with info.context.runtime.db.session() as s:
            return WorkflowType.of(await service.get_workflow(s, info.context.ctx, id))

    @strawberry.field
    async def workflow_run(self, info: Info, id: str) -> RunType:
        return RunType.of(await workflow_engine(info.context.runtime).get_run(info.context.ctx, id))

    @strawberry.field
    async def conversation(self, info: Info, id: str) -> ConversationType:
        eng = workflow_engine(info.context.runtime)
        return ConversationType.of(await eng.get_conversation(info.context.ctx, id, None))

    @strawberry.field
    def validate_workflow(self, document: JSON) -> ValidationType:
        doc: Any = document
        result = validate(doc if isinstance(doc, dict) else {})
        return ValidationType(valid=result.ok, issues=JSON([i.to_dict() for i in result.issues]))


@strawberry.type
class WorkflowsMutation:
    @strawberry.mutation
    async def publish_workflow(self, info: Info, document: JSON) -> VersionType:
        doc: Any = document
        from gasworks.llm.runtime import get_registry

        models = get_registry(info.context.runtime).get
        async with info.context.runtime.db.session() as s:
            out = await service.publish(
                s, info.context.ctx, doc if isinstance(doc, dict) else {}, model_exists=models
            )
        return VersionType.of(out.version)

    @strawberry.mutation
    async def run_workflow(
        self,
        info: Info,
        workflow: str,
        input: JSON | None = None,
        conversation_id: str | None = None,
        version: int | None = None,
    ) -> RunType:
        body = RunIn.model_validate(
            {"input": input or {}, "conversationId": conversation_id, "version": version}
        )
        eng = workflow_engine(info.context.runtime)
        return RunType.of(await eng.run(info.context.ctx, workflow, body))

    @strawberry.mutation
    async def share_workflow(
        self, info: Info, workflow: str, kind: str, subject: str | None = None
    ) -> bool:
        data = ShareIn.model_validate({"kind": kind, "subject": subject})
        async with info.context.runtime.db.session() as s:
            await service.share(s, info.context.ctx, workflow, data)
        return True
