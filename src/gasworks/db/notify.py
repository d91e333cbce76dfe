"""LISTEN on a PostgreSQL channel: a background loop is woken at once by a NOTIFY (sent by a
trigger when its table changes) instead of polling the table often.

The listening connection is taken from the engine's pool (same address, credentials, TLS) and
kept for the process's life; on close it is invalidated rather than returned, so no other user
of the pool inherits the LISTEN. A dropped connection (database restart, network) shows as
``connected`` false: the caller falls back to polling and calls ``connect`` again later.
Nothing on SQLite (``connect`` answers False).

Hand-written because it is a dozen lines over asyncpg's own ``add_listener``; a library
(``asyncpg-listen`` and the like) would bring its own reconnect loop to a process that already
has a periodic task to drive it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gasworks.observability.logging import get_logger

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from gasworks.db.engine import Database

log = get_logger("gasworks.db.notify")


class Listener:
    def __init__(self, db: Database, channel: str, on_notice: Callable[[], None]) -> None:
        self.db = db
        self.channel = channel
        self.on_notice = on_notice
        self._conn: AsyncConnection | None = None
        self._raw: Any = None  # the asyncpg connection

    @property
    def connected(self) -> bool:
        return self._raw is not None and not self._raw.is_closed()

    async def connect(self) -> bool:
        """LISTEN now (idempotent); False on SQLite or when the database cannot be reached."""
        if self.db.dialect.name != "postgresql":
            return False
        if self.connected:
            return True
        await self.close()
        try:
            conn = await self.db.engine.connect()
            self._conn = conn
            raw: Any = (await conn.get_raw_connection()).driver_connection
            await raw.add_listener(self.channel, self._notified)
            self._raw = raw
        except Exception as exc:
            log.warning("notify.listen_failed", channel=self.channel, error=type(exc).__name__)
            await self.close()
            return False
        log.info("notify.listening", channel=self.channel)
        return True

    def _notified(self, *_: object) -> None:
        self.on_notice()

    async def close(self) -> None:
        conn, self._conn, self._raw = self._conn, None, None
        if conn is None:
            return
        try:
            await conn.invalidate()  # never back into the pool with a LISTEN on it
            await conn.close()
        except Exception:  # already gone
            log.debug("notify.close_failed", channel=self.channel)
