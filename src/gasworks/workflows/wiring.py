"""Connecting the engine's ports to the rest of a runtime (gateway, prompts, database)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gasworks.modeltypes import Message
from gasworks.workflows import service
from gasworks.workflows.ports import (
    ConversationData,
    ModelCaller,
    Ports,
    PromptSource,
    RenderedPrompt,
)

if TYPE_CHECKING:
    from gasworks.db.engine import Database
    from gasworks.prompts.resolver import Resolver
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


#: runtime.services keys that replace a port (tests, embedding applications)
MODELS_OVERRIDE = "workflows.models"
PROMPTS_OVERRIDE = "workflows.prompts"


def build_ports(runtime: Runtime) -> Ports:
    """The model gateway (budgets, breakers, fallbacks and the ledger are its hooks), the
    prompt resolver, and the database's conversations."""
    override = runtime.services.get(MODELS_OVERRIDE)
    models: ModelCaller | None = override if isinstance(override, ModelCaller) else None
    if models is None:
        from gasworks.llm.runtime import SERVICE, get_gateway

        models = get_gateway(runtime) if SERVICE in runtime.services else None
    prompts = runtime.services.get(PROMPTS_OVERRIDE)
    if not isinstance(prompts, PromptSource):
        from gasworks.prompts.service import prompt_service

        prompts = ResolverPrompts(prompt_service(runtime).resolver)
    return Ports(models=models, prompts=prompts, conversations=SqlConversations(runtime.db))


class ResolverPrompts:
    """The prompt engine's resolver as a :class:`PromptSource`: scoped resolution (tenant +
    workflow + model → … → the neutral fallback, never failing), then its message formatter
    (system, history, the rest of the prompt)."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    async def messages(
        self,
        *,
        tenant_id: str,
        workflow_id: str,
        model: str | None,
        conversation_id: str | None,
        values: Mapping[str, Any],
        history: Sequence[Message],
    ) -> RenderedPrompt:
        prompt = await self.resolver.resolve(
            tenant_id=tenant_id,
            model=model,
            workflow_id=workflow_id,
            conversation_id=conversation_id,
        )
        formatted = prompt.format(values, history)
        return RenderedPrompt(
            list(formatted.messages), dict(formatted.parameters), prompt.version_id
        )
