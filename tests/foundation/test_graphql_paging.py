"""GraphQL list fields take ``limit`` / ``offset`` with the REST bounds: every list of rows,
stable pages, VALIDATION_FAILED naming the argument outside 1..500 / >= 0, one tenant only."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import GraphQLList, GraphQLObjectType, get_nullable_type

import gasworks.llm.guardrails_runtime  # noqa: F401  (breakers, budgets, usage)
from gasworks.tenancy import service
from gasworks.tenancy.context import Role, TenantContext
from gasworks.tenancy.schemas import PrincipalCreate
from tests.conftest import auth

#: lists that are not rows of a table, with the reason
UNPAGED = {
    "Query.models": "the model registry: in memory, configured by the platform operator",
    "PromptResolution.messages": "the messages of one rendered prompt",
    "Query.search": "at most k (<= 100) ranked hits; a page would run the search again",
    "Mutation.uploadDocuments": "the files of one upload (at most GASWORKS_DOCUMENTS_MAX_FILES)",
    "DocumentIngestion.statuses": "one count per document status (a fixed set of nine)",
    "DocumentQueue.stages": "one row per pipeline job kind (a fixed set of seven)",
}

#: a workflow that keeps a conversation (two messages per turn)
ECHO = {
    "id": "paged",
    "nodes": [
        {"id": "mem", "type": "ConversationMemory", "config": {}},
        {"id": "f", "type": "Format", "config": {"template": "echo ${input.message}"}},
    ],
    "edges": [{"from": "mem", "to": "f"}],
}

#: every list field, with the arguments it needs besides the page
LISTS = [
    "tenants(ARGS) { id }",
    "principals(ARGS) { id }",
    "apiKeys(ARGS) { id }",
    "workflows(ARGS) { slug }",
    'workflow(id: "paged") { versions(ARGS) { version } }',
    'workflow(id: "paged") { runs(ARGS) { id } }',
    'workflow(id: "paged") { conversations(ARGS) { id } }',
    'conversation(id: "c-1") { messages(ARGS) { seq } }',
    "promptVersions(ARGS) { id }",
    "promptPointers(ARGS) { id }",
    'promptPointerHistory(model: "gpt-4o", ARGS) { seq }',
    "promptDeadLetters(ARGS) { id }",
    "breakers(ARGS) { breaker }",
    "budgets(ARGS) { id }",
    "usage(ARGS) { calls }",
    "documents(ARGS) { id }",
    'document(id: "DOC_ID") { events(ARGS) { seq } }',
    "collections(ARGS) { id }",
    'collectionGrants(collection: "paged", ARGS) { id }',
    "documentDeadLetters(ARGS) { id }",
    "documentAudit(ARGS) { seq }",
]


async def _gql(client: Any, key: str, query: str) -> dict[str, Any]:
    r = await client.post("/graphql", json={"query": query}, headers=auth(key))
    assert r.status_code == 200, r.text
    return dict(r.json())


def _field(query: str, args: str) -> str:
    return "{ " + query.replace("(ARGS)", f"({args})").replace("ARGS", args) + " }"


def test_every_list_of_rows_takes_a_bounded_page() -> None:
    from gasworks.api.graphql.schema import build_schema

    schema = build_schema(10)._schema
    paged, unpaged = set(), set()
    for type_name, t in schema.type_map.items():
        if type_name.startswith("__") or not isinstance(t, GraphQLObjectType):
            continue
        for name, field in t.fields.items():
            ftype = get_nullable_type(field.type)
            if not isinstance(ftype, GraphQLList):
                continue
            if not isinstance(get_nullable_type(ftype.of_type), GraphQLObjectType):
                continue  # a list of scalars inside one row
            where = f"{type_name}.{name}"
            if {"limit", "offset"} <= field.args.keys():
                paged.add(where)
                assert field.args["limit"].default_value in (100, 20), where
                assert field.args["offset"].default_value == 0, where
            else:
                unpaged.add(where)
    assert unpaged == set(UNPAGED)
    assert len(paged) == len(LISTS)


async def test_out_of_range_pages_are_validation_failed(client, admin_key) -> None:
    h = auth(admin_key)
    assert (await client.post("/api/workflows", json=ECHO, headers=h)).status_code == 201
    turn = {"input": {"message": "hi"}, "conversationId": "c-1"}
    r = await client.post("/api/workflows/paged/runs", json=turn, headers=h)
    assert r.status_code == 200, r.text
    body = {"name": "p", "content": {"system": "hello"}}
    version = (await client.post("/api/prompts/versions", json=body, headers=h)).json()
    move = {"scope": {"model": "gpt-4o"}, "versionId": version["id"], "expectedVersion": 0}
    assert (await client.post("/api/prompts/pointer/move", json=move, headers=h)).is_success
    assert (await client.post("/api/collections", json={"name": "paged"}, headers=h)).is_success
    files = [("files", ("a.txt", b"some text", "text/plain"))]
    up = await client.post("/api/documents", files=files, headers=h)
    doc_id = up.json()["documents"][0]["document"]["id"]

    for query in [q.replace("DOC_ID", doc_id) for q in LISTS]:
        ok = await _gql(client, admin_key, _field(query, "limit: 500, offset: 0"))
        assert "errors" not in ok, (query, ok)
        for args, name in (
            ("limit: 501", "limit"),
            ("limit: 0", "limit"),
            ("offset: -1", "offset"),
        ):
            out = await _gql(client, admin_key, _field(query, args))
            (err,) = out["errors"]
            assert err["extensions"]["code"] == "VALIDATION_FAILED", (query, err)
            assert err["message"].startswith(f"Invalid request: {name}:"), (query, err)
            assert [e["path"] for e in err["extensions"]["details"]["errors"]] == [name]


@pytest.fixture
async def many_principals(runtime, tenant_a, tenant_b) -> set[str]:
    """Tenant a gets 110 more principals (113 with its key holders); tenant b has 3."""
    ctx = TenantContext(tenant_id=tenant_a.tenant_id, principal_id="system", role=Role.OWNER)
    async with runtime.db.session() as s:
        for n in range(110):
            await service.create_principal(s, ctx, PrincipalCreate(name=f"p{n:03d}"))
        return {p.id for p in await service.list_principals(s, ctx)}


async def test_principal_pages_cover_the_tenant_once_in_order(
    client, tenant_a, tenant_b, many_principals
) -> None:
    def q(args: str) -> str:
        return _field("principals(ARGS) { id createdAt }", args)

    default = (await _gql(client, tenant_a.admin, "{ principals { id } }"))["data"]["principals"]
    assert len(default) == 100
    ids: list[str] = []
    pages = []
    while not pages or len(pages[-1]) == 50:
        out = await _gql(client, tenant_a.admin, q(f"limit: 50, offset: {50 * len(pages)}"))
        pages.append(out["data"]["principals"])
        ids += [p["id"] for p in pages[-1]]
    assert [len(p) for p in pages] == [50, 50, 13]
    assert len(ids) == len(set(ids)) and set(ids) == many_principals
    rest = (await client.get("/api/principals?limit=500", headers=auth(tenant_a.admin))).json()
    assert ids == [p["id"] for p in rest]  # the same stable order as REST
    assert ids[:100] == [p["id"] for p in default]

    b = (await _gql(client, tenant_b.admin, q("limit: 500")))["data"]["principals"]
    assert len(b) == 3 and not {p["id"] for p in b} & many_principals


async def test_api_key_pages_and_isolation(client, tenant_a, tenant_b) -> None:
    for n in range(5):
        r = await client.post("/api/keys", json={"name": f"k{n}"}, headers=auth(tenant_a.admin))
        assert r.status_code == 201, r.text

    def q(args: str) -> str:
        return _field("apiKeys(ARGS) { id }", args)

    everything = (await _gql(client, tenant_a.admin, q("limit: 500")))["data"]["apiKeys"]
    assert len(everything) == 8
    pages = [
        (await _gql(client, tenant_a.admin, q(f"limit: 3, offset: {o}")))["data"]["apiKeys"]
        for o in (0, 3, 6)
    ]
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [k["id"] for p in pages for k in p] == [k["id"] for k in everything]
    b = (await _gql(client, tenant_b.admin, q("limit: 500")))["data"]["apiKeys"]
    assert {k["id"] for k in b} == {
        tenant_b.owner_key_id,
        tenant_b.admin_key_id,
        tenant_b.viewer_key_id,
    }
