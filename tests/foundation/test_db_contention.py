"""A transaction the database aborts to break a deadlock is a clear, retryable error
(``DATABASE_BUSY``, 503), never an internal error; nothing of it is applied."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from gasworks.db.engine import Database
from gasworks.errors import DatabaseBusy


async def test_a_deadlock_victim_gets_database_busy_and_nothing_is_applied(db_url: str) -> None:
    db = Database(db_url)
    if db.dialect.name != "postgresql":
        await db.dispose()
        pytest.skip("SQLite has one writer at a time: transactions wait, they never deadlock")
    try:
        async with db.session() as s:
            await s.execute(text("CREATE TABLE pair (id int PRIMARY KEY, n int NOT NULL)"))
            await s.execute(text("INSERT INTO pair VALUES (1, 0), (2, 0)"))
        first_locked = [asyncio.Event(), asyncio.Event()]

        async def cross(me: int) -> None:
            mine, theirs = (1, 2) if me == 0 else (2, 1)
            async with db.session() as s:
                await s.execute(text("UPDATE pair SET n = n + 1 WHERE id = :i"), {"i": mine})
                first_locked[me].set()
                await first_locked[1 - me].wait()  # both hold one row: now cross over
                await s.execute(text("UPDATE pair SET n = n + 1 WHERE id = :i"), {"i": theirs})

        outcomes = await asyncio.gather(cross(0), cross(1), return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], DatabaseBusy), outcomes
        err = errors[0]
        assert (err.status, err.code, err.retryable) == (503, "DATABASE_BUSY", True)
        assert err.details["retryAfterSeconds"] == 1
        async with db.read_session() as s:  # the survivor's two updates, none of the victim's
            assert (await s.execute(text("SELECT sum(n) FROM pair"))).scalar() == 2
    finally:
        await db.dispose()
