"""GraphQL for the guardrails: breakers, spend limits, usage (same services as REST)."""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from gasworks.api.graphql.context import GqlContext
from gasworks.api.graphql.paging import DEFAULT_LIMIT, Limit, Offset, checked_page
from gasworks.llm.breaker import admin as breakers
from gasworks.llm.budgets.ledger import GroupBy, UsageRow
from gasworks.llm.budgets.limits import BudgetOut, BudgetSet
from gasworks.llm.guardrails_runtime import guardrails_admin
from gasworks.validation import validated

Info = strawberry.Info[GqlContext, None]


@strawberry.type(name="Breaker")
class BreakerType:
    breaker: str
    state: str
    state_changed_at: datetime
    reason: str | None
    changed_by: str | None
    window_calls: int
    window_failures: int
    window_slow: int
    failure_rate: float

    @staticmethod
    def of(b: breakers.BreakerOut) -> BreakerType:
        return BreakerType(
            breaker=b.breaker,
            state=b.state.value,
            state_changed_at=b.state_changed_at,
            reason=b.reason,
            changed_by=b.changed_by,
            window_calls=b.window_calls,
            window_failures=b.window_failures,
            window_slow=b.window_slow,
            failure_rate=b.failure_rate,
        )


@strawberry.type(name="Budget")
class BudgetType:
    id: str
    api_key_id: str | None
    period: str
    period_start: str
    cost_limit: str | None = strawberry.field(description="Exact decimal, as a string.")
    token_limit: int | None
    spent_cost: str
    reserved_cost: str = strawberry.field(description="Includes leasedCost.")
    spent_tokens: int
    reserved_tokens: int = strawberry.field(description="Includes leasedTokens.")
    leased_cost: str = strawberry.field(description="Held by processes' budget leases.")
    leased_tokens: int
    calls: int

    @staticmethod
    def of(b: BudgetOut) -> BudgetType:
        return BudgetType(
            id=b.id,
            api_key_id=b.api_key_id,
            period=b.period.value,
            period_start=b.period_start,
            cost_limit=None if b.cost_limit is None else str(b.cost_limit),
            token_limit=b.token_limit,
            spent_cost=str(b.spent_cost),
            reserved_cost=str(b.reserved_cost),
            spent_tokens=b.spent_tokens,
            reserved_tokens=b.reserved_tokens,
            leased_cost=str(b.leased_cost),
            leased_tokens=b.leased_tokens,
            calls=b.calls,
        )


@strawberry.type(name="UsageGroup")
class UsageType:
    day: str | None
    model: str | None
    workflow: str | None
    api_key: str | None
    prompt_version: str | None
    requests: int = strawberry.field(description="Model calls asked for (first attempts).")
    failed_requests: int
    calls: int = strawberry.field(description="Provider attempts, retries included.")
    failed_calls: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost: str

    @staticmethod
    def of(r: UsageRow) -> UsageType:
        g = r.group
        return UsageType(
            day=g.get("day"),
            model=g.get("model"),
            workflow=g.get("workflow"),
            api_key=g.get("api_key"),
            prompt_version=g.get("prompt_version"),
            requests=r.requests,
            failed_requests=r.failed_requests,
            calls=r.calls,
            failed_calls=r.failed_calls,
            input_tokens=r.input_tokens,
            output_tokens=r.output_tokens,
            cached_input_tokens=r.cached_input_tokens,
            cost=str(r.cost),
        )


GroupByEnum = strawberry.enum(GroupBy, name="UsageGroupBy")


@strawberry.type
class GuardrailsQuery:
    # The three lists below come from gasworks.llm, whose functions take no page yet: the page
    # is cut from their (small, per-tenant) result here.

    @strawberry.field
    async def breakers(
        self, info: Info, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> list[BreakerType]:
        """Breakers by key (one per model or deployment)."""
        page = checked_page(limit, offset)
        items = await guardrails_admin(info.context.runtime).list_breakers(info.context.ctx)
        return [BreakerType.of(b) for b in page.window(items)]

    @strawberry.field
    async def budgets(
        self, info: Info, limit: Limit = DEFAULT_LIMIT, offset: Offset = 0
    ) -> list[BudgetType]:
        """Spend limits by API key (tenant-wide first), then period."""
        page = checked_page(limit, offset)
        items = await guardrails_admin(info.context.runtime).list_budgets(
            info.context.ctx, page=page
        )
        return [BudgetType.of(b) for b in items]

    @strawberry.field
    async def usage(
        self,
        info: Info,
        group_by: list[GroupByEnum] | None = None,  # type: ignore[valid-type]
        since: date | None = None,
        until: date | None = None,
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
    ) -> list[UsageType]:
        """Usage of the tenant grouped by day, model, workflow, API key."""
        page = checked_page(limit, offset)
        report = await guardrails_admin(info.context.runtime).usage(
            info.context.ctx, group_by=group_by, since=since, until=until
        )
        return [UsageType.of(r) for r in page.window(report.rows)]


@strawberry.type
class GuardrailsMutation:
    @strawberry.mutation
    async def breaker_action(
        self, info: Info, breaker: str, action: str, reason: str
    ) -> BreakerType:
        """trip, disable or reset a breaker (platform admin, audited)."""
        body = validated(breakers.BreakerAction, {"reason": reason})
        act = validated(breakers.ActionIn, {"action": action}).action
        admin = guardrails_admin(info.context.runtime)
        out = await admin.breaker_action(info.context.ctx, breaker, act, body.reason)
        return BreakerType.of(out)

    @strawberry.mutation
    async def set_budget(
        self,
        info: Info,
        period: str,
        api_key_id: str | None = None,
        cost_limit: str | None = None,
        token_limit: int | None = None,
    ) -> BudgetType | None:
        """Set a spend limit; both limits null removes it."""
        data = validated(
            BudgetSet,
            {
                "period": period,
                "api_key_id": api_key_id,
                "cost_limit": cost_limit,
                "token_limit": token_limit,
            },
        )
        out = await guardrails_admin(info.context.runtime).set_budget(info.context.ctx, data)
        return None if out is None else BudgetType.of(out)
