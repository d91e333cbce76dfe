"""Master keys: where they come from, their key ids, and rotation.

A master key is 32 random bytes (AES-256). Its *key id* is the first 16 hex digits of its
SHA-256 and is recorded in every blob header, so a blob names the key that wrapped its data
key and master keys can be rotated without re-encrypting content.

Sources (first wins): ``GASWORKS_MASTER_KEY`` (base64) — otherwise the file
``GASWORKS_HOME/keys/master.key``, created with mode 0600 on first use. Retired keys stay
readable for unwrapping: ``GASWORKS_MASTER_KEYS_PREVIOUS`` (comma-separated base64) or the files
``GASWORKS_HOME/keys/master-<kid>.key`` left by :func:`rotate_master_key`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from gasworks.errors import BlobKeyUnknown, ConfigurationError
from gasworks.home import private_dirs
from gasworks.settings import Settings

KEY_BYTES = 32


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


@dataclass(frozen=True)
class Keyring:
    """The current master key plus every retired key still needed to unwrap old blobs."""

    current_id: str
    keys: dict[str, bytes] = field(repr=False)

    @classmethod
    def of(cls, current: bytes, *previous: bytes) -> Keyring:
        keys = {key_id(k): k for k in previous}
        keys[key_id(current)] = current
        return cls(current_id=key_id(current), keys=keys)

    @property
    def current(self) -> bytes:
        return self.keys[self.current_id]

    def get(self, kid: str) -> bytes:
        try:
            return self.keys[kid]
        except KeyError:
            raise BlobKeyUnknown(
                "A blob was encrypted under a master key this deployment does not hold.",
                details={"keyId": kid},
            ) from None


def _decode(raw: str, what: str) -> bytes:
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigurationError(
            f"{what} must be {KEY_BYTES} bytes, base64-encoded "
            '(generate one with `python -c "import os,base64;'
            'print(base64.b64encode(os.urandom(32)).decode())"`).',
            details={"setting": what},
        )
    return key


def keys_dir(settings: Settings) -> Path:
    return settings.home / "keys"


def _write_new(path: Path, key: bytes) -> bool:
    """Create ``path`` (0600) holding ``key``; False when another process created it first."""
    private_dirs(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(key).decode() + "\n")
        f.flush()
        os.fsync(f.fileno())
    return True


def _file_key(path: Path) -> bytes:
    return _decode(path.read_text(), str(path))


def load_keyring(settings: Settings) -> Keyring:
    previous: list[bytes] = []
    if settings.master_keys_previous is not None:
        for raw in settings.master_keys_previous.get_secret_value().split(","):
            if raw.strip():
                previous.append(_decode(raw, "GASWORKS_MASTER_KEYS_PREVIOUS"))
    folder = keys_dir(settings)
    if folder.is_dir():
        previous.extend(_file_key(p) for p in sorted(folder.glob("master-*.key")))
    if settings.master_key is not None:
        return Keyring.of(
            _decode(settings.master_key.get_secret_value(), "GASWORKS_MASTER_KEY"), *previous
        )
    path = folder / "master.key"
    if not path.exists():
        _write_new(path, os.urandom(KEY_BYTES))
    return Keyring.of(_file_key(path), *previous)


def rotate_master_key(settings: Settings) -> tuple[str, str]:
    """Make a new file master key current; keep the old one as ``master-<kid>.key``.

    Returns ``(old_kid, new_kid)``. Blobs keep working immediately (the old key still unwraps
    them); run :meth:`EnvelopeStore.rewrap` (``gasworks blobs rewrap``) to re-wrap every data
    key, then delete the retired file. Refused when the key comes from the environment:
    rotate it there (new key in ``GASWORKS_MASTER_KEY``, old in
    ``GASWORKS_MASTER_KEYS_PREVIOUS``) and run the re-wrap.
    """
    if settings.master_key is not None:
        raise ConfigurationError(
            "The master key comes from GASWORKS_MASTER_KEY: set the new key there, the old one "
            "in GASWORKS_MASTER_KEYS_PREVIOUS, restart, then run `gasworks blobs rewrap`.",
        )
    folder = keys_dir(settings)
    path = folder / "master.key"
    old = load_keyring(settings).current
    old_kid = key_id(old)
    retired = folder / f"master-{old_kid}.key"
    if not retired.exists():
        _write_new(retired, old)
    new = os.urandom(KEY_BYTES)
    tmp = folder / f".master.key.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    _write_new(tmp, new)
    os.replace(tmp, path)
    return old_kid, key_id(new)


def retire_unused_keys(settings: Settings, used: set[str]) -> list[str]:
    """Delete retired key files whose id no blob uses any more; returns the deleted ids."""
    out: list[str] = []
    for p in sorted(keys_dir(settings).glob("master-*.key")):
        kid = key_id(_file_key(p))
        if kid not in used:
            p.unlink()
            out.append(kid)
    return out
