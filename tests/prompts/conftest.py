from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

import gasworks.prompts  # noqa: F401 - registers the runtime hooks
from gasworks.prompts.content import PromptContent
from gasworks.prompts.schemas import MoveRequest, ScopeIn, VersionCreate
from gasworks.prompts.service import PromptService, prompt_service
from gasworks.tenancy import service as tenancy
from gasworks.tenancy.context import Role, TenantContext
from gasworks.tenancy.schemas import TenantCreate


@dataclass
class Tenants:
    a: TenantContext
    b: TenantContext
    viewer_a: TenantContext
    editor_a: TenantContext


@pytest.fixture
async def tenants(runtime: Any) -> Tenants:
    async with runtime.db.session() as s:
        ta, _ = await tenancy.bootstrap(s, "default")
        tb = await tenancy.create_tenant(s, TenantContext.system(ta.id), TenantCreate(name="other"))
    a = TenantContext.system(ta.id, ta.name)
    return Tenants(
        a=a,
        b=TenantContext.system(tb.id, tb.name),
        viewer_a=TenantContext(ta.id, "viewer", Role.VIEWER),
        editor_a=TenantContext(ta.id, "editor", Role.EDITOR),
    )


@pytest.fixture
async def svc(runtime: Any) -> PromptService:
    return prompt_service(runtime)


def content(system: str = "You are ${inputs.persona}.", user: str = "${inputs.q}") -> PromptContent:
    return PromptContent(system=system, user=user)


async def new_version(svc: PromptService, ctx: TenantContext, text: str, name: str = "p") -> str:
    v = await svc.create_version(ctx, VersionCreate(name=name, content=content(system=text)))
    return v.id


def scope(model: str = "gpt-4o", workflow: str | None = None, tenant: bool = True) -> ScopeIn:
    return ScopeIn(model=model, workflow_id=workflow, tenant_scoped=tenant)


async def deploy(svc: PromptService, ctx: TenantContext, vid: str, expected: int, **kw: Any):
    return await svc.move(
        ctx, MoveRequest(scope=scope(**kw), version_id=vid, expected_version=expected)
    )
