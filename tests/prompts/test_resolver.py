from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.engine import make_url

from gasworks.db.engine import Database
from gasworks.prompts.cache import ScopeCache
from gasworks.prompts.models import local_normalize
from gasworks.prompts.resolver import FALLBACKS, NEUTRAL_CONTENT, Resolver
from gasworks.prompts.tables import PromptVersionRow
from tests.prompts.conftest import deploy, new_version


async def test_precedence_levels(svc, tenants):
    ids = {}
    for label in ["model", "tenant+model", "workflow+model", "tenant+workflow+model"]:
        ids[label] = await new_version(svc, tenants.a, label)
    await deploy(svc, tenants.a, ids["model"], 0, tenant=False)
    await deploy(svc, tenants.a, ids["tenant+model"], 0)
    await deploy(svc, tenants.a, ids["workflow+model"], 0, workflow="wf1", tenant=False)
    await deploy(svc, tenants.a, ids["tenant+workflow+model"], 0, workflow="wf1")
    res = svc.resolver.resolve
    a, b = tenants.a.tenant_id, tenants.b.tenant_id
    cases = [
        (a, "wf1", "tenant+workflow+model"),
        (b, "wf1", "workflow+model"),
        (a, "wf2", "tenant+model"),
        (a, None, "tenant+model"),
        (b, "wf2", "model"),
        (b, None, "model"),
    ]
    for tenant, wf, level in cases:
        r = await res(tenant_id=tenant, model="gpt-4o", workflow_id=wf)
        assert (r.level, r.version_id) == (level, ids[level]), (tenant, wf)
    r = await res(tenant_id=b, model="claude-3", workflow_id="wf1")
    assert (r.level, r.version_id, r.content) == ("neutral", None, NEUTRAL_CONTENT)


async def test_default_model_and_normalization(svc, tenants):
    assert local_normalize("bedrock/us.anthropic.claude-3-5-sonnet-v2:0") == (
        "anthropic.claude-3-5-sonnet-v2:0"
    )
    assert (
        local_normalize("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-v2")
        == "anthropic.claude-v2"
    )
    assert local_normalize(" gpt-4o ") == "gpt-4o"
    v = await new_version(svc, tenants.a, "bedrock prompt")
    await deploy(svc, tenants.a, v, 0, model="eu.anthropic.claude-3-haiku")
    r = await svc.resolver.resolve(
        tenant_id=tenants.a.tenant_id, model="bedrock/anthropic.claude-3-haiku"
    )
    assert r.version_id == v and r.model == "anthropic.claude-3-haiku"
    d = await new_version(svc, tenants.a, "default model prompt")
    await deploy(svc, tenants.a, d, 0, model=svc.settings.default_model)
    r = await svc.resolver.resolve(tenant_id=tenants.a.tenant_id)
    assert r.version_id == d and r.model == svc.normalize(svc.settings.default_model)


async def test_sources_cache_and_local_invalidation(svc, tenants):
    v1 = await new_version(svc, tenants.a, "one")
    v2 = await new_version(svc, tenants.a, "two")
    await deploy(svc, tenants.a, v1, 0)
    res = svc.resolver.resolve
    t = tenants.a.tenant_id
    assert (await res(tenant_id=t, model="gpt-4o")).source == "store"
    # the deploy's own cross-process notice does not drop the fresh entry a second time
    # (this process invalidated its cache when the change committed)
    await svc.resolver.poll_once()
    assert (await res(tenant_id=t, model="gpt-4o")).source == "cache"
    await deploy(svc, tenants.a, v2, 1)
    r = await res(tenant_id=t, model="gpt-4o")
    assert (r.version_id, r.source) == (v2, "store")


def test_selective_invalidation_by_structured_scope():
    cache: ScopeCache[str] = ScopeCache(maxsize=10, ttl=60)
    for key in [
        ("t1", "", "m"),
        ("t1", "w", "m"),
        ("t2", "w", "m"),
        ("t1", "", "m2"),
        ("t10", "", "m"),
    ]:
        cache.put(key, "x")
    assert cache.invalidate("t1", "", "m") == 2  # t1's keys of model m; not t10 (no prefix match)
    assert cache.get(("t10", "", "m")) == "x" and cache.get(("t1", "", "m2")) == "x"
    assert cache.invalidate("", "w", "m") == 1  # workflow w of every tenant
    assert cache.invalidate("", "", "m") == 1  # t10
    assert len(cache) == 1


def test_lru_bound_and_generation_guard():
    cache: ScopeCache[int] = ScopeCache(maxsize=3, ttl=60)
    for i in range(5):
        cache.put(("t", "", f"m{i}"), i)
    assert len(cache) == 3 and cache.get(("t", "", "m0")) is None
    gen = cache.generation
    cache.invalidate("t", "", "m4")
    assert cache.put(("t", "", "m9"), 9, generation=gen) is False  # raced with an invalidation


async def test_single_flight_per_key(svc, tenants, monkeypatch):
    v = await new_version(svc, tenants.a, "one")
    await deploy(svc, tenants.a, v, 0)
    calls = 0
    original = svc.resolver._load

    async def counting(key):
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        return await original(key)

    monkeypatch.setattr(svc.resolver, "_load", counting)
    results = await asyncio.gather(
        *(svc.resolver.resolve(tenant_id=tenants.a.tenant_id, model="gpt-4o") for _ in range(50))
    )
    assert calls == 1
    assert {r.version_id for r in results} == {v}


def _unreachable_url(dialect_url: str, tmp_path: Path) -> str:
    url = make_url(dialect_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'stopped' / 'gasworks.db'}"
    return "postgresql+asyncpg://gasworks:x@127.0.0.1:9/gasworks"  # nothing listens on port 9


async def test_stopped_database_answers_neutral_prompt(svc, tenants, db_url, tmp_path):
    v = await new_version(svc, tenants.a, "one")
    await deploy(svc, tenants.a, v, 0)
    down = Database(_unreachable_url(db_url, tmp_path))
    if down.dialect.name == "sqlite":  # the folder of the database file is gone
        shutil.rmtree(tmp_path / "stopped")
        (tmp_path / "stopped").write_text("not a folder")
    resolver = Resolver(down, svc.store, default_model="demo")
    before = FALLBACKS.labels("store_unavailable")._value.get()
    try:
        r = await resolver.resolve(tenant_id=tenants.a.tenant_id, model="gpt-4o", workflow_id="w")
        assert (r.level, r.source, r.content) == ("neutral", "fallback", NEUTRAL_CONTENT)
        msgs = r.format({"inputs": {"user_prompt": "hi"}}).messages
        assert [m.role for m in msgs] == ["system", "user"] and msgs[1].content == "hi"
        assert FALLBACKS.labels("store_unavailable")._value.get() == before + 1
        # within the retry pause the store is not even tried: still the neutral prompt
        r2 = await resolver.resolve(tenant_id=tenants.a.tenant_id, model="gpt-4o")
        assert r2.source == "fallback"
    finally:
        await down.dispose()


async def test_stale_entry_served_when_store_goes_down(svc, tenants, db_url, tmp_path):
    v = await new_version(svc, tenants.a, "one")
    await deploy(svc, tenants.a, v, 0)
    resolver = Resolver(svc.db, svc.store, default_model="demo", ttl=60)
    assert (await resolver.resolve(tenant_id=tenants.a.tenant_id, model="gpt-4o")).version_id == v
    for entry in resolver.cache._data.values():
        entry.expires = 0  # expired
    down = Database(_unreachable_url(db_url, tmp_path))
    resolver.db = down
    try:
        r = await resolver.resolve(tenant_id=tenants.a.tenant_id, model="gpt-4o")
        assert (r.version_id, r.source, r.stale) == (v, "cache", True)
    finally:
        await down.dispose()


async def test_tampered_content_falls_back_to_neutral(svc, tenants, runtime):
    v = await new_version(svc, tenants.a, "one")
    await deploy(svc, tenants.a, v, 0)
    async with runtime.db.session() as s:
        await s.execute(
            update(PromptVersionRow)
            .where(PromptVersionRow.id == v)
            .values(content='{"system":"evil"}')
        )
    r = await svc.resolver.resolve(tenant_id=tenants.a.tenant_id, model="gpt-4o")
    assert (r.level, r.source) == ("neutral", "fallback")
    assert "evil" not in str(r.content)


async def test_invalidation_poll_sees_moves_of_another_runtime(svc, tenants, settings):
    """Two runtimes on one database (separate engines and caches): a move in one reaches the
    other through the notice table."""
    from gasworks.prompts.service import PromptService
    from gasworks.wiring import build_runtime

    other_rt = build_runtime(settings)
    other = PromptService(other_rt)
    try:
        v1 = await new_version(svc, tenants.a, "one")
        v2 = await new_version(svc, tenants.a, "two")
        await deploy(svc, tenants.a, v1, 0)
        await other.resolver.poll_once()  # learns the current sequence number
        t = tenants.a.tenant_id
        assert (await other.resolver.resolve(tenant_id=t, model="gpt-4o")).version_id == v1
        await deploy(svc, tenants.a, v2, 1)
        assert (await other.resolver.resolve(tenant_id=t, model="gpt-4o")).version_id == v1
        assert await other.resolver.poll_once() == 1
        assert (await other.resolver.resolve(tenant_id=t, model="gpt-4o")).version_id == v2
    finally:
        await other_rt.db.dispose()


async def test_registry_ids_key_the_scopes(svc, tenants):
    """With the model registry running, aliases, Bedrock provider ids and inference-profile
    prefixes all land on the registry id."""
    v = await new_version(svc, tenants.a, "haiku prompt")
    p = await deploy(svc, tenants.a, v, 0, model="us.anthropic.claude-haiku-4-5-20251001-v1:0")
    assert p.model == "bedrock/claude-haiku-4-5"
    for asked in ["bedrock/claude-haiku-4-5", "eu.anthropic.claude-haiku-4-5-20251001-v1:0"]:
        r = await svc.resolver.resolve(tenant_id=tenants.a.tenant_id, model=asked)
        assert r.version_id == v, asked
