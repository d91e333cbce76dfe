"""Run owner leases: a run whose server process is killed (a real SIGKILL) is marked failed
with RUN_INTERRUPTED by another process, its stored events are kept and its stream ends with a
final event; cancelling it answers the closed run; the conversation's next turn proceeds."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from gasworks.db.types import utcnow
from gasworks.modeltypes import StreamChunk
from gasworks.tenancy.context import TenantContext
from gasworks.workflows import workflow_engine
from gasworks.workflows.demos import demo_document
from gasworks.workflows.schemas import RunIn
from gasworks.workflows.tables import WorkflowRunRow
from tests.conftest import auth
from tests.workflows.fakes import FakeModels
from tests.workflows.test_http import parse_sse

ROOT = Path(__file__).resolve().parents[2]
LEASE = 1.0
#: generous bound for a CI machine; the wait itself ends as soon as the event arrives
WAIT = 60.0


@pytest.fixture
def settings(settings: Any) -> Any:
    """Short leases and frequent sweeps, so the test waits about a second, not thirty."""
    return settings.model_copy(
        update={
            "workflow_run_lease_seconds": LEASE,
            "workflow_run_sweep_seconds": 0.1,
            "workflow_event_flush_seconds": 0.05,
        }
    )


async def _tenant(client: httpx.AsyncClient, key: str) -> str:
    r = await client.post("/api/workflows", json=demo_document("chatbot"), headers=auth(key))
    assert r.status_code in (200, 201), r.text
    return str((await client.get("/api/me", headers=auth(key))).json()["tenantId"])


async def test_a_run_of_a_killed_process_is_interrupted_and_its_stream_ends(
    client: httpx.AsyncClient, admin_key: str, runtime: Any, tmp_path: Path
) -> None:
    tenant_id = await _tenant(client, admin_key)
    h = auth(admin_key)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.workflows._run_worker",
            runtime.settings.resolved_database_url,
            str(tmp_path / "worker-home"),
            tenant_id,
            str(LEASE),
        ],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = "log"
        while line and not line.startswith("{"):  # the domains' start-up logs come first
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), WAIT)
        assert line, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, WAIT)
    info = json.loads(line)
    run_id = info["run"]

    # a client that reconnects to this (live) process follows the stored events to the end
    r = await asyncio.wait_for(client.get(f"/api/workflow-runs/{run_id}/events", headers=h), WAIT)
    assert r.status_code == 200, r.text
    events = parse_sse(r.text)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run.started" and "chunk" in kinds
    assert kinds[-1] == "run.failed" and len(events) == info["stored"] + 1  # partial ones kept
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    final = events[-1]["data"]
    assert final["status"] == "failed" and final["error"]["code"] == "RUN_INTERRUPTED"

    run = (await client.get(f"/api/workflow-runs/{run_id}", headers=h)).json()
    assert run["status"] == "failed" and run["error"]["code"] == "RUN_INTERRUPTED"
    assert run["finishedAt"] is not None
    r = await client.post(f"/api/workflow-runs/{run_id}/cancel", headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["error"]["code"] == "RUN_INTERRUPTED"

    # the turn the killed run held was never written: the next one starts from turn 0
    runtime.services["workflows.models"] = FakeModels(lambda req: f"{len(req.messages)} msgs")
    body = {"input": {"message": "again"}, "conversationId": "conv-1"}
    r = await client.post("/api/workflows/demo-chatbot/runs", json=body, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    conv = (await client.get("/api/conversations/conv-1", headers=h)).json()
    assert conv["turn"] == 1 and len(conv["messages"]) == 2
    assert conv["messages"][0]["content"] == "again"


async def _paused_run(client: httpx.AsyncClient, admin_key: str, runtime: Any) -> Any:
    gate = asyncio.Event()

    class Paused(FakeModels):
        async def stream(self, scope, request):  # type: ignore[override]
            yield StreamChunk(delta="one")
            await gate.wait()
            yield StreamChunk(delta=" two")

    runtime.services["workflows.models"] = Paused()
    tenant_id = await _tenant(client, admin_key)
    eng = workflow_engine(runtime)
    live = await eng.start(
        TenantContext.system(tenant_id),
        "demo-chatbot",
        RunIn(input={"message": "q"}, stream=True, conversation_id="c"),
    )
    async for _, kind, _ in live.follow(0):
        if kind == "chunk":
            break
    await eng.drain()
    return eng, live, gate


async def _lease(runtime: Any, run_id: str) -> Any:
    async with runtime.db.session() as s:
        return (
            await s.execute(
                select(WorkflowRunRow.owner_id, WorkflowRunRow.lease_expires_at).where(
                    WorkflowRunRow.id == run_id
                )
            )
        ).one()


async def test_the_owner_renews_its_lease_and_a_live_owner_is_never_swept(
    client: httpx.AsyncClient, admin_key: str, runtime: Any
) -> None:
    eng, live, gate = await _paused_run(client, admin_key, runtime)
    owner, first = await _lease(runtime, live.run_id)
    assert owner == eng.owner_id and first > utcnow()
    eng._last_renew = float("-inf")  # the next round is due
    await eng.maintain()
    assert (await _lease(runtime, live.run_id))[1] > first
    assert await eng.sweep() == 0
    r = await client.post(f"/api/workflow-runs/{live.run_id}/cancel", headers=auth(admin_key))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"  # its owner is here
    await eng.drain()
    assert await _lease(runtime, live.run_id) == (None, None)  # a finished run holds none
    gate.set()


async def test_a_late_result_after_the_sweep_is_refused_not_stored(
    client: httpx.AsyncClient, admin_key: str, runtime: Any
) -> None:
    """An owner that was only cut off (not dead) finishes after its run was swept: the run
    stays interrupted and the conversation's turn is not written."""
    eng, live, gate = await _paused_run(client, admin_key, runtime)
    await eng.stop_maintenance()  # cut off: it renews nothing from now on
    async with runtime.db.session() as s:
        await s.execute(
            update(WorkflowRunRow)
            .where(WorkflowRunRow.id == live.run_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    assert await eng.sweep() == 1
    h = auth(admin_key)
    run = (await client.get(f"/api/workflow-runs/{live.run_id}", headers=h)).json()
    assert run["status"] == "failed" and run["error"]["code"] == "RUN_INTERRUPTED"
    gate.set()
    await live.done.wait()
    await eng.drain()
    run = (await client.get(f"/api/workflow-runs/{live.run_id}", headers=h)).json()
    assert run["status"] == "failed" and run["error"]["code"] == "RUN_INTERRUPTED"
    r = await client.get("/api/conversations/c", headers=h)
    assert r.status_code == 404


async def test_idle_maintenance_is_one_bounded_read_per_sweep(runtime: Any) -> None:
    """No running run here: no renewal; a due sweep is one indexed, LIMITed SELECT."""
    from sqlalchemy import event

    eng = workflow_engine(runtime)
    await eng.stop_maintenance()  # rounds driven by hand below, none in the background
    seen: list[str] = []

    def on_sql(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "workflow" in statement or "conversation" in statement:  # ours, not the driver's setup
            seen.append(" ".join(statement.split()))

    sync = runtime.db.engine.sync_engine
    event.listen(sync, "before_cursor_execute", on_sql)
    try:
        eng._last_sweep = float("-inf")
        # the fixture sweeps every 0.1 s; a slow machine must not make the second round due
        eng.sweep_interval = 3600.0
        await eng.maintain()
        swept = list(seen)
        await eng.maintain()  # neither renewal nor sweep is due
    finally:
        event.remove(sync, "before_cursor_execute", on_sql)
    assert len(swept) == 1 and swept[0].startswith("SELECT workflow_runs.id"), swept
    assert "LIMIT" in swept[0] and "lease_expires_at <" in swept[0]
    assert seen == swept
