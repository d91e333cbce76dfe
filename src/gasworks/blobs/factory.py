"""Choose the blob backend from configuration (the URL's scheme) and keep one per runtime."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gasworks.blobs.envelope import EnvelopeStore
from gasworks.blobs.keys import load_keyring
from gasworks.blobs.local import LocalFolderStore
from gasworks.errors import ConfigurationError
from gasworks.settings import Settings

if TYPE_CHECKING:
    from gasworks.runtime import Runtime


def open_blob_store(settings: Settings) -> EnvelopeStore:
    """``file://`` (or unset: ``GASWORKS_HOME/blobs``) → local folder, envelope-encrypted."""
    url = settings.blob_url
    if url is None:
        root = settings.home / "blobs"
    elif url.startswith("file://"):
        root = Path(url[len("file://") :]).expanduser()
    else:
        raise ConfigurationError(
            "Unsupported GASWORKS_BLOB_URL scheme; use file:///path (S3 is not built yet).",
            details={"scheme": url.split(":", 1)[0]},
        )
    return EnvelopeStore(
        LocalFolderStore(root), load_keyring(settings), reload=lambda: load_keyring(settings)
    )


def blob_store(runtime: Runtime) -> EnvelopeStore:
    """The runtime's blob store (opened on first use)."""
    store = runtime.services.get("blobs")
    if store is None:
        store = open_blob_store(runtime.settings)
        runtime.services["blobs"] = store
    assert isinstance(store, EnvelopeStore)
    return store
