"""Blob storage: a small ``BlobStore`` protocol, backends, and envelope encryption.

Keys are always tenant-scoped (``<tenant>/<kind>/<name>``, see :func:`blob_key`). Backends
store opaque bytes; :class:`EnvelopeStore` wraps any backend with AES-256-GCM envelope
encryption (a random data key per blob, wrapped by a master key with a recorded key id).
Every backend passes the conformance suite in :mod:`gasworks.blobs.testing`.
"""

from gasworks.blobs.envelope import EnvelopeStore, RewrapReport
from gasworks.blobs.factory import blob_store, open_blob_store
from gasworks.blobs.keys import Keyring, load_keyring, rotate_master_key
from gasworks.blobs.local import LocalFolderStore
from gasworks.blobs.memory import MemoryBlobStore
from gasworks.blobs.types import BlobStore, blob_key, check_key

__all__ = [
    "BlobStore",
    "EnvelopeStore",
    "Keyring",
    "LocalFolderStore",
    "MemoryBlobStore",
    "RewrapReport",
    "blob_key",
    "blob_store",
    "check_key",
    "load_keyring",
    "open_blob_store",
    "rotate_master_key",
]
