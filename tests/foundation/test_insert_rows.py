"""``Database.insert_rows``: the group commit of run persistence (on a SQLite file, the stdlib
driver on a worker thread; elsewhere one Core transaction)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Table, select
from sqlalchemy.exc import IntegrityError

from gasworks.llm.guardrail_tables import LedgerRow
from gasworks.tenancy.tables import TenantRow
from gasworks.workflows.tables import WorkflowRow, WorkflowRunEventRow, WorkflowRunRow

RUNS: Table = WorkflowRunRow.__table__  # type: ignore[assignment]
#: a Boolean column (the ledger's ``streamed``)
LEDGER_BOOLEAN = LedgerRow.__table__.c.streamed.type  # type: ignore[attr-defined]
EVENTS: Table = WorkflowRunEventRow.__table__  # type: ignore[assignment]


async def _workflow(runtime: Any) -> None:
    async with runtime.db.session() as s:
        s.add(TenantRow(id="t-a", name="a", display_name="a"))
        await s.flush()
        s.add(WorkflowRow(id="wf-a", tenant_id="t-a", slug="a", name="a", owner_id="p"))


def _run(run_id: str, **over: Any) -> dict[str, Any]:
    at = datetime(2026, 12, 3, 6, 30, 1, 250_000, tzinfo=UTC)
    values: dict[str, Any] = {
        "id": run_id,
        "tenant_id": "t-a",
        "workflow_id": "wf-a",
        "version": 1,
        "principal_id": "p",
        "conversation_id": "c",
        "status": "succeeded",
        "inputs": {"message": "héllo", "n": [1, 2.5, None]},
        "output": "ok",
        "error": None,
        "node_timings": [{"nodeId": "a", "durationMs": 0.004}],
        "steps": 1,
        "tokens": 7,
        "cost": Decimal("0.000123456"),
        "duration_ms": 0.037,
        "started_at": at,
        "finished_at": at,
        "owner_id": None,
        "lease_expires_at": None,
        "prompt_version_id": None,
    }
    return values | over


def _event(run_id: str, seq: int) -> dict[str, Any]:
    return {"run_id": run_id, "seq": seq, "tenant_id": "t-a", "type": "x", "data": {"i": seq}}


async def test_rows_read_back_as_the_orm_wrote_them(runtime: Any) -> None:
    """Typed values (JSON, a JSON null, UTC datetimes, money) read back exactly as rows the
    ORM writes: the batch path binds what Core would bind."""
    await _workflow(runtime)
    runs = [_run("r1"), _run("r2", output=None)]
    await runtime.db.insert_rows([(RUNS, runs), (EVENTS, [_event("r1", 1), _event("r1", 2)])])
    async with runtime.db.session() as s:
        s.add(WorkflowRunRow(**_run("r3")))
    async with runtime.db.read_session() as s:
        rows = {r.id: r for r in (await s.execute(select(WorkflowRunRow))).scalars()}
        events = (await s.execute(select(WorkflowRunEventRow.seq, WorkflowRunEventRow.data))).all()
    fields = [c.key for c in RUNS.columns if c.key != "id"]
    assert [getattr(rows["r1"], f) for f in fields] == [getattr(rows["r3"], f) for f in fields]
    assert rows["r1"].cost == Decimal("0.000123456") and rows["r1"].started_at.tzinfo is not None
    assert rows["r2"].output is None
    assert sorted(events) == [(1, {"i": 1}), (2, {"i": 2})]


async def test_a_failed_batch_writes_nothing_and_the_next_one_is_written(runtime: Any) -> None:
    """One transaction: a batch whose second table violates a constraint leaves no row of the
    first behind, surfaces as SQLAlchemy's IntegrityError, and the next batch is written."""
    await _workflow(runtime)
    await runtime.db.insert_rows([(RUNS, [_run("r1")])])
    with pytest.raises(IntegrityError):
        await runtime.db.insert_rows(
            [(RUNS, [_run("r2")]), (EVENTS, [_event("r1", 1), _event("r1", 1)])]
        )
    with pytest.raises(IntegrityError):  # a foreign key (the run's workflow) is enforced
        await runtime.db.insert_rows([(RUNS, [_run("r4", workflow_id="missing")])])
    await runtime.db.insert_rows([(RUNS, [_run("r3")]), (EVENTS, [_event("r3", 1)])])
    async with runtime.db.read_session() as s:
        ids = sorted((await s.execute(select(WorkflowRunRow.id))).scalars())
        seqs = (await s.execute(select(WorkflowRunEventRow.run_id))).scalars().all()
    assert ids == ["r1", "r3"] and seqs == ["r3"]


async def test_rows_missing_a_column_go_through_core_with_its_defaults(runtime: Any) -> None:
    """A table whose rows leave a column out is written through Core, defaults applied."""
    await _workflow(runtime)
    values = _run("r1")
    del values["steps"]  # default 0
    await runtime.db.insert_rows([(RUNS, [values])])
    async with runtime.db.read_session() as s:
        steps = (await s.execute(select(WorkflowRunRow.steps))).scalar_one()
    assert steps == 0


# --- the batch path's faster conversions equal Core's (db/batch.py) ------------------------

JSON_VALUES: list[Any] = [
    None,
    "ok",
    'héllo ✓ \u2028 "quoted" \\ \n',
    0,
    -(2**63),
    2**64 + 1,  # beyond orjson: the stdlib serialises it
    1.5,
    1e-7,
    1e16,
    True,
    [],
    {},
    {"nodeId": "a", "durationMs": 0.004, "nested": [1, 2.5, None, {"x": [True, False]}]},
    {1: "int key", "k": 2},  # a non-string key: the stdlib's conversion
    ("a", 1),
]


def _core_and_fast(type_: Any) -> tuple[Any, Any]:
    from sqlalchemy.dialects import sqlite

    from gasworks.db.batch import fast_processor

    dialect = sqlite.dialect()
    core = type_.dialect_impl(dialect).bind_processor(dialect)
    fast = fast_processor(type_, dialect)
    assert core is not None and fast is not None and fast is not core
    return core, fast


@pytest.mark.parametrize("value", JSON_VALUES)
def test_json_text_reads_back_as_cores_does(value: Any) -> None:
    import json

    core, fast = _core_and_fast(RUNS.c.inputs.type)
    assert json.loads(fast(value)) == json.loads(core(value))


@pytest.mark.parametrize(
    "value",
    [object(), Decimal("1.5"), datetime(2026, 1, 1, tzinfo=UTC), {"nested": {1.5j}}],
)
def test_json_refuses_what_core_refuses(value: Any) -> None:
    core, fast = _core_and_fast(RUNS.c.inputs.type)
    with pytest.raises(TypeError) as core_error:
        core(value)
    with pytest.raises(TypeError) as fast_error:
        fast(value)
    assert str(fast_error.value) == str(core_error.value)


@pytest.mark.parametrize(
    "value",
    [
        None,
        datetime(2026, 12, 3, 6, 30, 1, 250_000, tzinfo=UTC),
        datetime(2026, 12, 3, 6, 30, 1, tzinfo=UTC),  # no microseconds: still six digits
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC),  # before the epoch
        datetime(2026, 6, 1, 23, 59, 59, 999_999, tzinfo=ZoneInfo("Europe/Paris")),
        datetime(2026, 6, 1, 23, 59, 59, 1, tzinfo=timezone(timedelta(0))),  # not ``UTC``
    ],
)
def test_utc_datetime_text_is_cores(value: datetime | None) -> None:
    core, fast = _core_and_fast(RUNS.c.started_at.type)
    assert fast(value) == core(value)


def test_utc_datetime_text_is_cores_across_many_seconds() -> None:
    """The text of a second is cached (bounded): values in one second, in seconds the cache
    dropped, and each second again are all Core's text."""
    core, fast = _core_and_fast(RUNS.c.started_at.type)
    start = datetime(2026, 12, 31, 23, 58, 30, tzinfo=UTC)
    values = [start + timedelta(seconds=i // 3, microseconds=i * 7_919) for i in range(600)]
    assert [fast(v) for v in values + values[::-1]] == [core(v) for v in values + values[::-1]]


@pytest.mark.parametrize("value", [True, False, None, 1, 0, 1.0, Decimal(0)])
def test_boolean_values_are_cores(value: Any) -> None:
    core, fast = _core_and_fast(LEDGER_BOOLEAN)
    assert fast(value) == core(value) and type(fast(value)) is type(core(value))


@pytest.mark.parametrize("value", [2, -1, "yes", 0.5, [True]])
def test_boolean_refuses_what_core_refuses(value: Any) -> None:
    core, fast = _core_and_fast(LEDGER_BOOLEAN)
    with pytest.raises((TypeError, ValueError)) as core_error:
        core(value)
    with pytest.raises(core_error.type) as fast_error:
        fast(value)
    assert str(fast_error.value) == str(core_error.value)


def test_a_naive_datetime_is_refused_as_core_refuses_it() -> None:
    core, fast = _core_and_fast(RUNS.c.started_at.type)
    naive = datetime(2026, 12, 3, 6, 30)
    with pytest.raises(ValueError, match="naive"):
        core(naive)
    with pytest.raises(ValueError, match="naive"):
        fast(naive)


async def test_run_records_are_written_as_their_column_values(runtime: Any) -> None:
    """The engine's run record goes to the batch as it is (no dict per run): it is written
    exactly as the same values given as a mapping, a None column included (a JSON null, a
    SQL NULL), in a batch with rows of another table, on both dialects."""
    from gasworks.workflows.engine import RunRecord

    await _workflow(runtime)
    record = RunRecord(**_run("rec", error=None, output=None))
    await runtime.db.insert_rows([(RUNS, [record]), (EVENTS, [_event("rec", 1)])])
    await runtime.db.insert_rows([(RUNS, [_run("map", error=None, output=None)])])
    async with runtime.db.read_session() as s:
        rows = {r.id: r for r in (await s.execute(select(WorkflowRunRow))).scalars()}
    fields = [c.key for c in RUNS.columns if c.key != "id"]
    assert [getattr(rows["rec"], f) for f in fields] == [getattr(rows["map"], f) for f in fields]
    assert rows["rec"].error is None and rows["rec"].lease_expires_at is None


def test_the_run_record_names_every_run_column() -> None:
    """``RunRecord.row_fields`` is the ``workflow_runs`` table's columns: a column added to
    one and not the other would leave the fast INSERT path (or fail the ORM row)."""
    from gasworks.workflows.engine import RunRecord

    assert set(RunRecord.row_fields) == {c.key for c in RUNS.columns}


def test_prepared_params_of_records_and_mappings_are_the_processors_values() -> None:
    """A record's parameters equal its mapping's, and a None is bound as its column's
    processor binds it (taken once per column, not called per row)."""
    from sqlalchemy.dialects import sqlite

    from gasworks.db.batch import PreparedInsert, fast_processor
    from gasworks.workflows.engine import RunRecord

    dialect = sqlite.dialect()
    keys = RunRecord.row_fields
    prepared = PreparedInsert.of(RUNS, keys, dialect)
    assert prepared is not None
    values = _run("r", output=None, error=None, finished_at=None)
    by_record = prepared.params([RunRecord(**values)])
    by_mapping = prepared.params([values])
    assert by_record == by_mapping
    order = prepared._order
    expected = []
    for key in order:
        proc = fast_processor(RUNS.c[key].type, dialect)
        expected.append(values[key] if proc is None else proc(values[key]))
    assert by_mapping == [tuple(expected)]


async def test_the_event_loop_never_waits_for_the_write_lock(runtime: Any) -> None:
    """On a SQLite file a batch is written on the event loop's own thread only when nothing
    waits for the writer thread and the write lock is free at once. While another connection
    holds the lock, the batch waits on the writer thread — the loop keeps running — and is
    written once the lock is released; then the loop's thread writes again."""
    db = runtime.db
    if db.dialect.name != "sqlite" or db._write_engine_now() is None:
        pytest.skip("the writer thread and its connection exist on a SQLite file only")
    await _workflow(runtime)
    await db.insert_rows([(RUNS, [_run("r1")])])  # the writer thread opens its connection
    other = sqlite3.connect(db.dialect.path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")
        pending = asyncio.create_task(db.insert_rows([(RUNS, [_run("r2")])]))
        turns = 0
        for _ in range(10):
            await asyncio.sleep(0.01)
            turns += 1
        assert turns == 10 and not pending.done()
        other.execute("COMMIT")
        await pending
    finally:
        other.close()

    async def not_the_writer(fn: Any) -> None:
        raise AssertionError("written on the writer thread")

    db._on_writer = not_the_writer  # the lock is free and the writer idle: the loop writes
    try:
        await db.insert_rows([(RUNS, [_run("r3")])])
    finally:
        del db._on_writer
    async with db.read_session() as s:
        ids = sorted((await s.execute(select(WorkflowRunRow.id))).scalars())
    assert ids == ["r1", "r2", "r3"]


async def test_batches_written_on_the_loop_leave_checkpoints_to_the_writer_thread(
    runtime: Any,
) -> None:
    """The event loop's commits never run a WAL checkpoint (it syncs the disk): automatic
    checkpoints are off for them, and one batch in ``_HERE_EVERY`` goes to the writer thread,
    whose commit checkpoints when one is due. So under a stream of batches written on the
    loop the log stays bounded, and the loop's connection keeps its own setting."""
    import os

    from gasworks.db import engine as engine_module

    db = runtime.db
    if db.dialect.name != "sqlite" or db._write_engine_now() is None:
        pytest.skip("the writer thread and its connection exist on a SQLite file only")
    await _workflow(runtime)
    await db.insert_rows([(RUNS, [_run("first")])])  # the writer thread opens its connection
    raw = db._write_raw
    assert raw is not None
    raw.execute("PRAGMA wal_autocheckpoint=4")  # a checkpoint due every few pages
    db._write_autocheckpoint = 4
    on_writer = db._on_writer
    handed = 0

    async def counted(fn: Any) -> Any:
        nonlocal handed
        handed += 1
        return await on_writer(fn)

    db._on_writer = counted
    try:
        batches = 64
        for b in range(batches):
            await db.insert_rows([(RUNS, [_run(f"r{b}-{i}") for i in range(20)])])
    finally:
        del db._on_writer
    assert handed == batches // engine_module._HERE_EVERY
    assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 4
    wal = f"{db.dialect.path}-wal"
    # 1,280 rows went through (~2.2 MB of log when the loop alone commits: never checkpointed)
    assert os.path.getsize(wal) < 1024 * 1024
    async with db.read_session() as s:
        count = len((await s.execute(select(WorkflowRunRow.id))).scalars().all())
    assert count == 1 + batches * 20
