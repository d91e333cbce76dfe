"""Deterministic stand-in embeddings for the fake provider servers.

``fake_vector(text, dims)`` is a unit vector derived from the text's SHA-256 (the same text
always gives the same vector; different texts are nearly orthogonal): enough to check that
vectors arrive in input order with the right size. It is not a semantic model: the offline
default (``local/all-minilm-l6-v2``) is the real one.
"""

from __future__ import annotations

import hashlib
import math
import struct


def fake_vector(text: str, dims: int) -> list[float]:
    out: list[float] = []
    counter = 0
    while len(out) < dims:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        out.extend(v / 2**31 - 1.0 for v in struct.unpack("<8I", digest))
        counter += 1
    del out[dims:]
    norm = math.sqrt(sum(x * x for x in out)) or 1.0
    return [x / norm for x in out]


def fake_tokens(text: str) -> int:
    """A plausible token count (words, at least one)."""
    return max(1, len(text.split()))
