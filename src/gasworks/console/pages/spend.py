"""Spend: budgets (set, headroom), usage by model/key/workflow/day, the ledger, CSV export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse

from gasworks.console.charts import bars, day_series
from gasworks.console.web import (
    SEARCH_WINDOW,
    CallerDep,
    ConsoleRoute,
    form_data,
    listing,
    parse,
    render,
)
from gasworks.errors import ValidationFailed
from gasworks.llm.budgets import ledger
from gasworks.llm.budgets.ledger import GroupBy
from gasworks.llm.budgets.limits import BudgetOut, BudgetSet
from gasworks.llm.guardrails_runtime import guardrails_admin
from gasworks.tenancy.context import Role
from gasworks.tenancy.service import tenancy_service

router = APIRouter(route_class=ConsoleRoute)

#: rows of the ledger the page (and the CSV) reads: the REST route's largest page
LEDGER_ROWS = 1000


def _date(raw: str | None, default: date | None) -> date | None:
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed(
            f"Not a date (YYYY-MM-DD): {raw!r}.", details={"field": "date"}
        ) from None


def headroom(b: BudgetOut) -> dict[str, Any]:
    """How much of the limit is used (spent + reserved), for the headroom bar."""
    if b.cost_limit is not None and b.cost_limit > 0:
        used = b.spent_cost + b.reserved_cost
        pct = float(min(Decimal(1), used / b.cost_limit)) * 100
        return {"pct": pct, "left": f"${max(Decimal(0), b.cost_limit - used):,.4f} left"}
    if b.token_limit:
        used_t = b.spent_tokens + b.reserved_tokens
        pct = min(1.0, used_t / b.token_limit) * 100
        return {"pct": pct, "left": f"{max(0, b.token_limit - used_t):,} tokens left"}
    return {"pct": 100.0, "left": "limit 0: every call refused"}


async def _page(c: CallerDep, message: str | None = None) -> HTMLResponse:
    ctx, rt, q = c.ctx, c.runtime, c.request.query_params
    today = datetime.now(UTC).date()
    since = _date(q.get("since"), date(today.year, today.month, 1))
    until = _date(q.get("until"), today)
    model = q.get("model") or None
    admin = guardrails_admin(rt)
    budgets = await admin.list_budgets(ctx, page=SEARCH_WINDOW)
    keys = (
        await tenancy_service(rt).list_api_keys(ctx, SEARCH_WINDOW)
        if ctx.is_platform_admin or ctx.role.allows(Role.ADMIN)
        else []
    )
    reports = {
        g: await admin.usage(ctx, group_by=[g], since=since, until=until, model=model)
        for g in (GroupBy.DAY, GroupBy.MODEL, GroupBy.API_KEY, GroupBy.WORKFLOW)
    }
    calls = await admin.calls(ctx, limit=LEDGER_ROWS, model=model)
    key_names = {k.id: f"{k.name} ({k.prefix})" for k in keys}
    filters = {"since": str(since or ""), "until": str(until or ""), "model": model or ""}
    ledger_rows = listing(
        calls,
        c.request,
        lambda r: (r.model, r.status, r.api_key_id, r.workflow_id, r.error_code, r.provider),
        extra=filters,
    )
    money_label = lambda v: f"{v:,.4f}"  # noqa: E731
    return render(
        c,
        "spend.html",
        active="spend",
        title="Spend",
        message=message,
        push_url="/console/spend",
        budgets=[(b, headroom(b)) for b in budgets],
        people=await c.people(b.updated_by for b in budgets),
        keys=keys,
        key_names=key_names,
        since=since,
        until=until,
        model=model,
        total=reports[GroupBy.DAY].total,
        day_chart=day_series(
            since or today,
            until or today,
            reports[GroupBy.DAY].rows,
            [("Spend $", lambda r: float(r.cost)), ("Calls", lambda r: r.calls)],
            second_scale=True,
        )
        if since and until and (until - since).days <= 366
        else None,
        by_model=bars(reports[GroupBy.MODEL].rows, "model", lambda r: float(r.cost), money_label),
        by_key=[
            {**b, "name": key_names.get(b["name"], b["name"])}
            for b in bars(
                reports[GroupBy.API_KEY].rows, "api_key", lambda r: float(r.cost), money_label
            )
        ],
        by_workflow=bars(
            reports[GroupBy.WORKFLOW].rows, "workflow", lambda r: float(r.cost), money_label
        ),
        ledger=ledger_rows,
        filters=filters,
    )


@router.get("/spend", response_class=HTMLResponse)
async def spend_page(c: CallerDep) -> HTMLResponse:
    return await _page(c)


@router.post("/spend/budgets", response_class=HTMLResponse)
async def put_budget(c: CallerDep) -> HTMLResponse:
    form = await form_data(c.request)
    body = parse(
        BudgetSet,
        {
            "period": form.get("period", ""),
            "apiKeyId": form.get("apiKeyId"),
            "costLimit": form.get("costLimit"),
            # the API's Count is a strict integer: a form sends text
            "tokenLimit": int(t) if (t := form.get("tokenLimit", "")).isdigit() else t or None,
        },
    )
    out = await guardrails_admin(c.runtime).set_budget(c.ctx, body)
    scope = f"key {body.api_key_id}" if body.api_key_id else "the tenant"
    said = "removed" if out is None else "set"
    return await _page(c, f"The {body.period.adjective} limit of {scope} is {said}.")


@router.get("/spend/ledger.csv")
async def ledger_csv(c: CallerDep) -> Response:
    """The ledger rows the page shows (same filters), as CSV."""
    q = c.request.query_params
    calls = await guardrails_admin(c.runtime).calls(
        c.ctx, limit=LEDGER_ROWS, model=q.get("model") or None
    )
    buf = io.StringIO()
    fields = list(ledger.LedgerCallOut.model_fields)
    w = csv.writer(buf)
    w.writerow(fields)
    for row in calls:
        d = row.model_dump()
        w.writerow(["" if d[f] is None else d[f] for f in fields])
    return Response(
        buf.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="gasworks-ledger.csv"'},
    )
