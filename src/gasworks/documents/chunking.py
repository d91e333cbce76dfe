"""Token-aware chunking with overlap that respects structure.

Blocks (paragraphs, pages, sections) are packed into chunks of at most ``max_tokens``
(``cl100k_base``, shipped with gasworks); a chunk never spans two pages or two headings, so
its page and heading are exact citations. A block longer than a chunk is split at sentence
ends, or at token boundaries when a sentence alone is too long. Consecutive chunks of one
section share ``overlap`` tokens. Chunk ids are a hash of the document, generation, position
and text: the same input always gives the same ids (idempotent re-runs).

The embedding model bounds a chunk too (``ChunkConfig.limit``, from the gateway): a chunk is
never longer than the model's ``max_input_tokens`` counted the way the gateway counts before it
refuses an input (the model's own tokenizer, special tokens and document prefix included), so
a chunk is never refused for its length. ``max_tokens`` is then at most that limit, and where
the model's tokens are only estimated (characters per token) the chunker fills
``ESTIMATE_MARGIN`` of it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gasworks.documents.extractors.types import Block, Extracted
from gasworks.retrieval.types import Chunk, EmbedInputLimit, source_id

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


#: the share of a model's limit a chunk may fill when its tokens are estimated, not counted
ESTIMATE_MARGIN = 0.9
#: the default chunk size (``cl100k_base`` tokens), lowered to the embedding model's limit
DEFAULT_TOKENS = 400
DEFAULT_OVERLAP = 50


@dataclass(slots=True, frozen=True)
class ChunkConfig:
    #: ``cl100k_base`` tokens per chunk (at most ``limit.max_tokens`` in effect)
    max_tokens: int = DEFAULT_TOKENS
    overlap: int = DEFAULT_OVERLAP
    #: the embedding model's input limit and counter (None: no model bound)
    limit: EmbedInputLimit | None = None


def model_cap(limit: EmbedInputLimit) -> int:
    """The model tokens a chunk may have: the model's limit, less the margin of an estimate."""
    if limit.exact:
        return limit.max_tokens
    return max(1, int(limit.max_tokens * ESTIMATE_MARGIN))


def default_tokens(limit: EmbedInputLimit | None) -> int:
    """The chunk size of a collection created without one."""
    return DEFAULT_TOKENS if limit is None else min(DEFAULT_TOKENS, model_cap(limit))


class _Budget:
    """The embedding model's measure of a chunk: the content's tokens, summed per piece."""

    def __init__(self, limit: EmbedInputLimit, cap: int) -> None:
        self.count = limit.count
        base, sep = self.count(["", "\n\n"])
        self.base = base  # special tokens and prefix, once per input
        self.sep = max(0, sep - base)  # what a join between two pieces may add
        self.room = cap - base

    def sizes(self, texts: list[str]) -> list[int]:
        return [max(0, n - self.base) for n in self.count(texts)] if texts else []


def _encoder() -> tuple[Callable[[str], list[int]], Callable[[list[int]], str]]:
    from gasworks.llm.tokens import get_encoding

    enc = get_encoding("cl100k_base")
    if enc is None:  # pragma: no cover - the encoding ships with gasworks
        return (lambda s: list(s.encode())), (lambda t: bytes(t).decode(errors="ignore"))
    return enc.encode_ordinary, enc.decode


def chunk_id(document_id: str, generation: int, ordinal: int, text: str) -> str:
    h = hashlib.sha256(f"{document_id}\x00{generation}\x00{ordinal}\x00{text}".encode())
    return h.hexdigest()[:32]


def _pieces(
    text: str,
    max_tokens: int,
    encode: Callable[[str], list[int]],
    decode: Callable[[list[int]], str],
) -> Iterator[tuple[str, int]]:
    """``text`` in pieces of at most ``max_tokens`` (sentence ends first), with their sizes."""
    n = len(encode(text))
    if n <= max_tokens:
        yield text, n
        return
    for sentence in _SENTENCE.split(text):
        toks = encode(sentence)
        if len(toks) <= max_tokens:
            yield sentence, len(toks)
        else:
            for i in range(0, len(toks), max_tokens):
                part = toks[i : i + max_tokens]
                yield decode(part), len(part)


def _fit(
    pieces: list[tuple[str, int]],
    budget: _Budget,
    encode: Callable[[str], list[int]],
    decode: Callable[[list[int]], str],
) -> Iterator[tuple[str, int, int]]:
    """The pieces with their model sizes; a piece over the model's room is cut at
    ``cl100k_base`` token boundaries until every part fits."""
    sizes = budget.sizes([p for p, _ in pieces])
    for (piece, n), m in zip(pieces, sizes, strict=True):
        if m <= budget.room:
            yield piece, n, m
            continue
        toks = encode(piece)
        step = max(1, len(toks) * budget.room // max(m, 1))
        parts = [toks[i : i + step] for i in range(0, len(toks), step)]
        yield from _fit([(decode(p), len(p)) for p in parts], budget, encode, decode)


def chunk(document_id: str, generation: int, doc: Extracted, cfg: ChunkConfig) -> list[Chunk]:
    """The document's chunks; each fits ``cfg.max_tokens`` and the embedding model's limit."""
    if cfg.limit is None:
        return _chunk(document_id, generation, doc, cfg.max_tokens, cfg.overlap, None)
    cap = model_cap(cfg.limit)
    size = min(cfg.max_tokens, cap)
    overlap = cfg.overlap if cfg.overlap < size // 2 else min(cfg.overlap, size // 8)
    budget = _Budget(cfg.limit, cap)
    # the pieces' sizes add up to at most the chunk's own count for the tokenizers gasworks
    # knows; the count of every chunk is checked anyway and a miss re-chunks with less room
    for _ in range(32):
        out = _chunk(document_id, generation, doc, size, overlap, budget)
        worst = max(budget.count([c.text for c in out]), default=0)
        if worst <= cap:
            return out
        budget.room -= max(worst - cap, budget.room // 10, 1)
        if budget.room <= 0:
            break
    raise RuntimeError(f"cannot fit chunks into {cap} tokens of {cfg.limit.model}")


def _chunk(
    document_id: str,
    generation: int,
    doc: Extracted,
    max_tokens: int,
    overlap: int,
    budget: _Budget | None,
) -> list[Chunk]:
    encode, decode = _encoder()
    src = source_id(document_id, generation)
    out: list[Chunk] = []
    current: list[str] = []
    size = 0
    msize = 0  # the model's tokens of ``current`` (with a budget)
    key: tuple[int | None, str | None] | None = None
    fresh = False  # whether ``current`` holds more than the previous chunk's overlap

    def emit() -> None:
        nonlocal current, size, msize, fresh
        if not fresh:
            return
        fresh = False
        text = "\n\n".join(current).strip()
        ordinal = len(out)
        page, heading = key if key else (None, None)
        out.append(
            Chunk(
                chunk_id=chunk_id(document_id, generation, ordinal, text),
                source_id=src,
                document_id=document_id,
                ordinal=ordinal,
                text=text,
                page=page,
                heading=heading,
            )
        )
        if overlap > 0:
            tail = encode(text)[-overlap:]
            current, size = [decode(tail)], len(tail)
            msize = budget.sizes(current)[0] if budget is not None else 0
        else:
            current, size, msize = [], 0, 0

    def over(n: int, m: int) -> bool:
        if size + n > max_tokens:
            return True
        return budget is not None and msize + budget.sep + m > budget.room

    for block in doc.blocks:
        block_key = (block.page, block.heading)
        if key is not None and block_key != key:
            emit()
            current, size, msize = [], 0, 0  # no overlap across pages or sections
        key = block_key
        pieces = list(_pieces(block.text, max_tokens, encode, decode))
        sized = (
            _fit(pieces, budget, encode, decode)
            if budget is not None
            else ((p, n, 0) for p, n in pieces)
        )
        for piece, n, m in sized:
            if size and over(n, m):
                emit()
                if size and over(n, m):  # the overlap itself does not fit beside it
                    current, size, msize = [], 0, 0
            if current and budget is not None:
                msize += budget.sep
            current.append(piece)
            size += n
            msize += m
            fresh = True
    emit()
    return out


__all__ = ["Block", "ChunkConfig", "chunk", "chunk_id", "default_tokens", "model_cap"]
