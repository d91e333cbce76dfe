"""Builds the guardrails into the process ``Runtime``, plugs them into the gateway and runs
their maintenance in the background (breaker sync of idle processes, the sweeper of expired
reservations and leases). The ledger writer runs its own task (started on first use); at
shutdown it writes everything queued and returns the budget leases."""

from __future__ import annotations

import time

from gasworks.background import PeriodicTask
from gasworks.errors import ConfigurationError
from gasworks.llm.guardrails import Guardrails
from gasworks.llm.guardrails_admin import GuardrailsAdmin
from gasworks.llm.hooks import CallHooks
from gasworks.llm.runtime import SERVICE as MODELS
from gasworks.llm.runtime import ModelServices, get_registry
from gasworks.observability.logging import get_logger
from gasworks.runtime import Runtime, is_leader

SERVICE = "guardrails"
MAINTENANCE = "guardrails.maintenance"
log = get_logger("gasworks.llm.guardrails")


def get_guardrails(rt: Runtime) -> Guardrails:
    svc = rt.services.get(SERVICE)
    if not isinstance(svc, Guardrails):
        raise ConfigurationError("The guardrails are not started in this process.")
    return svc


def guardrails_admin(rt: Runtime) -> GuardrailsAdmin:
    """The guardrails' service (breakers, budgets, usage) over this runtime's guardrails."""
    return GuardrailsAdmin(get_guardrails(rt), get_registry(rt))


async def flush_ledger(rt: Runtime) -> None:
    """Write this process's queued ledger rows and settlements now, so that a read that
    follows (usage, budgets) includes every call this process has finished (the console's
    pages, which compose several reads; other adapters go through ``GuardrailsAdmin``)."""
    svc = rt.services.get(SERVICE)
    if isinstance(svc, Guardrails):
        await svc.ledger.flush()


def attach(rt: Runtime, guardrails: Guardrails) -> bool:
    """Register the guardrails as a call hook of the model gateway, when there is one."""
    models: ModelServices | None = rt.services.get(MODELS)
    if models is None or not rt.settings.guardrails_enabled:
        return False
    hooks: list[CallHooks] = models.gateway.hooks
    if guardrails not in hooks:
        hooks.append(guardrails)
    return True


class Maintenance:
    """One background task per process; each round uses the runtime's current guardrails."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.last_sweep = time.monotonic()
        self.task: PeriodicTask | None = None

    async def once(self, *, sweep: bool | None = None) -> None:
        g = get_guardrails(self.rt)
        try:
            await g.breakers.sync(wait=True)
        except Exception:
            log.exception("breaker.background_sync_failed")
        now = time.monotonic()
        due = now - self.last_sweep >= self.rt.settings.budget_sweep_interval_seconds
        if sweep or (sweep is None and due and is_leader(self.rt)):  # once per deployment
            self.last_sweep = now
            try:
                await g.budgets.sweep()
            except Exception:
                log.exception("budgets.sweep_failed")


async def _start(rt: Runtime) -> None:
    guardrails = Guardrails.from_settings(rt.db, rt.settings)
    rt.services[SERVICE] = guardrails
    attach(rt, guardrails)
    every = rt.settings.guardrails_maintenance_interval_seconds
    maintenance = Maintenance(rt)
    rt.services[MAINTENANCE] = maintenance
    if every > 0:
        maintenance.task = PeriodicTask("guardrails-maintenance", maintenance.once, every)
        maintenance.task.start()


async def _stop(rt: Runtime) -> None:
    maintenance = rt.services.pop(MAINTENANCE, None)
    if isinstance(maintenance, Maintenance) and maintenance.task is not None:
        await maintenance.task.stop()
    svc = rt.services.pop(SERVICE, None)
    if isinstance(svc, Guardrails):
        try:  # write the queued ledger rows and settlements, return the budget leases
            await svc.ledger.close()
        except Exception:
            log.exception("ledger.final_flush_failed", pending=svc.ledger.pending)
        try:
            await svc.breakers.sync(wait=True)  # the last local counts, to the other processes
        except Exception:
            log.exception("breaker.final_flush_failed")


class GuardrailsDomain:
    """Budgets, breakers and the ledger, attached to the gateway as a call hook (start it
    after ``ModelsDomain``)."""

    name = SERVICE

    async def start(self, rt: Runtime) -> None:
        await _start(rt)

    async def stop(self, rt: Runtime) -> None:
        await _stop(rt)
