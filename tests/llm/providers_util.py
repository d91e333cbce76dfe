"""Helpers for provider tests: a gateway wired exactly like the server's, aimed at fakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gasworks.errors import GasworksError
from gasworks.llm.gateway import Gateway
from gasworks.llm.runtime import build_services
from gasworks.modeltypes import CallScope, ChatRequest, Message
from gasworks.settings import Settings
from tests.llm.conftest import models_file

SCOPE = CallScope(tenant_id="ten_test")
#: gateways built by a test, closed after it (conftest) so no client outlives its loop
OPEN: list[Gateway] = []


def gateway_for(
    tmp_path: Path,
    entries: list[dict[str, Any]],
    sleeps: list[float] | None = None,
    **settings: Any,
) -> Gateway:
    path = models_file(tmp_path, entries)
    s = Settings(
        home=tmp_path / "home",
        models_file=path,
        provider_retry_initial_seconds=0.001,
        provider_retry_max_seconds=0.01,
        **settings,
    )
    gw = build_services(s).gateway
    OPEN.append(gw)
    if sleeps is not None:

        async def record(seconds: float) -> None:
            sleeps.append(seconds)

        gw.sleep = record
    return gw


def ask(model: str, text: str = "Say hello", **kw: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=[Message("user", text)], **kw)


async def collect(gw: Gateway, req: ChatRequest) -> tuple[str, Any]:
    parts, last = [], None
    async for c in gw.stream(SCOPE, req):
        parts.append(c.delta)
        last = c
    return "".join(parts), last


async def text_before_error(
    gw: Gateway, req: ChatRequest, error: type[GasworksError]
) -> tuple[str, GasworksError]:
    """Stream ``req``, which must fail with ``error``: the text that arrived, and the error."""
    parts: list[str] = []
    with pytest.raises(error) as info:
        async for c in gw.stream(SCOPE, req):
            parts.append(c.delta)
    return "".join(parts), info.value
