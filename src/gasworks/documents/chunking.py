"""Token-aware chunking with overlap that respects structure.

Blocks (paragraphs, pages, sections) are packed into chunks of at most ``max_tokens``
(``cl100k_base``, shipped with gasworks); a chunk never spans two pages or two headings, so
its page and heading are exact citations. A block longer than a chunk is split at sentence
ends, or at token boundaries when a sentence alone is too long. Consecutive chunks of one
section share ``overlap`` tokens. Chunk ids are a hash of the document, generation, position
and text: the same input always gives the same ids (idempotent re-runs).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gasworks.documents.extractors.types import Block, Extracted
from gasworks.retrieval.types import Chunk, source_id

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass(slots=True, frozen=True)
class ChunkConfig:
    max_tokens: int = 400
    overlap: int = 50


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


def chunk(document_id: str, generation: int, doc: Extracted, cfg: ChunkConfig) -> list[Chunk]:
    encode, decode = _encoder()
    src = source_id(document_id, generation)
    out: list[Chunk] = []
    current: list[str] = []
    size = 0
    key: tuple[int | None, str | None] | None = None
    fresh = False  # whether ``current`` holds more than the previous chunk's overlap

    def emit() -> None:
        nonlocal current, size, fresh
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
        if cfg.overlap > 0:
            tail = encode(text)[-cfg.overlap :]
            current, size = [decode(tail)], len(tail)
        else:
            current, size = [], 0

    for block in doc.blocks:
        block_key = (block.page, block.heading)
        if key is not None and block_key != key:
            emit()
            current, size = [], 0  # no overlap across pages or sections
        key = block_key
        for piece, n in _pieces(block.text, cfg.max_tokens, encode, decode):
            if size and size + n > cfg.max_tokens:
                emit()
                if size + n > cfg.max_tokens:  # the overlap itself does not fit beside it
                    current, size = [], 0
            current.append(piece)
            size += n
            fresh = True
    emit()
    return out


__all__ = ["Block", "ChunkConfig", "chunk", "chunk_id"]
