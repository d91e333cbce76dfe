"""What a node sees while it runs: the run's identity, its ports, an event sink, usage."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from gasworks.modeltypes import CallScope
from gasworks.retrieval.search import AllowedSources
from gasworks.workflows.ports import ConversationData, Ports

EventSink = Callable[[str, dict[str, Any]], None]


class Routed:
    """Returned by branching nodes: the node's output and the id of the node to run next."""

    __slots__ = ("to", "value")

    def __init__(self, value: Any, to: str) -> None:
        self.value = value
        self.to = to


class RunContext:
    """Per-run context. Plain slotted class: created once per run, read on the hot path."""

    __slots__ = (
        "_conversation",
        "allowed",
        "api_key_id",
        "conversation_id",
        "cost",
        "emit",
        "finalizers",
        "node_id",
        "ports",
        "prompt_version_id",
        "request_id",
        "run_id",
        "session_id",
        "streams",
        "tenant_id",
        "tokens",
        "version",
        "workflow_id",
    )

    def __init__(
        self,
        *,
        run_id: str,
        tenant_id: str,
        workflow_id: str,
        version: int = 0,
        ports: Ports | None = None,
        emit: EventSink | None = None,
        conversation_id: str | None = None,
        session_id: str | None = None,
        request_id: str | None = None,
        api_key_id: str | None = None,
    ) -> None:
        self.run_id = run_id
        self.tenant_id = tenant_id
        self.workflow_id = workflow_id
        self.version = version
        self.ports = ports or Ports()
        #: None when nobody listens (no streaming, no persistence): nodes skip building events
        self.emit = emit
        self.conversation_id = conversation_id
        self.session_id = session_id
        self.request_id = request_id
        self.api_key_id = api_key_id
        self.node_id = ""
        #: the sources the run's caller may search, computed by the engine at run start for
        #: graphs with retrieval nodes (None: not computed; VectorSearch then refuses to run)
        self.allowed: AllowedSources | None = None
        self.tokens = 0
        self.cost = Decimal(0)
        #: the prompt version of the run's last model call that resolved one (on the run row)
        self.prompt_version_id: str | None = None
        self._conversation: ConversationData | None = None
        #: open model streams nobody consumed yet (drained by the runner at the end)
        self.streams: list[Any] = []
        #: callbacks run with the final state when the run succeeds (memory appends, ...)
        self.finalizers: list[Callable[[dict[str, Any]], None]] = []

    def scope(self) -> CallScope:
        return CallScope(
            tenant_id=self.tenant_id,
            api_key_id=self.api_key_id,
            request_id=self.request_id,
            workflow_id=self.workflow_id,
            node_id=self.node_id,
            run_id=self.run_id,
            conversation_id=self.conversation_id,
        )

    def add_usage(self, tokens: int, cost: Decimal) -> None:
        self.tokens += tokens
        self.cost += cost

    async def conversation(self) -> ConversationData | None:
        """The conversation of this run (loaded once), or None for a run without one."""
        if self.conversation_id is None:
            return None
        if self._conversation is None:
            store = self.ports.conversations
            self._conversation = (
                ConversationData(id=self.conversation_id)
                if store is None
                else await store.load(self.tenant_id, self.conversation_id)
            )
        return self._conversation

    def set_conversation(self, conv: ConversationData | None) -> None:
        self._conversation = conv

    @property
    def loaded_conversation(self) -> ConversationData | None:
        return self._conversation
