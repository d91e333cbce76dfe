"""Paged prompt lists (REST and GraphQL): pages in a stable order that neither overlap nor skip,
at most 100 rows by default, VALIDATION_FAILED outside 1..500 / >= 0, never another tenant's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from gasworks.errors import PromptPointerConflict
from gasworks.prompts import pointers
from gasworks.prompts.schemas import MoveRequest
from gasworks.prompts.service import prompt_service
from gasworks.tenancy import service as tenancy
from gasworks.tenancy.context import Role, TenantContext
from gasworks.tenancy.schemas import ApiKeyCreate, TenantCreate
from tests.conftest import auth
from tests.prompts.conftest import new_version, scope

LISTS = [
    ("/api/prompts/versions", {}),
    ("/api/prompts/pointers", {}),
    ("/api/prompts/pointer/history", {"model": "m-000"}),
    ("/api/prompts/dead-letters", {}),
    ("/api/prompts/audit", {}),
]


@dataclass
class Seeded:
    key_a: str
    key_b: str
    tenant_a: str
    tenant_b: str
    own_a: set[str]  # tenant a's pointers
    platform: set[str]  # the platform-wide pointer (every tenant sees it)
    own_b: set[str]  # tenant b's pointers

    @property
    def ids_a(self) -> set[str]:
        return self.own_a | self.platform

    @property
    def ids_b(self) -> set[str]:
        return self.own_b | self.platform


async def _deploy_many(runtime: Any, ctx: TenantContext, models: list[str], **kw: Any) -> set[str]:
    vid = await new_version(prompt_service(runtime), ctx, f"for {ctx.tenant_id}")
    out = set()
    async with runtime.db.session() as s:  # one transaction: 100+ pointers quickly
        for m in models:
            req = MoveRequest(scope=scope(m, **kw), version_id=vid, expected_version=0)
            out.add((await pointers.move_pointer(s, ctx, req)).id)
    return out


@pytest.fixture
async def seeded(runtime: Any, admin_key: str) -> Seeded:
    """Tenant a (platform admin): 104 pointers and one platform-wide pointer on the same model
    as one of them; tenant b: 3 pointers on models tenant a also uses."""
    async with runtime.db.session() as s:
        ta = await tenancy.find_tenant_by_name(s, "default")
        assert ta is not None
        tb = await tenancy.create_tenant(s, TenantContext.system(ta.id), TenantCreate(name="b"))
        kb = await tenancy.create_api_key(
            s, TenantContext.system(tb.id), ApiKeyCreate(name="b", role=Role.EDITOR)
        )
    a, b = TenantContext.system(ta.id), TenantContext.system(tb.id)
    own_a = await _deploy_many(runtime, a, [f"m-{n:03d}" for n in range(104)])
    platform = await _deploy_many(runtime, a, ["m-050"], tenant=False)
    own_b = await _deploy_many(runtime, b, ["m-000", "m-001", "m-002"])
    return Seeded(admin_key, kb.key, ta.id, tb.id, own_a, platform, own_b)


async def _get(client: Any, key: str, url: str, **params: Any) -> Any:
    r = await client.get(url, params=params, headers=auth(key))
    assert r.status_code == 200, r.text
    return r.json()


async def _walk(client: Any, key: str, url: str, limit: int, **params: Any) -> list[list[Any]]:
    """Every page of a list, ``limit`` rows each, until a short page."""
    pages: list[list[Any]] = []
    while not pages or len(pages[-1]) == limit:
        pages.append(await _get(client, key, url, limit=limit, offset=limit * len(pages), **params))
    return pages


def _order(p: dict[str, Any]) -> tuple[str, str, str]:
    return (p["model"], p["workflowId"] or "", p["scopeTenant"] or "")


async def test_pointer_pages_cover_every_pointer_once_in_a_stable_order(client, seeded) -> None:
    url = "/api/prompts/pointers"
    assert len(await _get(client, seeded.key_a, url)) == 100  # the default page

    everything = await _get(client, seeded.key_a, url, limit=500)
    assert len(everything) == 105
    assert {p["id"] for p in everything} == seeded.ids_a
    assert [_order(p) for p in everything] == sorted(_order(p) for p in everything)
    # the platform-wide pointer comes right before the tenant's on the same model
    tied = [p["scopeTenant"] for p in everything if p["model"] == "m-050"]
    assert tied == [None, seeded.tenant_a]

    pages = await _walk(client, seeded.key_a, url, 40)
    assert [len(p) for p in pages] == [40, 40, 25]
    assert [p["id"] for page in pages for p in page] == [p["id"] for p in everything]
    assert await _get(client, seeded.key_a, url, offset=105) == []


async def test_pointer_pages_never_show_another_tenants_pointers(client, seeded) -> None:
    seen = await _get(client, seeded.key_b, "/api/prompts/pointers", limit=500)
    assert {p["id"] for p in seen} == seeded.ids_b
    assert {p["scopeTenant"] for p in seen} == {seeded.tenant_b, None}
    for page in await _walk(client, seeded.key_a, "/api/prompts/pointers", 7):
        assert not {p["id"] for p in page} & seeded.own_b


async def test_history_audit_dead_letters_and_versions_page_in_order(
    client, runtime, seeded
) -> None:
    svc = prompt_service(runtime)
    a = TenantContext.system(seeded.tenant_a)
    for n in range(6):  # pointer m-000 of tenant a: versions 2..7, three failed moves
        vid = await new_version(svc, a, f"v{n}")
        await svc.move(a, MoveRequest(scope=scope("m-000"), version_id=vid, expected_version=n + 1))
        with pytest.raises(PromptPointerConflict):
            await svc.move(a, MoveRequest(scope=scope("m-000"), version_id=vid, expected_version=0))
    key = seeded.key_a

    history = await _walk(client, key, "/api/prompts/pointer/history", 3, model="m-000")
    assert [[h["seq"] for h in page] for page in history] == [[7, 6, 5], [4, 3, 2], [1]]

    for url, newest_first in (
        ("/api/prompts/audit", "at"),
        ("/api/prompts/dead-letters", "createdAt"),
    ):
        everything = await _get(client, key, url, limit=500)
        assert len(everything) > 5, url
        pages = await _walk(client, key, url, 5)
        assert [r["id"] for page in pages for r in page] == [r["id"] for r in everything], url
        times = [r[newest_first] for r in everything]
        assert times == sorted(times, reverse=True), url
    assert len(await _get(client, key, "/api/prompts/dead-letters", limit=500)) == 6

    mine = await _get(client, key, "/api/prompts/versions", limit=500)
    pages = await _walk(client, key, "/api/prompts/versions", 2)
    assert [v["id"] for page in pages for v in page] == [v["id"] for v in mine]
    assert len(mine) == 7  # the seed's one (deployed twice) and the six above
    # tenant b sees its own version, the audit of its own objects, no dead letters
    (b_version,) = await _get(client, seeded.key_b, "/api/prompts/versions")
    assert await _get(client, seeded.key_b, "/api/prompts/dead-letters") == []
    b_audit = await _get(client, seeded.key_b, "/api/prompts/audit", limit=500)
    assert {r["objectId"] for r in b_audit} == seeded.own_b | {b_version["id"]}


@pytest.mark.parametrize(("url", "base"), LISTS)
async def test_out_of_range_pages_are_validation_failed(client, admin_key, url, base) -> None:
    for params, name in (
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
    ):
        r = await client.get(url, params=base | params, headers=auth(admin_key))
        assert r.status_code == 422, (url, params, r.text)
        err = r.json()["error"]
        assert err["code"] == "VALIDATION_FAILED"
        assert [e["path"] for e in err["details"]["errors"]] == [f"query.{name}"]


# --- GraphQL ------------------------------------------------------------------------------


async def _gql(client: Any, key: str, query: str) -> dict[str, Any]:
    r = await client.post("/graphql", json={"query": query}, headers=auth(key))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_graphql_prompt_pointers_page_like_rest(client, seeded) -> None:
    def q(args: str) -> str:
        return f"{{ promptPointers{args} {{ id model scopeTenant }} }}"

    default = (await _gql(client, seeded.key_a, q("")))["data"]["promptPointers"]
    assert len(default) == 100
    rest = await _get(client, seeded.key_a, "/api/prompts/pointers", limit=500)
    ids: list[str] = []
    for offset in range(0, 120, 30):
        page = (await _gql(client, seeded.key_a, q(f"(limit: 30, offset: {offset})")))["data"]
        ids += [p["id"] for p in page["promptPointers"]]
    assert ids == [p["id"] for p in rest]
    b = (await _gql(client, seeded.key_b, q("(limit: 500)")))["data"]["promptPointers"]
    assert {p["id"] for p in b} == seeded.ids_b

    for args, name in (
        ("(limit: 501)", "limit"),
        ("(limit: 0)", "limit"),
        ("(offset: -1)", "offset"),
    ):
        out = await _gql(client, seeded.key_a, q(args))
        assert out["data"] is None
        (err,) = out["errors"]
        assert err["extensions"]["code"] == "VALIDATION_FAILED", err
        assert err["message"].startswith(f"Invalid request: {name}:"), err
