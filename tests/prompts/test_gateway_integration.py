"""A deployed prompt resolved into a model call through the gateway (REST and CLI)."""

from __future__ import annotations

import pytest

from tests.conftest import auth

SCOPE = {"model": "demo", "workflowId": "support"}


async def _deploy(client, h, system, user, expected, parameters=None):
    content = {"system": system, "user": user}
    if parameters:
        content["parameters"] = parameters
    v = await client.post(
        "/api/prompts/versions", json={"name": "support", "content": content}, headers=h
    )
    assert v.status_code in (200, 201), v.text
    r = await client.post(
        "/api/prompts/pointer/move",
        json={"scope": SCOPE, "versionId": v.json()["id"], "expectedVersion": expected},
        headers=h,
    )
    assert r.status_code == 200, r.text
    return v.json()["id"]


async def test_deployed_prompt_reaches_the_model(client, admin_key):
    h = auth(admin_key)
    v1 = await _deploy(
        client, h, "You sell ${slots.product}.", "Customer asks: ${inputs.user_prompt}", 0,
        parameters={"temperature": 0.1, "max_tokens": 200},
    )  # fmt: skip
    body = {
        "model": "demo",
        "workflowId": "support",
        "conversationId": "c-1",
        "variables": {"inputs": {"user_prompt": "where is my bike"}, "slots": {"product": "bikes"}},
    }
    r = await client.post("/api/prompts/chat", json=body, headers=h)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["demo"] is True and out["model"] == "demo"
    # the demo model quotes the last message: the rendered user template reached it
    assert 'You asked about "Customer asks: where is my bike"' in out["text"]
    assert out["prompt"]["level"] == "tenant+workflow+model"
    assert out["prompt"]["versionId"] == v1 and out["prompt"]["missing"] == []

    v2 = await _deploy(client, h, "You sell ${slots.product}.", "Q: ${inputs.user_prompt}", 1)
    r = await client.post("/api/prompts/chat", json=body, headers=h)
    assert r.json()["prompt"]["versionId"] == v2
    assert 'You asked about "Q: where is my bike"' in r.json()["text"]

    rb = await client.post(
        "/api/prompts/pointer/rollback", json={"scope": SCOPE, "expectedVersion": 2}, headers=h
    )
    assert rb.status_code == 200
    r = await client.post("/api/prompts/chat", json=body, headers=h)
    assert r.json()["prompt"]["versionId"] == v1


async def test_no_prompt_deployed_uses_neutral_prompt(client, admin_key):
    r = await client.post(
        "/api/prompts/chat",
        json={"model": "demo", "variables": {"inputs": {"user_prompt": "hello there"}}},
        headers=auth(admin_key),
    )
    assert r.status_code == 200, r.text
    assert r.json()["prompt"]["level"] == "neutral"
    assert 'You asked about "hello there"' in r.json()["text"]


async def test_unknown_model_is_a_clean_404(client, admin_key):
    r = await client.post(
        "/api/prompts/chat", json={"model": "no-such-model"}, headers=auth(admin_key)
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "MODEL_NOT_FOUND"


async def test_bad_parameters_rejected_when_saved(client, admin_key):
    r = await client.post(
        "/api/prompts/versions",
        json={"name": "p", "content": {"system": "s", "parameters": {"temperature": "hot"}}},
        headers=auth(admin_key),
    )
    assert r.status_code == 422


async def test_workflow_model_node_uses_the_deployed_prompt(client, admin_key):
    """A workflow's ModelInvoke node resolves its prompt here: deploying (and rolling back) a
    prompt changes what the workflow sends to the model, with no workflow change."""
    from gasworks.workflows.demos import demo_document

    h = auth(admin_key)
    r = await client.post("/api/workflows", json=demo_document("chatbot"), headers=h)
    assert r.status_code in (200, 201), r.text

    async def run() -> str:
        r = await client.post(
            "/api/workflows/demo-chatbot/runs", json={"input": {"message": "hi"}}, headers=h
        )
        assert r.json()["status"] == "succeeded", r.text
        return str(r.json()["output"])

    assert 'You asked about "hi"' in await run()  # neutral prompt: the message as is
    scope = {"model": "demo", "workflowId": "demo-chatbot"}
    v = await client.post(
        "/api/prompts/versions",
        json={
            "name": "chatbot",
            "content": {"system": "Be kind.", "user": "Customer: ${inputs.user_prompt}"},
        },
        headers=h,
    )
    moved = await client.post(
        "/api/prompts/pointer/move",
        json={"scope": scope, "versionId": v.json()["id"], "expectedVersion": 0},
        headers=h,
    )
    assert moved.status_code == 200, moved.text
    assert 'You asked about "Customer: hi"' in await run()


def _sse_events(text: str) -> list[tuple[str, dict]]:
    import json

    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((fields["event"], json.loads(fields["data"])))
    return out


async def test_streamed_chat_says_which_prompt_then_streams_and_settles(client, admin_key):
    h = auth(admin_key)
    v1 = await _deploy(client, h, "You are terse.", "Customer asks: ${inputs.user_prompt}", 0)
    body = {
        "model": "demo",
        "workflowId": "support",
        "variables": {"inputs": {"user_prompt": "where is my bike"}},
    }
    r = await client.post("/api/prompts/chat/stream", json=body, headers=h)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    events = _sse_events(r.text)
    kinds = [k for k, _ in events]
    assert kinds[0] == "prompt" and kinds[-1] == "done"
    assert set(kinds[1:-1]) == {"delta"} and len(kinds) > 3  # streamed in pieces
    assert events[0][1]["versionId"] == v1 and events[0][1]["level"] == "tenant+workflow+model"
    text = "".join(d["text"] for k, d in events if k == "delta")
    assert 'You asked about "Customer asks: where is my bike"' in text
    done = events[-1][1]
    assert done["model"] == "demo" and done["finishReason"] == "stop"
    assert done["outputTokens"] > 0 and done["inputTokens"] > 0

    # the same call unstreamed gives the same text and usage: one code path, two renderings
    plain = (await client.post("/api/prompts/chat", json=body, headers=h)).json()
    assert plain["text"] == text and plain["outputTokens"] == done["outputTokens"]


async def test_streamed_chat_fails_before_streaming_with_a_real_status(client, admin_key):
    r = await client.post(
        "/api/prompts/chat/stream", json={"model": "no-such-model"}, headers=auth(admin_key)
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "MODEL_NOT_FOUND"
    r = await client.post("/api/prompts/chat/stream", json={"model": "demo"})
    assert r.status_code == 401


async def test_openai_route_answers_with_the_deployed_prompt(app, client, admin_key):
    """`/v1/chat/completions` with the `prompt_scope` extension (the official client's
    `extra_body`): the deployed prompt wraps the client's messages; which prompt answered is in
    the response and its headers, streamed or not."""
    import openai

    from tests.llm.conftest import serve

    h = auth(admin_key)
    v1 = await _deploy(
        client, h, "You sell ${slots.product}.", "Customer: ${inputs.user_prompt}", 0
    )
    scope = {"workflow_id": "support", "variables": {"slots": {"product": "bikes"}}}
    messages = [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi, how can I help?"},
        {"role": "user", "content": "where is my bike"},
    ]
    async with serve(app) as url:
        oai = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=admin_key, max_retries=0)
        try:
            raw = await oai.chat.completions.with_raw_response.create(
                model="demo", messages=messages, extra_body={"prompt_scope": scope}
            )
            done = raw.parse()
            assert raw.headers["x-gasworks-prompt-version"] == v1
            assert raw.headers["x-gasworks-prompt-level"] == "tenant+workflow+model"
            # the demo model quotes the last message: the rendered user template reached it
            text = done.choices[0].message.content or ""
            assert 'You asked about "Customer: where is my bike"' in text
            meta = (done.model_extra or {})["gasworks"]["prompt"]
            # camelCase, as everything else on the ``gasworks`` extension
            assert meta["versionId"] == v1 and meta["missing"] == []
            assert meta["versionNumber"] == 1 and "contentHash" in meta
            assert "version_id" not in meta

            stream = await oai.chat.completions.create(
                model="demo", messages=messages, stream=True, extra_body={"prompt_scope": scope}
            )
            parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            assert "".join(parts) == text

            # the system message comes from the prompt: a client's own is a clear 422
            with pytest.raises(openai.UnprocessableEntityError) as bad:
                await oai.chat.completions.create(
                    model="demo",
                    messages=[{"role": "system", "content": "be brief"}, *messages],
                    extra_body={"prompt_scope": scope},
                )
            assert bad.value.code == "VALIDATION_FAILED"
            assert "system message comes from the deployed prompt" in bad.value.message
        finally:
            await oai.close()

    # no prompt deployed for the workflow: the neutral prompt answers, never an error
    r = await client.post(
        "/v1/chat/completions",
        json={"model": "demo", "messages": messages, "prompt_scope": {"workflow_id": "other"}},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-gasworks-prompt-level"] == "neutral"
    assert r.json()["gasworks"]["prompt"]["level"] == "neutral"


async def test_prompted_calls_record_their_prompt_version_in_the_ledger(client, admin_key):
    """Which prompt version answered is on the call's ledger row, and usage reports by it."""
    h = auth(admin_key)
    v1 = await _deploy(client, h, "Be brief.", "${inputs.user_prompt}", 0)
    body = {
        "model": "demo",
        "messages": [{"role": "user", "content": "hi"}],
        "prompt_scope": {"workflow_id": "support"},
    }
    r = await client.post("/v1/chat/completions", json=body, headers=h)
    assert r.status_code == 200, r.text
    r = await client.post(
        "/api/prompts/chat",
        json={
            "model": "demo",
            "workflowId": "support",
            "variables": {"inputs": {"user_prompt": "x"}},
        },
        headers=h,
    )
    assert r.status_code == 200, r.text
    calls = (await client.get("/api/usage/calls", headers=h)).json()
    assert [c["promptVersionId"] for c in calls] == [v1, v1]
    usage = (await client.get("/api/usage", params={"groupBy": "prompt_version"}, headers=h)).json()
    (row,) = usage["rows"]
    assert row["group"] == {"prompt_version": v1} and row["requests"] == 2


async def test_prompted_chat_fits_a_long_conversation_by_default(client, admin_key):
    """A history longer than the model's context window is truncated (oldest first, the
    current input kept), unless the request says ``truncate: false``."""
    h = auth(admin_key)
    history = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "word " * 900}
        for i in range(12)
    ]  # ~11,000 tokens: more than the demo model's 8,192
    body = {
        "model": "demo",
        "history": history,
        "variables": {"inputs": {"user_prompt": "and now?"}},
    }
    r = await client.post("/api/prompts/chat", json=body, headers=h)
    assert r.status_code == 200, r.text
    assert 'You asked about "and now?"' in r.json()["text"]
    r = await client.post("/api/prompts/chat", json={**body, "truncate": False}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "CONTEXT_WINDOW_EXCEEDED"
