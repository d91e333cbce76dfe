"""Graceful shutdown of one API process: readiness fails first, then new work is refused,
open event streams end with a final event, and the runtime stops (leases returned, the ledger
flushed) within ``GASWORKS_SHUTDOWN_GRACE_SECONDS``.

The sequence (driven by ``gasworks serve``'s server on SIGTERM, see ``cli/server.py``):

1. ``begin()``: ``/readyz`` answers 503 ``SERVER_SHUTTING_DOWN`` so a load balancer stops
   sending traffic; requests still arriving are served for
   ``GASWORKS_SHUTDOWN_READINESS_DELAY_SECONDS``.
2. ``stop_accepting(grace)``: uvicorn stops listening; a request that still arrives on an open
   connection gets 503 ``SERVER_SHUTTING_DOWN`` with ``Retry-After``; requests in flight
   finish; event streams still open one second before the grace ends are closed with a final
   ``error`` event carrying ``SERVER_SHUTTING_DOWN`` (their accounting runs as on a client
   disconnect).
3. The runtime stops: workflow runs and budget leases are returned, the ledger is flushed.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Receive, Scope, Send

from gasworks.api.errors import envelope
from gasworks.errors import ShuttingDown

#: paths that keep answering while draining (probes and metrics)
_PROBES = ("/healthz", "/readyz", "/metrics")


def shutting_down() -> ShuttingDown:
    return ShuttingDown(
        "This server process is shutting down; retry the request (another process serves it).",
        details={"retryAfterSeconds": 1},
    )


class Drain:
    """The shutdown state of one API app (``app.state.drain``)."""

    def __init__(self) -> None:
        #: readiness fails (step 1)
        self.draining = False
        #: new requests are refused (step 2)
        self.refusing = False
        #: set when open streams must end now
        self.cut = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None

    def begin(self) -> None:
        self.draining = True

    def stop_accepting(self, grace: float) -> None:
        """Refuse new requests; close open streams one second before ``grace`` ends."""
        self.draining = self.refusing = True
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0.0, grace - 1.0), self.cut.set)


def drain_of(scope: Scope) -> Drain | None:
    app = scope.get("app")
    drain = getattr(getattr(app, "state", None), "drain", None)
    return drain if isinstance(drain, Drain) else None


class DrainGate:
    """ASGI middleware: while refusing, every request but the probes gets a 503 with
    ``Retry-After`` and ``Connection: close``."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not self.drain.refusing
            or str(scope.get("path", "")).startswith(_PROBES)
        ):
            await self.app(scope, receive, send)
            return
        exc = shutting_down()
        body = json.dumps(envelope(exc.code, exc.message, exc.details)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": exc.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", b"1"),
                    (b"connection", b"close"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
