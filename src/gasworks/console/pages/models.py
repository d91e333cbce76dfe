"""Models: the registry with prices and capabilities, breakers with trip/reset/disable, the
breaker event history (the audit trail of every transition)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from gasworks.console.web import CallerDep, ConsoleRoute, form_data, listing, parse, render
from gasworks.llm.breaker import admin as breakers
from gasworks.llm.guardrails_runtime import get_guardrails, guardrails_admin
from gasworks.llm.runtime import get_registry
from gasworks.modelcard import ModelEntry

router = APIRouter(route_class=ConsoleRoute)


@dataclass(frozen=True, slots=True)
class ModelRow:
    entry: ModelEntry
    breaker: breakers.BreakerOut | None


ACTIONS = {"trip": "Trip (force open)", "reset": "Reset (close)", "disable": "Disable breaker"}


async def _page(c: CallerDep, message: str | None = None) -> HTMLResponse:
    rt, ctx = c.runtime, c.ctx
    registry = get_registry(rt)
    entries = registry.entries(include_disabled=True)
    manager = get_guardrails(rt).breakers
    states = {
        b.breaker: b for b in await breakers.list_breakers(manager, ctx, [e.id for e in entries])
    }
    rows = [ModelRow(e, states.get(e.id)) for e in entries]
    models = listing(
        rows,
        c.request,
        lambda r: (
            r.entry.id,
            r.entry.provider.value,
            r.entry.kind.value,
            r.breaker.state.value if r.breaker else None,
        ),
    )
    selected = c.request.query_params.get("breaker") or None
    events = await breakers.events(manager, ctx, selected, 100)
    return render(
        c,
        "models.html",
        active="models",
        title="Models",
        models=models,
        events=events,
        people=await c.people(e.actor for e in events),
        selected=selected,
        actions=ACTIONS,
        message=message,
        push_url="/console/models",
    )


@router.get("/models", response_class=HTMLResponse)
async def models_page(c: CallerDep) -> HTMLResponse:
    return await _page(c)


@router.post("/models/breakers/{key:path}", response_class=HTMLResponse)
async def breaker_action(key: str, c: CallerDep) -> HTMLResponse:
    form = await form_data(c.request)
    action = parse(breakers.ActionIn, {"action": form.get("action", "")}).action
    body = parse(breakers.BreakerAction, {"reason": form.get("reason", "")})
    out = await guardrails_admin(c.runtime).breaker_action(c.ctx, key, action, body.reason)
    return await _page(c, f"Breaker {key}: {out.state.value.replace('_', ' ')}.")
