"""An S3-compatible backend (AWS S3, MinIO, Ceph RGW, Cloudflare R2) over boto3.

Selected by ``GASWORKS_BLOB_URL=s3://bucket/prefix``; ``GASWORKS_BLOB_S3_ENDPOINT_URL`` points
it at a store other than AWS. Credentials come from boto3's standard chain (environment,
shared config/credentials files, web identity, container or instance role) and are never read,
logged or echoed by gasworks.

boto3 is synchronous. Every call runs in this store's own bounded thread pool, so the event loop
stays free and blob traffic cannot starve ``asyncio.to_thread`` users elsewhere in the process.
We chose this over aioboto3/aiobotocore because aiobotocore pins exact botocore versions (it
would fight the boto3 that the Bedrock provider and the operator's tooling use); the thread hop
costs microseconds against S3 latencies of milliseconds (same reasoning as the Bedrock provider).

``put`` goes through boto3's transfer manager: objects above the multipart threshold are sent
as a multipart upload (parts in parallel; an aborted upload is cleaned up by boto3), smaller
ones as one ``PutObject``. Both are atomic for readers: S3 shows the old or the new object,
never a mix. ``stream`` and ``get_range`` read with HTTP ranges, a chunk at a time.

Server-side encryption (``SSE-S3`` = ``AES256`` or ``SSE-KMS`` = ``aws:kms`` with a key id) is
an option on top of gasworks' own envelope encryption, for policies that require it.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from gasworks.blobs.types import check_key
from gasworks.errors import (
    BlobNotFound,
    BlobStoreAccessDenied,
    BlobStoreUnavailable,
    ConfigurationError,
    MissingDependency,
)

try:
    import boto3
    import boto3.s3.transfer as s3transfer
    import botocore.config
    import botocore.exceptions as bexc
except ImportError:  # pragma: no cover - exercised only without the extra
    boto3 = None  # type: ignore[assignment]

T = TypeVar("T")
SSE = Literal["none", "AES256", "aws:kms"]

#: AWS error codes that mean "these credentials may not do this" (never retried)
_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "AllAccessDisabled",
    "KMS.AccessDeniedException",
    "KMS.DisabledException",
    "KMS.NotFoundException",
    "KMS.KMSInvalidStateException",
}
_MISSING = {"NoSuchKey", "404", "NotFound"}
MiB = 1024 * 1024


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ends with "/"

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """``s3://bucket`` or ``s3://bucket/some/prefix`` (trailing slash optional)."""
        rest = url[len("s3://") :] if url.startswith("s3://") else ""
        bucket, _, prefix = rest.partition("/")
        if not bucket or any(c in bucket for c in " ?#"):
            raise ConfigurationError(
                "GASWORKS_BLOB_URL for S3 must look like s3://bucket or s3://bucket/prefix.",
                details={"url": url[:200]},
            )
        prefix = prefix.strip("/")
        return cls(bucket, f"{prefix}/" if prefix else "")


class S3BlobStore:
    """A ``BlobStore`` on one bucket, every key under ``prefix``."""

    def __init__(
        self,
        location: S3Location,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        addressing_style: Literal["auto", "path", "virtual"] = "auto",
        sse: SSE = "none",
        kms_key_id: str | None = None,
        multipart_threshold: int = 16 * MiB,
        part_size: int = 8 * MiB,
        max_concurrency: int = 32,
        max_attempts: int = 3,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        list_page_size: int = 1000,
        session: Any = None,
    ) -> None:
        if boto3 is None:
            raise MissingDependency(
                "The S3 blob store needs boto3: pip install 'gasworks[s3]'",
                details={"extra": "s3"},
            )
        if sse == "aws:kms" and not kms_key_id:
            raise ConfigurationError(
                "SSE-KMS needs a key: set GASWORKS_BLOB_S3_KMS_KEY_ID (key id, ARN or alias).",
                details={"setting": "GASWORKS_BLOB_S3_KMS_KEY_ID"},
            )
        if part_size < 5 * MiB:
            raise ConfigurationError(
                "S3 multipart parts are at least 5 MiB.", details={"part_size": part_size}
            )
        self.location = location
        self.endpoint_url = endpoint_url
        self.list_page_size = list_page_size
        config = botocore.config.Config(
            region_name=region,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=max_concurrency,
            s3={"addressing_style": addressing_style},
        )
        session = session or boto3.session.Session()
        self._client = session.client("s3", endpoint_url=endpoint_url, config=config)
        self._transfer = s3transfer.TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=part_size,
            max_concurrency=4,
            use_threads=True,
        )
        self._extra: dict[str, str] = {}
        if sse != "none":
            self._extra["ServerSideEncryption"] = sse
        if sse == "aws:kms" and kms_key_id:
            self._extra["SSEKMSKeyId"] = kms_key_id
        self._pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="s3-blobs")

    # -- plumbing -------------------------------------------------------------------------

    def _object(self, key: str) -> str:
        return self.location.prefix + check_key(key)

    async def _run(self, fn: Callable[[], T], *, key: str | None = None) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn)
        except bexc.BotoCoreError as exc:
            raise self._error(exc, key) from None
        except bexc.ClientError as exc:
            raise self._error(exc, key) from None

    def _error(self, exc: Exception, key: str | None) -> Exception:
        """Map a botocore error to a coded one. Only the AWS error code leaves: never a header,
        a signature, a credential or the raw message (which may quote a request)."""
        details: dict[str, Any] = {"bucket": self.location.bucket}
        if isinstance(exc, bexc.ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            details["error"] = code
            if code in _MISSING and key is not None:
                return BlobNotFound("No such blob.", details={"key": key})
            if code in _DENIED or code.startswith("KMS."):
                return BlobStoreAccessDenied(
                    "The S3 store refused these credentials for this operation; check the "
                    "credentials and the IAM policy (see docs/operations.md, 'S3').",
                    details=details,
                )
            if code == "NoSuchBucket":
                return BlobStoreUnavailable(
                    "The S3 bucket does not exist; create it or fix GASWORKS_BLOB_URL.",
                    details=details,
                )
            return BlobStoreUnavailable("The S3 store failed the request.", details=details)
        details["error"] = type(exc).__name__
        if isinstance(exc, bexc.NoCredentialsError | bexc.PartialCredentialsError):
            return BlobStoreAccessDenied(
                "No usable AWS credentials were found for the S3 blob store (environment, "
                "shared config, web identity or instance role).",
                details=details,
            )
        return BlobStoreUnavailable(
            "The S3 store cannot be reached; check GASWORKS_BLOB_S3_ENDPOINT_URL and the network.",
            details=details,
        )

    # -- BlobStore ------------------------------------------------------------------------

    async def put(self, key: str, data: bytes) -> None:
        obj = self._object(key)
        body = bytes(data)

        def upload() -> None:
            self._client.upload_fileobj(
                io.BytesIO(body),
                self.location.bucket,
                obj,
                ExtraArgs=dict(self._extra) or None,
                Config=self._transfer,
            )

        await self._run(upload, key=None)

    async def put_file(self, key: str, path: Path) -> None:
        """Upload the file at ``path`` in parts (boto3's transfer manager reads it piece by
        piece: never whole in memory), then remove it (the protocol consumes the file)."""
        obj = self._object(key)

        def upload() -> None:
            with open(path, "rb") as f:
                self._client.upload_fileobj(
                    f,
                    self.location.bucket,
                    obj,
                    ExtraArgs=dict(self._extra) or None,
                    Config=self._transfer,
                )
            path.unlink(missing_ok=True)

        await self._run(upload, key=None)

    async def get(self, key: str) -> bytes:
        obj = self._object(key)

        def download() -> bytes:
            resp = self._client.get_object(Bucket=self.location.bucket, Key=obj)
            with resp["Body"] as body:
                return bytes(body.read())

        return await self._run(download, key=key)

    async def get_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` (fewer at the end of the object)."""
        if start < 0 or length <= 0:
            return b""
        obj = self._object(key)
        rng = f"bytes={start}-{start + length - 1}"

        def ranged() -> bytes:
            try:
                resp = self._client.get_object(Bucket=self.location.bucket, Key=obj, Range=rng)
            except bexc.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                    return b""  # start at or past the end
                raise
            with resp["Body"] as body:
                return bytes(body.read())

        return await self._run(ranged, key=key)

    async def stream(self, key: str, *, chunk_size: int = MiB) -> AsyncIterator[bytes]:
        """The object's bytes a chunk at a time (one ranged GET per chunk, so memory stays at
        one chunk and an abandoned read holds no connection)."""
        obj = self._object(key)
        head = await self._run(
            lambda: self._client.head_object(Bucket=self.location.bucket, Key=obj), key=key
        )
        size = int(head["ContentLength"])
        etag = head.get("ETag")
        offset = 0
        while offset < size:
            rng = f"bytes={offset}-{min(size, offset + chunk_size) - 1}"

            def chunk(rng: str = rng) -> bytes:
                kwargs: dict[str, Any] = {"Bucket": self.location.bucket, "Key": obj}
                if etag:
                    kwargs["IfMatch"] = etag  # a concurrent replace fails instead of mixing
                resp = self._client.get_object(**kwargs, Range=rng)
                with resp["Body"] as body:
                    return bytes(body.read())

            data = await self._run(chunk, key=key)
            if not data:
                break
            offset += len(data)
            yield data

    async def delete(self, key: str) -> bool:
        obj = self._object(key)

        def delete() -> bool:
            try:
                self._client.head_object(Bucket=self.location.bucket, Key=obj)
            except bexc.ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code", "")) in _MISSING:
                    return False
                raise
            self._client.delete_object(Bucket=self.location.bucket, Key=obj)
            return True

        return await self._run(delete, key=key)

    async def exists(self, key: str) -> bool:
        obj = self._object(key)

        def head() -> bool:
            try:
                self._client.head_object(Bucket=self.location.bucket, Key=obj)
                return True
            except bexc.ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code", "")) in _MISSING:
                    return False
                raise

        return await self._run(head, key=key)

    async def keys(self, prefix: str = "") -> AsyncIterator[str]:
        root = self.location.prefix
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "Bucket": self.location.bucket,
                "Prefix": root + prefix,
                "MaxKeys": self.list_page_size,
            }
            if token:
                kwargs["ContinuationToken"] = token

            def page(kwargs: dict[str, Any] = kwargs) -> dict[str, Any]:
                result: dict[str, Any] = self._client.list_objects_v2(**kwargs)
                return result

            resp = await self._run(page)
            for item in resp.get("Contents", []):
                yield str(item["Key"])[len(root) :]
            if not resp.get("IsTruncated"):
                return
            token = resp.get("NextContinuationToken")

    def close(self) -> None:
        """Release the thread pool and the HTTP connections."""
        self._pool.shutdown(wait=False)
        self._client.close()
