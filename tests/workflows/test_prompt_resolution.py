"""A workflow's ModelInvoke resolves its prompt by (tenant, workflow, model) through the prompt
engine: a prompt pointed at the workflow changes what the model receives, without republishing."""

from __future__ import annotations

from typing import Any

import httpx

import gasworks.llm.guardrails_runtime  # noqa: F401
from tests.conftest import auth
from tests.workflows.fakes import FakeModels


async def test_model_invoke_uses_the_prompt_pointed_at_the_workflow(
    client: httpx.AsyncClient, admin_key: str, runtime: Any
) -> None:
    from gasworks.workflows.demos import demo_document

    fake = FakeModels()
    runtime.services["workflows.models"] = fake
    h = auth(admin_key)
    await client.post("/api/workflows", json=demo_document("chatbot"), headers=h)

    async def run(message: str) -> Any:
        r = await client.post(
            "/api/workflows/demo-chatbot/runs",
            json={"input": {"message": message}, "conversationId": "p1"},
            headers=h,
        )
        assert r.json()["status"] == "succeeded", r.text
        return fake.calls[-1][0].messages

    neutral = await run("hello")
    assert neutral[0].role == "system" and neutral[-1].text() == "hello"

    v = await client.post(
        "/api/prompts/versions",
        json={
            "name": "chatbot-system",
            "content": {
                "system": "You are the gasworks bot for ${context.tenantId}.",
                "user": "Q: ${inputs.user_prompt}",
            },
        },
        headers=h,
    )
    assert v.status_code == 201, v.text
    moved = await client.post(
        "/api/prompts/pointer/move",
        json={
            "scope": {"model": "demo", "workflowId": "demo-chatbot"},
            "versionId": v.json()["id"],
            "expectedVersion": 0,
        },
        headers=h,
    )
    assert moved.status_code == 200, moved.text
    me = (await client.get("/api/me", headers=h)).json()
    sent = await run("and now?")
    assert sent[0].text() == f"You are the gasworks bot for {me['tenantId']}."
    assert [m.role for m in sent[1:]] == ["user", "assistant", "user"]  # history in the middle
    assert sent[-1].text() == "Q: and now?"
