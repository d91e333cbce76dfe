"""Group commit for run persistence: many runs' writes in one transaction.

Finished runs, their events and their conversations' new turns are queued and written by one
task, in FIFO order, up to ``max_batch`` items per transaction. A run's answer does not wait for
its write; readers that need durability (``GET /runs``, the next turn of a conversation) wait
for what is pending (:meth:`RunWriter.drain`, the futures returned by :meth:`submit`). If a
batch fails, its items are retried one per transaction so one bad write cannot sink the others.

New rows (finished runs, events) are not ORM objects: the common write is :class:`Rows`, their
column values, and a batch of nothing else is handed to ``Database.insert_rows`` — on a SQLite
file one hand-off to a worker thread whose stdlib connection runs one ``executemany`` per table
in one transaction, with no session and no async-driver round trip per statement (issue #19).
A batch that also holds a session write (a conversation's turn, a guarded update of a run
written early) runs in one session: the ``Rows`` are queued with :func:`queue_insert` and the
batch ends with one multi-row ``INSERT`` per table (in foreign-key order, after the ORM objects
of the batch are flushed).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from gasworks.db.base import Base
from gasworks.db.batch import as_mapping
from gasworks.observability.logging import get_logger
from gasworks.workflows.metrics import WRITE_BATCH

if TYPE_CHECKING:
    from gasworks.db.engine import Database

SessionWrite = Callable[[AsyncSession], Awaitable[None]]
log = get_logger("gasworks.workflows.writer")

_INSERTS = "gasworks_queued_inserts"


@dataclass(frozen=True, slots=True)
class Rows:
    """A write of new rows only: (model, rows) pairs, each row giving every column of its
    table, as a mapping of column values or as a record (``db/batch.py``: the engine's run
    record goes as it is, no dict built per run)."""

    inserts: tuple[tuple[type[Base], list[Any]], ...]

    def queue(self, session: AsyncSession) -> None:
        for model, rows in self.inserts:
            queue_insert(session, model, [as_mapping(r) for r in rows])


class RowRecord(Protocol):
    """One new row as a record (``db/batch.py``): a write of its own, with no ``Rows`` built
    around it (the engine's finished run: ``RunRecord``). Its class names its model."""

    row_fields: ClassVar[tuple[str, ...]]
    row_model: ClassVar[type[Base]]


Write = SessionWrite | Rows | RowRecord


def _model_of(write: Write) -> type[Base] | None:
    """The model of a record write (None: ``Rows`` or a session write)."""
    model: type[Base] | None = getattr(type(write), "row_model", None)
    return model


def _rows_only(write: Write) -> bool:
    return type(write) is Rows or _model_of(write) is not None


def queue_insert(session: AsyncSession, model: type[Base], rows: list[Mapping[str, Any]]) -> None:
    """Queue new rows of ``model``'s table for the batch's multi-row INSERT (see the module
    doc). Only inside a ``RunWriter`` write: the writer flushes them before it commits."""
    if rows:
        pending: dict[Table, list[Mapping[str, Any]]] = session.info.setdefault(_INSERTS, {})
        pending.setdefault(cast(Table, model.__table__), []).extend(rows)


async def flush_inserts(session: AsyncSession, order: TableOrder) -> None:
    """Write the queued rows: ORM objects first, then one INSERT per table, parents first."""
    pending: dict[Table, list[Mapping[str, Any]]] | None = session.info.pop(_INSERTS, None)
    if not pending:
        return
    await session.flush()
    for table in order.parents_first(pending):
        await session.execute(insert(table), pending[table])


class TableOrder:
    """Tables in foreign-key order, computed once every table is declared (the first batch)
    instead of sorting the metadata for every batch."""

    def __init__(self) -> None:
        self._index: dict[Table, int] = {}

    def parents_first(self, tables: Any) -> list[Table]:
        if len(self._index) != len(Base.metadata.tables):
            self._index = {t: i for i, t in enumerate(Base.metadata.sorted_tables)}
        index = self._index
        return sorted(tables, key=lambda t: index.get(t, len(index)))


class RunWriter:
    def __init__(self, db: Database, *, max_batch: int = 200) -> None:
        self.db = db
        self.max_batch = max_batch
        #: (write, its future: None when nobody waits for it, see ``submit``)
        self._queue: list[tuple[Write, asyncio.Future[None] | None]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._order = TableOrder()

    @property
    def pending(self) -> int:
        """Writes queued and not yet taken by the writer."""
        return len(self._queue)

    def submit(self, write: Write) -> asyncio.Future[None]:
        """Queue a write; the future resolves when it is committed (or carries its error)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(write, fut)
        return fut

    def submit_untracked(self, write: Write) -> None:
        """Queue a write nobody waits for singly (``drain`` still covers it; a failure is
        logged as any other's): no future made and resolved per write."""
        self._enqueue(write, None)

    def _enqueue(self, write: Write, fut: asyncio.Future[None] | None) -> None:
        self._queue.append((write, fut))
        self._idle.clear()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop())

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

    async def _write(self, batch: list[tuple[Write, asyncio.Future[None] | None]]) -> None:
        try:
            if all(_rows_only(write) for write, _ in batch):
                await self._insert([write for write, _ in batch])
            else:
                async with self.db.session() as s:
                    for write, _ in batch:
                        model = _model_of(write)
                        if model is not None:
                            queue_insert(s, model, [as_mapping(write)])
                        elif isinstance(write, Rows):
                            write.queue(s)
                        else:
                            await cast(SessionWrite, write)(s)
                    await flush_inserts(s, self._order)
        except Exception as exc:
            if len(batch) == 1:
                self._settle(batch, error=exc)
                return
            for item in batch:  # one bad write must not lose the others
                await self._write([item])
            return
        WRITE_BATCH.observe(len(batch))
        self._settle(batch)

    async def _insert(self, writes: list[Write]) -> None:
        """A batch of rows only: one ``insert_rows`` (one transaction), parents first."""
        merged: dict[Table, list[Any]] = {}
        for write in writes:
            model = _model_of(write)
            if model is not None:
                merged.setdefault(cast(Table, model.__table__), []).append(write)
            else:
                for model, rows in cast(Rows, write).inserts:
                    merged.setdefault(cast(Table, model.__table__), []).extend(rows)
        await self.db.insert_rows([(t, merged[t]) for t in self._order.parents_first(merged)])

    @staticmethod
    def _settle(
        batch: list[tuple[Write, asyncio.Future[None] | None]], *, error: Exception | None = None
    ) -> None:
        for _, fut in batch:
            if fut is not None and fut.done():
                continue
            if error is not None:
                log.warning(
                    "workflow.write_failed",
                    error=getattr(error, "code", type(error).__name__),
                    message=getattr(error, "message", str(error))[:300],
                )
                if fut is not None:
                    fut.set_exception(error)
                    fut.exception()  # mark retrieved: nobody may be awaiting it
            elif fut is not None:
                fut.set_result(None)
