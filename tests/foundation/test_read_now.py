"""``Database.read_now``: the pollers' read path (synchronous on a SQLite file)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import bindparam, func, select, text
from sqlalchemy.exc import DBAPIError

from gasworks.tenancy.tables import TenantRow


async def _tenant(runtime: Any, name: str) -> None:
    async with runtime.db.session() as s:
        s.add(TenantRow(id=f"t-{name}", name=name, display_name=name))


async def test_sees_every_commit_at_once_in_one_snapshot(runtime) -> None:
    count = select(func.count()).select_from(TenantRow)
    names = select(TenantRow.name).order_by(TenantRow.name)
    await _tenant(runtime, "alpha")
    (n,), rows = await runtime.db.read_now(count, names)
    assert n[0] == 1 and [r[0] for r in rows] == ["alpha"]
    await _tenant(runtime, "beta")  # committed by another connection of the pool
    (n,), rows = await runtime.db.read_now(count, names)
    assert n[0] == 2 and [r[0] for r in rows] == ["alpha", "beta"]


async def test_binds_the_parameters_each_statement_names(runtime) -> None:
    """Statements built once take their values per call (``params``): each statement binds
    the parameters it names, and the values of the next call replace them."""
    await _tenant(runtime, "alpha")
    await _tenant(runtime, "beta")
    by_name = select(TenantRow.id).where(TenantRow.name == bindparam("name"))
    others = select(func.count()).select_from(TenantRow).where(TenantRow.name != bindparam("name"))
    everyone = select(func.count()).select_from(TenantRow)  # names none of them
    a, (n,), (total,) = await runtime.db.read_now(
        by_name, others, everyone, params={"name": "alpha"}
    )
    assert [r[0] for r in a] == ["t-alpha"] and n[0] == 1 and total[0] == 2
    b, (n,) = await runtime.db.read_now(by_name, others, params={"name": "beta"})
    assert [r[0] for r in b] == ["t-beta"] and n[0] == 1


async def test_never_waits_for_a_writer(runtime) -> None:
    """A poller reads while another transaction holds the write lock (and sees only what
    was committed); the reads finish before that transaction does."""
    await _tenant(runtime, "alpha")
    holding, release = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        async with runtime.db.session() as s:
            s.add(TenantRow(id="t-uncommitted", name="uncommitted", display_name="u"))
            await s.flush()
            holding.set()
            await release.wait()

    task = asyncio.create_task(writer())
    await holding.wait()
    try:
        async with asyncio.timeout(5):
            for _ in range(20):
                (rows,) = await runtime.db.read_now(select(TenantRow.name))
                assert [r[0] for r in rows] == ["alpha"]
    finally:
        release.set()
        await task
    (rows,) = await runtime.db.read_now(select(TenantRow.name).order_by(TenantRow.name))
    assert [r[0] for r in rows] == ["alpha", "uncommitted"]


async def test_a_write_through_it_never_lands(runtime) -> None:
    """The pollers' path is for reads: on SQLite its connection is query-only (the write is
    refused), elsewhere its transaction is always rolled back."""
    await _tenant(runtime, "alpha")
    if runtime.db.dialect.name == "sqlite":
        with pytest.raises(DBAPIError, match=r"readonly|read-only|query_only"):
            await runtime.db.read_now(text("DELETE FROM tenants RETURNING id"))
    else:
        await runtime.db.read_now(text("DELETE FROM tenants RETURNING id"))
    async with runtime.db.read_session() as s:
        assert (await s.execute(select(func.count()).select_from(TenantRow))).scalar() == 1


async def test_read_first_sees_commits_at_once_and_binds_its_parameters(runtime) -> None:
    """The one-statement hot read: a parameterized SELECT answers from the newest commit,
    and a parameter naming no row answers None (scoping lives in the statement)."""
    by_name = select(TenantRow.id).where(TenantRow.name == bindparam("name"))
    assert await runtime.db.read_first(by_name, {"name": "alpha"}) is None
    await _tenant(runtime, "alpha")
    await _tenant(runtime, "beta")
    for _ in range(3):  # repeats reuse the cached compiled statement
        row = await runtime.db.read_first(by_name, {"name": "beta"})
        assert row is not None and row[0] == "t-beta"
    assert await runtime.db.read_first(by_name, {"name": "gamma"}) is None


async def test_read_first_does_not_wait_for_a_writer_and_refuses_writes(runtime) -> None:
    await _tenant(runtime, "alpha")
    by_name = select(TenantRow.id).where(TenantRow.name == bindparam("name"))
    holding, release = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        async with runtime.db.session() as s:
            s.add(TenantRow(id="t-uncommitted", name="uncommitted", display_name="u"))
            await s.flush()
            holding.set()
            await release.wait()

    task = asyncio.create_task(writer())
    await holding.wait()
    try:
        async with asyncio.timeout(5):
            assert await runtime.db.read_first(by_name, {"name": "uncommitted"}) is None
            assert await runtime.db.read_first(by_name, {"name": "alpha"}) is not None
    finally:
        release.set()
        await task
    assert await runtime.db.read_first(by_name, {"name": "uncommitted"}) is not None
    with pytest.raises(TypeError, match="SELECT"):
        await runtime.db.read_first(text("DELETE FROM tenants"), {})


async def test_read_first_answers_what_core_answers_typed_values_included(runtime) -> None:
    """Typed columns and parameters (a UTC datetime, an expanding IN) come back exactly as a
    Core read returns them, on every path ``read_first`` takes."""
    await _tenant(runtime, "alpha")
    await _tenant(runtime, "beta")
    async with runtime.db.read_session() as s:
        created = (
            await s.execute(select(TenantRow.created_at).where(TenantRow.name == "alpha"))
        ).scalar_one()
    typed = select(TenantRow.name, TenantRow.created_at).where(
        TenantRow.created_at == bindparam("at")
    )
    row = await runtime.db.read_first(typed, {"at": created})
    assert row is not None and row.name == "alpha" and row.created_at == created
    assert row.created_at.tzinfo is not None  # the column type's result processing applied
    expanding = select(TenantRow.name).where(TenantRow.name.in_(bindparam("names", expanding=True)))
    row = await runtime.db.read_first(expanding.order_by(TenantRow.name), {"names": ["beta"]})
    assert row is not None and row.name == "beta"
    assert await runtime.db.read_first(expanding, {"names": ["gamma"]}) is None


async def test_read_first_raises_driver_errors_as_core_does_and_recovers(runtime) -> None:
    """A statement the server refuses surfaces as SQLAlchemy's DBAPIError (as through Core),
    and the next read on the hot path answers normally."""
    from sqlalchemy import Integer, cast

    await _tenant(runtime, "alpha")
    by_name = select(TenantRow.id).where(TenantRow.name == bindparam("name"))
    if runtime.db.dialect.name == "postgresql":  # SQLite casts 'abc' to 0 without an error
        with pytest.raises(DBAPIError):
            bad = select(cast(bindparam("x"), Integer).label("n"))
            await runtime.db.read_first(bad, {"x": "abc"})
        with pytest.raises(DBAPIError):  # unlabelled: the Core path
            await runtime.db.read_first(select(cast(bindparam("x"), Integer)), {"x": "abc"})
    row = await runtime.db.read_first(by_name, {"name": "alpha"})
    assert row is not None and row.id == "t-alpha"


async def test_read_first_decodes_json_as_core_does(runtime) -> None:
    """A JSON column (JSONB on PostgreSQL: the hot path's own connections carry the dialect's
    codecs) reads back as the same Python value as through Core."""
    from sqlalchemy import literal

    from gasworks.db.types import JSONType

    doc = select(literal({"a": [1, 2.5, None], "b": "é"}, JSONType).label("doc"))
    row = await runtime.db.read_first(doc, {})
    async with runtime.db.read_session() as s:
        core = (await s.execute(doc)).scalar_one()
    assert row is not None and row.doc == core == {"a": [1, 2.5, None], "b": "é"}
