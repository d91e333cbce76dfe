"""AES-256-GCM envelope encryption over any ``BlobStore``.

Stored format (one blob)::

    b"GWE1" | uint16 header length (big endian) | header (JSON, UTF-8) | ciphertext+tag

``header = {"alg": "A256GCM", "kid": <master key id>, "wk": b64(nonce|wrapped data key),
"n": b64(nonce)}``. Each blob gets a fresh random 256-bit data key. The data key is encrypted
with the master key (AAD binds the key id and the blob key); the content with the data key
(AAD binds the blob key), so a blob copied under another key — another tenant's path — fails
authentication instead of decrypting. Any modified byte fails with ``BLOB_INTEGRITY_FAILED``.

Rotation re-wraps only the data key (a few dozen bytes per blob); content is not re-encrypted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import struct
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gasworks.blobs.keys import Keyring
from gasworks.blobs.types import BlobStore
from gasworks.errors import BlobIntegrityError

MAGIC = b"GWE1"
#: plaintext read per step by ``put_file``
STREAM_PIECE = 1 << 20
_NONCE = 12


@dataclass
class RewrapReport:
    rewrapped: int = 0
    already_current: int = 0
    failed: list[str] = field(default_factory=list)
    key_ids_in_use: set[str] = field(default_factory=set)


def _integrity(key: str, why: str) -> BlobIntegrityError:
    return BlobIntegrityError(
        "A stored blob failed its integrity check and was not served.",
        details={"key": key, "reason": why},
    )


class EnvelopeStore:
    """A ``BlobStore`` that encrypts on ``put`` and authenticates + decrypts on ``get``."""

    def __init__(
        self,
        inner: BlobStore,
        keyring: Keyring,
        reload: Callable[[], Keyring] | None = None,
    ) -> None:
        self.inner = inner
        self.keyring = keyring
        #: re-reads the keys when a blob names an unknown key id (rotated by another process)
        self._reload = reload

    # -- format ---------------------------------------------------------------------------

    def _wrap(self, key: str, dk: bytes) -> dict[str, Any]:
        kid = self.keyring.current_id
        nonce = os.urandom(_NONCE)
        wrapped = AESGCM(self.keyring.current).encrypt(nonce, dk, f"gw-dk|{kid}|{key}".encode())
        return {"alg": "A256GCM", "kid": kid, "wk": base64.b64encode(nonce + wrapped).decode()}

    def _unwrap(self, key: str, header: dict[str, Any]) -> bytes:
        kid = str(header.get("kid", ""))
        if kid not in self.keyring.keys and self._reload is not None:
            self.keyring = self._reload()
        master = self.keyring.get(kid)
        try:
            raw = base64.b64decode(str(header.get("wk", "")))  # binascii.Error is a ValueError
            return AESGCM(master).decrypt(raw[:_NONCE], raw[_NONCE:], f"gw-dk|{kid}|{key}".encode())
        except (InvalidTag, ValueError) as exc:
            raise _integrity(key, "data key authentication failed") from exc

    @staticmethod
    def _pack(header: dict[str, Any], body: bytes) -> bytes:
        h = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
        return MAGIC + struct.pack(">H", len(h)) + h + body

    @staticmethod
    def _unpack(key: str, blob: bytes) -> tuple[dict[str, Any], bytes]:
        if len(blob) < 6 or blob[:4] != MAGIC:
            raise _integrity(key, "not an encrypted gasworks blob")
        (n,) = struct.unpack(">H", blob[4:6])
        try:
            header = json.loads(blob[6 : 6 + n])
        except ValueError as exc:
            raise _integrity(key, "unreadable header") from exc
        if not isinstance(header, dict) or header.get("alg") != "A256GCM":
            raise _integrity(key, "unknown algorithm")
        return header, blob[6 + n :]

    # -- BlobStore ------------------------------------------------------------------------

    async def put(self, key: str, data: bytes) -> None:
        dk = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(_NONCE)
        ct = AESGCM(dk).encrypt(nonce, bytes(data), f"gw-blob|{key}".encode())
        header = self._wrap(key, dk)
        header["n"] = base64.b64encode(nonce).decode()
        await self.inner.put(key, self._pack(header, ct))

    async def put_file(self, key: str, path: Path) -> None:
        async def pieces() -> AsyncIterator[bytes]:
            with open(path, "rb") as f:  # noqa: ASYNC230 - small reads, bounded by the piece size
                while piece := f.read(STREAM_PIECE):
                    yield piece

        try:
            await self.put_stream(key, pieces())
        finally:
            await asyncio.to_thread(path.unlink, True)

    async def put_stream(
        self, key: str, pieces: AsyncIterator[bytes], *, spool_dir: Path | None = None
    ) -> int:
        """Encrypt ``pieces`` as they arrive into a temporary file, then hand the file to the
        backend: memory stays bounded by one piece whatever the size. The stored blob is
        byte-for-byte what ``put`` writes (AES-GCM's output is ciphertext then tag), so ``get``
        reads both. Returns the plaintext size."""
        dk = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(_NONCE)
        enc = Cipher(algorithms.AES(dk), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(f"gw-blob|{key}".encode())
        header = self._wrap(key, dk)
        header["n"] = base64.b64encode(nonce).decode()
        size = 0
        fd, name = tempfile.mkstemp(prefix=".gw-put-", dir=spool_dir)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(self._pack(header, b""))
                async for piece in pieces:
                    size += len(piece)
                    out.write(enc.update(piece))
                out.write(enc.finalize() + enc.tag)
            await self.inner.put_file(key, tmp)
        finally:
            await asyncio.to_thread(tmp.unlink, True)
        return size

    async def get(self, key: str) -> bytes:
        header, body = self._unpack(key, await self.inner.get(key))
        dk = self._unwrap(key, header)
        try:
            nonce = base64.b64decode(str(header.get("n", "")))
            return AESGCM(dk).decrypt(nonce, body, f"gw-blob|{key}".encode())
        except (InvalidTag, ValueError) as exc:
            raise _integrity(key, "content authentication failed") from exc

    async def delete(self, key: str) -> bool:
        return await self.inner.delete(key)

    async def exists(self, key: str) -> bool:
        return await self.inner.exists(key)

    def keys(self, prefix: str = "") -> AsyncIterator[str]:
        return self.inner.keys(prefix)

    # -- rotation -------------------------------------------------------------------------

    async def key_id_of(self, key: str) -> str:
        header, _ = self._unpack(key, await self.inner.get(key))
        return str(header.get("kid", ""))

    async def rewrap(self, prefix: str = "") -> RewrapReport:
        """Re-wrap every data key not under the current master key (idempotent, resumable)."""
        report = RewrapReport()
        async for key in self.inner.keys(prefix):
            try:
                header, body = self._unpack(key, await self.inner.get(key))
                if header.get("kid") == self.keyring.current_id:
                    report.already_current += 1
                else:
                    dk = self._unwrap(key, header)
                    new = {**header, **self._wrap(key, dk)}
                    await self.inner.put(key, self._pack(new, body))
                    report.rewrapped += 1
                report.key_ids_in_use.add(self.keyring.current_id)
            except Exception:
                report.failed.append(key)
                with contextlib.suppress(Exception):  # unreadable header: nothing to record
                    report.key_ids_in_use.add(await self.key_id_of(key))
        return report
