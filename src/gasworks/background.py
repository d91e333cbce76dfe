"""Periodic background work that stops cleanly.

Every domain loop (breaker sync and budget sweeps, the ledger writer, prompt invalidation
polling, model registry refresh) runs as a ``PeriodicTask``; ``wake()`` runs the next
iteration at once (the ledger writer when a batch is full). Stopping sets an event and waits
for the iteration in progress to finish (up to a grace period) before cancelling: a task
cancelled in the middle of a database call can leave a driver connection mid-transaction
after its event loop is gone, and on SQLite such a connection holds the write lock until it
is garbage-collected.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from gasworks.errors import GasworksError
from gasworks.observability.logging import get_logger

log = get_logger("gasworks.background")


class PeriodicTask:
    def __init__(
        self,
        name: str,
        body: Callable[[], Awaitable[object]],
        every: float,
        *,
        run_first: bool = False,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.name = name
        self.body = body
        self.every = every
        self.run_first = run_first
        self.on_error = on_error
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: what an operator sees (the console's overview): iterations, failures, when the
        #: last one ended, and the last failure (the class, and the message of a gasworks
        #: error only: other messages can carry SQL or URLs; the log has the traceback)
        self.runs = 0
        self.failures = 0
        self.last_run: datetime | None = None
        self.last_failed = False
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start on the running event loop (idempotent)."""
        if not self.running:
            self._stop = asyncio.Event()
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name=self.name)

    def wake(self) -> None:
        """Run the next iteration now instead of at the end of the current wait."""
        self._wake.set()

    async def stop(self, grace: float = 5.0) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            log.warning("background.cancelled", task=self.name, grace=grace)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            if not (first and self.run_first) and not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.every)
                if self._stop.is_set():
                    return
            first = False
            self._wake.clear()
            try:
                await self.body()
            except Exception as exc:
                self._ended(exc)
                if self.on_error is not None:
                    self.on_error(exc)
                else:
                    log.exception("background.failed", task=self.name)
            else:
                self._ended(None)

    def _ended(self, exc: Exception | None) -> None:
        self.runs += 1
        self.last_run = datetime.now(UTC)
        self.last_failed = exc is not None
        if exc is not None:
            self.failures += 1
            self.last_error_at = self.last_run
            self.last_error = type(exc).__name__ + (
                f": {exc.message}" if isinstance(exc, GasworksError) else ""
            )
