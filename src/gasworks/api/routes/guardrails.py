"""Breakers, budgets and usage: ``/api/breakers``, ``/api/budgets``, ``/api/usage``.

Each route translates one call of the guardrails' service (``guardrails_admin(rt)``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response, status

from gasworks.api.deps import ContextDep, RuntimeDep
from gasworks.api.paging import PageDep
from gasworks.api.routing import router as guarded_router
from gasworks.bounds import IsoDate
from gasworks.llm.breaker import admin as breakers
from gasworks.llm.budgets import ledger
from gasworks.llm.budgets.ledger import GroupBy, UsageReport
from gasworks.llm.budgets.limits import BudgetOut, BudgetSet
from gasworks.llm.guardrails_runtime import guardrails_admin

router = guarded_router(prefix="/api", tags=["guardrails"])


@router.get("/breakers", summary="Every circuit breaker with its state and window statistics")
async def list_breakers(
    ctx: ContextDep, rt: RuntimeDep, page: PageDep
) -> list[breakers.BreakerOut]:
    # breakers (in-memory state merged with the registry) are cut from the computed result
    return page.window(await guardrails_admin(rt).list_breakers(ctx))


@router.get("/breakers/events", summary="Breaker transitions, newest first (the audit trail)")
async def breaker_events(
    ctx: ContextDep,
    rt: RuntimeDep,
    breaker: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[breakers.BreakerEventOut]:
    return await guardrails_admin(rt).breaker_events(ctx, breaker, limit)


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
    return await guardrails_admin(rt).breaker_action(ctx, key, action, body.reason)


@router.get("/budgets", summary="Spend limits of the tenant with the current period's spend")
async def get_budgets(
    ctx: ContextDep,
    rt: RuntimeDep,
    page: PageDep,
    api_key_id: Annotated[str | None, Query(alias="apiKeyId")] = None,
) -> list[BudgetOut]:
    return await guardrails_admin(rt).list_budgets(ctx, api_key_id=api_key_id, page=page)


@router.put(
    "/budgets",
    summary="Set a spend limit (both limits null removes it)",
    responses={204: {"description": "The limit was removed."}},
)
async def put_budget(
    body: BudgetSet, ctx: ContextDep, rt: RuntimeDep, response: Response
) -> BudgetOut | None:
    out = await guardrails_admin(rt).set_budget(ctx, body)
    if out is None:
        response.status_code = status.HTTP_204_NO_CONTENT
    return out


@router.get(
    "/usage",
    summary="Calls, tokens and cost, grouped by day/model/workflow/key (a page of the groups)",
)
async def get_usage(
    ctx: ContextDep,
    rt: RuntimeDep,
    page: PageDep,
    group_by: Annotated[list[GroupBy] | None, Query(alias="groupBy")] = None,
    since: Annotated[IsoDate | None, Query()] = None,
    until: Annotated[IsoDate | None, Query()] = None,
    model: str | None = None,
    workflow_id: Annotated[str | None, Query(alias="workflowId")] = None,
    api_key_id: Annotated[str | None, Query(alias="apiKeyId")] = None,
) -> UsageReport:
    report = await guardrails_admin(rt).usage(
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
    rt: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    model: str | None = None,
) -> list[ledger.LedgerCallOut]:
    return await guardrails_admin(rt).calls(ctx, limit=limit, model=model)
