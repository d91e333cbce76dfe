"""The PostgreSQL connections of ``Database.read_first``: asyncpg's own pool.

A hot read is one autocommit ``SELECT`` run with asyncpg's ``fetchrow`` (asyncpg prepares and
caches the statement per connection). Through SQLAlchemy's async pool the checkout and the
return around it are greenlet hops with their pool events, about as much client CPU as the
read itself (issue #19: 58 + 21 µs to check out, 130 µs to return, 199 µs for the read, under
load). asyncpg's pool hands out a connection with plain asyncio, and with ``reset`` set to do
nothing it sends nothing when one is returned: these connections only ever run single
autocommit SELECTs, so there is no session state (transaction, ``SET``, ``LISTEN``, cursor,
advisory lock) to reset.

The connections are opened as SQLAlchemy's asyncpg dialect opens its own (the URL's connect
arguments, its JSON and JSONB codecs), so a row decodes exactly as through Core. The pool
belongs to the event loop that created it; on any other loop ``fetchrow`` answers
``NOT_HERE`` and the caller reads through Core.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

#: ``PgReadPool.fetchrow``'s answer on an event loop that is not the pool's
NOT_HERE: Any = object()


async def _no_reset(_connection: Any) -> None:
    """A returned connection needs no reset (see the module doc)."""


class PgReadPool:
    def __init__(self, engine: AsyncEngine, max_size: int, connect_args: Mapping[str, Any]) -> None:
        self._engine = engine
        self._max_size = max_size
        self._connect_args = dict(connect_args)
        self._pool: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Lock | None = None

    async def fetchrow(self, sql: str, args: Sequence[Any]) -> Any:
        """The first row (a tuple) or None; ``NOT_HERE`` on another event loop than the
        pool's. Driver errors propagate (asyncpg's own classes)."""
        pool = self._pool
        if pool is None or self._loop is not asyncio.get_running_loop():
            pool = await self._open()
            if pool is None:
                return NOT_HERE
        async with pool.acquire() as conn:
            record = await conn.fetchrow(sql, *args)
        return None if record is None else tuple(record)

    async def _open(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._pool is not None:
            return self._pool if self._loop is loop else None
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                import asyncpg

                dialect: Any = self._engine.sync_engine.dialect
                _, opts = dialect.create_connect_args(self._engine.url)
                opts.pop("prepared_statement_cache_size", None)
                opts.pop("prepared_statement_name_func", None)
                opts.update(self._connect_args)

                async def init(conn: Any) -> None:
                    # the dialect's own codec set-up, given what it reaches for (its adapted
                    # connection's ``_connection``): rows decode as they do through Core
                    adapted = types.SimpleNamespace(_connection=conn)
                    await dialect.setup_asyncpg_json_codec(adapted)
                    await dialect.setup_asyncpg_jsonb_codec(adapted)

                self._pool = await asyncpg.create_pool(
                    min_size=0,
                    max_size=self._max_size,
                    init=init,
                    reset=_no_reset,
                    **opts,
                )
                self._loop = loop
        return self._pool if self._loop is loop else None

    async def close(self) -> None:
        pool, loop = self._pool, self._loop
        self._pool = self._loop = self._opening = None
        if pool is None:
            return
        if loop is not asyncio.get_running_loop():
            pool.terminate()  # its connections belong to a loop that is not running here
            return
        try:
            await asyncio.wait_for(pool.close(), 5)
        except Exception:
            pool.terminate()
