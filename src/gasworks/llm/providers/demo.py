"""The offline demo model: deterministic, instant, needs no key, and says it is a demo.

Every answer starts with ``[demo]`` and every result has ``demo=True`` so nobody mistakes it
for a real model. The text is built from the prompt's hash, so the same prompt always gets the
same answer (useful in tests and screenshots). ``GASWORKS_DEMO_STREAM_DELAY_MS`` paces the
stream like a real model for demos; it is 0 by default.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator

from gasworks.llm.estimate import estimate_prompt_tokens, estimate_tokens
from gasworks.llm.registry.resolved import ResolvedModel
from gasworks.modeltypes import ChatRequest, ChatResult, FinishReason, StreamChunk, Usage

LABEL = "[demo]"

_OPENERS = (
    "Here is a short answer from the offline demo model.",
    "This reply comes from the gasworks demo model, not a real LLM.",
    "The demo model is answering so you can try gasworks without an API key.",
    "A deterministic demo answer follows.",
)
_BODIES = (
    "Configure a real provider in the model registry to get genuine completions.",
    "Streaming, usage accounting and cost tracking work exactly as with a real model.",
    "Point GASWORKS_DEFAULT_MODEL at another registry entry to switch models without code.",
    "Budgets, circuit breakers and the ledger see this call like any other.",
    "The same prompt always gets the same answer, which keeps tests reproducible.",
    "Every chunk you see was streamed through the gateway, token by token.",
)


def demo_text(req: ChatRequest) -> str:
    prompt = req.messages[-1].text() if req.messages else ""
    h = zlib.crc32(prompt.encode())
    opener = _OPENERS[h % len(_OPENERS)]
    body = _BODIES[(h >> 4) % len(_BODIES)]
    second = _BODIES[(h >> 8) % len(_BODIES)]
    topic = prompt.strip().split("\n", 1)[0][:60]
    about = f' You asked about "{topic}".' if topic else ""
    text = f"{LABEL} {opener}{about} {body}"
    if second != body:
        text += f" {second}"
    if req.response_format and req.response_format.get("type") in ("json_object", "json_schema"):
        return json.dumps({"demo": True, "answer": text})
    return text


def _cut(text: str, max_tokens: int | None, ratio: float) -> tuple[str, FinishReason]:
    if max_tokens is None:
        return text, FinishReason.STOP
    limit = int(max_tokens * ratio)
    if len(text) <= limit:
        return text, FinishReason.STOP
    return text[:limit], FinishReason.LENGTH


class DemoProvider:
    name = "demo"

    def __init__(self, stream_delay_ms: float = 0.0) -> None:
        self.stream_delay = stream_delay_ms / 1000

    def _answer(self, model: ResolvedModel, req: ChatRequest) -> tuple[str, FinishReason, Usage]:
        ratio = model.entry.fallback_token_ratio
        text, finish = _cut(demo_text(req), req.max_tokens, ratio)
        usage = Usage(
            input_tokens=estimate_prompt_tokens(req.messages, ratio),
            output_tokens=estimate_tokens(text, ratio),
        )
        return text, finish, usage

    async def chat(
        self, model: ResolvedModel, req: ChatRequest, attempt_timeout: float
    ) -> ChatResult:
        text, finish, usage = self._answer(model, req)
        return ChatResult(
            text=text,
            finish_reason=finish,
            usage=usage,
            model=model.id,
            provider=self.name,
            demo=True,
        )

    async def stream(
        self, model: ResolvedModel, req: ChatRequest, attempt_timeout: float
    ) -> AsyncIterator[StreamChunk]:
        text, finish, usage = self._answer(model, req)
        words = text.split(" ")
        last = len(words) - 1
        for i, word in enumerate(words):
            if self.stream_delay:
                await asyncio.sleep(self.stream_delay)
            yield StreamChunk(delta=word if i == last else word + " ")
        yield StreamChunk(finish_reason=finish, usage=usage)

    async def aclose(self) -> None:
        return None
