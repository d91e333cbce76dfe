from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from gasworks.db.types import utcnow
from gasworks.errors import (
    Forbidden,
    PromptNoPreviousVersion,
    PromptPointerConflict,
    PromptPointerNotFound,
    PromptVersionNotFound,
)
from gasworks.prompts.schemas import (
    CanaryDecision,
    CanaryRequest,
    RollbackRequest,
)
from gasworks.prompts.tables import PromptVersionRow
from tests.prompts.conftest import deploy, new_version, scope


async def test_first_move_creates_pointer_then_cas(svc, tenants):
    v1 = await new_version(svc, tenants.a, "one")
    v2 = await new_version(svc, tenants.a, "two")
    p = await deploy(svc, tenants.a, v1, 0)
    assert (p.version, p.active_version_id, p.previous_version_id) == (1, v1, None)
    assert p.level == "tenant+model"
    p = await deploy(svc, tenants.a, v2, 1)
    assert (p.version, p.active_version_id, p.previous_version_id) == (2, v2, v1)


async def test_stale_expected_version_conflicts_with_current_state(svc, tenants):
    v1 = await new_version(svc, tenants.a, "one")
    v2 = await new_version(svc, tenants.a, "two")
    await deploy(svc, tenants.a, v1, 0)
    await deploy(svc, tenants.a, v2, 1)
    with pytest.raises(PromptPointerConflict) as err:
        await deploy(svc, tenants.a, v1, 1)
    assert err.value.status == 409
    assert err.value.details["current"]["version"] == 2
    assert err.value.details["current"]["activeVersionId"] == v2
    with pytest.raises(PromptPointerConflict):
        await deploy(svc, tenants.a, v1, 0, workflow=None)  # creating an existing pointer


async def test_rollback_restores_previous_and_is_cas_protected(svc, tenants):
    v1 = await new_version(svc, tenants.a, "one")
    v2 = await new_version(svc, tenants.a, "two")
    await deploy(svc, tenants.a, v1, 0)
    with pytest.raises(PromptNoPreviousVersion):
        await svc.rollback(tenants.a, RollbackRequest(scope=scope(), expected_version=1))
    await deploy(svc, tenants.a, v2, 1)
    with pytest.raises(PromptPointerConflict):
        await svc.rollback(tenants.a, RollbackRequest(scope=scope(), expected_version=1))
    p = await svc.rollback(
        tenants.a, RollbackRequest(scope=scope(), expected_version=2, reason="bad")
    )
    assert (p.active_version_id, p.previous_version_id, p.version) == (v1, v2, 3)
    r = await svc.resolver.resolve(tenant_id=tenants.a.tenant_id, model="gpt-4o")
    assert r.version_id == v1
    hist = await svc.history(tenants.a, scope())
    assert [h.seq for h in hist] == [3, 2, 1]
    assert [h.action for h in hist] == ["rollback", "move", "move"]
    assert (hist[0].from_version_id, hist[0].to_version_id, hist[0].reason) == (v2, v1, "bad")


async def test_target_must_belong_to_callers_tenant(svc, tenants):
    vb = await new_version(svc, tenants.b, "b's")
    with pytest.raises(PromptVersionNotFound) as err:
        await deploy(svc, tenants.a, vb, 0)
    # not a retriable failure (another tenant's id is a missing id): nothing recorded
    assert "deadLetterId" not in err.value.details
    assert await svc.dead_letters(tenants.a) == []
    assert await svc.dead_letters(tenants.b) == []


async def test_platform_wide_pointer_needs_platform_admin(svc, tenants):
    v = await new_version(svc, tenants.editor_a, "x")
    with pytest.raises(Forbidden):
        await deploy(svc, tenants.editor_a, v, 0, tenant=False)
    p = await deploy(svc, tenants.a, v, 0, tenant=False)
    assert p.scope_tenant is None and p.level == "model"


async def test_failed_moves_are_dead_lettered_and_replayable(svc, tenants):
    v1 = await new_version(svc, tenants.a, "one")
    v2 = await new_version(svc, tenants.a, "two")
    v3 = await new_version(svc, tenants.a, "three")
    await deploy(svc, tenants.a, v1, 0)
    await deploy(svc, tenants.a, v2, 1)
    with pytest.raises(PromptPointerConflict) as err:
        await deploy(svc, tenants.a, v3, 1)
    dl_id = err.value.details["deadLetterId"]
    [dl] = await svc.dead_letters(tenants.a)
    assert dl.id == dl_id and dl.status == "pending" and dl.operation == "move"
    assert dl.request["versionId"] == v3 and dl.request["expectedVersion"] == 1
    # a plain replay conflicts again and is recorded on the same dead letter
    with pytest.raises(PromptPointerConflict):
        await svc.replay(tenants.a, dl_id)
    assert len(await svc.dead_letters(tenants.a)) == 1
    out = await svc.replay(tenants.a, dl_id, rebase=True)
    assert out.pointer.active_version_id == v3 and out.pointer.version == 3
    assert out.dead_letter.status == "replayed" and out.dead_letter.attempts == 3
    with pytest.raises(Exception, match="already replayed"):
        await svc.replay(tenants.a, dl_id)


async def test_only_retriable_failures_are_dead_lettered(svc, tenants):
    """A missing pointer, a missing previous version or a refused role cannot succeed on a
    replay: answered, not recorded (recording them let any caller write rows without bound);
    a conflict is recorded."""
    with pytest.raises(PromptPointerNotFound):
        await svc.rollback(tenants.a, RollbackRequest(scope=scope("nothing"), expected_version=1))
    v1 = await new_version(svc, tenants.a, "one")
    await deploy(svc, tenants.a, v1, 0)
    with pytest.raises(PromptNoPreviousVersion):
        await svc.rollback(tenants.a, RollbackRequest(scope=scope(), expected_version=1))
    with pytest.raises(Forbidden):
        await deploy(svc, tenants.editor_a, v1, 1, tenant=False)
    assert await svc.dead_letters(tenants.a) == []
    with pytest.raises(PromptPointerConflict):
        await deploy(svc, tenants.a, v1, 0)
    assert [d.reason_code for d in await svc.dead_letters(tenants.a)] == ["PROMPT_POINTER_CONFLICT"]


async def test_pending_dead_letters_are_capped_per_tenant(svc, tenants, monkeypatch):
    from gasworks.prompts import deadletters

    monkeypatch.setattr(deadletters, "MAX_PENDING_PER_TENANT", 2)
    v1 = await new_version(svc, tenants.a, "one")
    await deploy(svc, tenants.a, v1, 0)
    for _ in range(3):
        with pytest.raises(PromptPointerConflict):
            await deploy(svc, tenants.a, v1, 0)
    assert len(await svc.dead_letters(tenants.a)) == 2


async def test_canary_sticky_promote_abort(svc, tenants):
    v1 = await new_version(svc, tenants.a, "stable")
    v2 = await new_version(svc, tenants.a, "candidate")
    await deploy(svc, tenants.a, v1, 0)
    p = await svc.start_canary(
        tenants.a, CanaryRequest(scope=scope(), version_id=v2, percent=30, expected_version=1)
    )
    assert (p.canary_version_id, p.canary_percent, p.version) == (v2, 30, 2)
    picks = {}
    for i in range(400):
        r = await svc.resolver.resolve(
            tenant_id=tenants.a.tenant_id, model="gpt-4o", conversation_id=f"c{i}"
        )
        picks[f"c{i}"] = r.version_id
        again = await svc.resolver.resolve(
            tenant_id=tenants.a.tenant_id, model="gpt-4o", conversation_id=f"c{i}"
        )
        assert again.version_id == r.version_id  # sticky
        assert again.canary == (r.version_id == v2)
    share = sum(v == v2 for v in picks.values()) / len(picks)
    assert 0.2 < share < 0.4
    with pytest.raises(PromptPointerConflict):
        await svc.decide_canary(
            tenants.a, CanaryDecision(scope=scope(), expected_version=1), promote=True
        )
    p = await svc.decide_canary(
        tenants.a, CanaryDecision(scope=scope(), expected_version=2), promote=True
    )
    assert (p.active_version_id, p.previous_version_id, p.canary_version_id) == (v2, v1, None)
    hist = await svc.history(tenants.a, scope())
    assert [h.action for h in hist] == ["canary_promote", "canary_start", "move"]
    await svc.start_canary(
        tenants.a, CanaryRequest(scope=scope(), version_id=v1, percent=50, expected_version=3)
    )
    p = await svc.decide_canary(
        tenants.a, CanaryDecision(scope=scope(), expected_version=4), promote=False
    )
    assert (p.active_version_id, p.canary_version_id, p.version) == (v2, None, 5)


async def test_audit_records_every_change(svc, tenants):
    v1 = await new_version(svc, tenants.a, "one")
    v2 = await new_version(svc, tenants.a, "two")
    await deploy(svc, tenants.a, v1, 0)
    await deploy(svc, tenants.a, v2, 1)
    await svc.rollback(tenants.a, RollbackRequest(scope=scope(), expected_version=2))
    v3 = await new_version(svc, tenants.a, "three")
    await svc.archive_version(tenants.a, v3)
    actions = [a.action for a in reversed(await svc.audit(tenants.a))]
    assert actions == ["create", "create", "move", "move", "rollback", "create", "archive"]
    assert await svc.audit(tenants.b) == []


async def test_retention_deletes_only_unneeded_archived_versions(svc, tenants, runtime):
    v1 = await new_version(svc, tenants.a, "one")
    v2 = await new_version(svc, tenants.a, "two")
    old = await new_version(svc, tenants.a, "old and unused")
    recent = await new_version(svc, tenants.a, "archived recently")
    await deploy(svc, tenants.a, v1, 0)
    await deploy(svc, tenants.a, v2, 1)  # v1 is now the pointer's previous version
    for vid in (v1, old, recent):
        await svc.archive_version(tenants.a, vid)
    long_ago = utcnow() - timedelta(days=400)
    async with runtime.db.session() as s:
        await s.execute(
            update(PromptVersionRow)
            .where(PromptVersionRow.id.in_([v1, old]))
            .values(archived_at=long_ago)
        )
    dry = await svc.retention(tenants.a, dry_run=True)
    assert dry.deleted == [old] and dry.dry_run
    report = await svc.retention(tenants.a)
    assert report.deleted == [old] and report.kept_in_use == 1  # v1 still needed for rollback
    with pytest.raises(PromptVersionNotFound):
        await svc.get_version(tenants.a, old)
    assert (await svc.get_version(tenants.a, recent)).archived_at is not None
    with pytest.raises(Forbidden):
        await svc.retention(tenants.editor_a)


async def test_store_error_during_a_move_is_dead_lettered(svc, tenants, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from gasworks.errors import DatabaseUnavailable
    from gasworks.prompts import service as service_mod
    from gasworks.prompts.schemas import MoveRequest

    v = await new_version(svc, tenants.a, "one")

    async def broken(session, ctx, req, *, normalize):
        raise OperationalError("UPDATE prompt_pointers …", {}, Exception("disk I/O error"))

    monkeypatch.setitem(service_mod.OPERATIONS, "move", (MoveRequest, broken))
    with pytest.raises(DatabaseUnavailable) as err:
        await deploy(svc, tenants.a, v, 0)
    assert "disk I/O" not in err.value.message  # no driver internals in the error
    [dl] = await svc.dead_letters(tenants.a)
    assert dl.reason_code in {"STORE_ERROR", "DATABASE_UNAVAILABLE"}
    assert dl.request["versionId"] == v
    monkeypatch.undo()
    out = await svc.replay(tenants.a, dl.id)
    assert out.pointer.active_version_id == v and out.dead_letter.status == "replayed"
