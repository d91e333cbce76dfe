"""``Database.write_batch``: a background writer's transaction (one hand-off on a SQLite file)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gasworks.db.engine import OnLoop
from gasworks.tenancy.tables import TenantRow


def _add(s: Session, name: str) -> None:
    s.execute(TenantRow.__table__.insert().values(id=f"t-{name}", name=name, display_name=name))


async def _names(runtime: Any) -> list[str]:
    async with runtime.db.read_session() as s:
        return list((await s.scalars(select(TenantRow.name).order_by(TenantRow.name))).all())


async def test_commits_what_it_returns_and_nothing_when_it_raises(runtime) -> None:
    def ok(s: Session, on_loop: OnLoop) -> int:
        _add(s, "alpha")
        _add(s, "beta")
        return 2

    assert await runtime.db.write_batch(ok) == 2
    assert await _names(runtime) == ["alpha", "beta"]

    def fails(s: Session, on_loop: OnLoop) -> None:
        _add(s, "gamma")
        raise ValueError("halfway")

    with pytest.raises(ValueError, match="halfway"):
        await runtime.db.write_batch(fails)
    assert await _names(runtime) == ["alpha", "beta"]  # no partial write


async def test_on_loop_runs_on_the_event_loops_thread(runtime) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def batch(s: Session, on_loop: OnLoop) -> str:
        _add(s, "alpha")
        return on_loop(lambda: (seen.append(threading.get_ident()), "decided")[1])

    assert await runtime.db.write_batch(batch) == "decided"
    assert seen == [loop_thread]
    assert await _names(runtime) == ["alpha"]


async def test_a_cancelled_caller_learns_the_outcome_before_the_cancel(runtime) -> None:
    """Cancelling the caller does not cut the transaction short: the caller still gets the
    result of the committed batch, and the cancellation arrives at its next await."""
    started = threading.Event()
    go_on = threading.Event()
    outcome: list[str] = []

    def batch(s: Session, on_loop: OnLoop) -> str:
        _add(s, "alpha")
        started.set()
        go_on.wait(5)  # on SQLite: the writer thread; elsewhere: the loop (not cancellable)
        return "written"

    async def caller() -> None:
        outcome.append(await runtime.db.write_batch(batch))
        await asyncio.sleep(0)  # the next await: the cancellation lands here
        outcome.append("not reached")

    if runtime.db.dialect.name != "sqlite":
        pytest.skip("the batch runs in the event loop here: there is no await to cancel at")
    task = asyncio.create_task(caller())
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    await asyncio.sleep(0.05)
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert outcome == ["written"]
    assert await _names(runtime) == ["alpha"]


def _ledger_rows(tenant: str, n: int, start: int = 0, status: str = "ok") -> list[dict[str, Any]]:
    from datetime import UTC, datetime
    from decimal import Decimal

    from gasworks.llm.budgets.ledger import LedgerEntry

    when = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    return [
        LedgerEntry(
            id=f"call_{i:06d}",
            tenant_id=tenant,
            model="demo",
            provider="demo",
            status=status,
            created_at=when,
            input_tokens=i,
            cost=Decimal("0.000123"),
            served={"documentId": f"doc-{i}"} if i % 2 else None,
        ).row()
        for i in range(start, start + n)
    ]


async def test_insert_in_writes_many_rows_and_skips_existing_keys(runtime) -> None:
    """``insert_in``: more rows than one statement takes (the SQLite writer splits them by
    the driver's parameter limit), the values as Core writes them, and ``skip_existing``
    leaving a row whose key exists as it was."""
    from gasworks.llm.guardrail_tables import LedgerRow

    table = LedgerRow.__table__
    db = runtime.db

    def first(s: Session, on_loop: OnLoop) -> None:
        _add(s, "acme")
        db.insert_in(s, table, _ledger_rows("t-acme", 1203), skip_existing=True)

    await db.write_batch(first)

    def again(s: Session, on_loop: OnLoop) -> None:  # call_001202 exists: skipped
        db.insert_in(
            s, table, _ledger_rows("t-acme", 3, start=1202, status="x"), skip_existing=True
        )

    await db.write_batch(again)
    async with db.read_session() as s:
        rows = (await s.execute(select(LedgerRow).order_by(LedgerRow.id))).scalars().all()
    assert len(rows) == 1205
    assert [r.status for r in rows[1201:]] == ["ok", "ok", "x", "x"]
    r = rows[7]
    assert (r.id, r.input_tokens, str(r.cost), r.served, r.day) == (
        "call_000007",
        7,
        "0.000123",
        {"documentId": "doc-7"},
        "2026-12-03",
    )
    assert rows[8].served is None


async def test_ledger_entries_are_written_as_records_with_the_values_of_their_row(
    runtime,
) -> None:
    """A ``LedgerEntry`` is a record of ``db/batch.py`` (no dict built per ledger row, issue
    #19): it names every ledger column, and the entries written as they are read back equal
    to the same entries written as their ``row()`` mappings — ``day`` the UTC day of a
    ``created_at`` given in another zone too."""
    from datetime import UTC, datetime, timedelta, timezone
    from decimal import Decimal

    from gasworks.db.batch import as_mapping
    from gasworks.llm.budgets.ledger import LedgerEntry
    from gasworks.llm.guardrail_tables import LedgerRow

    table = LedgerRow.__table__
    assert set(LedgerEntry.row_fields) == {c.key for c in table.columns}
    late = datetime(2026, 12, 3, 23, 30, tzinfo=timezone(timedelta(hours=-5)))  # 04:30 UTC
    entries = [
        LedgerEntry(
            id=f"call_{tag}_{i}",
            tenant_id="t-acme",
            model="demo",
            provider="demo",
            status="ok" if i else "PROVIDER_TIMEOUT",
            created_at=late if i == 2 else datetime(2026, 12, 3, 10, 0, i, 7, tzinfo=UTC),
            input_tokens=i,
            cost=Decimal("0.000123") * i,
            latency_ms=1.5,
            ttft_ms=None if i else 0.25,
            estimated=bool(i % 2),
            error_code=None if i else "PROVIDER_TIMEOUT",
            served={"documentId": f"doc-{i}"} if i == 1 else None,
            attempt=i + 1,
        )
        for tag in ("rec", "map")
        for i in range(3)
    ]
    for entry in entries:
        assert dict(as_mapping(entry)) == entry.row()
    assert entries[2].day == "2026-12-04"

    def tenant(s: Session, on_loop: OnLoop) -> None:
        _add(s, "acme")

    await runtime.db.write_batch(tenant)
    await runtime.db.insert_rows([(table, entries[:3])], skip_existing=True)
    await runtime.db.insert_rows([(table, [e.row() for e in entries[3:]])], skip_existing=True)
    async with runtime.db.read_session() as s:
        got = {r.id: r for r in (await s.execute(select(LedgerRow))).scalars().all()}
    cols = [c.key for c in table.columns if c.key != "id"]
    for i in range(3):
        rec, via_map = got[f"call_rec_{i}"], got[f"call_map_{i}"]
        assert [getattr(rec, c) for c in cols] == [getattr(via_map, c) for c in cols]
    assert got["call_rec_2"].day == "2026-12-04"
    assert got["call_rec_1"].served == {"documentId": "doc-1"}
