"""In-process fakes of the engine's ports."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from gasworks.modeltypes import (
    CallScope,
    ChatRequest,
    ChatResult,
    FinishReason,
    Message,
    StreamChunk,
    Usage,
)
from gasworks.workflows.ports import ConversationData, RenderedPrompt


class FakeModels:
    """Answers with ``reply(request)`` (default: echoes the last user message)."""

    def __init__(self, reply: Callable[[ChatRequest], str] | None = None) -> None:
        self.reply = reply or (lambda r: "echo: " + r.messages[-1].text())
        self.calls: list[tuple[ChatRequest, CallScope]] = []

    async def chat(self, scope: CallScope, request: ChatRequest) -> ChatResult:
        self.calls.append((request, scope))
        text = self.reply(request)
        return ChatResult(
            text=text,
            finish_reason=FinishReason.STOP,
            usage=Usage(input_tokens=3, output_tokens=len(text.split())),
            model=request.model or "fake",
            provider="fake",
            cost=Decimal("0.001"),
        )

    async def stream(self, scope: CallScope, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        self.calls.append((request, scope))
        words = self.reply(request).split(" ")
        for i, w in enumerate(words):
            yield StreamChunk(delta=w if i == 0 else " " + w)
        yield StreamChunk(
            finish_reason=FinishReason.STOP, usage=Usage(input_tokens=3, output_tokens=len(words))
        )


def json_reply(data: dict[str, Any]) -> Callable[[ChatRequest], str]:
    return lambda r: json.dumps(data)


class FakePrompts:
    """Like the prompt engine: system, history, then the user template."""

    def __init__(
        self,
        system: str = "You are helpful. Tenant ${context.tenantId}.",
        user: str = "${inputs.user_prompt}",
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self.system = system
        self.user = user
        self.parameters = parameters or {}
        self.asked: list[tuple[str, str, str | None]] = []

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
        from gasworks.workflows.templating import Template

        self.asked.append((tenant_id, workflow_id, model))
        return RenderedPrompt(
            [
                Message("system", Template(self.system).render(values)),
                *history,
                Message("user", Template(self.user).render(values)),
            ],
            dict(self.parameters),
        )


class MemoryConversations:
    def __init__(self) -> None:
        self.saved: dict[tuple[str, str], ConversationData] = {}

    async def load(self, tenant_id: str, conversation_id: str) -> ConversationData:
        got = self.saved.get((tenant_id, conversation_id))
        if got is None:
            return ConversationData(id=conversation_id)
        return ConversationData(
            id=got.id,
            history=list(got.history),
            data=json.loads(json.dumps(got.data)),
            turn=got.turn,
        )

    async def save(self, tenant_id: str, workflow_id: str, conv: ConversationData) -> None:
        self.saved[(tenant_id, conv.id)] = ConversationData(
            id=conv.id,
            history=conv.history + conv.pending,
            data=json.loads(json.dumps(conv.data)),
            turn=conv.turn + 1,
        )
