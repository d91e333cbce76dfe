"""A conformance suite every ``BlobStore`` backend inherits (Haystack-style).

Usage in a backend's tests::

    class TestMyStore(BlobStoreConformance):
        @pytest.fixture
        def store(self, tmp_path):
            return MyStore(...)

Needs pytest and pytest-asyncio (auto mode).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gasworks.blobs.types import BlobStore
from gasworks.errors import BlobNotFound, ValidationFailed


class BlobStoreConformance:
    """Behaviour every backend must show. Subclasses provide the ``store`` fixture."""

    async def test_put_get_round_trip(self, store: BlobStore) -> None:
        await store.put("t1/kind/a", b"hello")
        assert await store.get("t1/kind/a") == b"hello"

    async def test_empty_and_binary_content(self, store: BlobStore) -> None:
        data = bytes(range(256)) * 100
        await store.put("t1/kind/bin", data)
        await store.put("t1/kind/empty", b"")
        assert await store.get("t1/kind/bin") == data
        assert await store.get("t1/kind/empty") == b""

    async def test_put_replaces(self, store: BlobStore) -> None:
        await store.put("t1/kind/a", b"one")
        await store.put("t1/kind/a", b"two")
        assert await store.get("t1/kind/a") == b"two"

    async def test_missing_is_not_found(self, store: BlobStore) -> None:
        with pytest.raises(BlobNotFound):
            await store.get("t1/kind/missing")
        assert await store.exists("t1/kind/missing") is False

    async def test_exists_and_delete(self, store: BlobStore) -> None:
        await store.put("t1/kind/a", b"x")
        assert await store.exists("t1/kind/a") is True
        assert await store.delete("t1/kind/a") is True
        assert await store.exists("t1/kind/a") is False
        assert await store.delete("t1/kind/a") is False

    async def test_keys_by_prefix_is_tenant_scoped(self, store: BlobStore) -> None:
        await store.put("t1/kind/a", b"1")
        await store.put("t1/kind/b", b"2")
        await store.put("t2/kind/a", b"3")
        assert sorted([k async for k in store.keys("t1/")]) == ["t1/kind/a", "t1/kind/b"]
        assert sorted([k async for k in store.keys("")]) == ["t1/kind/a", "t1/kind/b", "t2/kind/a"]

    async def test_tenants_do_not_share_keys(self, store: BlobStore) -> None:
        await store.put("t1/kind/same", b"tenant one")
        await store.put("t2/kind/same", b"tenant two")
        assert await store.get("t1/kind/same") == b"tenant one"
        assert await store.get("t2/kind/same") == b"tenant two"

    @pytest.mark.parametrize(
        "bad", ["", "nokind", "t1/kind", "../t1/kind/a", "t1/../x/a", "t1/kind/a b", "/t1/k/a"]
    )
    async def test_rejects_unsafe_keys(self, store: BlobStore, bad: str) -> None:
        with pytest.raises(ValidationFailed):
            await store.put(bad, b"x")

    async def test_concurrent_writers_leave_one_whole_value(self, store: BlobStore) -> None:
        values = [bytes([i]) * 10_000 for i in range(8)]
        await asyncio.gather(*(store.put("t1/kind/race", v) for v in values))
        assert await store.get("t1/kind/race") in values

    async def test_put_file_stores_and_consumes_the_file(
        self, store: BlobStore, tmp_path: Path
    ) -> None:
        src = tmp_path / "upload.bin"
        src.write_bytes(b"x" * 3_000_001)
        await store.put_file("t1/documents/a", src)
        assert await store.get("t1/documents/a") == b"x" * 3_000_001
        assert not src.exists()
