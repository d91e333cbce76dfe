"""`gasworks breakers …`, `gasworks budgets …`, `gasworks usage …`."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated

import typer

from gasworks.cli.common import on_target, tenant_context
from gasworks.cli.models import KeyOpt, ServerOpt
from gasworks.cli.output import JsonOpt, console, emit_json, run, table
from gasworks.errors import ValidationFailed

if TYPE_CHECKING:  # imported where used: `gasworks --help` loads none of the server
    from gasworks.client import AsyncGasworks
    from gasworks.llm import ledger
    from gasworks.llm.breaker import admin as breakers
    from gasworks.llm.budgets import BudgetOut
    from gasworks.llm.ledger import UsageReport
    from gasworks.runtime import Runtime

from gasworks.llm.vocab import GroupBy, Period
from gasworks.tenancy.context import TenantContext

breakers_app = typer.Typer(
    rich_markup_mode=None, help="Circuit breakers of models.", no_args_is_help=True
)
budgets_app = typer.Typer(
    rich_markup_mode=None, help="Spend limits per tenant and API key.", no_args_is_help=True
)
usage_app = typer.Typer(
    rich_markup_mode=None, help="The cost ledger: usage and spend.", no_args_is_help=True
)

TenantOpt = Annotated[
    str, typer.Option("--tenant", "-t", help="Tenant name (with --server: the key's tenant).")
]
ReasonOpt = Annotated[str, typer.Option("--reason", "-r", help="Why (kept in the audit).")]
BreakerArg = Annotated[str, typer.Argument(help="Breaker: model id, or model@deployment.")]


def _operator() -> TenantContext:
    return TenantContext.system("-")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


# --- breakers -----------------------------------------------------------------------------


@breakers_app.command("list")
def breakers_list(
    server: ServerOpt = None, api_key: KeyOpt = None, as_json: JsonOpt = False
) -> None:
    """Every breaker with its state and window statistics."""
    from gasworks.llm.breaker import admin as breakers

    async def local(rt: Runtime) -> list[breakers.BreakerOut]:
        from gasworks.llm.guardrails_runtime import guardrails_admin

        return await guardrails_admin(rt).list_breakers(_operator())

    async def remote(gw: AsyncGasworks) -> list[breakers.BreakerOut]:
        return [breakers.BreakerOut.model_validate(b) for b in await gw.breakers()]

    async def body() -> list[breakers.BreakerOut]:
        return await on_target(server, api_key, local=local, remote=remote)

    out = run(body, as_json)
    if as_json:
        emit_json(out)
        return
    table(
        "Circuit breakers",
        ["breaker", "state", "since", "calls", "failures", "rate", "reason"],
        [
            [
                b.breaker,
                b.state.value,
                f"{b.state_changed_at:%Y-%m-%d %H:%M:%S}",
                b.window_calls,
                b.window_failures,
                f"{b.failure_rate:.1%}",
                b.reason,
            ]
            for b in out
        ],
    )


def _act(
    key: str,
    action: breakers.ManualAction,
    reason: str,
    server: str | None,
    api_key: str | None,
    as_json: bool,
) -> None:
    from gasworks.llm.breaker import admin as breakers

    async def local(rt: Runtime) -> breakers.BreakerOut:
        from gasworks.llm.guardrails_runtime import guardrails_admin

        admin = guardrails_admin(rt)
        return await admin.breaker_action(_operator(), key, action, reason, actor=_actor())

    async def remote(gw: AsyncGasworks) -> breakers.BreakerOut:
        return breakers.BreakerOut.model_validate(await gw.breaker_action(key, action, reason))

    async def body() -> breakers.BreakerOut:
        return await on_target(server, api_key, local=local, remote=remote)

    out = run(body, as_json)
    if as_json:
        emit_json(out)
    else:
        console.print(f"Breaker [bold]{out.breaker}[/] is now [bold]{out.state.value}[/].")


def _action_command(action: breakers.ManualAction, doc: str) -> Callable[..., None]:
    """The `breakers trip|reset|disable` command (one signature, one body)."""

    def command(
        key: BreakerArg,
        reason: ReasonOpt,
        server: ServerOpt = None,
        api_key: KeyOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        _act(key, action, reason, server, api_key, as_json)

    command.__doc__ = doc
    return command


breakers_app.command("trip")(
    _action_command(
        "trip", "Force a breaker open: every call fails fast (or goes to fallbacks) until reset."
    )
)
breakers_app.command("reset")(_action_command("reset", "Close a breaker and restart its window."))
breakers_app.command("disable")(
    _action_command("disable", "Let every call through and stop counting (until reset).")
)


@breakers_app.command("events")
def breakers_events(
    key: Annotated[str | None, typer.Argument(help="Only this breaker.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Transitions, newest first: the audit trail of manual actions and automatic changes."""
    from gasworks.llm.breaker import admin as breakers

    async def local(rt: Runtime) -> list[breakers.BreakerEventOut]:
        from gasworks.llm.guardrails_runtime import guardrails_admin

        return await guardrails_admin(rt).breaker_events(_operator(), key, limit)

    async def remote(gw: AsyncGasworks) -> list[breakers.BreakerEventOut]:
        events = await gw.breaker_events(key, limit=limit)
        return [breakers.BreakerEventOut.model_validate(e) for e in events]

    async def body() -> list[breakers.BreakerEventOut]:
        return await on_target(server, api_key, local=local, remote=remote)

    out = run(body, as_json)
    if as_json:
        emit_json(out)
        return
    table(
        "Breaker events",
        ["at", "breaker", "from", "to", "actor", "reason"],
        [
            [f"{e.at:%Y-%m-%d %H:%M:%S}", e.breaker, e.from_state, e.to_state, e.actor, e.reason]
            for e in out
        ],
    )


# --- budgets ------------------------------------------------------------------------------


def _decimal(value: str | None) -> Decimal | None:
    if value is None or value.lower() == "none":
        return None
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise ValidationFailed(f"'{value}' is not an amount.", details={"value": value}) from exc


@budgets_app.command("set")
def budgets_set(
    period: Annotated[Period, typer.Option(help="UTC calendar day or month.")],
    tenant: TenantOpt = "default",
    key: Annotated[str | None, typer.Option("--key", help="API key id (default: tenant).")] = None,
    cost: Annotated[
        str | None, typer.Option(help="Money limit per period ('none': no limit).")
    ] = None,
    tokens: Annotated[int | None, typer.Option(help="Token limit per period.")] = None,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set a spend limit (neither --cost nor --tokens: remove the limit)."""
    from gasworks.llm.budgets import BudgetOut as Out
    from gasworks.llm.budgets import BudgetSet

    data = BudgetSet(period=period, api_key_id=key, cost_limit=_decimal(cost), token_limit=tokens)

    async def local(rt: Runtime) -> BudgetOut | None:
        from gasworks.llm.guardrails_runtime import guardrails_admin

        return await guardrails_admin(rt).set_budget(await tenant_context(rt, tenant), data)

    async def remote(gw: AsyncGasworks) -> BudgetOut | None:
        out = await gw.set_budget(
            data.period.value,
            api_key_id=data.api_key_id,
            cost_limit=data.cost_limit,
            token_limit=data.token_limit,
        )
        return None if out is None else Out.model_validate(out)

    async def body() -> BudgetOut | None:
        return await on_target(server, api_key, local=local, remote=remote)

    out = run(body, as_json)
    if as_json:
        emit_json(out)
    elif out is None:
        console.print("Limit removed.")
    else:
        limits = [
            f"cost {out.cost_limit}" if out.cost_limit is not None else "",
            f"{out.token_limit} tokens" if out.token_limit is not None else "",
        ]
        console.print(
            f"Limit set: {out.period.adjective} {' and '.join(x for x in limits if x)} "
            f"for {'key ' + out.api_key_id if out.api_key_id else 'the tenant'}.",
            highlight=False,
        )


@budgets_app.command("show")
def budgets_show(
    tenant: TenantOpt = "default",
    key: Annotated[str | None, typer.Option("--key", help="Only this API key.")] = None,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Limits with the current period's spend and reservations.

    "reserved" includes what running processes hold as budget leases ("leased"); spend lags
    the calls by at most the ledger flush interval (until then it is part of "reserved").
    """
    from gasworks.llm.budgets import BudgetOut as Out

    async def local(rt: Runtime) -> list[BudgetOut]:
        from gasworks.llm.guardrails_runtime import guardrails_admin

        ctx = await tenant_context(rt, tenant)
        return await guardrails_admin(rt).list_budgets(ctx, api_key_id=key)

    async def remote(gw: AsyncGasworks) -> list[BudgetOut]:
        return [Out.model_validate(b) for b in await gw.budgets(api_key_id=key)]

    async def body() -> list[BudgetOut]:
        return await on_target(server, api_key, local=local, remote=remote)

    out = run(body, as_json)
    if as_json:
        emit_json(out)
        return
    table(
        f"Spend limits of {tenant}",
        [
            "scope",
            "period",
            "cost limit",
            "spent",
            "reserved",
            "leased",
            "token limit",
            "tokens",
            "calls",
        ],
        [
            [
                b.api_key_id or "tenant",
                f"{b.period.value} {b.period_start}",
                b.cost_limit,
                b.spent_cost,
                b.reserved_cost,
                b.leased_cost,
                b.token_limit,
                b.spent_tokens,
                b.calls,
            ]
            for b in out
        ],
    )


# --- usage --------------------------------------------------------------------------------


@usage_app.command("summary")
def usage_summary(
    tenant: TenantOpt = "default",
    by: Annotated[list[GroupBy] | None, typer.Option("--by", help="Group by (repeatable).")] = None,
    since: Annotated[str | None, typer.Option(help="First UTC day, YYYY-MM-DD.")] = None,
    until: Annotated[str | None, typer.Option(help="Last UTC day, YYYY-MM-DD.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    workflow: Annotated[str | None, typer.Option(help="Only this workflow id.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="Only this API key id.")] = None,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Requests, attempts, tokens and cost grouped by day, model, workflow, API key, provider,
    status or prompt version (with --server: of the key's tenant)."""
    from gasworks.llm.guardrails_runtime import guardrails_admin

    try:
        first = date.fromisoformat(since) if since else None
        last = date.fromisoformat(until) if until else None
    except ValueError as exc:
        raise ValidationFailed("Dates are YYYY-MM-DD.", details={"since": since}) from exc

    async def local(rt: Runtime) -> UsageReport:
        ctx = await tenant_context(rt, tenant)
        return await guardrails_admin(rt).usage(
            ctx,
            group_by=by,
            since=first,
            until=last,
            model=model,
            workflow_id=workflow,
            api_key_id=key,
        )

    async def remote(gw: AsyncGasworks) -> UsageReport:
        report = await gw.usage(
            group_by=[g.value for g in by or []],
            since=since,
            until=until,
            model=model,
            workflow_id=workflow,
            api_key_id=key,
        )
        from gasworks.llm.ledger import UsageReport as Report

        return Report.model_validate(report)

    async def body() -> UsageReport:
        return await on_target(server, api_key, local=local, remote=remote)

    out = run(body, as_json)
    if as_json:
        emit_json(out)
        return
    names = [g.value for g in out.group_by]
    rows = [
        [
            *(r.group.get(n) for n in names),
            r.requests,
            r.failed_requests,
            r.calls,
            r.failed_calls,
            r.input_tokens,
            r.output_tokens,
            r.cost,
        ]
        for r in [*out.rows]
    ]
    t = out.total
    rows.append(
        [
            "total",
            *[""] * (len(names) - 1),
            t.requests,
            t.failed_requests,
            t.calls,
            t.failed_calls,
            t.input_tokens,
            t.output_tokens,
            t.cost,
        ]
    )
    table(
        f"Usage of {tenant}",
        [*names, "requests", "failed", "attempts", "failed attempts", "input", "output", "cost"],
        rows,
    )


@usage_app.command("calls")
def usage_calls(
    tenant: TenantOpt = "default",
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 20,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The most recent model calls recorded in the ledger (with --server: of the key's
    tenant)."""

    async def local(rt: Runtime) -> list[ledger.LedgerCallOut]:
        from gasworks.llm.guardrails_runtime import guardrails_admin

        ctx = await tenant_context(rt, tenant)
        return await guardrails_admin(rt).calls(ctx, limit=limit, model=model)

    async def remote(gw: AsyncGasworks) -> list[ledger.LedgerCallOut]:
        from gasworks.llm.ledger import LedgerCallOut

        calls = await gw.usage_calls(limit=limit, model=model)
        return [LedgerCallOut.model_validate(c) for c in calls]

    async def body() -> list[ledger.LedgerCallOut]:
        return await on_target(server, api_key, local=local, remote=remote)

    out = run(body, as_json)
    if as_json:
        emit_json(out)
        return
    cols = ["created_at", "model", "status", "input_tokens", "output_tokens", "cost", "latency_ms"]
    table("Recent calls", cols, [[getattr(c, k) for k in cols] for c in out])
