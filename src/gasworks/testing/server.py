"""A fake provider server on 127.0.0.1, run by uvicorn in a background thread.

Subclasses implement ``handle(req, fault)`` speaking one vendor's real wire protocol. Faults
are queued (``server.faults.append(Fault.status(500))``) and consumed one per request, so a
test can script "fail twice, then answer". Every request is recorded (``server.requests``).

Running in a thread (not the test's event loop) lets synchronous clients (boto3) and async
ones share one fake, and keeps the fake's timing independent of the code under test.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import socket
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(slots=True)
class Fault:
    """One injected failure, consumed by the next request."""

    kind: str
    status: int = 500
    retry_after: float | None = None
    seconds: float = 0.0
    after_chunks: int = 1
    message: str = "injected fault"
    error_type: str | None = None

    @classmethod
    def http(
        cls, status: int, message: str = "injected fault", error_type: str | None = None
    ) -> Fault:
        """An HTTP error answer in the vendor's error format."""
        return cls("status", status=status, message=message, error_type=error_type)

    @classmethod
    def rate_limit(cls, retry_after: float | None = 1.0) -> Fault:
        return cls("status", status=429, retry_after=retry_after, message="rate limited")

    @classmethod
    def slow_first_byte(cls, seconds: float) -> Fault:
        """Wait ``seconds`` before sending anything (exercises the client's timeout)."""
        return cls("slow", seconds=seconds)

    @classmethod
    def cut_stream(cls, after_chunks: int = 1) -> Fault:
        """Send ``after_chunks`` stream events, then drop the connection."""
        return cls("cut", after_chunks=after_chunks)

    @classmethod
    def stream_error(
        cls, after_chunks: int = 1, error_type: str | None = None, message: str = "Overloaded"
    ) -> Fault:
        """Send ``after_chunks`` stream events, then the vendor's in-stream error and end the
        stream (HTTP status already 200). ``error_type`` in the vendor's words (Anthropic
        ``overloaded_error``, OpenAI ``server_error``, Bedrock ``throttlingException``); each
        fake has its own default."""
        return cls(
            "stream_error", after_chunks=after_chunks, error_type=error_type, message=message
        )

    @classmethod
    def stall(cls, after_chunks: int = 1, seconds: float = 30.0) -> Fault:
        """Send ``after_chunks`` stream events, then wait up to ``seconds`` for the client to
        hang up (counted in ``server.abandoned``); a client still there then sees a cut."""
        return cls("stall", after_chunks=after_chunks, seconds=seconds)

    @classmethod
    def slow_stream(cls, seconds: float) -> Fault:
        """Send each stream event ``seconds`` after the previous one (a slow but live model)."""
        return cls("pace", seconds=seconds)

    @classmethod
    def malformed(cls) -> Fault:
        """Answer 200 with a body that is not valid JSON / not a valid event."""
        return cls("malformed")


@dataclass(slots=True)
class Reply:
    """What the fake model answers."""

    text: str = "Hello from the fake model."
    input_tokens: int = 11
    output_tokens: int = 7
    cached_input_tokens: int = 0
    #: of input_tokens, how many were written to the prompt cache (Anthropic, Bedrock)
    cache_write_input_tokens: int = 0
    tool_calls: list[dict[str, Any]] | None = None
    #: send usage in streams (False: behave like a server that omits it)
    stream_usage: bool = True
    finish_reason: str | None = None


@dataclass(slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    #: the client's (host, port): requests on one connection share it
    client: tuple[str, int] | None = None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    send: Send
    receive: Receive
    json_body: Any = field(default=None)


class StreamCut(Exception):
    """Raised inside the fake to drop the connection mid-stream."""


class FakeProviderServer(abc.ABC):
    """Base class: lifecycle, fault queue, recording and small response helpers."""

    def __init__(self) -> None:
        self.faults: deque[Fault] = deque()
        self.requests: list[RecordedRequest] = []
        self.reply = Reply()
        #: streams whose client hung up while a ``stall`` fault held them open
        self.abandoned = 0
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        #: set when the server stops: a fault holding a request (slow, pace, stall) lets go
        #: at once instead of being waited out by uvicorn's graceful shutdown
        self._closing: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeProviderServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted connections inherit it: no Nagle delay between header and body writes
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._asgi,
            log_level="critical",
            interface="asgi3",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            timeout_keep_alive=75,
            ws="none",
        )
        self._server = uvicorn.Server(config)
        ready = threading.Event()
        server = self._server

        def run() -> None:
            async def main() -> None:
                self._closing = asyncio.Event()
                self._loop = asyncio.get_running_loop()
                task = asyncio.create_task(server.serve(sockets=[sock]))
                while not server.started and not task.done():  # noqa: ASYNC110
                    await asyncio.sleep(0.005)  # uvicorn exposes a flag, not an event
                ready.set()
                await task

            asyncio.run(main())

        self._thread = threading.Thread(target=run, name=f"fake-{type(self).__name__}", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake server did not start")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._loop is not None and self._closing is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._closing.set)
        if self._thread is not None:
            self._thread.join(5)
        self._server = None
        self._thread = None
        self._loop = self._closing = None

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- ASGI -------------------------------------------------------------------------------

    async def _asgi(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path = scope.get("raw_path", scope["path"].encode()).decode()
        client = scope.get("client")
        self.requests.append(
            RecordedRequest(scope["method"], path, headers, body, tuple(client) if client else None)
        )
        req = Request(scope["method"], path, headers, body, send, receive)
        if body and headers.get("content-type", "").startswith("application/json"):
            try:
                req.json_body = json.loads(body)
            except ValueError:
                req.json_body = None
        fault = self.faults.popleft() if self.faults else None
        if fault is not None and fault.kind == "slow":
            if await self._pause(fault.seconds):
                return  # the server is stopping: nobody waits for this answer
            fault = None
        try:
            await self.handle(req, fault)
        except StreamCut:
            # raising out of the ASGI app after the response started makes uvicorn drop the
            # connection without the final chunk: the client sees a broken stream
            raise

    @abc.abstractmethod
    async def handle(self, req: Request, fault: Fault | None) -> None:
        """Answer one request in the provider's wire format (each fake implements it)."""

    # --- helpers ----------------------------------------------------------------------------

    @staticmethod
    async def send_json(
        req: Request, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        await FakeProviderServer.send_bytes(
            req, status, json.dumps(payload).encode(), "application/json", headers
        )

    @staticmethod
    async def send_bytes(
        req: Request,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        hdrs = [(b"content-type", content_type.encode())]
        hdrs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        await req.send({"type": "http.response.start", "status": status, "headers": hdrs})
        await req.send({"type": "http.response.body", "body": body})

    @abc.abstractmethod
    def error_event(self, fault: Fault) -> bytes:
        """The vendor's in-stream error for a ``stream_error`` fault, encoded as on the wire."""

    @staticmethod
    async def start_stream(req: Request, content_type: str) -> None:
        await req.send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", content_type.encode())],
            }
        )

    @staticmethod
    async def stream_part(req: Request, data: bytes, *, last: bool = False) -> None:
        await req.send({"type": "http.response.body", "body": data, "more_body": not last})

    async def send_events(
        self, req: Request, events: list[bytes], content_type: str, fault: Fault | None
    ) -> None:
        """Stream pre-encoded events; a ``cut`` fault drops the connection midway, a
        ``stall`` one waits for the client to hang up, a ``stream_error`` one ends the stream
        with the vendor's error event."""
        await self.start_stream(req, content_type)
        for i, ev in enumerate(events):
            if (
                fault is not None
                and fault.kind == "pace"
                and i
                and await self._pause(fault.seconds)
            ):
                raise StreamCut
            elif fault is not None and i >= fault.after_chunks:
                if fault.kind == "cut":
                    raise StreamCut
                if fault.kind == "stall":
                    await self._wait_for_hang_up(req, fault.seconds)
                    raise StreamCut
                if fault.kind == "stream_error":
                    await self.stream_part(req, self.error_event(fault))
                    break
            await self.stream_part(req, ev)
            await asyncio.sleep(0)
        await self.stream_part(req, b"", last=True)

    async def _pause(self, seconds: float) -> bool:
        """Wait ``seconds``; True when the server started stopping meanwhile."""
        if self._closing is None:
            await asyncio.sleep(seconds)
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)
        return self._closing.is_set()

    async def _wait_for_hang_up(self, req: Request, seconds: float) -> None:
        async def hung_up() -> None:
            while (await req.receive())["type"] != "http.disconnect":
                pass

        waiter = asyncio.ensure_future(hung_up())
        closing = asyncio.ensure_future(self._pause(seconds))
        try:
            await asyncio.wait({waiter, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (waiter, closing):
                t.cancel()
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            self.abandoned += 1

    @staticmethod
    def words(text: str) -> list[str]:
        parts = text.split(" ")
        return [p if i == len(parts) - 1 else p + " " for i, p in enumerate(parts)]
