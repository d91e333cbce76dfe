"""One process of the crash test: calls served from a budget lease, the first ones written,
the others settled in memory only; then it waits to be killed (SIGKILL)."""

from __future__ import annotations

import asyncio
import json
import sys
from decimal import Decimal

from gasworks.db.engine import Database
from gasworks.db.types import new_id, utcnow
from gasworks.llm.budgets.ledger import Ledger, LedgerEntry
from gasworks.llm.budgets.limits import BudgetService, LeasePolicy

ESTIMATE = Decimal("0.01")
ACTUAL = Decimal("0.004")
#: no background write or lease check before the kill
POLICY = LeasePolicy(calls=64, min_headroom_calls=100, fraction=0.1, interval=3600, ttl=30)


async def main(url: str, tenant_id: str, written: int, unwritten: int) -> None:
    db = Database(url)
    budgets = BudgetService(db, leases=POLICY)
    ledger = Ledger(db, budgets, flush_interval=3600, background=False)
    ids: dict[str, list[str]] = {"written": [], "unwritten": []}
    for i in range(written + unwritten):
        r = await budgets.reserve(tenant_id, None, ESTIMATE, 100)
        assert r is not None and r.lease is not None
        e = LedgerEntry(
            id=new_id("call"),
            tenant_id=tenant_id,
            model="fake-model",
            provider="fake",
            status="ok",
            created_at=utcnow(),
            output_tokens=40,
            cost=ACTUAL,
        )
        await ledger.record(e, r)
        ids["written" if i < written else "unwritten"].append(e.id)
        if i == written - 1:
            await ledger.flush()
    sys.stdout.write(json.dumps(ids) + "\n")
    sys.stdout.flush()
    await asyncio.sleep(3600)  # killed here


if __name__ == "__main__":
    a = sys.argv
    asyncio.run(main(a[1], a[2], int(a[3]), int(a[4])))
