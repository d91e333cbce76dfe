"""Parsing and OCR run in a child process with limits: a crash, a CPU-bound loop or a memory
hog end as a failed attempt with their own code; the caller goes on. Plus OCR engines: RapidOCR
on a rendered image, and the Textract adapter against a fake client."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

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

Run = Callable[..., Awaitable[Any]]


@pytest.fixture
async def forks() -> AsyncIterator[sandbox.ForkServer]:
    server = sandbox.ForkServer()
    yield server
    await server.aclose()


@pytest.fixture(params=["fresh", "forked"])
def run(request: pytest.FixtureRequest) -> Run:
    """Both ways of running a child: a fresh interpreter per call (``sandbox.run``) and a
    fork of a parse server that preloaded the parsers (``ForkServer.run``, the default)."""
    if request.param == "fresh":
        return sandbox.run
    forks: sandbox.ForkServer = request.getfixturevalue("forks")
    return forks.run


async def test_a_native_crash_is_extraction_crashed(run: Run) -> None:
    with pytest.raises(ExtractionCrashed):
        await run("selftest-crash", "application/pdf", b"", FAST)


async def test_a_parser_that_never_ends_is_stopped_by_its_cpu_limit(run: Run) -> None:
    with pytest.raises(ExtractionTimeout):
        await run("selftest-spin", "application/pdf", b"", FAST)


async def test_a_memory_hog_is_stopped_by_its_address_space_limit(run: Run) -> None:
    with pytest.raises(ExtractionLimitExceeded):
        await run("selftest-bomb", "application/pdf", b"", sandbox.Limits(20, 256))


async def test_parse_errors_keep_their_codes_across_the_process_boundary(run: Run) -> None:
    limits = sandbox.Limits(cpu_seconds=20, memory_mb=1024)
    with pytest.raises(DocumentEncrypted):
        await run("extract", "application/pdf", samples.encrypted_pdf(), limits)
    with pytest.raises(DocumentCorrupt):
        await run("extract", "application/pdf", samples.truncated_pdf(), limits)
    ok = await run("extract", "application/pdf", samples.pdf("A plain page of text"), limits)
    assert ok["blocks"][0] == {"text": "A plain page of text", "page": 1, "heading": None}
    page = await run("extract", "text/html", samples.HTML, limits)
    assert "Parcels leave the warehouse" in page["blocks"][0]["text"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_parse_server_outlives_its_failed_children_and_serves_the_next_file(
    forks: sandbox.ForkServer,
) -> None:
    limits = sandbox.Limits(cpu_seconds=20, memory_mb=1024)
    with pytest.raises(ExtractionCrashed):
        await forks.run("selftest-crash", "application/pdf", b"", limits)
    with pytest.raises(DocumentCorrupt):
        await forks.run("extract", "application/pdf", samples.truncated_pdf(), limits)
    (server,) = forks._idle  # one server did all of it: each file ran in its own child
    ok = await forks.run(
        "extract", "application/pdf", samples.pdf("Still serving the next file"), limits
    )
    assert ok["blocks"][0]["text"] == "Still serving the next file"
    assert forks._idle == [server]


async def test_concurrent_parses_get_their_own_servers_and_close_ends_them(
    forks: sandbox.ForkServer,
) -> None:
    import asyncio

    limits = sandbox.Limits(cpu_seconds=20, memory_mb=1024)
    pages = await asyncio.gather(
        *(
            forks.run(
                "extract", "application/pdf", samples.pdf(f"Page number {i} of the batch"), limits
            )
            for i in range(3)
        )
    )
    assert [p["blocks"][0]["text"] for p in pages] == [
        f"Page number {i} of the batch" for i in range(3)
    ]
    pids = [s.proc.pid for s in forks._idle]
    assert len(pids) == 3 and all(_alive(p) for p in pids)
    await forks.aclose()
    assert not any(_alive(p) for p in pids)


def _invoice_png() -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (900, 120), "white")
    font = ImageFont.load_default(size=48)
    ImageDraw.Draw(img).text((20, 30), "INVOICE TOTAL 1250", fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


async def test_rapidocr_reads_an_image_in_the_sandbox(forks: sandbox.ForkServer) -> None:
    pytest.importorskip("rapidocr_onnxruntime")
    limits = sandbox.Limits(cpu_seconds=60, memory_mb=4096)
    out = await forks.run("ocr", "image/png", _invoice_png(), limits, "[0]")
    assert "INVOICE" in out["0"].upper() and "1250" in out["0"]


def test_textract_adapter_reads_lines_and_maps_errors() -> None:
    fake = FakeTextract("Scanned line")
    assert textract.read_page(fake, b"png") == "Scanned line"

    class Broken:
        def detect_document_text(self, **kwargs: object) -> dict[str, object]:
            raise ConnectionError("no route")

    with pytest.raises(OcrFailed):
        textract.read_page(Broken(), b"png")


@pytest.fixture
async def reusing() -> AsyncIterator[sandbox.ForkServer]:
    server = sandbox.ForkServer(reuse=8)
    yield server
    await server.aclose()


async def _child_pid(forks: sandbox.ForkServer, key: str, limits: sandbox.Limits) -> int:
    """The pid of the child that parsed a file of ``key`` (the one server reports it)."""
    await forks.run("extract", "text/html", samples.HTML, limits, key=key)
    (server,) = forks._idle
    return server.last_pid


async def test_a_reused_child_parses_several_files_of_one_tenant_only(
    reusing: sandbox.ForkServer,
) -> None:
    limits = sandbox.Limits(cpu_seconds=20, memory_mb=1024)
    first = await _child_pid(reusing, "ten_a", limits)
    assert await _child_pid(reusing, "ten_a", limits) == first  # the same child
    other = await _child_pid(reusing, "ten_b", limits)
    assert other != first  # another tenant: a fresh child
    assert not _alive(first)  # the first one ended, not left behind


@pytest.mark.parametrize(
    ("task", "limits", "error"),
    [
        ("selftest-crash", sandbox.Limits(20, 1024), ExtractionCrashed),
        ("selftest-spin", FAST, ExtractionTimeout),
        ("selftest-bomb", sandbox.Limits(20, 256), ExtractionLimitExceeded),
    ],
)
async def test_a_poison_file_in_a_reused_child_is_judged_alone_in_a_fresh_one(
    reusing: sandbox.ForkServer, task: str, limits: sandbox.Limits, error: type[Exception]
) -> None:
    before = await _child_pid(reusing, "ten_a", limits)
    with pytest.raises(error):
        await reusing.run(task, "application/pdf", b"", limits, key="ten_a")
    (server,) = reusing._idle
    assert server.last_pid != before and server.served == 0  # the verdict of a fresh child
    assert not _alive(before)
    # and the next file of the tenant parses as usual
    page = await reusing.run("extract", "text/html", samples.HTML, limits, key="ten_a")
    assert "Parcels leave the warehouse" in page["blocks"][0]["text"]


async def test_a_known_parse_error_in_a_reused_child_is_confirmed_in_a_fresh_one(
    reusing: sandbox.ForkServer,
) -> None:
    limits = sandbox.Limits(cpu_seconds=20, memory_mb=1024)
    before = await _child_pid(reusing, "ten_a", limits)
    with pytest.raises(DocumentEncrypted):
        await reusing.run(
            "extract", "application/pdf", samples.encrypted_pdf(), limits, key="ten_a"
        )
    (server,) = reusing._idle
    assert server.last_pid != before and server.served == 0


async def test_each_file_in_a_reused_child_gets_its_own_cpu_limit(
    reusing: sandbox.ForkServer,
) -> None:
    """``RLIMIT_CPU`` counts the whole child: without a budget per file, three files of 0.6 s
    each would take a child with a 1 s limit past it on the second (and the file would be
    parsed again in a fresh child). Each file gets the CPU used so far plus its own limit."""
    pids = set()
    for _ in range(3):
        got = await reusing.run("selftest-burn", "application/pdf", b"", FAST, "0.6", key="t")
        soft, hard = got["cpu"]
        assert soft >= got["usedBefore"] + FAST.cpu_seconds  # a whole limit for this file
        assert hard == (FAST.cpu_seconds + 1) * reusing.reuse  # the budget of all of them
        pids.add(got["pid"])
    (server,) = reusing._idle
    assert len(pids) == 1 and server.served == 2  # one child parsed all three, none failed
    # and the limit still ends a file that goes past its own share in that child
    with pytest.raises(ExtractionTimeout):
        await reusing.run("selftest-spin", "application/pdf", b"", FAST, key="t")
