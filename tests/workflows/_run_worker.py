"""One server process of the crash test: it starts a streamed run whose model answers one
chunk and then hangs, waits until the run's row and first events are stored, prints the run id
and waits to be killed (SIGKILL) with the run still going."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from gasworks.modeltypes import CallScope, ChatRequest, StreamChunk
from gasworks.settings import Settings
from gasworks.tenancy.context import TenantContext
from gasworks.wiring import build_runtime
from gasworks.workflows import workflow_engine
from gasworks.workflows.schemas import RunIn
from tests.workflows.fakes import FakeModels


class Hangs(FakeModels):
    async def stream(self, scope: CallScope, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        yield StreamChunk(delta="partial")
        await asyncio.Event().wait()  # never answers the rest


async def main(url: str, home: str, tenant_id: str, lease: float) -> None:
    settings = Settings(
        home=Path(home),
        database_url=url,
        workflow_run_lease_seconds=lease,
        workflow_event_flush_seconds=0.05,
    )
    rt = build_runtime(settings)
    await rt.start(migrate=False)
    rt.services["workflows.models"] = Hangs()
    eng = workflow_engine(rt)
    body = RunIn(input={"message": "a question"}, stream=True, conversation_id="conv-1")
    live = await eng.start(TenantContext.system(tenant_id), "demo-chatbot", body)
    async for _, kind, _ in live.follow(0):
        if kind == "chunk":
            break
    while live.flushed < len(live.events):  # the next checkpoint writes the chunk
        await asyncio.sleep(0.01)
    await eng.drain()
    sys.stdout.write(json.dumps({"run": live.run_id, "stored": live.flushed}) + "\n")
    sys.stdout.flush()
    await asyncio.sleep(3600)  # killed here


if __name__ == "__main__":
    a = sys.argv
    asyncio.run(main(a[1], a[2], a[3], float(a[4])))
