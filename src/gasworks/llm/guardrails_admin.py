"""What operators and tenants do with breakers, budgets and usage: the guardrails' service.

One object per call, over the runtime's ``Guardrails`` and model registry
(``guardrails_admin(rt)``). Each method takes the caller's ``TenantContext``, opens its own
short transaction and does the whole operation (writes this process's queued ledger rows
first where a read must include them, invalidates the budget cache after a change), so the
REST, GraphQL and CLI adapters only translate.
"""

from __future__ import annotations

from datetime import date

from gasworks.db.paging import ALL, Page
from gasworks.llm.breaker import admin as breakers
from gasworks.llm.budgets import ledger
from gasworks.llm.budgets.ledger import GroupBy, LedgerCallOut, UsageReport
from gasworks.llm.budgets.limits import BudgetOut, BudgetSet, list_budgets, set_budget
from gasworks.llm.guardrails import Guardrails
from gasworks.llm.registry import ModelRegistry
from gasworks.tenancy.context import TenantContext


class GuardrailsAdmin:
    def __init__(self, guardrails: Guardrails, registry: ModelRegistry) -> None:
        self.guardrails = guardrails
        self.registry = registry
        self.db = guardrails.db

    # --- breakers -----------------------------------------------------------------------------

    async def list_breakers(self, ctx: TenantContext) -> list[breakers.BreakerOut]:
        """Every breaker, those of registered models that never had a call included."""
        known = [e.id for e in self.registry.entries()]
        return await breakers.list_breakers(self.guardrails.breakers, ctx, known)

    async def breaker_events(
        self, ctx: TenantContext, breaker: str | None, limit: int
    ) -> list[breakers.BreakerEventOut]:
        return await breakers.events(self.guardrails.breakers, ctx, breaker, limit)

    async def breaker_action(
        self,
        ctx: TenantContext,
        key: str,
        action: breakers.ManualAction,
        reason: str,
        *,
        actor: str | None = None,
    ) -> breakers.BreakerOut:
        """Trip, disable or reset the breaker ``model[@region]`` (``MODEL_NOT_FOUND`` for a
        model the registry does not know, disabled ones included)."""
        self.registry.get(key.split("@", 1)[0], include_disabled=True)
        return await breakers.act(self.guardrails.breakers, ctx, key, action, reason, actor=actor)

    # --- budgets ------------------------------------------------------------------------------

    async def list_budgets(
        self, ctx: TenantContext, *, api_key_id: str | None = None, page: Page = ALL
    ) -> list[BudgetOut]:
        await self.guardrails.ledger.flush()
        async with self.db.session() as s:
            return await list_budgets(s, ctx, api_key_id=api_key_id, page=page)

    async def set_budget(self, ctx: TenantContext, data: BudgetSet) -> BudgetOut | None:
        """Create, change or (both limits null) remove a limit; None when removed."""
        async with self.db.session() as s:
            out = await set_budget(s, ctx, data)
        # after the commit: a call in between must not cache the old limits again
        self.guardrails.budgets.invalidate(ctx.tenant_id)
        return out

    # --- usage --------------------------------------------------------------------------------

    async def usage(
        self,
        ctx: TenantContext,
        *,
        group_by: list[GroupBy] | None = None,
        since: date | None = None,
        until: date | None = None,
        model: str | None = None,
        workflow_id: str | None = None,
        api_key_id: str | None = None,
    ) -> UsageReport:
        await self.guardrails.ledger.flush()
        async with self.db.session() as s:
            return await ledger.usage(
                s,
                ctx,
                group_by=group_by,
                since=since,
                until=until,
                model=model,
                workflow_id=workflow_id,
                api_key_id=api_key_id,
            )

    async def calls(
        self, ctx: TenantContext, *, limit: int = 50, model: str | None = None
    ) -> list[LedgerCallOut]:
        await self.guardrails.ledger.flush()
        async with self.db.session() as s:
            return await ledger.list_calls(s, ctx, limit=limit, model=model)
