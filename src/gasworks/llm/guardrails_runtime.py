"""Builds the guardrails into the process ``Runtime`` and plugs them into the gateway."""

from __future__ import annotations

from gasworks.errors import ConfigurationError
from gasworks.llm.guardrails import Guardrails
from gasworks.observability.logging import get_logger
from gasworks.runtime import SHUTDOWN_HOOKS, STARTUP_HOOKS, Runtime

SERVICE = "guardrails"
log = get_logger("gasworks.llm.guardrails")


def get_guardrails(rt: Runtime) -> Guardrails:
    svc = rt.services.get(SERVICE)
    if not isinstance(svc, Guardrails):
        raise ConfigurationError("The guardrails are not started in this process.")
    return svc


def attach(rt: Runtime, guardrails: Guardrails) -> bool:
    """Register the guardrails as a call hook of the model gateway, when there is one."""
    models = rt.services.get("models")
    gateway = getattr(models, "gateway", None)
    if gateway is None or not rt.settings.guardrails_enabled:
        return False
    if guardrails not in gateway.hooks:
        gateway.hooks.append(guardrails)
    return True


async def _start(rt: Runtime) -> None:
    guardrails = Guardrails.from_settings(rt.db, rt.settings)
    rt.services[SERVICE] = guardrails
    attach(rt, guardrails)


async def _stop(rt: Runtime) -> None:
    svc = rt.services.pop(SERVICE, None)
    if isinstance(svc, Guardrails):
        try:
            await svc.breakers.sync()  # hand the last local counts to the other processes
        except Exception:
            log.exception("breaker.final_flush_failed")


if _start not in STARTUP_HOOKS:
    STARTUP_HOOKS.append(_start)
    SHUTDOWN_HOOKS.append(_stop)
