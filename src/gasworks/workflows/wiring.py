"""Connecting the engine's ports to the rest of a runtime (gateway, prompts, database)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gasworks.workflows import service
from gasworks.workflows.ports import ConversationData, ModelCaller, Ports, PromptSource

if TYPE_CHECKING:
    from gasworks.db.engine import Database
    from gasworks.runtime import Runtime


class SqlConversations:
    """Conversations in the deployment's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self, tenant_id: str, conversation_id: str) -> ConversationData:
        async with self.db.session() as s:
            return await service.load_conversation(s, tenant_id, conversation_id)

    async def save(self, tenant_id: str, workflow_id: str, conv: ConversationData) -> None:
        async with self.db.session() as s:
            await service.save_conversation(s, tenant_id, workflow_id, conv)


def build_ports(runtime: Runtime) -> Ports:
    """Ports from the services other domains registered on the runtime (if present)."""
    models = runtime.services.get("gateway")
    prompts = runtime.services.get("workflow_prompts")
    return Ports(
        models=models if isinstance(models, ModelCaller) else None,
        prompts=prompts if isinstance(prompts, PromptSource) else None,
        conversations=SqlConversations(runtime.db),
    )
