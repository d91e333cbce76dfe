"""Parsing and OCR run in a child process with limits: a crash, a CPU-bound loop or a memory
hog end as a failed attempt with their own code; the caller goes on. Plus OCR engines: RapidOCR
on a rendered image, and the Textract adapter against a fake client."""

from __future__ import annotations

import io

import pytest

from gasworks.documents import sandbox
from gasworks.documents.ocr import textract
from gasworks.errors import (
    DocumentCorrupt,
    DocumentEncrypted,
    ExtractionCrashed,
    ExtractionLimitExceeded,
    ExtractionTimeout,
    OcrFailed,
)
from gasworks.testing import FakeTextract
from tests.documents import samples

FAST = sandbox.Limits(cpu_seconds=1, memory_mb=512)


async def test_a_native_crash_is_extraction_crashed() -> None:
    with pytest.raises(ExtractionCrashed):
        await sandbox.run("selftest-crash", "application/pdf", b"", FAST)


async def test_a_parser_that_never_ends_is_stopped_by_its_cpu_limit() -> None:
    with pytest.raises(ExtractionTimeout):
        await sandbox.run("selftest-spin", "application/pdf", b"", FAST)


async def test_a_memory_hog_is_stopped_by_its_address_space_limit() -> None:
    with pytest.raises(ExtractionLimitExceeded):
        await sandbox.run("selftest-bomb", "application/pdf", b"", sandbox.Limits(20, 256))


async def test_parse_errors_keep_their_codes_across_the_process_boundary() -> None:
    limits = sandbox.Limits(cpu_seconds=20, memory_mb=1024)
    with pytest.raises(DocumentEncrypted):
        await sandbox.run("extract", "application/pdf", samples.encrypted_pdf(), limits)
    with pytest.raises(DocumentCorrupt):
        await sandbox.run("extract", "application/pdf", samples.truncated_pdf(), limits)
    ok = await sandbox.run(
        "extract", "application/pdf", samples.pdf("A plain page of text"), limits
    )
    assert ok["blocks"][0] == {"text": "A plain page of text", "page": 1, "heading": None}


def _invoice_png() -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (900, 120), "white")
    font = ImageFont.load_default(size=48)
    ImageDraw.Draw(img).text((20, 30), "INVOICE TOTAL 1250", fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


async def test_rapidocr_reads_an_image_in_the_sandbox() -> None:
    pytest.importorskip("rapidocr_onnxruntime")
    limits = sandbox.Limits(cpu_seconds=60, memory_mb=4096)
    out = await sandbox.run("ocr", "image/png", _invoice_png(), limits, "[0]")
    assert "INVOICE" in out["0"].upper() and "1250" in out["0"]


def test_textract_adapter_reads_lines_and_maps_errors() -> None:
    fake = FakeTextract("Scanned line")
    assert textract.read_page(fake, b"png") == "Scanned line"

    class Broken:
        def detect_document_text(self, **kwargs: object) -> dict[str, object]:
            raise ConnectionError("no route")

    with pytest.raises(OcrFailed):
        textract.read_page(Broken(), b"png")
