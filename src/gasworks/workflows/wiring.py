"""Connecting the engine's ports to the rest of a runtime (gateway, prompts, database)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gasworks.errors import ConfigurationError
from gasworks.modeltypes import CallScope, Message
from gasworks.retrieval.search import AllowedSources, SearchQuery
from gasworks.retrieval.types import (
    RUN_DOCUMENT_PREFIX,
    Chunk,
    EmbedRequest,
    SearchHit,
    source_id,
)
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
    from gasworks.retrieval.runtime import RetrievalServices
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
    from gasworks.retrieval.runtime import SERVICE as RETRIEVAL
    from gasworks.retrieval.runtime import get_retrieval

    retrieval = RetrievalPort(get_retrieval(runtime)) if RETRIEVAL in runtime.services else None
    return Ports(
        models=models,
        prompts=prompts,
        conversations=SqlConversations(runtime.db),
        retrieval=retrieval,
    )


def model_check(runtime: Runtime) -> Callable[[str], object]:
    """The check ``publish`` runs on every model a node names: the registry's ``get`` (raises
    ``MODEL_NOT_FOUND`` for an unknown or disabled id)."""
    from gasworks.llm.runtime import get_registry

    return get_registry(runtime).get


class RetrievalPort:
    """Retrieval's search service and writer as the engine's :class:`Retrieval` port."""

    def __init__(self, services: RetrievalServices) -> None:
        self.services = services

    async def allowed(
        self,
        tenant_id: str,
        principal_id: str | None,
        *,
        collections: Sequence[str] | None = None,
    ) -> AllowedSources:
        return await self.services.search.scope.allowed(
            tenant_id, principal_id, collections=collections
        )

    async def search(
        self, scope: CallScope, query: SearchQuery, allowed: AllowedSources
    ) -> list[SearchHit]:
        return await self.services.search.search(scope, query, allowed=allowed)

    async def write(
        self,
        scope: CallScope,
        *,
        collection: str,
        key: str,
        texts: Sequence[str],
        metadata: Mapping[str, Any],
        model: str | None = None,
    ) -> list[str]:
        embedder = self.services.search.embedder
        if embedder is None:
            raise ConfigurationError(
                "VectorWrite needs an embedding model; none is configured.",
                details={"node": scope.node_id},
            )
        served = {"runId": scope.run_id or "", "nodeId": scope.node_id or ""}
        result = await embedder.embed(
            scope, EmbedRequest(model=model, inputs=list(texts), served=served)
        )
        document = f"{RUN_DOCUMENT_PREFIX}{key}"
        src = source_id(document, 1)
        chunks = [
            Chunk(
                chunk_id=f"{src}#{i}",
                source_id=src,
                document_id=document,
                ordinal=i,
                text=t,
                metadata={**metadata, "collection": collection},
            )
            for i, t in enumerate(texts)
        ]
        await self.services.writer.write_source(
            scope.tenant_id, result.space, chunks, result.vectors
        )
        return [c.chunk_id for c in chunks]


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
