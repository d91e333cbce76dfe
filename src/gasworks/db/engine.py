"""The async engine, sessions and schema upgrade of one deployment."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from gasworks.db.dialects import READ_ONLY_OPTION, DialectOps, dialect_for
from gasworks.errors import DatabaseUnavailable


class Database:
    """Engine + session factory + dialect pieces. One per process, shared by everything."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        parsed = make_url(url)
        self.url = url
        self.dialect: DialectOps = dialect_for(parsed)
        self.engine: AsyncEngine = create_async_engine(
            parsed, echo=echo, **self.dialect.engine_kwargs(parsed, pool_size)
        )
        self.dialect.on_engine(self.engine)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        #: the same pool, marked read-only: on SQLite its transactions take no write lock
        self.read_engine: AsyncEngine = self.engine.execution_options(**{READ_ONLY_OPTION: True})
        self.read_sessionmaker = async_sessionmaker(self.read_engine, expire_on_commit=False)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on any error."""
        with self.unavailable_as_error():
            async with self.sessionmaker() as session, session.begin():
                yield session

    @contextlib.asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only. On SQLite it begins DEFERRED, so frequent readers
        (authentication, pollers, resolvers) never take or wait for the write lock; on
        PostgreSQL it is an ordinary transaction. Writing through it is a bug (on SQLite it
        may fail with "database is locked" under concurrency)."""
        with self.unavailable_as_error():
            async with self.read_sessionmaker() as session, session.begin():
                yield session

    @contextlib.asynccontextmanager
    async def read_connection(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection for reads only (see ``read_session``)."""
        with self.unavailable_as_error():
            async with self.read_engine.connect() as conn:
                yield conn

    @contextlib.contextmanager
    def unavailable_as_error(self) -> Iterator[None]:
        """Translate "cannot reach the database" failures into ``DatabaseUnavailable`` (503)."""
        try:
            yield
        except (DBAPIError, OSError, TimeoutError) as exc:
            if self.dialect.is_unavailable(exc):
                raise DatabaseUnavailable(
                    "The database is unreachable; try again shortly.",
                    details={"dialect": self.dialect.name},
                ) from exc
            raise

    async def ping(self, within_seconds: float = 3.0) -> bool:
        """Whether the database answers ``SELECT 1`` within ``within_seconds``."""
        try:
            async with asyncio.timeout(within_seconds), self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def upgrade(self) -> str:
        """Bring the schema to the newest revision; safe when many processes start at once."""
        from gasworks.db.migrate import upgrade

        with self.unavailable_as_error():
            return await upgrade(self)

    async def dispose(self) -> None:
        await self.engine.dispose()
