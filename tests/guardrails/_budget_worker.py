"""One process of the concurrency tests: N concurrent calls through the gateway.

Prints JSON: each call's outcome, and how many budget reservations came from a lease vs
exactly from the database."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from gasworks.errors import GasworksError
from gasworks.llm.runtime import get_gateway
from gasworks.modeltypes import CallScope, ChatRequest, Message
from gasworks.observability.metrics import REGISTRY
from tests.guardrails.gateway_env import gateway_settings, started

PROMPT = "Summarise the quarterly report in three bullet points, please."


def request() -> ChatRequest:
    return ChatRequest(model="lonely", messages=[Message("user", PROMPT)], max_tokens=100)


async def main(home: str, url: str, provider_url: str, tenant_id: str, key_id: str, n: int) -> None:
    settings = gateway_settings(Path(home), url, provider_url, provider_url)
    async with started(settings) as env:
        gateway = get_gateway(env.runtime)
        scope = CallScope(tenant_id=tenant_id, api_key_id=key_id)

        async def one() -> str:
            try:
                result = await gateway.chat(scope, request())
            except GasworksError as exc:
                return exc.code
            return f"served:{result.model}"

        results = await asyncio.gather(*(one() for _ in range(n)))
    modes = {
        m: REGISTRY.get_sample_value("gasworks_budget_reservations_total", {"mode": m}) or 0
        for m in ("lease", "exact")
    }
    sys.stdout.write(json.dumps({"results": results, "modes": modes}))


if __name__ == "__main__":
    a = sys.argv
    asyncio.run(main(a[1], a[2], a[3], a[4], a[5], int(a[6])))
