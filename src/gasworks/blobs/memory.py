"""An in-memory backend: for tests and for embedding gasworks in another program."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from gasworks.blobs.types import check_key
from gasworks.errors import BlobNotFound


class MemoryBlobStore:
    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = asyncio.Lock()

    async def put(self, key: str, data: bytes) -> None:
        check_key(key)
        async with self._lock:
            self._data[key] = bytes(data)

    async def put_file(self, key: str, path: Path) -> None:
        data = await asyncio.to_thread(path.read_bytes)
        await asyncio.to_thread(path.unlink, True)
        await self.put(key, data)

    async def get(self, key: str) -> bytes:
        try:
            return self._data[check_key(key)]
        except KeyError:
            raise BlobNotFound("No such blob.", details={"key": key}) from None

    async def delete(self, key: str) -> bool:
        async with self._lock:
            return self._data.pop(check_key(key), None) is not None

    async def exists(self, key: str) -> bool:
        return check_key(key) in self._data

    async def keys(self, prefix: str = "") -> AsyncIterator[str]:
        for key in sorted(self._data):
            if key.startswith(prefix):
                yield key
