"""The ``BlobStore`` protocol and the tenant-scoped key scheme every backend shares."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from gasworks.errors import ValidationFailed

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


@runtime_checkable
class BlobStore(Protocol):
    """Opaque bytes under string keys. Implementations must be safe for concurrent use.

    ``get`` raises ``BlobNotFound`` for a missing key; ``delete`` answers whether something was
    deleted; ``put`` replaces atomically (a reader sees the old or the new bytes, never a mix).
    """

    async def put(self, key: str, data: bytes) -> None: ...

    async def put_file(self, key: str, path: Path) -> None:
        """Store the content of the file at ``path`` (read in pieces, never whole in memory);
        the file is consumed (moved or deleted) by the call."""
        ...

    async def get(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> bool: ...

    async def exists(self, key: str) -> bool: ...

    def keys(self, prefix: str = "") -> AsyncIterator[str]:
        """Every key starting with ``prefix`` (order unspecified)."""
        ...


def check_key(key: str) -> str:
    """Validate a blob key: ``<tenant>/<kind>/<name>[/…]`` of safe segments (no ``..``)."""
    parts = key.split("/")
    if len(parts) < 3 or not all(_SEGMENT.match(p) and p not in {".", ".."} for p in parts):
        raise ValidationFailed(
            "Blob keys are '<tenant>/<kind>/<name>' made of letters, digits, '.', '_' and '-'.",
            details={"key": key[:300]},
        )
    return key


def blob_key(tenant_id: str, kind: str, name: str) -> str:
    """The key of blob ``name`` of ``kind`` owned by ``tenant_id`` (validated)."""
    return check_key(f"{tenant_id}/{kind}/{name}")
