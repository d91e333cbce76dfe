"""The offline demo model: deterministic, instant, needs no key, and says it is a demo.

Every answer starts with ``[demo]`` and every result has ``demo=True`` so nobody mistakes it
for a real model. The text is built from the prompt's hash, so the same prompt always gets the
same answer (useful in tests and screenshots). ``GASWORKS_DEMO_STREAM_DELAY_MS`` paces the
stream like a real model for demos; it is 0 by default.

Given retrieved passages (a prompt with numbered sources, ``[1] (where) text`` lines, the
format of the VectorSearch node's ``text``, and a ``Question:`` line, as the retrieval demo
workflow sends), it answers *extractively*: the sentences of the sources that share the most
words with the question, each followed by its source number, then the sources it used. So the
offline retrieval demo shows an answer that visibly comes from the documents, with citations,
and without sources it says so. It is still no language model: it quotes, it never infers.
"""

from __future__ import annotations

import asyncio
import json
import re
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
    grounded = grounded_answer(prompt)
    text = f"{LABEL} {grounded}" if grounded is not None else _canned(prompt)
    if req.response_format and req.response_format.get("type") in ("json_object", "json_schema"):
        return json.dumps({"demo": True, "answer": text})
    return text


def _canned(prompt: str) -> str:
    h = zlib.crc32(prompt.encode())
    opener = _OPENERS[h % len(_OPENERS)]
    body = _BODIES[(h >> 4) % len(_BODIES)]
    second = _BODIES[(h >> 8) % len(_BODIES)]
    topic = prompt.strip().split("\n", 1)[0][:60]
    about = f' You asked about "{topic}".' if topic else ""
    text = f"{LABEL} {opener}{about} {body}"
    if second != body:
        text += f" {second}"
    return text


# --- answers from retrieved passages -----------------------------------------------------------

_SOURCE = re.compile(r"^\[(\d{1,3})\] \((.+?)\) ", re.M)
_QUESTION = re.compile(r"^Question:[ \t]*(.+)$", re.M)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[a-z0-9]+")
_STOP_WORDS = (
    "a about after all also am an and any are as at be been before being but by can could did "
    "do does doing for from had has have how i if in into is it its may me might more most "
    "must my no not of on once only or other our out over own please should so some such than "
    "that the their them then there these they this those through to too under until up us "
    "very was we were what when where which while who whom why will with would you your"
)
_STOP = frozenset(_STOP_WORDS.split())
#: the most sentences one answer quotes
MAX_QUOTES = 3


def _terms(text: str) -> set[str]:
    """Content words, crudely stemmed (a plural or verb ending off) so "days" meets "day"."""
    out = set()
    for w in _WORD.findall(text.lower()):
        if w in _STOP or len(w) < 2:
            continue
        for suffix in ("ing", "ed", "es", "s"):
            if len(w) > len(suffix) + 2 and w.endswith(suffix):
                w = w[: -len(suffix)]
                break
        out.add(w)
    return out


def grounded_answer(prompt: str) -> str | None:
    """The extractive answer to a prompt with numbered sources and a ``Question:`` line, or
    ``None`` when the prompt is not shaped like that (then the canned answer is used)."""
    questions = _QUESTION.findall(prompt)
    if not questions or "Sources:" not in prompt:
        return None
    question = questions[-1].strip()
    body = prompt[: prompt.rfind("Question:")]
    marks = list(_SOURCE.finditer(body))
    if not marks:
        return f'None of the documents you may read answers "{question[:120]}".'
    wanted = _terms(question)
    # (score, source rank, position, sentence, shared words) per sentence of every source
    candidates: list[tuple[int, int, int, str, set[str]]] = []
    for rank, m in enumerate(marks):
        end = marks[rank + 1].start() if rank + 1 < len(marks) else len(body)
        text = body[m.end() : end].strip()
        for pos, sentence in enumerate(s.strip() for s in _SENTENCE.split(text)):
            if sentence:
                shared = wanted & _terms(sentence)
                candidates.append((len(shared), rank, pos, sentence, shared))
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    chosen: list[tuple[int, int, int, str, set[str]]] = []
    covered: set[str] = set()
    for c in candidates:
        if len(chosen) == MAX_QUOTES or c[0] == 0:
            break
        if not chosen or c[4] - covered:  # each further quote adds a word of the question
            chosen.append(c)
            covered |= c[4]
    lead = "From the documents:"
    if not chosen:  # no shared word: the top passage's first sentence (retrieval ranked it)
        chosen = [min(candidates, key=lambda c: (c[1], c[2]))] if candidates else []
        lead = "The closest passage I found:"
    if not chosen:
        return f'None of the documents you may read answers "{question[:120]}".'
    chosen.sort(key=lambda c: (c[1], c[2]))
    used = sorted({c[1] for c in chosen})
    quotes = " ".join(f"{_end(c[3])} [{marks[c[1]].group(1)}]." for c in chosen)
    sources = "; ".join(f"[{marks[r].group(1)}] {marks[r].group(2)}" for r in used)
    return f"{lead} {quotes}\nSources: {sources}"


def _end(sentence: str) -> str:
    """The sentence without its final full stop (the citation goes before it)."""
    return sentence[:-1] if sentence.endswith(".") else sentence


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
