"""Access inside one tenant (issue 18): conversations belong to a workflow and a principal;
who may cancel a run. Both databases, through HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import yaml

import gasworks.workflows.demos as demos
from tests.conftest import auth
from tests.workflows.fakes import FakeModels
from tests.workflows.test_http import SUPPORT, make_key

CHAT = yaml.safe_load((Path(demos.__file__).parent / "chatbot.yaml").read_text())


async def _say(client: httpx.AsyncClient, key: str, wf: str, text: str, conv: str) -> Any:
    r = await client.post(
        f"/api/workflows/{wf}/runs",
        json={"input": {"message": text}, "conversationId": conv},
        headers=auth(key),
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_foreign_conversation_id_is_a_new_conversation(
    client: httpx.AsyncClient, admin_key: str, runtime: Any
) -> None:
    # the model answers with what it was shown, so a leaked history is visible in the output
    runtime.services["workflows.models"] = FakeModels(
        lambda r: " | ".join(str(m.content) for m in r.messages[1:])
    )
    alice, _ = await make_key(client, admin_key, "editor", "alice")
    bob, _ = await make_key(client, admin_key, "editor", "bob")
    for wf, share in (("chat-a", None), ("chat-b", {"kind": "tenant"})):
        r = await client.post("/api/workflows", json={**CHAT, "id": wf}, headers=auth(alice))
        assert r.status_code == 201, r.text
        if share:
            r = await client.post(f"/api/workflows/{wf}/shares", json=share, headers=auth(alice))
            assert r.status_code == 201, r.text

    assert (await _say(client, alice, "chat-a", "secret", "c1"))["output"] == "secret"
    # bob cannot see chat-a; on chat-b, alice's conversation id is simply unused
    same = await _say(client, bob, "chat-b", "hi", "c1")
    fresh = await _say(client, bob, "chat-b", "hi", "never-used")
    assert same["output"] == fresh["output"] == "hi"
    # ... and alice's own id on another workflow, too
    assert (await _say(client, alice, "chat-b", "hello", "c1"))["output"] == "hello"
    # bob's turns went to bob's conversation; alice's is untouched (history: user, answer)
    assert (await _say(client, bob, "chat-b", "again", "c1"))["output"] == "hi | hi | again"
    out = (await _say(client, alice, "chat-a", "more", "c1"))["output"]
    assert out == "secret | secret | more"

    mine = (await client.get("/api/conversations/c1", headers=auth(bob))).json()
    assert mine["turn"] == 2 and "secret" not in str(mine)
    # a conversation bob never had answers like one that does not exist
    for key, conv in ((bob, "c-none"), (bob, "never-used-by-bob")):
        r = await client.get(f"/api/conversations/{conv}", headers=auth(key))
        assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    # the workflow's list shows an editor only their own conversations
    listed = (await client.get("/api/workflows/chat-b/conversations", headers=auth(bob))).json()
    assert {c["id"] for c in listed} == {"c1", "never-used"}
    assert "secret" not in str(listed)


class _Slow(FakeModels):
    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def stream(self, scope, request):  # type: ignore[override]
        from gasworks.modeltypes import StreamChunk

        yield StreamChunk(delta="first")
        await self.gate.wait()
        yield StreamChunk(delta=" done")


async def _start(client: httpx.AsyncClient, runtime: Any, key: str) -> str:
    """A streamed run started by ``key``'s principal that waits for the gate (its id once
    the first chunk arrived)."""
    from gasworks.workflows import workflow_engine
    from gasworks.workflows.schemas import RunIn

    authn = client._transport.app.state.authenticator  # type: ignore[attr-defined]
    ctx = await authn.authenticate(f"Bearer {key}")
    live = await workflow_engine(runtime).start(
        ctx, "support", RunIn(input={"message": "question"}, stream=True)
    )
    async for _, kind, _data in live.follow(0):
        if kind == "chunk":
            break
    return live.run_id


async def test_who_may_cancel_a_run(
    client: httpx.AsyncClient, admin_key: str, runtime: Any
) -> None:
    slow = _Slow()
    runtime.services["workflows.models"] = slow
    owner, _ = await make_key(client, admin_key, "editor", "owner")
    viewer, _ = await make_key(client, admin_key, "viewer", "viewer")
    other_viewer, _ = await make_key(client, admin_key, "viewer", "other-viewer")
    await client.post("/api/workflows", json=SUPPORT, headers=auth(owner))
    r = await client.post(
        "/api/workflows/support/shares",
        json={"kind": "role", "subject": "viewer"},
        headers=auth(owner),
    )
    assert r.status_code == 201, r.text

    owners_run = await _start(client, runtime, owner)
    # a viewer with a share sees the run but may not cancel another user's run
    r = await client.post(f"/api/workflow-runs/{owners_run}/cancel", headers=auth(viewer))
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN", r.text
    status = (await client.get(f"/api/workflow-runs/{owners_run}", headers=auth(owner))).json()
    assert status["status"] == "running"

    # the starter may, even as a viewer; an editor may cancel anyone's
    viewers_run = await _start(client, runtime, viewer)
    r = await client.post(f"/api/workflow-runs/{viewers_run}/cancel", headers=auth(other_viewer))
    assert r.status_code == 403
    r = await client.post(f"/api/workflow-runs/{viewers_run}/cancel", headers=auth(viewer))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    r = await client.post(f"/api/workflow-runs/{owners_run}/cancel", headers=auth(owner))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    # a finished run: the same rule, then the run as it ended
    r = await client.post(f"/api/workflow-runs/{owners_run}/cancel", headers=auth(viewer))
    assert r.status_code == 403
    slow.gate.set()
