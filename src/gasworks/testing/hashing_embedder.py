"""A FAKE embedder for tests only: words hashed into buckets, not a semantic model.

``HashingEmbedder`` implements the ``Embedder`` protocol deterministically and offline: each
lower-cased word adds 1 to the bucket ``sha256(word) % dimensions`` (with a sign from the
hash), then the vector is L2-normalised. Texts sharing words are close; synonyms are not.
Use it to test retrieval plumbing (filters, citations, nodes) without a model; never as a
real embedding model.
"""

from __future__ import annotations

import hashlib
import math
import re

from gasworks.modeltypes import CallScope
from gasworks.retrieval.types import EmbedRequest, EmbedResult

_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    model = "fake-hashing"

    def __init__(self, dimensions: int = 64) -> None:
        self.dimensions = dimensions
        #: every request seen, for assertions (scope, request)
        self.calls: list[tuple[CallScope, EmbedRequest]] = []

    def vector(self, text: str) -> list[float]:
        v = [0.0] * self.dimensions
        for word in _WORD.findall(text.lower()):
            h = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "big")
            v[h % self.dimensions] += 1.0 if (h >> 32) & 1 else -1.0
        norm = math.sqrt(sum(x * x for x in v))
        return [x / norm for x in v] if norm else v

    async def embed(self, scope: CallScope, req: EmbedRequest) -> EmbedResult:
        self.calls.append((scope, req))
        return EmbedResult(
            model=req.model or self.model,
            provider="fake",
            vectors=[self.vector(t) for t in req.inputs],
            dimensions=self.dimensions,
            input_tokens=sum(len(_WORD.findall(t)) for t in req.inputs),
        )
