"""An in-process provider that follows a script: answers, errors, broken streams.

Register it in a gateway's ``ProviderSet.overrides`` under a provider name (``"openai"``...)
to drive retries, fallbacks, breakers and budgets without any network::

    p = ScriptedProvider([ProviderUnavailable("boom"), "second time lucky"])
    gateway.providers.overrides["openai"] = p
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from gasworks.errors import GasworksError
from gasworks.llm.registry.resolved import ResolvedModel
from gasworks.modeltypes import ChatRequest, ChatResult, FinishReason, StreamChunk, Usage


@dataclass(slots=True)
class BrokenStream:
    """Stream ``chunks`` words of ``text``, then raise ``error``."""

    text: str
    chunks: int
    error: GasworksError


Step = str | GasworksError | BrokenStream


class ScriptedProvider:
    name = "scripted"

    def __init__(self, steps: list[Step] | None = None, *, default: str = "ok") -> None:
        self.steps: deque[Step] = deque(steps or [])
        self.default = default
        #: (registry id, provider model id) of every attempt, in order
        self.calls: list[tuple[str, str]] = []

    def _next(self, model: ResolvedModel) -> Step:
        self.calls.append((model.id, model.provider_model_id))
        return self.steps.popleft() if self.steps else self.default

    @staticmethod
    def _usage(text: str) -> Usage:
        return Usage(input_tokens=10, output_tokens=max(1, len(text.split())))

    async def chat(
        self, model: ResolvedModel, req: ChatRequest, attempt_timeout: float
    ) -> ChatResult:
        step = self._next(model)
        if isinstance(step, GasworksError):
            raise step
        if isinstance(step, BrokenStream):
            raise step.error
        return ChatResult(
            text=step,
            finish_reason=FinishReason.STOP,
            usage=self._usage(step),
            model=model.id,
            provider=model.provider,
        )

    async def stream(
        self, model: ResolvedModel, req: ChatRequest, attempt_timeout: float
    ) -> AsyncIterator[StreamChunk]:
        step = self._next(model)
        if isinstance(step, GasworksError):
            raise step
        text = step.text if isinstance(step, BrokenStream) else step
        words = text.split(" ")
        for i, w in enumerate(words):
            if isinstance(step, BrokenStream) and i >= step.chunks:
                raise step.error
            yield StreamChunk(delta=w if i == len(words) - 1 else w + " ")
        yield StreamChunk(finish_reason=FinishReason.STOP, usage=self._usage(text))

    async def aclose(self) -> None:
        return None
