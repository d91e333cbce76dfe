"""AWS Textract (``detect_document_text``) for deployments already on AWS. Pages are rendered
in the sandbox; only the PNG bytes go to AWS. The client is boto3's (``textract`` extra);
tests use ``gasworks.testing.FakeTextract``."""

from __future__ import annotations

from typing import Any, Protocol

from gasworks.errors import OcrFailed


class TextractClient(Protocol):
    def detect_document_text(self, **kwargs: Any) -> dict[str, Any]: ...


def boto3_client(region: str | None) -> TextractClient:
    import boto3

    client: TextractClient = boto3.client("textract", region_name=region)
    return client


def read_page(client: TextractClient, png: bytes) -> str:
    try:
        answer = client.detect_document_text(Document={"Bytes": png})
    except Exception as exc:  # botocore's ClientError and transport errors
        raise OcrFailed(
            "AWS Textract could not read the page.", details={"error": type(exc).__name__}
        ) from exc
    lines = [b.get("Text", "") for b in answer.get("Blocks", []) if b.get("BlockType") == "LINE"]
    return "\n".join(lines)
