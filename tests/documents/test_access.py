"""Collections and access: grants by principal, role and tenant; list, get and the allowed
sources agree; another tenant's or an unshared collection is NOT_FOUND like a missing one;
cascade delete leaves nothing behind (rows, blobs, vectors), even when its job was killed."""

from __future__ import annotations

from typing import Any

import pytest

from gasworks.documents.domain import get_documents
from gasworks.documents.schemas import CollectionIn, GrantIn
from gasworks.errors import CollectionNotFound, DocumentNotFound
from gasworks.retrieval.types import source_id
from gasworks.tenancy.context import Role
from tests.documents import samples
from tests.documents.helpers import ADMIN, ctx, drain, leftovers, upload

OWNER = ctx(who="prn_owner")
VIEWER = ctx(who="prn_viewer", role=Role.VIEWER)
OTHER_TENANT_ADMIN = ctx(tenant="ten_b", who="prn_b", role=Role.ADMIN)


async def test_grants_decide_list_get_and_allowed_sources_alike(drt: Any) -> None:
    svc = get_documents(drt).service
    col = await svc.create_collection(OWNER, CollectionIn(name="private"))
    doc = (await upload(drt, "a.md", samples.MARKDOWN, OWNER, collections=["private"])).document
    await drain(drt)

    async def sees(c: Any) -> tuple[bool, bool, bool, bool]:
        listed = [d.id for d in await svc.list_documents(c)] == [doc.id]
        try:
            await svc.get(c, doc.id)
            got = True
        except DocumentNotFound:
            got = False
        try:
            await svc.get_collection(c, "private")
            col_ok = True
        except CollectionNotFound:
            col_ok = False
        return listed, got, col_ok, await svc.allowed_sources(c) == {source_id(doc.id, 1)}

    assert await sees(VIEWER) == (False, False, False, False)
    assert await sees(OTHER_TENANT_ADMIN) == (False, False, False, False)
    assert await sees(OWNER) == (True, True, True, True)
    assert await sees(ADMIN) == (True, True, True, True)
    for grant in (
        GrantIn(kind="user", subject="prn_viewer"),
        GrantIn(kind="role", subject="viewer"),
        GrantIn(kind="tenant"),
    ):
        g = await svc.grant(OWNER, "private", grant)
        assert await sees(VIEWER) == (True, True, True, True)
        await svc.revoke(OWNER, col.id, g.id)
        assert await sees(VIEWER) == (False, False, False, False)
    # a role grant covers that role and above, not below
    await svc.grant(OWNER, "private", GrantIn(kind="role", subject="editor"))
    assert (await sees(ctx(who="prn_ed2")))[3] and not (await sees(VIEWER))[3]
    with pytest.raises(CollectionNotFound):
        await svc.allowed_sources(VIEWER, ["private"])


async def test_collection_delete_removes_only_documents_in_no_other_collection(drt: Any) -> None:
    svc = get_documents(drt).service
    await svc.create_collection(ADMIN, CollectionIn(name="a"))
    await svc.create_collection(ADMIN, CollectionIn(name="b"))
    only_a = (await upload(drt, "1.md", samples.MARKDOWN, collections=["a"])).document
    both = (await upload(drt, "2.md", samples.MARKDOWN + b"x", collections=["a", "b"])).document
    await drain(drt)
    await svc.delete_collection(ADMIN, "a")
    with pytest.raises(DocumentNotFound):  # invisible at once
        await svc.get(ADMIN, only_a.id)
    await drain(drt)
    kept = await svc.get(ADMIN, both.id)
    assert kept.status == "ready" and len(kept.collections) == 1
    await svc.delete(ADMIN, both.id)
    await drain(drt)
    assert set((await leftovers(drt)).values()) == {0}


async def test_delete_job_killed_half_way_resumes_and_leaves_nothing(
    drt: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = get_documents(drt)
    ids = [
        (await upload(drt, f"{i}.md", samples.MARKDOWN + bytes([65 + i]))).document.id
        for i in range(3)
    ]
    await drain(drt)
    for i in ids:
        await docs.service.delete(ADMIN, i)

    class Killed(BaseException):
        pass

    real = docs.service.blobs.delete
    calls = 0

    async def dying_delete(key: str) -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:  # after the vectors and one blob are gone
            raise Killed
        return await real(key)

    monkeypatch.setattr(docs.service.blobs, "delete", dying_delete)
    job = await docs.queue.claim("doomed", ["documents.delete"], 30)
    assert job is not None
    with pytest.raises(Killed):
        await docs.pipeline.handlers()["documents.delete"](job)
    monkeypatch.setattr(docs.service.blobs, "delete", real)
    from datetime import timedelta

    base = docs.queue.clock
    docs.queue.clock = lambda: base() + timedelta(seconds=31)
    await drain(drt)
    assert set((await leftovers(drt)).values()) == {0}


async def test_allowed_sources_for_search_follow_the_principals_role_and_grants(drt: Any) -> None:
    """What retrieval's search and the VectorSearch node ask (``SourceScope``)."""
    from gasworks.documents.scope import DocumentSources
    from gasworks.retrieval.types import SourceScope
    from gasworks.tenancy import service as tenancy
    from gasworks.tenancy.context import TenantContext
    from gasworks.tenancy.schemas import PrincipalCreate

    async with drt.db.session() as s:
        tenant, _ = await tenancy.bootstrap(s, "acme")
        sysctx = TenantContext.system(tenant.id, tenant.name)
        editor = await tenancy.create_principal(
            s, sysctx, PrincipalCreate(name="ed", role=Role.EDITOR)
        )
        viewer = await tenancy.create_principal(
            s, sysctx, PrincipalCreate(name="vi", role=Role.VIEWER)
        )
    owner = ctx(tenant=tenant.id, who=editor.id)
    svc = get_documents(drt).service
    await svc.create_collection(owner, CollectionIn(name="kb"))
    doc = (await upload(drt, "a.md", samples.MARKDOWN, owner, collections=["kb"])).document
    await drain(drt)
    provider = DocumentSources(svc)
    assert isinstance(provider, SourceScope)
    src = source_id(doc.id, 1)
    mine = await provider.allowed(tenant.id, editor.id)
    assert mine.sources == {src} and mine.names == {doc.id: "a.md"}
    assert (await provider.allowed(tenant.id, viewer.id)).sources == frozenset()
    assert (await provider.allowed(tenant.id, "prn_unknown")).sources == frozenset()
    assert (await provider.allowed("ten_other", editor.id)).sources == frozenset()
    await svc.grant(owner, "kb", GrantIn(kind="role", subject="viewer"))
    assert (await provider.allowed(tenant.id, viewer.id)).sources == {src}
    narrowed = await provider.allowed(tenant.id, viewer.id, collections=["nope"])
    assert narrowed.sources == frozenset()


async def test_deleting_a_tenants_documents_leaves_nothing(drt: Any) -> None:
    from gasworks.errors import Forbidden
    from gasworks.tenancy.context import TenantContext

    svc = get_documents(drt).service
    await svc.create_collection(ADMIN, CollectionIn(name="a"))
    for i in range(3):
        await upload(drt, f"{i}.md", samples.MARKDOWN + bytes([65 + i]), collections=["a"])
    other = (await upload(drt, "b.md", samples.MARKDOWN, OTHER_TENANT_ADMIN)).document
    await drain(drt)
    with pytest.raises(Forbidden):
        await svc.delete_tenant_documents(ADMIN)  # a tenant admin is not a platform admin
    assert await svc.delete_tenant_documents(TenantContext.system("ten_a")) == 3
    assert await svc.list_documents(ADMIN) == [] and await svc.list_collections(ADMIN) == []
    await drain(drt)
    assert set((await leftovers(drt)).values()) == {0}
    assert (await svc.get(OTHER_TENANT_ADMIN, other.id)).status == "ready"  # another tenant's


async def test_a_managers_upload_finds_its_tenants_live_collection_by_id_or_name(drt: Any) -> None:
    """An admin uploading into one collection (the statement built once): by id or by name,
    never another tenant's collection of the same name, never a deleted one; nothing is
    stored when the collection is not found."""
    svc = get_documents(drt).service
    mine = await svc.create_collection(ADMIN, CollectionIn(name="kb"))
    theirs = await svc.create_collection(OTHER_TENANT_ADMIN, CollectionIn(name="kb"))
    by_name = await upload(drt, "a.md", samples.MARKDOWN, collections=["kb"])
    by_id = await upload(drt, "b.md", samples.MARKDOWN + b"\nmore\n", collections=[mine.id])
    for res in (by_name, by_id):
        assert res.document.collections == [mine.id]
    with pytest.raises(CollectionNotFound):  # another tenant's, by id
        await upload(drt, "c.md", samples.MARKDOWN + b"\nc\n", collections=[theirs.id])
    await svc.delete_collection(ADMIN, "kb")
    for ref in ("kb", mine.id):
        with pytest.raises(CollectionNotFound):
            await upload(drt, "d.md", samples.MARKDOWN + b"\nd\n", collections=[ref])
    assert not [d for d in await svc.list_documents(ADMIN) if d.name in ("c.md", "d.md")]
