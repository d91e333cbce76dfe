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

A fresh interpreter per file costs its start-up plus the parser's imports: 0.3-0.9 s for a PDF
and 0.9-1.7 s for an HTML page on a busy 2-core machine (``bench/results/documents.md``), far
more than the parse itself (a few ms). So by default (``GASWORKS_DOCUMENTS_PARSE_PRELOAD``)
the pipeline's ``ForkServer`` forks each child from a server process that imported the parsers
once (``python -m gasworks.documents.sandbox serve``, one per concurrent parse, started on first
use): every file still gets a fresh process with its own limits, a crash or a kill still ends
only that child, and the start-up is a fork of an already loaded interpreter. It is written
here rather than taken from ``multiprocessing``'s ``forkserver`` because that one re-imports
the parent's ``__main__`` (the CLI, or pytest) in every child. A child may parse several
files of one tenant in turn (``ForkServer``'s ``reuse``); a failure in such a child is
judged again in a fresh one, so every verdict is still the file's own. ``run`` keeps the fresh
interpreter per file (``GASWORKS_DOCUMENTS_PARSE_PRELOAD=false``).

Only formats whose parsers run native code or build large structures go through here (PDF,
DOCX, HTML, OCR). Text, Markdown, CSV and JSON are decoded in the worker
(``extractors.IN_PROCESS``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
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


#: what a fork server imports once, so that its children start with the parsers loaded
PRELOAD = (
    "gasworks.documents.sandbox",
    "gasworks.documents.extractors",
    "pypdf",
    "docx",
    "trafilatura",
)


async def run(task: str, media_type: str, data: bytes, limits: Limits, arg: str = "") -> Any:
    """Run ``task`` on ``data`` in a fresh interpreter; its JSON answer, or the failure as an
    error."""
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
    return _answer(proc.returncode, out, limits)


def _ok(code: int | None, out: bytes | None) -> bool:
    """Whether a child's exit code and output are an answer that is not an error."""
    try:
        return code == 0 and "ok" in json.loads(out or b"")
    except ValueError:
        return False


def _answer(code: int | None, out: bytes | None, limits: Limits) -> Any:
    """The child's answer from its exit code and output, or the failure as an error."""
    if code in (-signal.SIGXCPU, -signal.SIGKILL):
        raise ExtractionTimeout(
            "Parsing used more CPU time than allowed.", details={"cpuSeconds": limits.cpu_seconds}
        )
    try:
        answer = json.loads(out or b"")
    except ValueError:
        raise ExtractionCrashed("The parser process died.", details={"exitCode": code}) from None
    if "error" in answer:
        err = answer["error"]
        cls = _BY_CODE.get(str(err.get("code")), ExtractionFailed)
        raise cls(str(err.get("message", "Parsing failed.")))
    return answer["ok"]


@dataclass(slots=True, frozen=True)
class _Request:
    task: str
    media_type: str
    data: bytes
    limits: Limits
    arg: str
    #: who the file belongs to: a child parses files of one key only
    key: str


class ForkServer:
    """Children forked from server processes that imported the parsers once (see the module's
    doc). One server per concurrent call, kept while it is healthy; ``aclose`` ends them.

    ``reuse``: files one child may parse, one after the other, before the server forks a
    fresh one (1: a child per file). A child is reused only for calls with the same ``key``
    (the tenant: one tenant's file never shares a process with another's) and the same
    limits, and each file gets its own CPU time limit in it (``_cpu_budget``). Any failure in
    a child that parsed a file before is still not trusted: its memory may hold the earlier
    files', a crash may come from their state. The file is parsed again in a fresh child,
    whose verdict is the file's own: a crash, a timeout or a bomb is still blamed on that
    file alone."""

    def __init__(self, reuse: int = 1) -> None:
        self.reuse = max(1, reuse)
        self._idle: list[_Server] = []
        self._all: set[_Server] = set()

    async def run(
        self,
        task: str,
        media_type: str,
        data: bytes,
        limits: Limits,
        arg: str = "",
        key: str = "",
    ) -> Any:
        """As the module's ``run``, in a child forked from a server."""
        req = _Request(task, media_type, data, limits, arg, key)
        code, out, served = await self._call(req, self.reuse)
        if served == 0 or _ok(code, out):
            return _answer(code, out, limits)
        # a failure in a reused child: the file again, alone in a fresh one
        code, out, _ = await self._call(req, 1)
        return _answer(code, out, limits)

    async def _call(self, req: _Request, reuse: int) -> tuple[int | None, bytes | None, int]:
        server = self._idle.pop() if self._idle else await _Server.start()
        self._all.add(server)
        try:
            code, out = await server.call(req, reuse)
        except BaseException as exc:
            self._all.discard(server)
            await server.close()
            if server.served and isinstance(exc, (ExtractionTimeout, ExtractionCrashed)):
                return None, None, server.served  # no answer from a reused child: ``run`` retries
            raise
        self._idle.append(server)
        return code, out, server.served

    async def aclose(self) -> None:
        servers, self._all, self._idle = list(self._all), set(), []
        for server in servers:
            await server.close()


class _Server:
    """One ``python -m gasworks.documents.sandbox serve`` process and its pipes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        #: files the child of the last call had parsed before it (0: a fresh child)
        self.served = 0
        #: that child's pid
        self.last_pid = 0

    @classmethod
    async def start(cls) -> _Server:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gasworks.documents.sandbox",
            "serve",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # its children share its group: ``close`` ends them all
            limit=2**31 - 1,  # the answer's header line; the answer is read by size
        )
        return cls(proc)

    async def call(self, req: _Request, reuse: int = 1) -> tuple[int | None, bytes | None]:
        """The child's exit code (0 while a reused child lives on) and answer (``None`` if it
        wrote none); ``served``: how many files that child had parsed before this one."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        task, data, limits = req.task, req.data, req.limits
        head = {
            "task": task,
            "mediaType": req.media_type,
            "cpu": limits.cpu_seconds,
            "mem": limits.memory_mb,
            "arg": req.arg,
            "size": len(data),
            "key": req.key,
            "reuse": reuse,
        }
        self.served = 0
        try:
            self.proc.stdin.write(json.dumps(head).encode() + b"\n")
            self.proc.stdin.write(data)
            await self.proc.stdin.drain()
            forked = json.loads(await self.proc.stdout.readline())
            pid, self.served = int(forked["pid"]), int(forked.get("served", 0))
            self.last_pid = pid
        except (ValueError, KeyError, ConnectionError) as exc:
            raise ExtractionCrashed("The parser server died.") from exc
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), limits.wall_seconds)
        except TimeoutError:
            _signal(pid)  # the caller closes this server (and its group) on any failure
            raise ExtractionTimeout(
                "Parsing took longer than allowed.", details={"wallSeconds": limits.wall_seconds}
            ) from None
        except asyncio.CancelledError:
            _signal(pid)
            raise
        try:
            done = json.loads(line)
            out = await self.proc.stdout.readexactly(int(done["size"]))
        except (ValueError, KeyError, asyncio.IncompleteReadError) as exc:
            raise ExtractionCrashed("The parser server died.") from exc
        return int(done["code"]), (out or None)

    async def close(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()


#: a page the server parses once itself, so that what the HTML parsers load and compile on
#: first use (trafilatura's imports, lxml's cleaners and matchers for each kind of element)
#: is loaded before any fork rather than again in every child: a page with the parts real
#: pages have (navigation, headings, paragraphs, a list, a table, a footer)
_WARM_HTML = (
    b"<!doctype html><html><head><title>Warm up</title></head><body>"
    b"<nav><a href='/'>Home</a> | <a href='/help'>Help</a></nav><article><h1>Warm up</h1>"
    b"<h2>First section</h2><p>A paragraph of text that the extractor keeps as the main "
    b"content of this page, long enough to count as content for its heuristics.</p>"
    b"<p>Another paragraph, with <b>bold</b>, <i>italic</i> and <a href='/x'>a link</a>, "
    b"so that the formatting paths run too.</p><h2>Second section</h2><ul><li>One item</li>"
    b"<li>Another item</li></ul><table><tr><th>Name</th><th>Value</th></tr><tr><td>a</td>"
    b"<td>1</td></tr></table><blockquote>A quotation.</blockquote><pre>code</pre>"
    b"</article><footer>(c) Example, all rights reserved</footer></body></html>"
)


def _warm_pdf() -> bytes:
    """A one-page PDF with a text layer (Helvetica, two lines), for ``_warm_up``: what
    ``pypdf`` builds on its first text extraction (font encodings, the layout code) is then
    loaded before any fork."""
    text = (
        b"BT /F1 12 Tf 72 720 Td (Warm up: a line of text on a page.) Tj "
        b"0 -16 Td (A second line, so that the layout code runs.) Tj ET"
    )
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _warm_up() -> None:  # pragma: no cover - runs in the server process
    import gc

    from gasworks.documents import sniff
    from gasworks.documents.extractors import EXTRACTORS

    for media_type, data in ((sniff.HTML, _WARM_HTML), (sniff.PDF, _warm_pdf())):
        with contextlib.suppress(Exception):
            EXTRACTORS[media_type](data)
            EXTRACTORS[media_type](data)
    # what the server has built so far lives as long as it does: out of the collector's
    # reach, a child's collections do not touch (and so copy) the pages it shares with the
    # server, which is most of a child's cost beside a short parse
    gc.collect()
    gc.freeze()


def _signal(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


@dataclass(slots=True)
class _Child:
    """A forked child that parses requests one after the other (``_child_loop``)."""

    pid: int
    #: the server's ends: requests to the child, answers from it
    requests: Any
    answers: Any
    #: (key, cpu, mem) of the calls it may serve
    scope: tuple[str, int, int]
    served: int = 0

    def end(self) -> int:
        """Close its pipes (it exits on the end of its input) and reap it: its exit code,
        ``-signal`` when killed."""
        with contextlib.suppress(OSError):
            self.requests.close()
        with contextlib.suppress(OSError):
            self.answers.close()
        _, status = os.waitpid(self.pid, 0)
        return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _fork(
    cpu: int, mem: int, scope: tuple[str, int, int], files: int = 1
) -> _Child:  # pragma: no cover
    """A child that may parse up to ``files`` requests, each with ``cpu`` seconds of its own
    (``_limit``, ``_cpu_budget``)."""
    req_r, req_w = os.pipe()
    ans_r, ans_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(req_w)
            os.close(ans_r)
            _limit(cpu, mem, files)
            _child_loop(os.fdopen(req_r, "rb"), os.fdopen(ans_w, "wb"), cpu)
        finally:
            os._exit(0)
    os.close(req_r)
    os.close(ans_w)
    return _Child(pid, os.fdopen(req_w, "wb"), os.fdopen(ans_r, "rb"), scope)


def _child_loop(requests: Any, answers: Any, cpu: int) -> None:  # pragma: no cover - in child
    """Parse each request (a JSON line and its bytes) and write its answer (a line with its
    size, then the answer), until the end of the input; each with ``cpu`` seconds of CPU of
    its own (``_cpu_budget``)."""
    while True:
        line = requests.readline()
        if not line:
            return
        req = json.loads(line)
        data = requests.read(int(req["size"]))
        _cpu_budget(cpu)
        answer = json.dumps(_guarded(req["task"], req["mediaType"], data, req["arg"])).encode()
        answers.write(b"%d\n" % len(answer))
        answers.write(answer)
        answers.flush()


def serve() -> int:  # pragma: no cover - runs in the server process
    """The server: import the parsers, then hand each request on standard input to a forked
    child: a fresh one, or the last one while it has parsed fewer than the request's
    ``reuse`` files for the same key and limits.

    A request is a JSON line (task, media type, limits, arg, size, key, reuse) and ``size``
    bytes; the answer is a line with the child's pid and the files it parsed before, then a
    line with its exit code (``-signal`` when killed; 0 while it lives on) and the size of
    its answer, then the answer."""
    import importlib

    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    _warm_up()
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    child: _Child | None = None
    while True:
        line = inp.readline()
        if not line:
            if child is not None:
                child.end()
            return 0
        req = json.loads(line)
        data = inp.read(int(req["size"]))
        cpu, mem, reuse = int(req["cpu"]), int(req["mem"]), int(req.get("reuse", 1))
        scope = (str(req.get("key", "")), cpu, mem)
        if child is not None and (child.scope != scope or child.served >= reuse):
            child.end()
            child = None
        if child is None:
            child = _fork(cpu, mem, scope, reuse)
        out.write(json.dumps({"pid": child.pid, "served": child.served}).encode() + b"\n")
        out.flush()
        code, answer = 0, b""
        try:
            head = {k: req[k] for k in ("task", "mediaType", "arg", "size")}
            child.requests.write(json.dumps(head).encode() + b"\n")
            child.requests.write(data)
            child.requests.flush()
            size = child.answers.readline()
            answer = child.answers.read(int(size)) if size else b""
            if not size or len(answer) != int(size):
                raise ValueError("no answer")
        except (OSError, ValueError):
            code, answer, child = child.end(), b"", None
        else:
            child.served += 1
            if child.served >= reuse:
                code, child = child.end(), None
        out.write(json.dumps({"code": code, "size": len(answer)}).encode() + b"\n")
        out.write(answer)
        out.flush()


# --- the child --------------------------------------------------------------------------------


def _limit(cpu: int, mem_mb: int, files: int = 1) -> None:
    """Limits for a child that parses up to ``files`` files with ``cpu`` seconds each.

    ``RLIMIT_CPU`` counts the whole process's CPU time, so in a child that parses several
    files it would be cumulative: the hard limit (``SIGKILL``) is the budget of all of them,
    one second of rounding each included, and ``_cpu_budget`` sets the soft limit
    (``SIGXCPU``) before each file to what the child has used so far plus ``cpu``."""
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (cpu, (cpu + 1) * max(1, files)))
    mem = mem_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))


def _cpu_used() -> float:
    """CPU seconds (user and system, all threads) this process has used."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_budget(cpu: int) -> None:
    """Give the next file ``cpu`` seconds of its own: the soft ``RLIMIT_CPU`` becomes the CPU
    used so far (rounded up: the limit is in whole seconds) plus ``cpu``, within the hard
    limit ``_limit`` set at the fork (which cannot be raised)."""
    import math
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(_cpu_used()) + cpu
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


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
    if task == "selftest-burn":  # used by tests: a parse that uses ``arg`` seconds of CPU
        import resource

        start = _cpu_used()
        while _cpu_used() < start + float(arg):
            pass
        limit = resource.getrlimit(resource.RLIMIT_CPU)
        return {"pid": os.getpid(), "usedBefore": start, "cpu": list(limit)}
    if task == "selftest-spin":  # used by tests: a parser that never ends
        while True:
            pass
    if task == "selftest-bomb":  # used by tests: allocates without bound
        hog = []
        while True:
            hog.append(bytearray(64 * 1024 * 1024))
    raise ValueError(f"unknown task {task}")


def main(argv: list[str]) -> int:
    if argv[1:2] == ["serve"]:
        return serve()
    task, media_type, cpu, mem = argv[1], argv[2], int(argv[3]), int(argv[4])
    arg = argv[5] if len(argv) > 5 else ""
    data = sys.stdin.buffer.read()
    _limit(cpu, mem)
    sys.stdout.write(json.dumps(_guarded(task, media_type, data, arg)))
    sys.stdout.flush()
    return 0


def _guarded(task: str, media_type: str, data: bytes, arg: str) -> dict[str, Any]:
    """``_task``'s result as ``{"ok": ...}``, or its failure as ``{"error": ...}``."""
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
    return answer


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
