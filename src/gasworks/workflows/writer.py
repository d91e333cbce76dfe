"""Group commit for run persistence: many runs' writes in one transaction.

Finished runs, their events and their conversations' new turns are queued and written by one
task, in FIFO order, up to ``max_batch`` items per transaction. A run's answer does not wait for
its write; readers that need durability (``GET /runs``, the next turn of a conversation) wait
for what is pending (:meth:`RunWriter.drain`, the futures returned by :meth:`submit`). If a
batch fails, its items are retried one per transaction so one bad write cannot sink the others.

New rows (finished runs, events) are not ORM objects: a write queues their column values with
:func:`queue_insert` and the batch ends with one multi-row ``INSERT`` per table (in foreign-key
order, after the ORM objects of the batch are flushed) — the ORM's per-object construction and
unit of work cost more than the insert itself on this path (issue #19).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from gasworks.db.base import Base
from gasworks.observability.logging import get_logger
from gasworks.workflows.metrics import WRITE_BATCH

if TYPE_CHECKING:
    from gasworks.db.engine import Database

Write = Callable[[AsyncSession], Awaitable[None]]
log = get_logger("gasworks.workflows.writer")

_INSERTS = "gasworks_queued_inserts"


def queue_insert(session: AsyncSession, model: type[Base], rows: list[dict[str, Any]]) -> None:
    """Queue new rows of ``model``'s table for the batch's multi-row INSERT (see the module
    doc). Only inside a ``RunWriter`` write: the writer flushes them before it commits."""
    if rows:
        pending: dict[Table, list[dict[str, Any]]] = session.info.setdefault(_INSERTS, {})
        pending.setdefault(cast(Table, model.__table__), []).extend(rows)


async def flush_inserts(session: AsyncSession) -> None:
    """Write the queued rows: ORM objects first, then one INSERT per table, parents first."""
    pending: dict[Table, list[dict[str, Any]]] | None = session.info.pop(_INSERTS, None)
    if not pending:
        return
    await session.flush()
    order = {t: i for i, t in enumerate(Base.metadata.sorted_tables)}
    for table in sorted(pending, key=lambda t: order.get(t, len(order))):
        await session.execute(insert(table), pending[table])


class RunWriter:
    def __init__(self, db: Database, *, max_batch: int = 200) -> None:
        self.db = db
        self.max_batch = max_batch
        self._queue: list[tuple[Write, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Writes queued and not yet taken by the writer."""
        return len(self._queue)

    def submit(self, write: Write) -> asyncio.Future[None]:
        """Queue a write; the future resolves when it is committed (or carries its error)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((write, fut))
        self._idle.clear()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop())
        return fut

    async def drain(self) -> None:
        """Wait until everything submitted so far is written."""
        if self._queue or not self._idle.is_set():
            await self._idle.wait()

    async def close(self) -> None:
        await self.drain()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._queue[: self.max_batch]
                del self._queue[: len(batch)]
                await self._write(batch)
            self._idle.set()

    async def _write(self, batch: list[tuple[Write, asyncio.Future[None]]]) -> None:
        try:
            async with self.db.session() as s:
                for write, _ in batch:
                    await write(s)
                await flush_inserts(s)
        except Exception as exc:
            if len(batch) == 1:
                self._settle(batch, error=exc)
                return
            for item in batch:  # one bad write must not lose the others
                await self._write([item])
            return
        WRITE_BATCH.observe(len(batch))
        self._settle(batch)

    @staticmethod
    def _settle(
        batch: list[tuple[Write, asyncio.Future[None]]], *, error: Exception | None = None
    ) -> None:
        for _, fut in batch:
            if fut.done():
                continue
            if error is not None:
                log.warning(
                    "workflow.write_failed",
                    error=getattr(error, "code", type(error).__name__),
                    message=getattr(error, "message", str(error))[:300],
                )
                fut.set_exception(error)
                fut.exception()  # mark retrieved: nobody may be awaiting it
            else:
                fut.set_result(None)
