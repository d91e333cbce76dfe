"""The lease queries use the partial index of running runs (``ix_workflow_runs_running_lease``,
migration 0009_run_indexes) on both dialects; on PostgreSQL in a generic plan too, the plan a
prepared statement settles on (its ``status = 'running'`` is a literal, not a bound value)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from gasworks.db.engine import Database
from gasworks.db.types import utcnow
from gasworks.workflows import leases

INDEX = "ix_workflow_runs_running_lease"


def _plan(conn: Connection, statement: Any) -> str:
    compiled = statement.compile(dialect=conn.dialect)
    sql = str(compiled)
    nulls = [None] * len(compiled.positiontup or ())
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, tuple(nulls)).all()
        return "\n".join(str(r[-1]) for r in rows)
    # a generic plan (what a prepared statement uses after its first executions), with
    # sequential scans priced out: the index must be usable whatever the parameters are
    conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
    conn.exec_driver_sql("SET enable_seqscan = off")
    conn.exec_driver_sql(f"PREPARE lease_q AS {sql}")
    try:
        args = ", ".join(["NULL"] * len(nulls))
        rows = conn.exec_driver_sql(f"EXPLAIN EXECUTE lease_q({args})").all()
        return "\n".join(str(r[0]) for r in rows)
    finally:
        conn.exec_driver_sql("DEALLOCATE lease_q")


async def test_the_sweep_and_the_heartbeat_use_the_partial_index_of_running_runs(
    db_url: str,
) -> None:
    db = Database(db_url)
    try:
        async with db.engine.connect() as conn:
            sweep = await conn.run_sync(_plan, leases.expired_query(utcnow()))
            renew = await conn.run_sync(_plan, leases.renew_statement("own_x", utcnow()))
            await conn.rollback()
        assert INDEX in sweep, sweep
        assert INDEX in renew, renew
    finally:
        await db.dispose()
