"""Choose the blob backend from configuration (the URL's scheme) and keep one per runtime."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gasworks.blobs.envelope import EnvelopeStore
from gasworks.blobs.keys import load_keyring
from gasworks.blobs.local import LocalFolderStore
from gasworks.blobs.types import BlobStore
from gasworks.errors import ConfigurationError
from gasworks.settings import Settings

MiB = 1024 * 1024

if TYPE_CHECKING:
    from gasworks.runtime import Runtime


def open_inner_store(settings: Settings) -> BlobStore:
    """The raw backend named by ``GASWORKS_BLOB_URL``'s scheme (no encryption)."""
    url = settings.blob_url
    if url is None:
        return LocalFolderStore(settings.home / "blobs")
    if url.startswith("file://"):
        return LocalFolderStore(Path(url[len("file://") :]).expanduser())
    if url.startswith("s3://"):
        from gasworks.blobs.s3 import S3BlobStore, S3Location  # boto3 only when asked for

        return S3BlobStore(
            S3Location.parse(url),
            endpoint_url=settings.blob_s3_endpoint_url,
            region=settings.blob_s3_region,
            addressing_style=settings.blob_s3_addressing_style,
            sse=settings.blob_s3_sse,
            kms_key_id=settings.blob_s3_kms_key_id,
            multipart_threshold=settings.blob_s3_multipart_threshold_mb * MiB,
            part_size=settings.blob_s3_part_size_mb * MiB,
            max_concurrency=settings.blob_s3_max_connections,
        )
    raise ConfigurationError(
        "Unsupported GASWORKS_BLOB_URL scheme; use file:///path or s3://bucket/prefix.",
        details={"scheme": url.split(":", 1)[0]},
    )


def open_blob_store(settings: Settings) -> EnvelopeStore:
    """The configured backend (local folder by default, or S3), envelope-encrypted."""
    return EnvelopeStore(
        open_inner_store(settings), load_keyring(settings), reload=lambda: load_keyring(settings)
    )


def blob_store(runtime: Runtime) -> EnvelopeStore:
    """The runtime's blob store (opened on first use)."""
    store = runtime.services.get("blobs")
    if store is None:
        store = open_blob_store(runtime.settings)
        runtime.services["blobs"] = store
    assert isinstance(store, EnvelopeStore)
    return store
