"""Back-pressure: a process at its limit of running workflow runs (or of queued run writes)
refuses a new run with 503 SERVER_BUSY and Retry-After instead of growing without bound; once
a run ends, runs are admitted again."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from gasworks.modeltypes import StreamChunk
from gasworks.tenancy.context import TenantContext
from gasworks.workflows import workflow_engine
from gasworks.workflows.demos import demo_document
from gasworks.workflows.schemas import RunIn
from tests.conftest import auth
from tests.workflows.fakes import FakeModels


async def test_a_full_process_refuses_with_retry_after(
    client: httpx.AsyncClient, admin_key: str, runtime: Any
) -> None:
    gate = asyncio.Event()

    class Paused(FakeModels):
        async def stream(self, scope, request):  # type: ignore[override]
            yield StreamChunk(delta="one")
            await gate.wait()
            yield StreamChunk(delta=" two")

    runtime.services["workflows.models"] = Paused()
    h = auth(admin_key)
    r = await client.post("/api/workflows", json=demo_document("chatbot"), headers=h)
    assert r.status_code in (200, 201), r.text
    eng = workflow_engine(runtime)
    eng.max_running = 1
    body = {"input": {"message": "q"}, "stream": False}
    tenant_id = str((await client.get("/api/me", headers=h)).json()["tenantId"])
    live = await eng.start(
        TenantContext.system(tenant_id),
        "demo-chatbot",
        RunIn(input={"message": "q"}, stream=True, conversation_id="c"),
    )
    busy = await client.post("/api/workflows/demo-chatbot/runs", json=body, headers=h)
    assert busy.status_code == 503, busy.text
    assert busy.headers["retry-after"] == "1"
    err = busy.json()["error"]
    assert err["code"] == "SERVER_BUSY" and err["details"]["limit"] == 1
    gate.set()
    await live.done.wait()
    while eng._tasks:
        await asyncio.sleep(0.01)
    again = await client.post("/api/workflows/demo-chatbot/runs", json=body, headers=h)
    assert again.status_code == 200, again.text

    eng.max_pending_writes = 0  # a database that does not keep up: queued writes at the limit
    refused = await client.post("/api/workflows/demo-chatbot/runs", json=body, headers=h)
    assert refused.status_code == 503
    assert "pendingWrites" in refused.json()["error"]["details"]


async def test_event_followers_of_one_run_are_bounded(
    client: httpx.AsyncClient, admin_key: str, runtime: Any
) -> None:
    """Each open event stream of a run costs this process a follower; beyond
    ``max_followers`` a new one is refused with 503 SERVER_BUSY and Retry-After before its
    response starts, and admitted again once one closes."""
    gate = asyncio.Event()

    class Paused(FakeModels):
        async def stream(self, scope, request):  # type: ignore[override]
            yield StreamChunk(delta="one")
            await gate.wait()
            yield StreamChunk(delta=" two")

    runtime.services["workflows.models"] = Paused()
    h = auth(admin_key)
    r = await client.post("/api/workflows", json=demo_document("chatbot"), headers=h)
    assert r.status_code in (200, 201), r.text
    eng = workflow_engine(runtime)
    eng.max_followers = 2
    tenant_id = str((await client.get("/api/me", headers=h)).json()["tenantId"])
    ctx = TenantContext.system(tenant_id)
    live = await eng.start(
        ctx, "demo-chatbot", RunIn(input={"message": "q"}, stream=True, conversation_id="c")
    )
    first = await eng.open_events(ctx, live.run_id)
    second = await eng.open_events(ctx, live.run_id)
    assert first[0] is not None and second[0] is not None  # both follow the live run
    refused = await client.get(f"/api/workflow-runs/{live.run_id}/events", headers=h)
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "1"
    err = refused.json()["error"]
    assert err["code"] == "SERVER_BUSY" and err["details"] == {
        "followers": 2,
        "limit": 2,
        "retryAfterSeconds": 1,
    }
    await first[1].aclose()  # one follower leaves: room for another
    third = await eng.open_events(ctx, live.run_id)
    assert third[0] is not None
    gate.set()
    for _, rest in (second, third):
        events = [ev async for ev in rest]  # the run ends: every follower sees it through
        assert events[-1][1] == "run.finished", events[-1]
    assert eng._followers == {}  # nothing is left counted
