"""Concurrent calls from several processes through the gateway against one spend limit."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from gasworks.llm.budgets.limits import BudgetOut, BudgetSet, Period, list_budgets, set_budget
from gasworks.llm.guardrail_tables import LedgerRow
from gasworks.llm.runtime import get_registry
from gasworks.testing import FakeOpenAI
from tests.guardrails import _budget_worker as worker
from tests.guardrails.gateway_env import gateway_settings, started

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Race:
    per_call: Decimal
    limit: Decimal
    results: list[str]
    provider_requests: int
    budget: BudgetOut
    ledger_costs: list[Decimal]
    modes: dict[str, float] = field(default_factory=dict)


async def race(db_url: str, home: Path, *, admits: int, per_process: list[int]) -> Race:
    """A tenant limit admitting ``admits`` calls and a half; processes making
    ``per_process`` concurrent calls each (with the GASWORKS_* settings of this process)."""
    from tests.guardrails.test_budgets import tenant

    with FakeOpenAI() as provider:
        settings = gateway_settings(home / "parent", db_url, provider.url, provider.url)
        async with started(settings) as e:
            rt = e.runtime
            ctx = await tenant(rt)
            model = get_registry(rt).resolve("lonely")
            check = e.guardrails.precheck(model, worker.request())
            # the provider reports exactly the reserved maximum: every call costs its estimate
            provider.reply.input_tokens = check.estimate.tokens
            provider.reply.output_tokens = check.max_output
            per_call = check.max_cost
            limit = per_call * admits + per_call / 2
            async with rt.db.session() as s:
                await set_budget(s, ctx, BudgetSet(period=Period.DAY, cost_limit=limit))
            child_env = os.environ | {"PYTHONPATH": str(ROOT)}

            def spawn(i: int, n: int) -> subprocess.Popen[str]:
                args = [str(home / f"w{i}"), settings.resolved_database_url, provider.url]
                return subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests.guardrails._budget_worker",
                        *args,
                        ctx.tenant_id,
                        ctx.api_key_id or "",
                        str(n),
                    ],
                    cwd=ROOT,
                    env=child_env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )

            procs = [spawn(i, n) for i, n in enumerate(per_process)]
            results: list[str] = []
            modes = {"lease": 0.0, "exact": 0.0}
            for p in procs:
                out, err = await asyncio.to_thread(p.communicate, timeout=300)
                assert p.returncode == 0, err
                # the domains' start-up log lines come first; the report is the last line
                report = json.loads(out.strip().splitlines()[-1])
                results += report["results"]
                for m in modes:
                    modes[m] += report["modes"][m]
            async with rt.db.session() as s:
                (b,) = await list_budgets(s, ctx)
                costs = list((await s.execute(select(LedgerRow.cost))).scalars().all())
    return Race(per_call, limit, results, len(provider.requests), b, costs, modes)
