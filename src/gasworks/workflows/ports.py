"""The small interfaces the engine needs from the rest of gasworks.

Nodes talk to models, prompts, conversations and retrieval only through these Protocols,
so the engine runs against in-process fakes in tests and benchmarks, and against the real
gateway / prompt resolver / database in the server (see :mod:`gasworks.workflows.wiring`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from gasworks.modeltypes import CallScope, ChatRequest, ChatResult, Message, StreamChunk
from gasworks.retrieval.search import AllowedSources, SearchQuery
from gasworks.retrieval.types import SearchHit


@runtime_checkable
class ModelCaller(Protocol):
    """The model gateway: budgets, breakers, fallbacks and the ledger live behind it."""

    async def chat(self, scope: CallScope, req: ChatRequest) -> ChatResult: ...

    def stream(self, scope: CallScope, req: ChatRequest) -> AsyncIterator[StreamChunk]: ...


@dataclass(slots=True)
class RenderedPrompt:
    messages: list[Message]
    #: the prompt version's model parameters (temperature, max_tokens, top_p, stop, ...)
    parameters: dict[str, Any] = field(default_factory=dict)
    #: the prompt version rendered (None: the neutral built-in prompt)
    version_id: str | None = None


@runtime_checkable
class PromptSource(Protocol):
    """Resolves the active prompt for (tenant, workflow, model) and formats it into messages
    (the prompt's system messages, then ``history``, then the rest of the prompt).

    Must never fail for a missing prompt: the neutral fallback answers instead. ``values``
    holds the run state plus ``inputs`` (the run's inputs and ``user_prompt``, the node's
    rendered input).
    """

    async def messages(
        self,
        *,
        tenant_id: str,
        workflow_id: str,
        model: str | None,
        conversation_id: str | None,
        values: Mapping[str, Any],
        history: Sequence[Message],
    ) -> RenderedPrompt: ...


@dataclass(slots=True)
class ConversationData:
    """What a conversation carries from one turn to the next."""

    id: str
    history: list[Message] = field(default_factory=list)
    #: per-node persisted data (slot values, re-ask counters, ...), keyed by node id
    data: dict[str, Any] = field(default_factory=dict)
    turn: int = 0
    #: messages to append when the run ends (written in one batch)
    pending: list[Message] = field(default_factory=list)
    dirty: bool = False


class ConversationStore(Protocol):
    async def load(self, tenant_id: str, conversation_id: str) -> ConversationData: ...

    async def save(self, tenant_id: str, workflow_id: str, conv: ConversationData) -> None: ...


@runtime_checkable
class Retrieval(Protocol):
    """Search and write through retrieval (``gasworks.retrieval``), with the access filter.

    ``allowed`` is what the engine calls once at run start for the run's caller; the
    VectorSearch node passes that set (narrowed by its collections) to ``search``, so a node
    can never search more than its caller may see. ``write`` embeds and indexes text produced
    by a run; it is idempotent by ``key`` (same key, same chunks: one copy).
    """

    async def allowed(
        self,
        tenant_id: str,
        principal_id: str | None,
        *,
        collections: Sequence[str] | None = None,
    ) -> AllowedSources: ...

    async def search(
        self, scope: CallScope, query: SearchQuery, allowed: AllowedSources
    ) -> list[SearchHit]: ...

    async def write(
        self,
        scope: CallScope,
        *,
        collection: str,
        key: str,
        texts: Sequence[str],
        metadata: Mapping[str, Any],
        model: str | None = None,
    ) -> list[str]: ...


@dataclass(slots=True)
class Ports:
    """Everything a node may use, handed to each run."""

    models: ModelCaller | None = None
    prompts: PromptSource | None = None
    conversations: ConversationStore | None = None
    retrieval: Retrieval | None = None
    #: extra services custom node types may look up by name
    extra: dict[str, Any] = field(default_factory=dict)
