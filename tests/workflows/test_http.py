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
                "intents": [{"name": "greeting", "keywords": ["hello", "hi"]}, {"name": "question"}],
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
            events.append({"id": int(fields["id"]), "event": fields["event"],
                           "data": json.loads(fields["data"])})
    return events


@pytest.fixture
def models(runtime: Any) -> FakeModels:
    fake = FakeModels()
    runtime.services["gateway"] = fake
    return fake


async def test_publish_run_and_stream_resume(
    client: httpx.AsyncClient, admin_key: str, models: FakeModels
) -> None:
    h = auth(admin_key)
    r = await client.post("/api/workflows", json=SUPPORT, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["version"]["version"] == 1

    r = await client.post("/api/workflows/support/runs", json={"input": {"message": "hello"}}, headers=h)
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
    assert all({"tokensUsed", "generationTimeMs", "chunkNumber", "isStreamingChunk", "runId", "nodeId"} <= c.keys() for c in chunks)
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    run_id = events[0]["data"]["runId"]

    # reconnect after event 3: the rest arrives, identical, nothing lost
    r = await client.get(
        f"/api/workflow-runs/{run_id}/events", headers={**h, "Last-Event-ID": "3"}
    )
    assert r.status_code == 200, r.text
    assert parse_sse(r.text) == events[3:]

    r = await client.get(f"/api/workflow-runs/{run_id}", headers=h)
    assert r.json()["status"] == "succeeded"
    assert r.json()["tokens"] > 0
