"""End to end through HTTP on SQLite and PostgreSQL: publish, run, stream, resume, access."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import auth
from tests.workflows.fakes import FakeModels

SUPPORT = {
    "id": "support",
    "name": "Support",
    "nodes": [
        {
            "id": "classify",
            "type": "IntentClassifier",
            "config": {
                "intents": [
                    {"name": "greeting", "keywords": ["hello", "hi"]},
                    {"name": "question"},
                ],
                "useModel": False,
                "fallbackIntent": "question",
            },
        },
        {
            "id": "route",
            "type": "Router",
            "config": {
                "routes": [{"when": "state.intent === 'greeting'", "to": "greet"}],
                "default": "answer",
            },
        },
        {"id": "greet", "type": "StreamToClient", "config": {"template": "Hello! How can I help?"}},
        {"id": "answer", "type": "ModelInvoke", "config": {"stream": True}},
        {"id": "out", "type": "StreamToClient", "config": {"source": "answer"}},
    ],
    "edges": [
        {"from": "classify", "to": "route"},
        {"from": "route", "to": "greet"},
        {"from": "route", "to": "answer"},
        {"from": "answer", "to": "out"},
    ],
}


def parse_sse(text: str) -> list[dict[str, Any]]:
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                fields[k] = v.strip()
        if "event" in fields:
            events.append(
                {
                    "id": int(fields["id"]),
                    "event": fields["event"],
                    "data": json.loads(fields["data"]),
                }
            )
    return events


@pytest.fixture
def models(runtime: Any) -> FakeModels:
    fake = FakeModels()
    runtime.services["workflows.models"] = fake
    return fake


async def test_publish_run_and_stream_resume(
    client: httpx.AsyncClient, admin_key: str, models: FakeModels
) -> None:
    h = auth(admin_key)
    r = await client.post("/api/workflows", json=SUPPORT, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["version"]["version"] == 1

    r = await client.post(
        "/api/workflows/support/runs", json={"input": {"message": "hello"}}, headers=h
    )
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["status"] == "succeeded"
    assert run["output"] == "Hello! How can I help?"
    assert [t["nodeId"] for t in run["nodeTimings"]] == ["classify", "route", "greet"]

    r = await client.post(
        "/api/workflows/support/runs",
        json={"input": {"message": "what is gasworks"}, "stream": True},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run.started" and kinds[-1] == "run.finished"
    chunks = [e["data"] for e in events if e["event"] == "chunk"]
    assert "".join(c["chunk"] for c in chunks) == "echo: what is gasworks"
    assert all(
        {"tokensUsed", "generationTimeMs", "chunkNumber", "isStreamingChunk", "runId", "nodeId"}
        <= c.keys()
        for c in chunks
    )
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    run_id = events[0]["data"]["runId"]

    # reconnect after event 3: the rest arrives, identical, nothing lost
    r = await client.get(f"/api/workflow-runs/{run_id}/events", headers={**h, "Last-Event-ID": "3"})
    assert r.status_code == 200, r.text
    assert parse_sse(r.text) == events[3:]

    r = await client.get(f"/api/workflow-runs/{run_id}", headers=h)
    assert r.json()["status"] == "succeeded"
    assert r.json()["tokens"] > 0


async def make_key(client: httpx.AsyncClient, admin: str, role: str, name: str) -> tuple[str, str]:
    r = await client.post("/api/keys", json={"name": name, "role": role}, headers=auth(admin))
    assert r.status_code == 201, r.text
    body = r.json()
    return body["key"], body["apiKey"]["principalId"]


async def test_access_owner_shares_and_404(
    client: httpx.AsyncClient, admin_key: str, models: FakeModels
) -> None:
    owner, _ = await make_key(client, admin_key, "editor", "owner")
    other, other_principal = await make_key(client, admin_key, "viewer", "other")
    r = await client.post("/api/workflows", json=SUPPORT, headers=auth(owner))
    assert r.status_code == 201, r.text
    run = {"input": {"message": "hello"}}

    # not shared: the viewer cannot see or run it, and gets 404 exactly like a missing one
    for method, url in [("GET", "/api/workflows/support"), ("POST", "/api/workflows/support/runs")]:
        r = await client.request(method, url, json=run, headers=auth(other))
        assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    assert (await client.get("/api/workflows", headers=auth(other))).json() == []

    # shared with that user: runs; but only the owner (or an admin) may change it
    r = await client.post(
        "/api/workflows/support/shares",
        json={"kind": "user", "subject": other_principal},
        headers=auth(owner),
    )
    assert r.status_code == 201, r.text
    share_id = r.json()["id"]
    r = await client.post("/api/workflows/support/runs", json=run, headers=auth(other))
    assert r.status_code == 200 and r.json()["status"] == "succeeded"
    r = await client.post(
        "/api/workflows", json={**SUPPORT, "name": "changed"}, headers=auth(other)
    )
    assert r.status_code == 403
    # the run belongs to a workflow the viewer may run: visible; after unsharing: 404
    run_id = (
        await client.post("/api/workflows/support/runs", json=run, headers=auth(other))
    ).json()["id"]
    r = await client.delete(f"/api/workflows/support/shares/{share_id}", headers=auth(owner))
    assert r.status_code == 204
    assert (
        await client.get(f"/api/workflow-runs/{run_id}", headers=auth(other))
    ).status_code == 404
    assert (
        await client.get(f"/api/workflow-runs/{run_id}/events", headers=auth(other))
    ).status_code == 404

    # role share: viewers and up; tenant share: everyone in the tenant
    await client.post(
        "/api/workflows/support/shares",
        json={"kind": "role", "subject": "viewer"},
        headers=auth(owner),
    )
    assert (await client.get("/api/workflows/support", headers=auth(other))).status_code == 200


async def test_tenant_share_and_other_tenants_never_see_it(
    client: httpx.AsyncClient, admin_key: str, models: FakeModels
) -> None:
    owner, _ = await make_key(client, admin_key, "editor", "owner")
    other, _ = await make_key(client, admin_key, "viewer", "other")
    await client.post("/api/workflows", json=SUPPORT, headers=auth(owner))
    r = await client.post(
        "/api/workflows/support/shares", json={"kind": "tenant"}, headers=auth(owner)
    )
    assert r.status_code == 201
    assert (await client.get("/api/workflows/support", headers=auth(other))).status_code == 200
    # another tenant: its admin does not see it
    r = await client.post("/api/tenants", json={"name": "acme"}, headers=auth(admin_key))
    assert r.status_code == 201, r.text
    from gasworks.tenancy import service as tenancy

    rt = client._transport.app.state.runtime  # type: ignore[attr-defined]
    async with rt.db.session() as s:
        _, created = await tenancy.bootstrap(s, "acme")
    if created is not None:
        assert (
            await client.get("/api/workflows/support", headers=auth(created.key))
        ).status_code == 404


async def test_publish_refuses_invalid_and_reports_every_issue(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    bad = {
        "id": "bad",
        "nodes": [
            {"id": "a", "type": "Nope"},
            {"id": "r", "type": "Router", "config": {"routes": []}},
        ],
    }
    r = await client.post("/api/workflows", json=bad, headers=auth(admin_key))
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "WORKFLOW_INVALID"
    assert {i["code"] for i in err["details"]["issues"]} == {
        "UNKNOWN_NODE_TYPE",
        "ROUTER_NO_DEFAULT",
    }
    r = await client.post("/api/workflows/validate", json=bad, headers=auth(admin_key))
    assert r.status_code == 200 and r.json()["valid"] is False and len(r.json()["issues"]) == 2
    assert (await client.get("/api/workflows/bad", headers=auth(admin_key))).status_code == 404


async def test_versions_are_immutable_and_runs_pinned(
    client: httpx.AsyncClient, admin_key: str, models: FakeModels
) -> None:
    h = auth(admin_key)
    v1 = {
        "id": "hello",
        "nodes": [{"id": "f", "type": "Format", "config": {"template": "v1 ${message}"}}],
    }
    yaml_v2 = "id: hello\nnodes:\n  - {id: f, type: Format, config: {template: 'v2 ${message}'}}\n"
    assert (await client.post("/api/workflows", json=v1, headers=h)).json()["created"] is True
    again = await client.post("/api/workflows", json=v1, headers=h)
    assert again.json()["created"] is False and again.json()["version"]["version"] == 1
    r = await client.post(
        "/api/workflows", content=yaml_v2, headers={**h, "content-type": "application/yaml"}
    )
    assert r.status_code == 201 and r.json()["version"]["version"] == 2
    latest = await client.post(
        "/api/workflows/hello/runs", json={"input": {"message": "x"}}, headers=h
    )
    pinned = await client.post(
        "/api/workflows/hello/runs", json={"input": {"message": "x"}, "version": 1}, headers=h
    )
    assert (latest.json()["output"], latest.json()["version"]) == ("v2 x", 2)
    assert (pinned.json()["output"], pinned.json()["version"]) == ("v1 x", 1)
    versions = (await client.get("/api/workflows/hello/versions", headers=h)).json()
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["document"]["nodes"][0]["config"]["template"] == "v1 ${message}"
    runs = (await client.get("/api/workflows/hello/runs", headers=h)).json()
    assert sorted(r["version"] for r in runs) == [1, 2]
    graph = (await client.get("/api/workflows/hello/graph", headers=h)).json()
    assert graph["mermaid"].startswith("flowchart TD")


async def test_demo_workflows_over_http_with_conversations(
    client: httpx.AsyncClient, admin_key: str, runtime: Any
) -> None:
    from gasworks.tenancy import service as tenancy
    from gasworks.tenancy.context import TenantContext
    from gasworks.workflows.demos import install_demos

    runtime.services["workflows.models"] = FakeModels(
        lambda r: "{}" if r.response_format else f"{len(r.messages)} msgs"
    )
    async with runtime.db.session() as s:
        tenant = await tenancy.find_tenant_by_name(s, "default")
        assert tenant is not None
        await install_demos(s, TenantContext.system(tenant.id, "default"))
    h = auth(admin_key)

    async def say(wf: str, message: str, conv: str) -> dict[str, Any]:
        r = await client.post(
            f"/api/workflows/{wf}/runs",
            json={"input": {"message": message}, "conversationId": conv},
            headers=h,
        )
        assert r.status_code == 200, r.text
        return r.json()

    # the neutral prompt's system message, the history, the message
    assert (await say("demo-chatbot", "hi", "chat-1"))["output"] == "2 msgs"
    assert (await say("demo-chatbot", "again", "chat-1"))["output"] == "4 msgs"
    conv = (await client.get("/api/conversations/chat-1", headers=h)).json()
    assert conv["turn"] == 2 and [m["role"] for m in conv["messages"]] == ["user", "assistant"] * 2

    assert (await say("demo-onboarding", "hello", "on-1"))[
        "output"
    ] == "Welcome! What is your name?"
    assert (await say("demo-onboarding", "Ada", "on-1"))["output"].startswith("Thanks Ada!")
    done = await say("demo-onboarding", "ada@example.com, pro", "on-1")
    assert done["output"] == "All set, Ada! Your pro account for ada@example.com is ready."

    r = await client.post(
        "/graphql",
        json={"query": '{ workflows { slug latestVersion } conversation(id: "on-1") { turn } }'},
        headers=h,
    )
    data = r.json()["data"]
    assert {w["slug"] for w in data["workflows"]} == {
        "demo-chatbot",
        "demo-support",
        "demo-onboarding",
        "demo-rag",
    }
    assert data["conversation"]["turn"] == 3
    r = await client.post(
        "/graphql",
        json={
            "query": 'mutation { runWorkflow(workflow: "demo-support", '
            'input: {message: "hello"}) { status output } }'
        },
        headers=h,
    )
    assert r.json()["data"]["runWorkflow"]["status"] == "succeeded"


async def test_cancel_a_streaming_run(
    client: httpx.AsyncClient, admin_key: str, runtime: Any
) -> None:
    import asyncio

    gate = asyncio.Event()

    class Slow(FakeModels):
        async def stream(self, scope, request):  # type: ignore[override]
            from gasworks.modeltypes import StreamChunk

            yield StreamChunk(delta="first")
            await gate.wait()
            yield StreamChunk(delta=" never")

    runtime.services["workflows.models"] = Slow()
    h = auth(admin_key)
    await client.post("/api/workflows", json=SUPPORT, headers=h)
    from gasworks.tenancy.context import TenantContext
    from gasworks.workflows import workflow_engine
    from gasworks.workflows.schemas import RunIn

    eng = workflow_engine(runtime)
    me = (await client.get("/api/me", headers=h)).json()
    ctx = TenantContext.system(me["tenantId"])
    live = await eng.start(ctx, "support", RunIn(input={"message": "question"}, stream=True))
    async for _, kind, data in live.follow(0):
        if kind == "chunk":
            break
    r = await client.post(f"/api/workflow-runs/{live.run_id}/cancel", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    r = await client.get(f"/api/workflow-runs/{live.run_id}/events", headers=h)
    events = parse_sse(r.text)
    assert events[-1]["event"] == "run.cancelled"
    assert [e["data"]["chunk"] for e in events if e["event"] == "chunk"] == ["first"]
    stored = (await client.get(f"/api/workflow-runs/{live.run_id}", headers=h)).json()
    assert stored["status"] == "cancelled"


async def test_concurrent_turns_of_one_conversation_are_serialized(
    client: httpx.AsyncClient, admin_key: str, runtime: Any
) -> None:
    import asyncio

    from gasworks.workflows.demos import demo_document

    runtime.services["workflows.models"] = FakeModels(lambda r: f"{len(r.messages)} msgs")
    h = auth(admin_key)
    await client.post("/api/workflows", json=demo_document("chatbot"), headers=h)
    body = {"input": {"message": "hi"}, "conversationId": "same"}
    results = await asyncio.gather(
        *(client.post("/api/workflows/demo-chatbot/runs", json=body, headers=h) for _ in range(3))
    )
    assert sorted(r.json()["output"] for r in results) == ["2 msgs", "4 msgs", "6 msgs"]
    conv = (await client.get("/api/conversations/same", headers=h)).json()
    assert conv["turn"] == 3 and len(conv["messages"]) == 6


async def test_writer_isolates_a_failing_write(runtime: Any) -> None:
    from sqlalchemy import text

    from gasworks.workflows.writer import RunWriter

    writer = RunWriter(runtime.db)
    seen: list[int] = []

    async def good(s: Any, n: int) -> None:
        await s.execute(text("SELECT 1"))
        seen.append(n)

    async def bad(s: Any) -> None:
        await s.execute(text("SELECT * FROM no_such_table"))

    futs = [writer.submit(lambda s, n=n: good(s, n)) for n in range(3)]
    failed = writer.submit(bad)
    futs.append(writer.submit(lambda s: good(s, 3)))
    await writer.drain()
    assert all(f.done() and f.exception() is None for f in futs)
    assert failed.exception() is not None
    assert sorted(set(seen)) == [0, 1, 2, 3]
    await writer.close()


async def test_untracked_run_records_are_written_and_a_bad_one_is_isolated(runtime: Any) -> None:
    """Finished runs go to the writer as records with no future (``submit_untracked``): a
    batch of them is one INSERT, ``drain`` waits for them, and one that cannot be written (its
    workflow does not exist) is dropped alone, with the others written."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from sqlalchemy import select

    from gasworks.tenancy.tables import TenantRow
    from gasworks.workflows.engine import RunRecord
    from gasworks.workflows.tables import WorkflowRow, WorkflowRunRow
    from gasworks.workflows.writer import RunWriter

    async with runtime.db.session() as s:
        s.add(TenantRow(id="t-u", name="u", display_name="u"))
        await s.flush()
        s.add(WorkflowRow(id="wf-u", tenant_id="t-u", slug="u", name="u", owner_id="p"))

    def record(run_id: str, workflow_id: str = "wf-u") -> RunRecord:
        now = datetime.now(UTC)
        return RunRecord(
            id=run_id,
            tenant_id="t-u",
            workflow_id=workflow_id,
            version=1,
            principal_id="p",
            conversation_id=None,
            status="succeeded",
            inputs={"q": "x"},
            output="ok",
            error=None,
            node_timings=[{"nodeId": "a", "durationMs": 0.001}],
            steps=1,
            tokens=0,
            cost=Decimal(0),
            started_at=now,
            duration_ms=0.01,
            finished_at=now,
        )

    writer = RunWriter(runtime.db)
    writer.submit_untracked(record("r1"))
    writer.submit_untracked(record("r2", workflow_id="wf-missing"))  # a foreign key violated
    writer.submit_untracked(record("r3"))
    await writer.drain()
    async with runtime.db.read_session() as s:
        ids = (await s.execute(select(WorkflowRunRow.id).order_by(WorkflowRunRow.id))).scalars()
        assert list(ids) == ["r1", "r3"]
    await writer.close()


async def test_demos_run_on_the_real_gateway_with_the_demo_model(
    client: httpx.AsyncClient, admin_key: str, runtime: Any
) -> None:
    """No fakes: the demo workflows through the model gateway and its offline demo model."""
    from gasworks.tenancy import service as tenancy
    from gasworks.tenancy.context import TenantContext
    from gasworks.workflows.demos import install_demos

    async with runtime.db.session() as s:
        tenant = await tenancy.find_tenant_by_name(s, "default")
        assert tenant is not None
        await install_demos(s, TenantContext.system(tenant.id, "default"))
    h = auth(admin_key)
    r = await client.post(
        "/api/workflows/demo-chatbot/runs",
        json={
            "input": {"message": "What is gasworks?"},
            "conversationId": "c-demo",
            "stream": True,
        },
        headers=h,
    )
    events = parse_sse(r.text)
    chunks = [e["data"] for e in events if e["event"] == "chunk"]
    assert len(chunks) > 2 and all(c["isStreamingChunk"] for c in chunks)
    text = "".join(c["chunk"] for c in chunks)
    assert text.startswith("[demo]") and "What is gasworks?" in text
    final = events[-1]
    assert final["event"] == "run.finished" and final["data"]["output"] == text
    assert final["data"]["tokens"] > 0
    r = await client.post(
        "/api/workflows/demo-support/runs",
        json={"input": {"message": "my invoice is wrong"}},
        headers=h,
    )
    assert r.json()["status"] == "succeeded" and r.json()["output"].startswith("[demo]")
    assert [t["nodeId"] for t in r.json()["nodeTimings"]][:3] == ["classify", "route", "specialist"]


async def test_model_calls_of_a_run_go_through_guardrails_and_the_ledger(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    from gasworks.workflows.demos import demo_document

    h = auth(admin_key)
    await client.post("/api/workflows", json=demo_document("chatbot"), headers=h)
    ok = await client.post(
        "/api/workflows/demo-chatbot/runs", json={"input": {"message": "hi"}}, headers=h
    )
    assert ok.json()["status"] == "succeeded"
    calls = (await client.get("/api/usage/calls", headers=h)).json()
    assert any(c["workflowId"] == "demo-chatbot" for c in calls), calls

    r = await client.put("/api/budgets", json={"period": "day", "token_limit": 1}, headers=h)
    assert r.status_code == 200, r.text
    refused = await client.post(
        "/api/workflows/demo-chatbot/runs", json={"input": {"message": "hi again"}}, headers=h
    )
    body = refused.json()
    assert body["status"] == "failed"
    assert (
        body["error"]["code"] == "TOKEN_BUDGET_EXCEEDED"
        and body["error"]["details"]["node"] == "answer"
    )


async def test_another_server_process_follows_and_resumes_a_live_run(
    client: httpx.AsyncClient, admin_key: str, runtime: Any
) -> None:
    """Worker 1 runs the workflow; a client reconnects to worker 2 (same database), which
    follows the stored events while the run is still going, and ends with the final result."""
    import asyncio

    from gasworks.api.app import create_app
    from gasworks.modeltypes import StreamChunk
    from gasworks.tenancy.context import TenantContext
    from gasworks.wiring import build_runtime
    from gasworks.workflows import workflow_engine
    from gasworks.workflows.schemas import RunIn

    gate = asyncio.Event()

    class Paused(FakeModels):
        async def stream(self, scope, request):  # type: ignore[override]
            yield StreamChunk(delta="one")
            yield StreamChunk(delta=" two")
            await gate.wait()
            yield StreamChunk(delta=" three")

    runtime.services["workflows.models"] = Paused()
    h = auth(admin_key)
    await client.post("/api/workflows", json=SUPPORT, headers=h)
    me = (await client.get("/api/me", headers=h)).json()
    eng = workflow_engine(runtime)
    eng.flush_interval = 0.01
    live = await eng.start(
        TenantContext.system(me["tenantId"]), "support", RunIn(input={"message": "q"}, stream=True)
    )
    seen = 0
    async for _, kind, data in live.follow(0):
        seen += kind == "chunk"
        if seen == 2:
            break
    await eng.drain()  # the run row exists and events so far are stored

    rt2 = build_runtime(runtime.settings)
    await rt2.start(migrate=False)
    try:
        workflow_engine(rt2).flush_interval = 0.01
        transport = httpx.ASGITransport(app=create_app(runtime=rt2))
        async with httpx.AsyncClient(transport=transport, base_url="http://w2.test") as c2:
            follow = asyncio.create_task(
                c2.get(
                    f"/api/workflow-runs/{live.run_id}/events", headers={**h, "Last-Event-ID": "2"}
                )
            )
            await asyncio.sleep(0.05)  # let worker 2 start polling while the run is paused
            assert not follow.done()
            gate.set()
            r = await follow
        assert r.status_code == 200, r.text
        resumed = parse_sse(r.text)
        await live.done.wait()
        expected = [
            {"id": s, "event": k, "data": json.loads(json.dumps(d))} for s, k, d in live.events[2:]
        ]
        assert resumed == expected
        assert (
            resumed[-1]["event"] == "run.finished"
            and resumed[-1]["data"]["output"] == "one two three"
        )
    finally:
        await rt2.stop()


async def test_with_persistence_off_conversations_still_work_in_process(
    settings: Any, admin_key: str
) -> None:
    from gasworks.api.app import create_app
    from gasworks.wiring import build_runtime
    from gasworks.workflows.demos import demo_document

    rt = build_runtime(settings.model_copy(update={"workflow_persist_runs": False}))
    await rt.start(migrate=False)
    try:
        rt.services["workflows.models"] = FakeModels(lambda r: f"{len(r.messages)} msgs")
        transport = httpx.ASGITransport(app=create_app(runtime=rt))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            h = auth(admin_key)
            await c.post("/api/workflows", json=demo_document("chatbot"), headers=h)
            body = {"input": {"message": "hi"}, "conversationId": "mem"}
            outs = [
                (await c.post("/api/workflows/demo-chatbot/runs", json=body, headers=h)).json()
                for _ in range(2)
            ]
            assert [o["output"] for o in outs] == ["2 msgs", "4 msgs"]
            assert (
                await c.get(f"/api/workflow-runs/{outs[0]['id']}", headers=h)
            ).status_code == 200
            runs = (await c.get("/api/workflows/demo-chatbot/runs", headers=h)).json()
            assert runs == []  # nothing stored
    finally:
        await rt.stop()


async def test_cancelling_the_caller_of_a_non_streamed_run_records_it_cancelled(
    client: httpx.AsyncClient, admin_key: str, runtime: Any
) -> None:
    import asyncio

    from gasworks.tenancy.context import TenantContext
    from gasworks.workflows import workflow_engine
    from gasworks.workflows.schemas import RunIn

    entered = asyncio.Event()

    class Hanging(FakeModels):
        async def chat(self, scope, request):  # type: ignore[override]
            entered.set()
            await asyncio.Event().wait()

    runtime.services["workflows.models"] = Hanging()
    h = auth(admin_key)
    doc = {"id": "slow", "nodes": [{"id": "m", "type": "ModelInvoke"}]}
    await client.post("/api/workflows", json=doc, headers=h)
    me = (await client.get("/api/me", headers=h)).json()
    eng = workflow_engine(runtime)
    caller = asyncio.create_task(
        eng.run(TenantContext.system(me["tenantId"]), "slow", RunIn(input={"message": "x"}))
    )
    await entered.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    runs = (await client.get("/api/workflows/slow/runs", headers=h)).json()
    assert [(r["status"], r["error"]["code"]) for r in runs] == [("cancelled", "RUN_CANCELLED")]
    assert runs[0]["nodeTimings"][-1]["nodeId"] == "m"


async def test_delete_removes_versions_runs_and_conversations(
    client: httpx.AsyncClient, admin_key: str, models: FakeModels
) -> None:
    from gasworks.workflows.demos import demo_document

    h = auth(admin_key)
    await client.post("/api/workflows", json=demo_document("chatbot"), headers=h)
    body = {"input": {"message": "hi"}, "conversationId": "gone", "stream": True}
    r = await client.post("/api/workflows/demo-chatbot/runs", json=body, headers=h)
    run_id = parse_sse(r.text)[0]["data"]["runId"]
    q = '{ workflow(id: "demo-chatbot") { conversations { id turn } runs { id status } } }'
    data = (await client.post("/graphql", json={"query": q}, headers=h)).json()["data"]
    assert data["workflow"]["conversations"] == [{"id": "gone", "turn": 1}]
    assert [x["id"] for x in data["workflow"]["runs"]] == [run_id]
    assert (await client.delete("/api/workflows/demo-chatbot", headers=h)).status_code == 204
    for url in (
        "/api/workflows/demo-chatbot",
        f"/api/workflow-runs/{run_id}",
        "/api/conversations/gone",
    ):
        assert (await client.get(url, headers=h)).status_code == 404, url
    rt = client._transport.app.state.runtime  # type: ignore[attr-defined]
    from sqlalchemy import func, select

    from gasworks.workflows.tables import ConversationMessageRow, WorkflowRunEventRow

    async with rt.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(WorkflowRunEventRow)) == 0
        assert await s.scalar(select(func.count()).select_from(ConversationMessageRow)) == 0


async def test_original_model_invoke_config_streams_and_records_its_prompt_version(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    """A ModelInvoke written for the original system (``modelId``, ``maxTokens``) runs
    unchanged; its streamed node's ``node.finished`` has the real text and usage; the prompt
    version that answered is on the node output and on the call's ledger row."""
    h = auth(admin_key)
    v = await client.post(
        "/api/prompts/versions",
        json={"name": "wf", "content": {"system": "Be brief.", "user": "${inputs.user_prompt}"}},
        headers=h,
    )
    assert v.status_code in (200, 201), v.text
    moved = await client.post(
        "/api/prompts/pointer/move",
        json={
            "scope": {"model": "demo", "workflowId": "original"},
            "versionId": v.json()["id"],
            "expectedVersion": 0,
        },
        headers=h,
    )
    assert moved.status_code == 200, moved.text
    doc = {
        "id": "original",
        "nodes": [
            {
                "id": "answer",
                "type": "ModelInvoke",
                "config": {
                    "modelId": "demo",
                    "temperature": 0.7,
                    "maxTokens": 1000,
                    "stream": True,
                },
            },
            {"id": "reply", "type": "StreamToClient", "config": {"source": "answer"}},
        ],
        "edges": [{"from": "answer", "to": "reply"}],
    }
    r = await client.post("/api/workflows", json=doc, headers=h)
    assert r.status_code in (200, 201), r.text
    r = await client.post(
        "/api/workflows/original/runs",
        json={"input": {"message": "hello there"}, "stream": True},
        headers=h,
    )
    events = parse_sse(r.text)
    text = "".join(e["data"]["chunk"] for e in events if e["event"] == "chunk")
    (finished,) = [
        e["data"]
        for e in events
        if e["event"] == "node.finished" and e["data"]["nodeId"] == "answer"
    ]
    out = finished["output"]
    assert text.startswith("[demo]") and out["text"] == text
    assert out["usage"]["outputTokens"] > 0 and out["usage"]["inputTokens"] > 0
    assert out["promptVersionId"] == v.json()["id"]
    calls = (await client.get("/api/usage/calls", headers=h)).json()
    (call,) = [c for c in calls if c["workflowId"] == "original"]
    assert call["promptVersionId"] == v.json()["id"] and call["attempt"] == 1


async def test_the_run_records_the_prompt_version_that_answered(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    """``workflow_runs.prompt_version_id``: written by the runner (streamed or not), read back
    from the database by REST and GraphQL; null while the neutral prompt answers."""
    h = auth(admin_key)
    doc = {
        "id": "versioned",
        "nodes": [
            {"id": "m", "type": "ModelInvoke", "config": {"model": "demo", "stream": True}},
            {"id": "out", "type": "StreamToClient", "config": {"source": "m"}},
        ],
        "edges": [{"from": "m", "to": "out"}],
    }
    assert (await client.post("/api/workflows", json=doc, headers=h)).status_code == 201
    body: dict[str, Any] = {"input": {"message": "hi"}}
    r = await client.post("/api/workflows/versioned/runs", json=body, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["promptVersionId"] is None  # no pointer yet: the neutral prompt

    async def version(system: str, expected: int) -> str:
        v = await client.post(
            "/api/prompts/versions",
            json={"name": "wf", "content": {"system": system}},
            headers=h,
        )
        moved = await client.post(
            "/api/prompts/pointer/move",
            json={
                "scope": {"model": "demo", "workflowId": "versioned"},
                "versionId": v.json()["id"],
                "expectedVersion": expected,
            },
            headers=h,
        )
        assert moved.status_code == 200, moved.text
        return str(v.json()["id"])

    first = await version("Be brief.", 0)
    r = await client.post("/api/workflows/versioned/runs", json=body, headers=h)
    plain_run = r.json()
    assert plain_run["promptVersionId"] == first
    second = await version("Be thorough.", 1)
    r = await client.post("/api/workflows/versioned/runs", json={**body, "stream": True}, headers=h)
    events = parse_sse(r.text)
    assert events[-1]["event"] == "run.finished"
    assert events[-1]["data"]["promptVersionId"] == second
    streamed_id = events[-1]["data"]["id"]

    # read back from the stored rows
    got = (await client.get(f"/api/workflow-runs/{plain_run['id']}", headers=h)).json()
    assert got["promptVersionId"] == first
    got = (await client.get(f"/api/workflow-runs/{streamed_id}", headers=h)).json()
    assert got["promptVersionId"] == second
    q = (
        f'{{ a: workflowRun(id: "{plain_run["id"]}") {{ promptVersionId }} '
        f'b: workflowRun(id: "{streamed_id}") {{ promptVersionId }} }}'
    )
    data = (await client.post("/graphql", json={"query": q}, headers=h)).json()["data"]
    assert data == {"a": {"promptVersionId": first}, "b": {"promptVersionId": second}}
    runs = (await client.get("/api/workflows/versioned/runs", headers=h)).json()
    assert [x["promptVersionId"] for x in runs] == [second, first, None]


async def test_publish_refuses_an_unknown_or_disabled_model_at_its_node(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    h = auth(admin_key)
    r = await client.put("/api/models/gpt-4o/enabled", json={"enabled": False}, headers=h)
    assert r.status_code == 200, r.text
    doc = {
        "id": "typo",
        "nodes": [
            {"id": "off", "type": "ModelInvoke", "config": {"model": "gpt-4o"}},
            {"id": "bad", "type": "ModelInvoke", "config": {"modelId": "gpt-17"}},
            {"id": "fine", "type": "ModelInvoke", "config": {"model": "demo"}},
        ],
        "edges": [{"from": "off", "to": "bad"}, {"from": "bad", "to": "fine"}],
    }
    r = await client.post("/api/workflows", json=doc, headers=h)
    assert r.status_code == 422, r.text
    issues = r.json()["error"]["details"]["issues"]
    assert [(i["code"], i["path"]) for i in issues] == [
        ("MODEL_NOT_FOUND", "nodes[0].config.model"),
        ("MODEL_NOT_FOUND", "nodes[1].config.model"),
    ]
    assert "gpt-17" in issues[1]["message"]
    assert (await client.get("/api/workflows/typo", headers=h)).status_code == 404
