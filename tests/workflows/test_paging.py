"""Paged workflow lists (REST and GraphQL): workflows, versions, runs, conversations and a
conversation's messages, in a stable order, never another tenant's rows."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import gasworks.llm.guardrails_runtime  # noqa: F401  (registers the guardrail hooks before runtimes start)
from gasworks.tenancy import service as tenancy
from gasworks.tenancy.context import Role, TenantContext
from gasworks.tenancy.schemas import ApiKeyCreate, TenantCreate
from tests.conftest import auth


def echo(slug: str, template: str = "echo ${input.message}") -> dict[str, Any]:
    """A workflow that keeps its conversations (two messages per turn)."""
    return {
        "id": slug,
        "nodes": [
            {"id": "mem", "type": "ConversationMemory", "config": {"maxTurns": 1000}},
            {"id": "f", "type": "Format", "config": {"template": template}},
        ],
        "edges": [{"from": "mem", "to": "f"}],
    }


@pytest.fixture
async def other_key(runtime: Any, admin_key: str) -> str:
    async with runtime.db.session() as s:
        t = await tenancy.create_tenant(s, TenantContext.system("-"), TenantCreate(name="acme"))
        made = await tenancy.create_api_key(
            s, TenantContext.system(t.id), ApiKeyCreate(name="acme", role=Role.ADMIN)
        )
    return made.key


async def _publish(client: httpx.AsyncClient, key: str, doc: dict[str, Any]) -> None:
    r = await client.post("/api/workflows", json=doc, headers=auth(key))
    assert r.status_code == 201, r.text


async def _run(client: httpx.AsyncClient, key: str, slug: str, conv: str, msg: str) -> str:
    body = {"input": {"message": msg}, "conversationId": conv}
    r = await client.post(f"/api/workflows/{slug}/runs", json=body, headers=auth(key))
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    return str(r.json()["id"])


async def _gql(client: httpx.AsyncClient, key: str, query: str) -> dict[str, Any]:
    r = await client.post("/graphql", json={"query": query}, headers=auth(key))
    assert r.status_code == 200 and "errors" not in r.json(), r.text
    return dict(r.json()["data"])


async def _rest_pages(
    client: httpx.AsyncClient, key: str, url: str, limit: int
) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    while not pages or len(pages[-1]) == limit:
        params = {"limit": limit, "offset": limit * len(pages)}
        r = await client.get(url, params=params, headers=auth(key))
        assert r.status_code == 200, r.text
        pages.append(r.json())
    return pages


async def test_workflow_lists_page_in_a_stable_order(
    client: httpx.AsyncClient, admin_key: str, other_key: str
) -> None:
    for n in range(7):
        await _publish(client, admin_key, echo(f"wf-{n}"))
    for n in range(1, 5):  # wf-0 gets versions 2..5
        await _publish(client, admin_key, echo("wf-0", f"v{n} ${{input.message}}"))
    runs = {await _run(client, admin_key, "wf-0", "c-1", f"m{n}") for n in range(5)}
    runs.add(await _run(client, admin_key, "wf-0", "c-2", "another conversation"))
    await _publish(client, other_key, echo("wf-0"))  # the same slug in another tenant
    theirs = await _run(client, other_key, "wf-0", "c-1", "theirs")

    pages = await _rest_pages(client, admin_key, "/api/workflows", 3)
    assert [[w["slug"] for w in p] for p in pages] == [
        ["wf-0", "wf-1", "wf-2"],
        ["wf-3", "wf-4", "wf-5"],
        ["wf-6"],
    ]
    versions = await _rest_pages(client, admin_key, "/api/workflows/wf-0/versions", 2)
    assert [[v["version"] for v in p] for p in versions] == [[5, 4], [3, 2], [1]]

    url = "/api/workflows/wf-0/runs"
    everything = (await client.get(url, headers=auth(admin_key))).json()
    run_pages = await _rest_pages(client, admin_key, url, 4)
    assert [len(p) for p in run_pages] == [4, 2]
    assert [r["id"] for p in run_pages for r in p] == [r["id"] for r in everything]
    assert {r["id"] for r in everything} == runs  # not the other tenant's run
    other = (await client.get(url, headers=auth(other_key))).json()
    assert [r["id"] for r in other] == [theirs]

    url = "/api/workflows/wf-0/conversations"
    conv_pages = await _rest_pages(client, admin_key, url, 1)
    assert sorted(c["id"] for p in conv_pages for c in p) == ["c-1", "c-2"]
    assert [len(p) for p in conv_pages] == [1, 1, 0]

    q = (
        "{ workflows(limit: 3, offset: 3) { slug } "
        'workflow(id: "wf-0") { versions(limit: 2, offset: 2) { version } '
        "runs(limit: 4, offset: 4) { id } conversations(limit: 500) { id } } }"
    )
    data = await _gql(client, admin_key, q)
    assert [w["slug"] for w in data["workflows"]] == ["wf-3", "wf-4", "wf-5"]
    assert [v["version"] for v in data["workflow"]["versions"]] == [3, 2]
    assert [r["id"] for r in data["workflow"]["runs"]] == [r["id"] for r in run_pages[1]]
    assert sorted(c["id"] for c in data["workflow"]["conversations"]) == ["c-1", "c-2"]
    data = await _gql(client, other_key, "{ workflows(limit: 500) { slug latestVersion } }")
    assert data["workflows"] == [{"slug": "wf-0", "latestVersion": 1}]


async def test_conversation_messages_are_paged_oldest_first(
    client: httpx.AsyncClient, admin_key: str, other_key: str
) -> None:
    await _publish(client, admin_key, echo("chat"))
    for n in range(4):
        await _run(client, admin_key, "chat", "c-1", f"m{n}")
    await _publish(client, other_key, echo("chat"))
    await _run(client, other_key, "chat", "c-1", "theirs")

    async def page(key: str, **params: Any) -> list[int]:
        r = await client.get("/api/conversations/c-1", params=params, headers=auth(key))
        assert r.status_code == 200, r.text
        return [m["seq"] for m in r.json()["messages"]]

    assert await page(admin_key) == list(range(1, 9))
    assert [await page(admin_key, limit=3, offset=o) for o in (0, 3, 6)] == [
        [1, 2, 3],
        [4, 5, 6],
        [7, 8],
    ]
    assert await page(other_key) == [1, 2]  # the other tenant's conversation of the same id

    q = '{ conversation(id: "c-1") { turn messages(limit: 3, offset: 3) { seq content } } }'
    data = (await _gql(client, admin_key, q))["conversation"]
    assert data["turn"] == 4
    assert [m["seq"] for m in data["messages"]] == [4, 5, 6]
    assert data["messages"][0]["content"] == "echo m1"
