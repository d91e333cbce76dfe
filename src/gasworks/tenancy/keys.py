"""API key material: generation, parsing and hashing.

A key looks like ``gw_<prefix>_<secret>``: 12 random base62 characters of prefix (the lookup
index, safe to show) and 40 of secret (≈238 bits). Only SHA-256(key) is stored; high-entropy
keys need no slow hash, and a constant-time comparison guards the check.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

_ALPHABET = string.ascii_letters + string.digits
PREFIX_LEN = 12
SECRET_LEN = 40


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    prefix: str
    plaintext: str
    hash: str


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def generate() -> KeyMaterial:
    prefix = _random(PREFIX_LEN)
    plaintext = f"gw_{prefix}_{_random(SECRET_LEN)}"
    return KeyMaterial(prefix=prefix, plaintext=plaintext, hash=hash_key(plaintext))


def parse_prefix(plaintext: str) -> str | None:
    """The lookup prefix of a well-formed key, else None (no database work for junk)."""
    parts = plaintext.split("_")
    if len(parts) != 3 or parts[0] != "gw":
        return None
    prefix, secret = parts[1], parts[2]
    if len(prefix) != PREFIX_LEN or len(secret) != SECRET_LEN:
        return None
    if not (prefix.isalnum() and secret.isalnum() and prefix.isascii() and secret.isascii()):
        return None
    return prefix


def matches(plaintext: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(plaintext), stored_hash)
