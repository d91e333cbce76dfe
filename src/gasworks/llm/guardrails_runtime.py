"""Builds the guardrails into the process ``Runtime`` and plugs them into the gateway."""

from __future__ import annotations

# the model services start first: their startup hook must run before ours (we attach to them)
import gasworks.llm.runtime  # noqa: F401
from gasworks.errors import ConfigurationError
from gasworks.llm.guardrails import Guardrails
from gasworks.llm.hooks import CallHooks
from gasworks.llm.runtime import SERVICE as MODELS
from gasworks.llm.runtime import ModelServices
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
    models: ModelServices | None = rt.services.get(MODELS)
    if models is None or not rt.settings.guardrails_enabled:
        return False
    hooks: list[CallHooks] = models.gateway.hooks
    if guardrails not in hooks:
        hooks.append(guardrails)
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
