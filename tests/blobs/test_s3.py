"""The S3 blob store against a real S3 wire implementation (moto's server on loopback)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gasworks.blobs.s3 import MiB, S3BlobStore, S3Location
from gasworks.blobs.testing import BlobStoreConformance
from gasworks.errors import BlobNotFound, BlobStoreAccessDenied, BlobStoreUnavailable
from tests.s3server import CREDENTIALS, free_port, moto_server, new_bucket


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials through boto3's standard chain (environment), nothing from this machine."""
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def make(endpoint: str, bucket: str, prefix: str = "tenant-data", **kw: Any) -> S3BlobStore:
    return S3BlobStore(
        S3Location(bucket, f"{prefix}/" if prefix else ""),
        endpoint_url=endpoint,
        region="us-east-1",
        **kw,
    )


class TestS3Conformance(BlobStoreConformance):
    @pytest.fixture
    def store(self, endpoint: str) -> Iterator[S3BlobStore]:
        s = make(endpoint, new_bucket(endpoint))
        yield s
        s.close()


def test_location_parsing() -> None:
    assert S3Location.parse("s3://b") == S3Location("b", "")
    assert S3Location.parse("s3://b/a/b/") == S3Location("b", "a/b/")
    from gasworks.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        S3Location.parse("s3:///nobucket")


async def test_keys_live_under_the_prefix(endpoint: str) -> None:
    import boto3

    bucket = new_bucket(endpoint)
    store = make(endpoint, bucket, prefix="deploy/one")
    other = make(endpoint, bucket, prefix="deploy/two")
    await store.put("t1/kind/a", b"x")
    await other.put("t1/kind/b", b"y")
    raw = boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket=bucket)
    assert sorted(o["Key"] for o in raw["Contents"]) == [
        "deploy/one/t1/kind/a",
        "deploy/two/t1/kind/b",
    ]
    assert [k async for k in store.keys("")] == ["t1/kind/a"]


async def test_listing_pages_past_one_response(endpoint: str) -> None:
    store = make(endpoint, new_bucket(endpoint), list_page_size=2)
    store_keys = {f"t1/kind/{i}" for i in range(5)}  # three ListObjectsV2 pages
    for k in store_keys:
        await store.put(k, b"")
    await store.put("t2/kind/x", b"")
    assert {k async for k in store.keys("t1/")} == store_keys


async def test_large_object_goes_multipart_and_streams_back(endpoint: str) -> None:
    import boto3

    bucket = new_bucket(endpoint)
    store = make(endpoint, bucket, multipart_threshold=5 * MiB, part_size=5 * MiB)
    data = os.urandom(1024) * (12 * 1024)  # 12 MiB: three parts
    await store.put("t1/docs/big", data)
    head = boto3.client("s3", endpoint_url=endpoint).head_object(
        Bucket=bucket, Key="tenant-data/t1/docs/big"
    )
    assert head["ETag"].strip('"').endswith("-3")  # S3 marks multipart ETags with the part count
    chunks = [c async for c in store.stream("t1/docs/big", chunk_size=4 * MiB)]
    assert [len(c) for c in chunks] == [4 * MiB, 4 * MiB, 4 * MiB]
    assert b"".join(chunks) == data
    assert await store.get("t1/docs/big") == data


async def test_ranged_reads(endpoint: str) -> None:
    store = make(endpoint, new_bucket(endpoint))
    await store.put("t1/kind/r", bytes(range(256)))
    assert await store.get_range("t1/kind/r", 10, 5) == bytes(range(10, 15))
    assert await store.get_range("t1/kind/r", 250, 100) == bytes(range(250, 256))
    assert await store.get_range("t1/kind/r", 256, 10) == b""
    with pytest.raises(BlobNotFound):
        await store.get_range("t1/kind/missing", 0, 1)
    with pytest.raises(BlobNotFound):
        _ = [c async for c in store.stream("t1/kind/missing")]


async def test_sse_kms_with_a_key_from_kms(endpoint: str) -> None:
    import boto3

    key_id = boto3.client("kms", endpoint_url=endpoint).create_key()["KeyMetadata"]["KeyId"]
    bucket = new_bucket(endpoint)
    store = make(endpoint, bucket, sse="aws:kms", kms_key_id=key_id)
    await store.put("t1/kind/secret", b"payload")
    head = boto3.client("s3", endpoint_url=endpoint).head_object(
        Bucket=bucket, Key="tenant-data/t1/kind/secret"
    )
    assert head["ServerSideEncryption"] == "aws:kms"
    assert key_id in head["SSEKMSKeyId"]
    assert await store.get("t1/kind/secret") == b"payload"


async def test_sse_s3(endpoint: str) -> None:
    import boto3

    bucket = new_bucket(endpoint)
    store = make(endpoint, bucket, sse="AES256")
    await store.put("t1/kind/s", b"x")
    head = boto3.client("s3", endpoint_url=endpoint).head_object(
        Bucket=bucket, Key="tenant-data/t1/kind/s"
    )
    assert head["ServerSideEncryption"] == "AES256"


async def test_refused_endpoint_is_unavailable() -> None:
    store = S3BlobStore(
        S3Location("b", ""),
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        region="us-east-1",
        max_attempts=1,
        connect_timeout=1,
    )
    with pytest.raises(BlobStoreUnavailable) as err:
        await store.get("t1/kind/a")
    assert err.value.code == "BLOB_STORE_UNAVAILABLE"
    assert err.value.details["error"] == "EndpointConnectionError"


async def test_missing_bucket_is_a_clear_error(endpoint: str) -> None:
    store = make(endpoint, "no-such-bucket-here", max_attempts=1)
    with pytest.raises(BlobStoreUnavailable) as err:
        await store.put("t1/kind/a", b"x")
    assert err.value.details["error"] == "NoSuchBucket"
    assert "does not exist" in err.value.message


async def test_no_credentials_is_coded_and_leaks_nothing(
    endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in CREDENTIALS:
        if key != "AWS_DEFAULT_REGION":
            monkeypatch.delenv(key)
    store = make(endpoint, "any-bucket", max_attempts=1)
    with pytest.raises(BlobStoreAccessDenied) as err:
        await store.get("t1/kind/a")
    assert err.value.code == "BLOB_STORE_ACCESS_DENIED"
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_refused_credentials_leave_no_secret_in_the_error(endpoint: str) -> None:
    """A denial whose AWS message quotes credentials must not carry them into the coded error
    (only the AWS error code leaves the store)."""
    import botocore.exceptions as bexc

    store = make(endpoint, "any-bucket")
    for code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
        aws = bexc.ClientError(
            {"Error": {"Code": code, "Message": " ".join(CREDENTIALS.values())}}, "GetObject"
        )
        err = store._error(aws, "t1/kind/a")
        assert isinstance(err, BlobStoreAccessDenied)
        text = str(err) + repr(err.to_dict())
        assert CREDENTIALS["AWS_ACCESS_KEY_ID"] not in text
        assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in text


def test_factory_selects_s3_from_the_url(tmp_path: Path, endpoint: str) -> None:
    from gasworks.blobs.factory import open_blob_store
    from gasworks.settings import Settings

    s = Settings(home=tmp_path, blob_url="s3://bucket-x/deploy", blob_s3_endpoint_url=endpoint)
    store = open_blob_store(s)
    assert isinstance(store.inner, S3BlobStore)
    assert store.inner.location == S3Location("bucket-x", "deploy/")


async def test_envelope_over_s3_stores_only_ciphertext(tmp_path: Path, endpoint: str) -> None:
    import boto3

    from gasworks.blobs.factory import open_blob_store
    from gasworks.settings import Settings

    bucket = new_bucket(endpoint)
    store = open_blob_store(
        Settings(home=tmp_path, blob_url=f"s3://{bucket}/p", blob_s3_endpoint_url=endpoint)
    )
    await store.put("t1/kind/doc", b"plain words here")
    raw = boto3.client("s3", endpoint_url=endpoint).get_object(Bucket=bucket, Key="p/t1/kind/doc")
    assert b"plain words" not in raw["Body"].read()
    assert await store.get("t1/kind/doc") == b"plain words here"
