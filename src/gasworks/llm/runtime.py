"""Wires the registry, the providers and the gateway into the process ``Runtime``.

``get_gateway(runtime)`` / ``get_registry(runtime)`` are the typed accessors other domains use.
``ModelsDomain.start`` loads the catalog, ``GASWORKS_MODELS_FILE`` and the API overlays, and
starts a background refresh of the overlays (every ``GASWORKS_MODELS_REFRESH_SECONDS``) so a
change made through another process's API reaches this one.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

from gasworks.background import PeriodicTask
from gasworks.errors import ConfigurationError, GasworksError
from gasworks.llm.gateway import Gateway, RetryPolicy
from gasworks.llm.providers.factory import ProviderSet
from gasworks.llm.registry import admin
from gasworks.llm.registry.admin import reload_overlays
from gasworks.llm.registry.registry import ModelRegistry, build_registry
from gasworks.modelcard import ModelEntry
from gasworks.observability.logging import get_logger
from gasworks.runtime import Runtime
from gasworks.settings import Settings
from gasworks.tenancy.context import TenantContext

SERVICE = "models"
log = get_logger("gasworks.llm")


@dataclass(slots=True)
class ModelServices:
    registry: ModelRegistry
    providers: ProviderSet
    gateway: Gateway
    refresher: PeriodicTask | None = None


def build_services(settings: Settings) -> ModelServices:
    region = settings.bedrock_region or os.environ.get("AWS_REGION")
    region = region or os.environ.get("AWS_DEFAULT_REGION")
    registry = build_registry(
        default_model=settings.default_model,
        default_embedding_model=settings.embedding_model,
        models_file=settings.models_file,
        region=region,
    )
    providers = ProviderSet(settings)
    gateway = Gateway(
        registry,
        providers,
        default_timeout=settings.provider_timeout_seconds,
        retry=RetryPolicy(
            max_retries=settings.provider_max_retries,
            initial=settings.provider_retry_initial_seconds,
            max_wait=settings.provider_retry_max_seconds,
            retry_after_max=settings.provider_retry_after_max_seconds,
        ),
    )
    return ModelServices(registry, providers, gateway)


async def refresh(rt: Runtime) -> None:
    """Reload the API overlays now (after a change made in this process)."""
    svc = get_services(rt)
    if await reload_overlays(rt.db, svc.registry):
        svc.providers.forget()


async def _start(rt: Runtime) -> None:
    svc = build_services(rt.settings)
    rt.services[SERVICE] = svc
    await reload_overlays(rt.db, svc.registry)
    try:
        svc.registry.resolve(None)
    except GasworksError:
        log.error("models.default_model_missing", model=rt.settings.default_model)
    every = rt.settings.models_refresh_seconds
    if every > 0:
        svc.refresher = PeriodicTask("models-refresh", functools.partial(refresh, rt), every)
        svc.refresher.start()


async def _stop(rt: Runtime) -> None:
    svc: ModelServices | None = rt.services.pop(SERVICE, None)
    if svc is None:
        return
    if svc.refresher is not None:
        await svc.refresher.stop()
    await svc.providers.aclose()


def get_services(rt: Runtime) -> ModelServices:
    svc: ModelServices | None = rt.services.get(SERVICE)
    if svc is None:
        raise ConfigurationError("The model services are not started (Runtime.start() first).")
    return svc


def get_gateway(rt: Runtime) -> Gateway:
    return get_services(rt).gateway


def get_registry(rt: Runtime) -> ModelRegistry:
    return get_services(rt).registry


class ModelsDomain:
    """The model registry, the providers and the gateway (``get_gateway(rt)``)."""

    name = SERVICE

    async def start(self, rt: Runtime) -> None:
        await _start(rt)

    async def stop(self, rt: Runtime) -> None:
        await _stop(rt)


class ModelsAdmin:
    """Changes to the model registry through the API (platform administrators): every adapter
    calls these (REST, GraphQL, CLI). Each writes the overlay in one transaction, then
    reloads this process's registry (other processes: at their next refresh) and answers the
    entry as the registry now has it."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def create(self, ctx: TenantContext, body: dict[str, Any]) -> ModelEntry:
        async with self.rt.db.session() as s:
            entry = await admin.create_model(s, ctx, get_registry(self.rt), body)
        return await self._reloaded(entry.id)

    async def update(self, ctx: TenantContext, model_id: str, body: dict[str, Any]) -> ModelEntry:
        async with self.rt.db.session() as s:
            entry = await admin.update_model(s, ctx, get_registry(self.rt), model_id, body)
        return await self._reloaded(entry.id)

    async def set_enabled(self, ctx: TenantContext, model_id: str, enabled: bool) -> ModelEntry:
        return await self.update(ctx, model_id, {"enabled": enabled})

    async def reset(self, ctx: TenantContext, model_id: str) -> None:
        async with self.rt.db.session() as s:
            await admin.reset_model(s, ctx, get_registry(self.rt), model_id)
        await refresh(self.rt)

    async def _reloaded(self, model_id: str) -> ModelEntry:
        await refresh(self.rt)
        return get_registry(self.rt).get(model_id, include_disabled=True)


def models_admin(rt: Runtime) -> ModelsAdmin:
    """The runtime's registry administration (stateless: built on each call)."""
    return ModelsAdmin(rt)
