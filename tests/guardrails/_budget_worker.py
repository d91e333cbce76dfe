"""One of the processes of the concurrency test: N concurrent guarded calls, JSON results."""

from __future__ import annotations

import asyncio
import json
import random
import sys

from gasworks.db.engine import Database
from gasworks.errors import GasworksError
from gasworks.llm.guardrails import Guardrails
from gasworks.llm.types import CallScope, ChatRequest, Message
from tests.guardrails.fakes import FakeModel, ok

PROMPT = "Summarise the quarterly report in three bullet points, please."


def request() -> ChatRequest:
    return ChatRequest(model="fake-model", messages=[Message("user", PROMPT)], max_tokens=100)


async def one(g: Guardrails, model: FakeModel, scope: CallScope) -> str:
    req = request()
    try:
        token = await g.before_call(scope, model, req)
    except GasworksError as exc:
        return exc.code
    await asyncio.sleep(random.random() / 100)  # the provider "working"
    est = g.precheck(model, request()).estimate.tokens
    await g.after_call(token, scope, model, ok(model, est, 100))
    return "served"


async def main(url: str, tenant_id: str, key_id: str, n: int) -> None:
    db = Database(url)
    try:
        g = Guardrails(db)
        model = FakeModel()
        scope = CallScope(tenant_id=tenant_id, api_key_id=key_id)
        results = await asyncio.gather(*(one(g, model, scope) for _ in range(n)))
    finally:
        await db.dispose()
    sys.stdout.write(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
