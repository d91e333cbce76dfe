"""Operator functions on breakers (API and CLI): list, trip, disable, reset, audit trail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import Field

from gasworks.apimodel import ApiModel
from gasworks.llm.breaker.manager import BreakerManager, BreakerView
from gasworks.llm.breaker.state import BreakerState
from gasworks.llm.breaker.window import Counts
from gasworks.tenancy.context import Role, TenantContext

ManualAction = Literal["trip", "disable", "reset"]
_ACTION_STATE = {
    "trip": BreakerState.FORCED_OPEN,
    "disable": BreakerState.DISABLED,
    "reset": BreakerState.CLOSED,
}


class ActionIn(ApiModel):
    action: ManualAction


class BreakerAction(ApiModel):
    reason: str = Field(min_length=1, max_length=500, description="Why (kept in the audit).")


class BreakerOut(ApiModel):
    breaker: str
    state: BreakerState
    state_changed_at: datetime
    reason: str | None
    changed_by: str | None
    window_calls: int
    window_failures: int
    window_slow: int
    failure_rate: float


class BreakerEventOut(ApiModel):
    breaker: str
    from_state: str
    to_state: str
    manual: bool
    actor: str | None
    reason: str | None
    stats: dict[str, float | int] | None
    at: datetime


def actor_of(ctx: TenantContext) -> str:
    return f"{ctx.principal_id}" + (f" (key {ctx.api_key_id})" if ctx.api_key_id else "")


async def list_breakers(
    manager: BreakerManager, ctx: TenantContext, known: list[str] | None = None
) -> list[BreakerOut]:
    """Breakers with state and window statistics; ``known`` models that never had a call are
    listed as closed with an empty window."""
    ctx.require(Role.VIEWER)
    out = []
    views = await manager.views()
    seen = {v.key for v in views}
    now = manager.clock()
    for key in known or []:
        if key not in seen:
            views.append(BreakerView(key, BreakerState.CLOSED, 0, now, Counts(), None, None))
    for v in sorted(views, key=lambda x: x.key):
        d = v.window.as_dict()
        out.append(
            BreakerOut(
                breaker=v.key,
                state=v.state,
                state_changed_at=datetime.fromtimestamp(v.state_changed_at, UTC),
                reason=v.reason,
                changed_by=v.changed_by if ctx.is_platform_admin else None,
                window_calls=v.window.calls,
                window_failures=v.window.failures,
                window_slow=v.window.slow,
                failure_rate=float(d["failureRate"]),
            )
        )
    return out


async def act(
    manager: BreakerManager,
    ctx: TenantContext,
    key: str,
    action: ManualAction,
    reason: str,
    *,
    actor: str | None = None,
) -> BreakerOut:
    """Breakers are shared by every tenant: only platform administrators change them.
    ``key`` is a model id, or ``<model id>@<deployment>``."""
    ctx.require_platform_admin()
    await manager.set_manual(
        key, _ACTION_STATE[action], actor=actor or actor_of(ctx), reason=reason
    )
    return next(b for b in await list_breakers(manager, ctx) if b.breaker == key)


async def events(
    manager: BreakerManager, ctx: TenantContext, key: str | None = None, limit: int = 50
) -> list[BreakerEventOut]:
    ctx.require(Role.VIEWER)
    return [
        BreakerEventOut(
            breaker=e.key,
            from_state=e.from_state,
            to_state=e.to_state,
            manual=e.manual,
            # who operates the platform is not every tenant's business
            actor=e.actor if ctx.is_platform_admin else None,
            reason=e.reason,
            stats=e.stats,
            at=e.at,
        )
        for e in await manager.store.events(key, limit)
    ]
