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

from gasworks.background import PeriodicTask
from gasworks.errors import ConfigurationError, GasworksError
from gasworks.llm.gateway import Gateway, RetryPolicy
from gasworks.llm.providers.factory import ProviderSet
from gasworks.llm.registry.admin import reload_overlays
from gasworks.llm.registry.registry import ModelRegistry, build_registry
from gasworks.observability.logging import get_logger
from gasworks.runtime import Runtime
from gasworks.settings import Settings

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
