from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from gasworks.blobs import (
    EnvelopeStore,
    Keyring,
    LocalFolderStore,
    MemoryBlobStore,
    load_keyring,
    open_blob_store,
    rotate_master_key,
)
from gasworks.blobs.keys import retire_unused_keys
from gasworks.blobs.testing import BlobStoreConformance
from gasworks.errors import BlobIntegrityError, BlobKeyUnknown, ConfigurationError
from gasworks.settings import Settings


def _settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(home=tmp_path / "home", **kw)  # type: ignore[arg-type]


class TestMemoryStore(BlobStoreConformance):
    @pytest.fixture
    def store(self):
        return MemoryBlobStore()


class TestLocalFolderStore(BlobStoreConformance):
    @pytest.fixture
    def store(self, tmp_path):
        return LocalFolderStore(tmp_path / "blobs")


class TestEnvelopeOverLocal(BlobStoreConformance):
    @pytest.fixture
    def store(self, tmp_path):
        return open_blob_store(_settings(tmp_path))


async def test_content_is_encrypted_at_rest(tmp_path):
    store = open_blob_store(_settings(tmp_path))
    secret = b"the system prompt nobody should read on disk" * 10
    await store.put("t1/prompt-content/abc", secret)
    on_disk = (tmp_path / "home" / "blobs" / "t1" / "prompt-content" / "abc").read_bytes()
    assert secret not in on_disk
    assert on_disk.startswith(b"GWE1")
    assert await store.get("t1/prompt-content/abc") == secret


async def test_master_key_file_created_0600(tmp_path):
    settings = _settings(tmp_path)
    ring = load_keyring(settings)
    path = tmp_path / "home" / "keys" / "master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keyring(settings).current == ring.current  # stable across loads


async def test_master_key_from_environment(tmp_path):
    key = base64.b64encode(os.urandom(32)).decode()
    ring = load_keyring(_settings(tmp_path, master_key=key))
    assert ring.current == base64.b64decode(key)
    assert not (tmp_path / "home" / "keys" / "master.key").exists()
    with pytest.raises(ConfigurationError):
        load_keyring(_settings(tmp_path, master_key="dG9vIHNob3J0"))


@pytest.mark.parametrize(
    "where", ["header", "wrapped_key", "wrapped_key_not_base64", "ciphertext", "tag"]
)
async def test_tampering_is_detected(tmp_path, where):
    inner = MemoryBlobStore()
    store = EnvelopeStore(inner, Keyring.of(os.urandom(32)))
    await store.put("t1/prompt-content/x", b"payload " * 50)
    raw = bytearray(await inner.get("t1/prompt-content/x"))
    hlen = int.from_bytes(raw[4:6], "big")
    if where == "header":
        raw[6 + hlen - 3] ^= 0x01  # inside the JSON header (nonce text)
    elif where == "wrapped_key":
        idx = raw.index(b'"wk":"') + 8
        raw[idx] = ord("A") if raw[idx] != ord("A") else ord("B")
    elif where == "wrapped_key_not_base64":  # a flipped bit can leave the base64 alphabet
        idx = raw.index(b'"wk":"') + 8
        raw[idx] = ord("`")
    elif where == "ciphertext":
        raw[6 + hlen + 5] ^= 0x01
    else:
        raw[-1] ^= 0x01
    await inner.put("t1/prompt-content/x", bytes(raw))
    with pytest.raises(BlobIntegrityError):
        await store.get("t1/prompt-content/x")


async def test_blob_moved_to_another_tenant_path_does_not_decrypt():
    inner = MemoryBlobStore()
    store = EnvelopeStore(inner, Keyring.of(os.urandom(32)))
    await store.put("t1/prompt-content/x", b"tenant one's secret")
    await inner.put("t2/prompt-content/x", await inner.get("t1/prompt-content/x"))
    with pytest.raises(BlobIntegrityError):
        await store.get("t2/prompt-content/x")


async def test_unknown_master_key_is_reported():
    inner = MemoryBlobStore()
    await EnvelopeStore(inner, Keyring.of(os.urandom(32))).put("t1/k/x", b"data")
    with pytest.raises(BlobKeyUnknown):
        await EnvelopeStore(inner, Keyring.of(os.urandom(32))).get("t1/k/x")


async def test_rotation_rewraps_and_retires_old_key(tmp_path):
    settings = _settings(tmp_path)
    store = open_blob_store(settings)
    for i in range(5):
        await store.put(f"t1/prompt-content/b{i}", f"content {i}".encode())
    old_kid, new_kid = rotate_master_key(settings)
    assert old_kid != new_kid
    rotated = open_blob_store(settings)  # a restarted process: new current key, old retired
    assert rotated.keyring.current_id == new_kid
    assert await rotated.get("t1/prompt-content/b0") == b"content 0"  # readable before rewrap
    report = await rotated.rewrap()
    assert (report.rewrapped, report.already_current, report.failed) == (5, 0, [])
    assert {await rotated.key_id_of(f"t1/prompt-content/b{i}") for i in range(5)} == {new_kid}
    assert (await rotated.rewrap()).rewrapped == 0  # idempotent
    assert retire_unused_keys(settings, report.key_ids_in_use) == [old_kid]
    fresh = open_blob_store(settings)
    assert set(fresh.keyring.keys) == {new_kid}
    for i in range(5):
        assert await fresh.get(f"t1/prompt-content/b{i}") == f"content {i}".encode()


async def test_rotation_refused_for_environment_keys(tmp_path):
    key = base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(ConfigurationError):
        rotate_master_key(_settings(tmp_path, master_key=key))


async def test_rotation_with_environment_keys(tmp_path):
    old = os.urandom(32)
    new = os.urandom(32)
    b64 = lambda k: base64.b64encode(k).decode()  # noqa: E731
    s_old = _settings(tmp_path, master_key=b64(old))
    await open_blob_store(s_old).put("t1/k/a", b"A")
    s_new = _settings(tmp_path, master_key=b64(new), master_keys_previous=b64(old))
    store = open_blob_store(s_new)
    assert (await store.rewrap()).rewrapped == 1
    only_new = open_blob_store(_settings(tmp_path, master_key=b64(new)))
    assert await only_new.get("t1/k/a") == b"A"


async def test_running_process_reads_blobs_rewrapped_by_a_rotation_elsewhere(tmp_path):
    settings = _settings(tmp_path)
    server = open_blob_store(settings)  # a long-running process holding the old key
    await server.put("t1/k/a", b"before rotation")
    rotate_master_key(settings)
    cli = open_blob_store(settings)
    assert (await cli.rewrap()).rewrapped == 1
    assert await server.get("t1/k/a") == b"before rotation"  # reloads the keys it lacks
    await server.put("t1/k/b", b"written after rotation")
    assert await cli.get("t1/k/b") == b"written after rotation"


async def test_streamed_put_is_encrypted_and_reads_back(tmp_path):
    store = open_blob_store(_settings(tmp_path))

    async def pieces():
        for i in range(5):
            yield bytes([i]) * 700_000

    size = await store.put_stream("t1/documents/big", pieces())
    assert size == 3_500_000
    raw = (tmp_path / "home" / "blobs" / "t1" / "documents" / "big").read_bytes()
    assert b"\x02" * 1000 not in raw  # encrypted at rest
    assert await store.get("t1/documents/big") == b"".join([bytes([i]) * 700_000 for i in range(5)])
    # bound to its key like any other blob
    await store.inner.put("t2/documents/big", raw)
    with pytest.raises(BlobIntegrityError):
        await store.get("t2/documents/big")


async def test_temporary_files_of_crashed_writes_are_cleaned_up(tmp_path):
    """A process that died mid-write left ``.name.<hex>.tmp``; the next process's first write
    removes it. A young one (another process writing now) and real blobs stay."""
    import os
    import time
    import uuid

    root = tmp_path / "blobs"
    (root / "t1").mkdir(parents=True)
    stale = root / "t1" / f".a.{uuid.uuid4().hex}.tmp"
    fresh = root / "t1" / f".b.{uuid.uuid4().hex}.tmp"
    for p in (stale, fresh):
        p.write_bytes(b"partial")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    store = LocalFolderStore(root)
    await store.put("t1/p/kept", b"x")
    assert not stale.exists() and fresh.exists()
    assert [k async for k in store.keys("t1/")] == ["t1/p/kept"]
