"""The uvicorn server of ``gasworks serve``, with the graceful shutdown of ``api/drain.py``.

uvicorn's own SIGTERM handling stops listening at once and then waits (up to
``timeout_graceful_shutdown``) for connections. Before that, this server fails readiness for
``GASWORKS_SHUTDOWN_READINESS_DELAY_SECONDS`` (a load balancer stops sending traffic) and tells
the app to refuse new requests and close its event streams before the grace ends. A second
signal (or SIGINT during the delay) goes straight to uvicorn.
"""

from __future__ import annotations

import asyncio
import signal
from types import FrameType
from typing import Any, Protocol, runtime_checkable

import uvicorn


@runtime_checkable
class Drain(Protocol):
    """What the server needs of the app's ``api.drain.Drain`` (the CLI does not import the
    API layer; the app is found under uvicorn's wrappers)."""

    def begin(self) -> None: ...

    def stop_accepting(self, grace: float) -> None: ...


def find_drain(app: Any) -> Drain | None:
    """The ``Drain`` of the FastAPI app under uvicorn's wrappers (proxy headers, ...)."""
    for _ in range(10):
        drain = getattr(getattr(app, "state", None), "drain", None)
        if isinstance(drain, Drain):
            return drain
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, grace: float, readiness_delay: float) -> None:
        super().__init__(config)
        self.grace = grace
        self.readiness_delay = readiness_delay
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        drain = find_drain(self.config.loaded_app)
        if self._draining or drain is None:
            super().handle_exit(sig, frame)
            return
        self._draining = True
        drain.begin()  # readiness fails now
        delay = self.readiness_delay if sig == signal.SIGTERM else 0.0
        loop = asyncio.get_event_loop()  # the signal runs on the loop's (main) thread

        def stop() -> None:
            drain.stop_accepting(self.grace)
            super(GracefulServer, self).handle_exit(sig, frame)

        loop.call_soon_threadsafe(loop.call_later, delay, stop)
