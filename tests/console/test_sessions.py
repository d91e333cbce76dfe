"""Browser sessions and CSRF, in process on both databases (the browser tests cover the pages).

Lifetimes are checked at the service with an explicit clock: no test waits 12 hours.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from gasworks.db.types import utcnow
from gasworks.tenancy import service, sessions
from gasworks.tenancy.schemas import ApiKeyCreate
from gasworks.tenancy.tables import BrowserSessionRow

ORIGIN = {"Origin": "http://gasworks.test"}


async def _ctx(runtime: Any, key: str) -> Any:
    async with runtime.db.session() as s:
        verified = await service.verify_key(s, key)
    assert verified is not None
    return verified.ctx


async def _count(runtime: Any) -> int:
    async with runtime.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(BrowserSessionRow)) or 0)


async def test_a_session_ends_at_its_lifetime_and_after_idling(
    runtime: Any, admin_key: str
) -> None:
    ctx = await _ctx(runtime, admin_key)
    t0 = utcnow()
    life, idle = timedelta(hours=1), timedelta(minutes=20)
    async with runtime.db.session() as s:
        token, csrf = await sessions.open_session(s, ctx, lifetime=life, now=t0)
    # the table keeps a digest, never the cookie's value
    async with runtime.db.session() as s:
        ids = list(await s.scalars(select(BrowserSessionRow.id)))
    assert token not in ids and len(ids) == 1
    # requests every 15 minutes keep it alive until the absolute lifetime
    for minutes in (15, 30, 45):
        async with runtime.db.session() as s:
            found = await sessions.resume_session(
                s, token, idle=idle, now=t0 + timedelta(minutes=minutes)
            )
        assert found is not None and found.csrf_token == csrf and found.ctx == ctx
    async with runtime.db.session() as s:
        assert await sessions.resume_session(s, token, idle=idle, now=t0 + life) is None
    assert await _count(runtime) == 0  # an ended session's row goes

    async with runtime.db.session() as s:
        token, _ = await sessions.open_session(s, ctx, lifetime=life, now=t0)
    async with runtime.db.session() as s:
        assert await sessions.resume_session(s, token, idle=idle, now=t0 + idle) is None


async def test_revoking_or_expiring_the_key_ends_its_sessions(runtime: Any, admin_key: str) -> None:
    admin = await _ctx(runtime, admin_key)
    soon = utcnow() + timedelta(minutes=5)
    async with runtime.db.session() as s:
        created = await service.create_api_key(
            s, admin, ApiKeyCreate(name="short", role="viewer", expires_at=soon)
        )
    viewer = await _ctx(runtime, created.key)
    long, idle = timedelta(hours=12), timedelta(hours=1)
    async with runtime.db.session() as s:
        token, _ = await sessions.open_session(s, viewer, lifetime=long)
    async with runtime.db.session() as s:
        found = await sessions.resume_session(s, token, idle=idle)
        assert found is not None and found.expires_at == soon  # capped by the key's expiry
        assert await sessions.resume_session(s, token, idle=idle, now=soon) is None

    async with runtime.db.session() as s:
        token, _ = await sessions.open_session(s, admin, lifetime=long)
        other, _ = await sessions.open_session(s, viewer, lifetime=long)
    async with runtime.db.session() as s:
        # the last owner key cannot be revoked: another one first
        await service.create_api_key(s, admin, ApiKeyCreate(name="spare", role="owner"))
        await service.revoke_api_key(s, admin, admin.api_key_id)
    async with runtime.db.session() as s:
        assert await sessions.resume_session(s, token, idle=idle) is None
        # another key's session is untouched
        assert await sessions.resume_session(s, other, idle=idle) is not None


async def _sign_in(client: httpx.AsyncClient, key: str) -> str:
    r = await client.post("/console/sign-in", data={"key": key}, headers=ORIGIN)
    assert r.status_code == 303 and r.headers["location"] == "/console"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=43200" in cookie
    page = await client.get("/console")
    assert page.status_code == 200
    match = re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)
    assert match is not None
    return match.group(1)


async def test_state_changes_need_the_csrf_token_and_our_origin(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    csrf = await _sign_in(client, admin_key)
    trip = {"action": "trip", "reason": "test"}
    # console form without the token, with a wrong one, from another origin: refused
    r = await client.post("/console/models/breakers/demo", data=trip, headers=ORIGIN)
    assert r.status_code == 403 and "CSRF" in r.text
    r = await client.post("/console/models/breakers/demo", data={**trip, "csrf": "x" * 43})
    assert r.status_code == 403
    evil = {"Origin": "http://evil.test", "X-CSRF-Token": csrf}
    r = await client.post("/console/models/breakers/demo", data=trip, headers=evil)
    assert r.status_code == 403 and "Cross-site" in r.text
    assert (await client.get("/api/breakers?limit=500")).json()[0]["state"] == "closed"
    # with the token (form field or header): done
    r = await client.post(
        "/console/models/breakers/demo", data={**trip, "csrf": csrf}, headers=ORIGIN
    )
    assert r.status_code == 200 and "forced open" in r.text

    # REST with the cookie: reads need nothing more, writes need the header
    assert (await client.get("/api/budgets")).status_code == 200
    budget = {"period": "day", "costLimit": "5"}
    assert (await client.put("/api/budgets", json=budget)).status_code == 403
    ok = await client.put("/api/budgets", json=budget, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200, ok.text

    # GraphQL with the cookie: queries yes, mutations only with the token
    q = await client.post("/graphql", json={"query": "{ __typename }"})
    assert q.json()["data"] == {"__typename": "Query"}
    m = await client.post("/graphql", json={"query": "mutation { __typename }"})
    assert m.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    m = await client.post(
        "/graphql", json={"query": "mutation { __typename }"}, headers={"X-CSRF-Token": csrf}
    )
    assert m.json()["data"] == {"__typename": "Mutation"}
    # the IDE and the API docs carry the token for the signed-in browser
    assert csrf in (await client.get("/graphql", headers={"Accept": "text/html"})).text
    assert csrf in (await client.get("/docs")).text


async def test_sign_in_refuses_bad_keys_other_origins_and_open_redirects(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    assert (await client.get("/", follow_redirects=False)).headers["location"] == "/console"
    r = await client.get("/console/models", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/sign-in?next=")
    r = await client.post("/console/sign-in", data={"key": "gw_nope"}, headers=ORIGIN)
    assert r.status_code == 401 and "set-cookie" not in r.headers
    r = await client.post(
        "/console/sign-in", data={"key": admin_key}, headers={"Origin": "http://evil.test"}
    )
    assert r.status_code == 403 and "set-cookie" not in r.headers
    r = await client.post(
        "/console/sign-in",
        data={"key": admin_key, "next": "https://evil.test/console"},
        headers=ORIGIN,
    )
    assert r.headers["location"] == "/console"


async def test_sign_out_ends_the_session_everywhere(
    client: httpx.AsyncClient, runtime: Any, admin_key: str
) -> None:
    csrf = await _sign_in(client, admin_key)
    cookie = client.cookies["gw_session"]
    r = await client.post("/console/sign-out", data={"csrf": csrf}, headers=ORIGIN)
    assert r.status_code == 303
    assert await _count(runtime) == 0
    replay = await client.get("/api/breakers", headers={"Cookie": f"gw_session={cookie}"})
    assert replay.status_code == 401


async def test_the_ledger_exports_as_csv(client: httpx.AsyncClient, admin_key: str) -> None:
    await _sign_in(client, admin_key)
    call = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(2):
        r = await client.post(
            "/v1/chat/completions", json=call, headers={"Authorization": f"Bearer {admin_key}"}
        )
        assert r.status_code == 200
    r = await client.get("/console/spend/ledger.csv?model=demo")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.strip().splitlines()
    assert lines[0].startswith("id,created_at,") and len(lines) == 3
    assert all(",demo,demo," in line for line in lines[1:])


def test_graphiql_page_names_only_vendored_files() -> None:
    """Strawberry's page maps onto the vendored files; a template naming a file that is not
    vendored (a strawberry upgrade) is refused with a way out, not served half-remote."""
    from strawberry.http.ides import get_graphql_ide_html

    from gasworks.api import docs_assets
    from gasworks.errors import ConfigurationError

    html = docs_assets.local_graphiql(get_graphql_ide_html("graphiql"))
    for name in re.findall(r'(?:src|href)="/docs/assets/([^"]+)"', html):
        assert (docs_assets.DIRECTORY / name).is_file(), name
    moved = html.replace("/docs/assets/graphiql.min.js", "https://unpkg.com/graphiql@9/x.js")
    with pytest.raises(ConfigurationError, match=r"VENDORED\.md"):
        docs_assets.local_graphiql(moved)
