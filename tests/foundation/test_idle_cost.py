"""Idle cost: the database statements one idle process sends per second, per background loop,
with the default settings (docs/operations.md, "Production deployment", quotes the figures).

Every statement of every engine of the process is counted (a SQLAlchemy event listener on
``Engine``) over a fixed window; the bounds are upper bounds (a slow machine sends fewer)."""

from __future__ import annotations

import asyncio
import collections
import re
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from gasworks.wiring import build_runtime

WINDOW = 5.0
#: queries per second at the default intervals, by table (what each loop reads or writes)
BOUNDS = {
    # prompt cache invalidation poll: every 0.2 s on SQLite; on PostgreSQL the process
    # LISTENs for the trigger's notices and polls every 1 s when idle (the lost-notice bound)
    "prompt_invalidations": 5.0 + 0.5,
    "llm_breakers": 1.0 + 0.5,  # breaker sync, every 1 s (guardrails maintenance)
    "llm_breaker_buckets": 1.0 + 0.5,
    "leader_leases": 0.3 + 0.5,  # leader-lease heartbeat, every 10/3 s
    "workflow_runs": 0.1 + 0.5,  # interrupted-run sweep (leader only), every 10 s
    "llm_budget_reservations": 1 / 15 + 0.5,  # budget sweep (leader only), every 15 s
    "model_overlays": 1 / 15 + 0.5,  # model registry refresh, every 15 s
    # documents: each in-process ingestion worker's claim query backs off to one per
    # GASWORKS_DOCUMENTS_POLL_MAX_SECONDS (1 s) when idle; 2 workers by default
    "jobs": 2.0 + 0.5,
    "documents": 0.2 + 0.5,  # documents-metrics (status gauges), every 5 s
}


async def test_idle_queries_per_second_are_bounded(settings: Any) -> None:
    rt = build_runtime(settings.model_copy(update={"auth_cache_ttl_seconds": 30.0}))
    await rt.start(migrate=False)
    seen: collections.Counter[str] = collections.Counter()

    def on_sql(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        verb = statement.split(None, 1)[0].upper()
        if verb in {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "PRAGMA"}:
            return
        m = re.search(r"\b(?:FROM|UPDATE|INTO)\s+\"?(\w+)", statement)
        seen[m.group(1) if m else statement[:40]] += 1

    event.listen(Engine, "before_cursor_execute", on_sql)
    try:
        await asyncio.sleep(WINDOW)  # the measurement window itself
    finally:
        event.remove(Engine, "before_cursor_execute", on_sql)
        await rt.stop()
    rates = {table: n / WINDOW for table, n in seen.items()}
    postgres = rt.db.dialect.name == "postgresql"
    bounds = BOUNDS | ({"prompt_invalidations": 1.0 + 0.5} if postgres else {})
    unexpected = set(rates) - set(bounds)
    assert not unexpected, f"an idle loop queries tables nobody budgeted for: {rates}"
    over = {t: r for t, r in rates.items() if r > bounds[t]}
    assert not over, rates
    # per idle process: ≈ 3.0 queries/s for the platform loops on PostgreSQL (≈ 7.0 on SQLite,
    # whose prompt poll has no notices), ≈ 2.2 for the in-process ingestion workers
    assert sum(rates.values()) <= (6.5 if postgres else 11.0), rates
