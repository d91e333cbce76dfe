"""Overview: health, today's and this month's traffic and spend, open breakers, dead letters."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from gasworks.background import PeriodicTask
from gasworks.console.charts import day_series, time_series
from gasworks.console.pages.documents import IN_FLIGHT
from gasworks.console.web import CallerDep, ConsoleRoute, render
from gasworks.db.leader import Leadership
from gasworks.db.paging import Page
from gasworks.documents.domain import SERVICE as DOCUMENTS
from gasworks.documents.domain import Documents
from gasworks.llm.budgets.ledger import GroupBy
from gasworks.llm.guardrails_runtime import (
    MAINTENANCE,
    Maintenance,
    get_guardrails,
    guardrails_admin,
)
from gasworks.llm.runtime import get_registry, get_services
from gasworks.prompts.service import prompt_service
from gasworks.runtime import LEADERSHIP, Runtime
from gasworks.workflows import workflow_engine

router = APIRouter(route_class=ConsoleRoute)

HEALTHY = {"closed", "disabled"}


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))]


def background_tasks(rt: Runtime) -> list[PeriodicTask]:
    """This process's maintenance loops, each asked of its owner (a new loop is added here).
    A loop that is off (interval 0) or not started yet (the ledger writer before the first
    call) is absent."""
    maintenance = rt.services.get(MAINTENANCE)
    documents = rt.services.get(DOCUMENTS)
    leadership = rt.services.get(LEADERSHIP)
    tasks = [
        leadership.task if isinstance(leadership, Leadership) else None,
        get_services(rt).refresher,
        maintenance.task if isinstance(maintenance, Maintenance) else None,
        get_guardrails(rt).ledger.task,
        prompt_service(rt).resolver.poller,
        prompt_service(rt).retention_task,
        workflow_engine(rt).maintenance_task,
        *(documents.tasks if isinstance(documents, Documents) else []),
    ]
    return [t for t in tasks if t is not None]


@router.get("", response_class=HTMLResponse)
async def overview(c: CallerDep) -> HTMLResponse:
    ctx, rt = c.ctx, c.runtime
    today = datetime.now(UTC).date()
    month_start = date(today.year, today.month, 1)
    admin = guardrails_admin(rt)
    db_ok = await rt.db.ping()
    registry = get_registry(rt)
    entries = registry.entries(include_disabled=True)
    states = await admin.list_breakers(ctx)
    provider_of = {e.id: e.provider.value for e in entries}
    providers: dict[str, dict[str, Any]] = {}
    for b in states:
        prov = provider_of.get(b.breaker.split("@", 1)[0], "?")
        p = providers.setdefault(prov, {"name": prov, "models": 0, "open": 0})
        p["models"] += 1
        p["open"] += b.state.value not in HEALTHY
    month = await admin.usage(ctx, group_by=[GroupBy.DAY], since=month_start)
    calls = await admin.calls(ctx, limit=500)
    day = next((r for r in month.rows if r.group.get("day") == today.isoformat()), None)
    todays = [cl for cl in calls if cl.created_at.date() == today]
    dead = await prompt_service(rt).dead_letters(ctx, "pending", Page(500, 0))
    documents = rt.services.get(DOCUMENTS)
    ingestion = await documents.service.ingestion(ctx) if isinstance(documents, Documents) else None
    return render(
        c,
        "overview.html",
        active="overview",
        title="Overview",
        db_ok=db_ok,
        dialect=rt.db.dialect.name,
        providers=sorted(providers.values(), key=lambda p: p["name"]),
        open_breakers=[b for b in states if b.state.value not in HEALTHY],
        today=day,
        day=today.isoformat(),
        month=month.total,
        p50=_percentile([cl.latency_ms for cl in todays], 0.5),
        p95=_percentile([cl.latency_ms for cl in todays], 0.95),
        dead_letters=len(dead),
        ingestion=ingestion,
        ingesting=sum(ingestion.statuses.get(s, 0) for s in IN_FLIGHT) if ingestion else 0,
        in_flight=IN_FLIGHT,
        tasks=background_tasks(rt),
        calls_chart=day_series(
            month_start,
            today,
            month.rows,
            [("Calls", lambda r: r.calls), ("Errors", lambda r: r.failed_calls)],
        ),
        cost_chart=day_series(
            month_start, today, month.rows, [("Spend", lambda r: float(r.cost or Decimal(0)))]
        ),
        latency_chart=time_series(
            [cl.created_at for cl in reversed(calls[:200])],
            [("Latency ms", [cl.latency_ms for cl in reversed(calls[:200])])],
        ),
    )
