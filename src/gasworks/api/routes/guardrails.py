"""Breakers, budgets and usage: ``/api/breakers``, ``/api/budgets``, ``/api/usage``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response, status

from gasworks.api.deps import ContextDep, RuntimeDep, SessionDep
from gasworks.api.paging import PageDep
from gasworks.api.routing import router as guarded_router
from gasworks.bounds import IsoDate
from gasworks.llm import ledger
from gasworks.llm.breaker import admin as breakers
from gasworks.llm.budgets import BudgetOut, BudgetSet, list_budgets, set_budget
from gasworks.llm.guardrails_runtime import flush_ledger, get_guardrails
from gasworks.llm.ledger import GroupBy, UsageReport
from gasworks.llm.runtime import get_registry

router = guarded_router(prefix="/api", tags=["guardrails"])


# Breakers, budgets and usage come from gasworks.llm, whose functions take no page yet: the
# page is cut from their (small, per-tenant) result here.


@router.get("/breakers", summary="Every circuit breaker with its state and window statistics")
async def list_breakers(
    ctx: ContextDep, rt: RuntimeDep, page: PageDep
) -> list[breakers.BreakerOut]:
    known = [e.id for e in get_registry(rt).entries()]
    return page.window(await breakers.list_breakers(get_guardrails(rt).breakers, ctx, known))


@router.get("/breakers/events", summary="Breaker transitions, newest first (the audit trail)")
async def breaker_events(
    ctx: ContextDep,
    rt: RuntimeDep,
    breaker: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[breakers.BreakerEventOut]:
    return await breakers.events(get_guardrails(rt).breakers, ctx, breaker, limit)


@router.post(
    "/breakers/{key:path}/{action}",
    summary="Trip (forced open), disable or reset a breaker (platform admin, audited)",
)
async def breaker_action(
    key: str,
    action: breakers.ManualAction,
    body: breakers.BreakerAction,
    ctx: ContextDep,
    rt: RuntimeDep,
) -> breakers.BreakerOut:
    get_registry(rt).get(key.split("@", 1)[0], include_disabled=True)  # MODEL_NOT_FOUND
    return await breakers.act(get_guardrails(rt).breakers, ctx, key, action, body.reason)


@router.get("/budgets", summary="Spend limits of the tenant with the current period's spend")
async def get_budgets(
    ctx: ContextDep,
    session: SessionDep,
    rt: RuntimeDep,
    page: PageDep,
    api_key_id: Annotated[str | None, Query(alias="apiKeyId")] = None,
) -> list[BudgetOut]:
    await flush_ledger(rt)
    return await list_budgets(session, ctx, api_key_id=api_key_id, page=page)


@router.put(
    "/budgets",
    summary="Set a spend limit (both limits null removes it)",
    responses={204: {"description": "The limit was removed."}},
)
async def put_budget(
    body: BudgetSet, ctx: ContextDep, rt: RuntimeDep, response: Response
) -> BudgetOut | None:
    async with rt.db.session() as session:
        out = await set_budget(session, ctx, body)
    # after the commit: a call in between must not cache the old limits again
    get_guardrails(rt).budgets.invalidate(ctx.tenant_id)
    if out is None:
        response.status_code = status.HTTP_204_NO_CONTENT
    return out


@router.get(
    "/usage",
    summary="Calls, tokens and cost, grouped by day/model/workflow/key (a page of the groups)",
)
async def get_usage(
    ctx: ContextDep,
    session: SessionDep,
    rt: RuntimeDep,
    page: PageDep,
    group_by: Annotated[list[GroupBy] | None, Query(alias="groupBy")] = None,
    since: Annotated[IsoDate | None, Query()] = None,
    until: Annotated[IsoDate | None, Query()] = None,
    model: str | None = None,
    workflow_id: Annotated[str | None, Query(alias="workflowId")] = None,
    api_key_id: Annotated[str | None, Query(alias="apiKeyId")] = None,
) -> UsageReport:
    await flush_ledger(rt)
    report = await ledger.usage(
        session,
        ctx,
        group_by=group_by,
        since=since,
        until=until,
        model=model,
        workflow_id=workflow_id,
        api_key_id=api_key_id,
    )
    return report.model_copy(update={"rows": page.window(report.rows)})


@router.get("/usage/calls", summary="The most recent model calls of the tenant")
async def get_calls(
    ctx: ContextDep,
    session: SessionDep,
    rt: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    model: str | None = None,
) -> list[ledger.LedgerCallOut]:
    await flush_ledger(rt)
    return await ledger.list_calls(session, ctx, limit=limit, model=model)
