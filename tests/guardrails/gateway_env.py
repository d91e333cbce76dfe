"""A gasworks runtime whose models answer from fake provider servers, for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gasworks.llm.guardrails import Guardrails
from gasworks.llm.guardrails_runtime import SERVICE
from gasworks.llm.runtime import get_gateway
from gasworks.runtime import Runtime
from gasworks.settings import Settings
from gasworks.wiring import build_runtime
from gasworks.yamlsafe import dump_yaml
from tests.guardrails.fakes import FakeClock

#: per 1k tokens
INPUT_PER_1K = "0.01"
OUTPUT_PER_1K = "0.03"


def model_entries(primary_url: str, backup_url: str) -> list[dict[str, Any]]:
    common = {
        "provider": "openai_compatible",
        "api_key_env": "GW_FAKE_PROVIDER_KEY",
        "input_per_1k": INPUT_PER_1K,
        "output_per_1k": OUTPUT_PER_1K,
        "context_window": 2000,
        "max_output_tokens": 500,
        "max_retries": 0,
    }
    return [
        {"id": "primary", "base_url": f"{primary_url}/v1", "fallbacks": ["backup"], **common},
        {"id": "backup", "base_url": f"{backup_url}/v1", **common},
        {"id": "lonely", "base_url": f"{primary_url}/v1", **common},
    ]


def gateway_settings(home: Path, db_url: str, primary_url: str, backup_url: str) -> Settings:
    home.mkdir(parents=True, exist_ok=True, mode=0o700)  # private, as gasworks makes it
    path = home / "models.yaml"
    path.write_text(dump_yaml({"models": model_entries(primary_url, backup_url)}))
    path.chmod(0o600)
    os.environ["GW_FAKE_PROVIDER_KEY"] = "sk-fake-not-real"
    return Settings(
        home=home,
        database_url=db_url,
        auth_cache_ttl_seconds=0,
        models_file=path,
        models_refresh_seconds=0,
        provider_max_retries=0,
        breaker_minimum_calls=4,
        breaker_failure_rate_threshold=0.5,
        breaker_half_open_probes=2,
        breaker_cooldown_seconds=30,
        guardrails_maintenance_interval_seconds=0,  # the tests drive time themselves
    )


@dataclass
class Env:
    runtime: Runtime
    guardrails: Guardrails
    clock: FakeClock


@contextlib.asynccontextmanager
async def started(settings: Settings, clock: FakeClock | None = None) -> AsyncIterator[Env]:
    """A started runtime whose guardrails run on ``clock`` (no sleeping for cool-downs)."""
    rt = build_runtime(settings)
    await rt.start(migrate=False)
    clock = clock or FakeClock()
    try:
        hooks = get_gateway(rt).hooks
        hooks.remove(rt.services[SERVICE])
        g = Guardrails.from_settings(rt.db, settings, clock=clock)
        rt.services[SERVICE] = g
        hooks.append(g)
        yield Env(rt, g, clock)
    finally:
        await rt.stop()
