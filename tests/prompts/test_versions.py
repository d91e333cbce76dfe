from __future__ import annotations

import pytest
from sqlalchemy import update

from gasworks.errors import (
    Forbidden,
    PromptIntegrityError,
    PromptVersionInUse,
    PromptVersionNotFound,
    TemplateSyntaxError,
)
from gasworks.prompts.content import PromptContent, canonical_bytes, content_hash
from gasworks.prompts.schemas import VersionCreate
from gasworks.prompts.tables import PromptVersionRow
from tests.prompts.conftest import content, deploy, new_version


def test_canonical_form_is_order_and_whitespace_independent():
    a = PromptContent.model_validate({"user": "u", "system": "s", "parameters": {"b": 1, "a": 2}})
    b = PromptContent.model_validate({"parameters": {"a": 2, "b": 1}, "system": "s", "user": "u"})
    assert canonical_bytes(a) == canonical_bytes(b)
    assert canonical_bytes(a) == b'{"parameters":{"a":2,"b":1},"system":"s","user":"u"}'
    assert content_hash(a) == content_hash(b)
    # template text is significant: a trailing space is another prompt
    assert content_hash(PromptContent(system="s ")) != content_hash(PromptContent(system="s"))
    # empty parameters are the same as none
    assert content_hash(PromptContent(system="s", parameters={})) == content_hash(
        PromptContent(system="s")
    )


def test_content_shape_is_validated():
    with pytest.raises(ValueError):
        PromptContent()
    with pytest.raises(ValueError):
        PromptContent(system="s", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(TemplateSyntaxError):
        PromptContent(system="broken ${inputs.q")


async def test_identical_content_returns_existing_version(svc, tenants):
    first = await svc.create_version(
        tenants.a, VersionCreate(name="p", content=content(), message="one")
    )
    again = await svc.create_version(
        tenants.a, VersionCreate(name="p", content=content(), message="two")
    )
    assert first.created is True and again.created is False
    assert again.id == first.id and again.number == 1 and again.message == "one"
    other = await svc.create_version(
        tenants.a, VersionCreate(name="p", content=content(system="x"))
    )
    assert other.number == 2 and other.created is True
    got = await svc.get_version(tenants.a, first.id)
    assert got.content == content() and got.author == tenants.a.principal_id
    assert got.content_hash == content_hash(content())


async def test_other_tenants_version_is_not_found(svc, tenants):
    vid = await new_version(svc, tenants.a, "secret of a")
    with pytest.raises(PromptVersionNotFound):
        await svc.get_version(tenants.b, vid)
    with pytest.raises(PromptVersionNotFound):
        await svc.diff(tenants.b, vid, vid)
    with pytest.raises(PromptVersionNotFound):
        await svc.archive_version(tenants.b, vid)
    assert await svc.list_versions(tenants.b) == []


async def test_viewer_cannot_create(svc, tenants):
    with pytest.raises(Forbidden):
        await svc.create_version(tenants.viewer_a, VersionCreate(name="p", content=content()))


async def test_large_content_goes_to_encrypted_blob_and_round_trips(svc, tenants, runtime):
    big = "word " * 20_000  # > 64 KB
    v = await svc.create_version(tenants.a, VersionCreate(name="big", content=content(system=big)))
    assert v.storage == "blob"
    got = await svc.get_version(tenants.a, v.id)
    assert got.content.system == big
    blob = runtime.settings.home / "blobs" / tenants.a.tenant_id / "prompt-content" / v.content_hash
    assert blob.exists() and b"word word" not in blob.read_bytes()


async def test_inline_hash_mismatch_is_never_served(svc, tenants, runtime):
    vid = await new_version(svc, tenants.a, "original")
    async with runtime.db.session() as s:
        await s.execute(
            update(PromptVersionRow)
            .where(PromptVersionRow.id == vid)
            .values(content='{"system":"tampered"}')
        )
    with pytest.raises(PromptIntegrityError):
        await svc.get_version(tenants.a, vid)


async def test_blob_hash_mismatch_is_never_served(svc, tenants, runtime):
    big = "x" * 70_000
    v = await svc.create_version(tenants.a, VersionCreate(name="big", content=content(system=big)))
    # a validly encrypted blob with other content under the same key: decrypts, wrong hash
    other = PromptContent(system="y" * 70_000)
    await svc.store.blobs.put(
        f"{tenants.a.tenant_id}/prompt-content/{v.content_hash}", canonical_bytes(other)
    )
    with pytest.raises(PromptIntegrityError):
        await svc.get_version(tenants.a, v.id)


async def test_diff_is_unified(svc, tenants):
    a = await new_version(svc, tenants.a, "line one\nline two")
    b = await new_version(svc, tenants.a, "line one\nline 2")
    d = await svc.diff(tenants.a, a, b)
    assert not d.identical
    assert "-line two" in d.diff and "+line 2" in d.diff and d.diff.startswith("---")
    assert (await svc.diff(tenants.a, a, a)).identical


async def test_archive_refuses_live_version(svc, tenants):
    vid = await new_version(svc, tenants.a, "live")
    await deploy(svc, tenants.a, vid, 0)
    with pytest.raises(PromptVersionInUse):
        await svc.archive_version(tenants.a, vid)
    other = await new_version(svc, tenants.a, "idle")
    archived = await svc.archive_version(tenants.a, other)
    assert archived.archived_at is not None
    assert other not in {v.id for v in await svc.list_versions(tenants.a)}
    assert other in {v.id for v in await svc.list_versions(tenants.a, include_archived=True)}
