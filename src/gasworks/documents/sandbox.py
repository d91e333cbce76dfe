"""Parsing and OCR in a child process with CPU-time and memory limits.

The worker starts ``python -m gasworks.documents.sandbox TASK MEDIA_TYPE CPU MEM_MB [ARG]``,
writes the file's bytes to its standard input and reads one JSON answer from its standard
output. The child lowers its own limits first (``resource.setrlimit``: ``RLIMIT_CPU`` and
``RLIMIT_AS``), so a parser stuck in a loop, a decompression bomb or a native crash ends the
child, never the worker:

* a known parse failure -> ``{"error": {"code", "message"}}`` (DOCUMENT_ENCRYPTED, ...);
* ``MemoryError`` -> EXTRACTION_LIMIT_EXCEEDED;
* killed by ``SIGXCPU``/``SIGKILL`` after the CPU limit, or past the wall-clock bound ->
  EXTRACTION_TIMEOUT;
* any other death -> EXTRACTION_CRASHED.

A process per file costs ~0.2 s of start-up; only formats whose parsers run native code or
build large structures go through here (PDF, DOCX, HTML, OCR). Text, Markdown, CSV and JSON
are decoded in the worker (``extractors.IN_PROCESS``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

from gasworks.errors import (
    DocumentCorrupt,
    DocumentEncrypted,
    ExtractionCrashed,
    ExtractionFailed,
    ExtractionLimitExceeded,
    ExtractionTimeout,
    GasworksError,
    OcrFailed,
)

_BY_CODE: dict[str, type[ExtractionFailed]] = {
    c.code: c
    for c in (
        ExtractionFailed,
        DocumentEncrypted,
        DocumentCorrupt,
        ExtractionLimitExceeded,
        ExtractionTimeout,
        ExtractionCrashed,
        OcrFailed,
    )
}


@dataclass(slots=True, frozen=True)
class Limits:
    cpu_seconds: int = 60
    memory_mb: int = 1024

    @property
    def wall_seconds(self) -> float:
        return self.cpu_seconds * 2 + 10


async def run(task: str, media_type: str, data: bytes, limits: Limits, arg: str = "") -> Any:
    """Run ``task`` on ``data`` in a child; its JSON answer, or the failure as an error."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gasworks.documents.sandbox",
        task,
        media_type,
        str(limits.cpu_seconds),
        str(limits.memory_mb),
        arg,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(data), limits.wall_seconds)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ExtractionTimeout(
            "Parsing took longer than allowed.", details={"wallSeconds": limits.wall_seconds}
        ) from None
    except asyncio.CancelledError:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    code = proc.returncode
    if code in (-signal.SIGXCPU, -signal.SIGKILL):
        raise ExtractionTimeout(
            "Parsing used more CPU time than allowed.", details={"cpuSeconds": limits.cpu_seconds}
        )
    try:
        answer = json.loads(out)
    except ValueError:
        raise ExtractionCrashed("The parser process died.", details={"exitCode": code}) from None
    if "error" in answer:
        err = answer["error"]
        cls = _BY_CODE.get(str(err.get("code")), ExtractionFailed)
        raise cls(str(err.get("message", "Parsing failed.")))
    return answer["ok"]


# --- the child --------------------------------------------------------------------------------


def _limit(cpu: int, mem_mb: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    mem = mem_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))


def _task(task: str, media_type: str, data: bytes, arg: str) -> Any:
    if task == "extract":
        from gasworks.documents.extractors import EXTRACTORS

        return EXTRACTORS[media_type](data).to_dict()
    if task == "ocr":
        from gasworks.documents.ocr import rapid

        return rapid.ocr_pages(data, media_type, json.loads(arg or "[]"))
    if task == "render":
        from gasworks.documents.ocr import render

        return {
            str(n): base64.b64encode(png).decode()
            for n, png in render.page_images(data, media_type, json.loads(arg or "[]"))
        }
    if task == "selftest-crash":  # used by tests: a native crash
        os.kill(os.getpid(), signal.SIGSEGV)
    if task == "selftest-spin":  # used by tests: a parser that never ends
        while True:
            pass
    if task == "selftest-bomb":  # used by tests: allocates without bound
        hog = []
        while True:
            hog.append(bytearray(64 * 1024 * 1024))
    raise ValueError(f"unknown task {task}")


def main(argv: list[str]) -> int:
    task, media_type, cpu, mem = argv[1], argv[2], int(argv[3]), int(argv[4])
    arg = argv[5] if len(argv) > 5 else ""
    data = sys.stdin.buffer.read()
    _limit(cpu, mem)
    try:
        answer: dict[str, Any] = {"ok": _task(task, media_type, data, arg)}
    except MemoryError:
        answer = {
            "error": {
                "code": ExtractionLimitExceeded.code,
                "message": "Parsing needed more memory than allowed.",
            }
        }
    except GasworksError as exc:
        answer = {"error": {"code": exc.code, "message": exc.message}}
    except Exception as exc:
        answer = {
            "error": {
                "code": DocumentCorrupt.code,
                "message": f"The file cannot be parsed ({type(exc).__name__}).",
            }
        }
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
