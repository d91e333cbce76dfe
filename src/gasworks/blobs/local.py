"""A local-folder backend: one file per blob under a root folder (default GASWORKS_HOME/blobs).

Writes go to a temporary file in the same folder and are renamed into place (atomic on POSIX),
so readers never see a partial blob. File I/O runs in a worker thread. A process that crashed
mid-write leaves its temporary file behind: the first write of each store removes the ones
older than ``STALE_TMP_SECONDS`` (younger ones may be another process's write in flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from gasworks.blobs.types import check_key
from gasworks.errors import BlobNotFound, BlobStoreUnavailable
from gasworks.home import private_dirs

#: a temporary file this old belongs to a write that will never finish
STALE_TMP_SECONDS = 3600.0
_TMP = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")


class LocalFolderStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._swept = False

    def sweep(self, older_than: float = STALE_TMP_SECONDS) -> int:
        """Remove temporary files of crashed writes older than ``older_than`` seconds; returns
        how many were removed."""
        removed = 0
        if not self.root.is_dir():
            return removed
        cutoff = time.time() - older_than
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if not _TMP.match(name):
                    continue
                path = Path(dirpath, name)
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
        return removed

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _put(self, path: Path, data: bytes) -> None:
        if not self._swept:
            self._swept = True
            self.sweep()
        private_dirs(path.parent)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    async def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            await asyncio.to_thread(self._put, path, bytes(data))
        except OSError as exc:
            raise BlobStoreUnavailable(
                "The blob folder cannot be written.", details={"error": type(exc).__name__}
            ) from exc

    def _put_file(self, path: Path, src: Path) -> None:
        private_dirs(path.parent)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            try:
                os.replace(src, tmp)  # same file system: a rename
            except OSError:
                shutil.copyfile(src, tmp)
                src.unlink(missing_ok=True)
            os.chmod(tmp, 0o600)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    async def put_file(self, key: str, path: Path) -> None:
        dest = self._path(key)
        try:
            await asyncio.to_thread(self._put_file, dest, path)
        except OSError as exc:
            raise BlobStoreUnavailable(
                "The blob folder cannot be written.", details={"error": type(exc).__name__}
            ) from exc

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise BlobNotFound("No such blob.", details={"key": key}) from None
        except OSError as exc:
            raise BlobStoreUnavailable(
                "The blob folder cannot be read.", details={"error": type(exc).__name__}
            ) from exc

    async def delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            await asyncio.to_thread(path.unlink)
            return True
        except FileNotFoundError:
            return False

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    def _walk(self, prefix: str) -> list[str]:
        out: list[str] = []
        if not self.root.is_dir():
            return out
        for dirpath, _dirs, files in os.walk(self.root):
            rel = Path(dirpath).relative_to(self.root)
            for name in files:
                if name.startswith("."):
                    continue  # temporary files of in-flight writes
                key = "/".join([*rel.parts, name])
                if key.startswith(prefix):
                    out.append(key)
        return sorted(out)

    async def keys(self, prefix: str = "") -> AsyncIterator[str]:
        for key in await asyncio.to_thread(self._walk, prefix):
            yield key
