"""Demo workflows shipped as package data: a chatbot with memory, an intent-routed support
assistant and a slot-filling onboarding flow. ``gasworks init`` installs them (see
``GASWORKS_WORKFLOW_INSTALL_DEMOS``); ``gasworks workflows demo install`` does it on demand."""

from __future__ import annotations

from importlib import resources
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gasworks.tenancy.context import TenantContext
from gasworks.workflows import service
from gasworks.workflows.definition import parse_document
from gasworks.workflows.schemas import PublishOut, ShareIn

DEMOS = ("chatbot", "support", "onboarding")


def demo_text(name: str) -> str:
    return (resources.files(__name__) / f"{name}.yaml").read_text(encoding="utf-8")


def demo_document(name: str) -> dict[str, Any]:
    return parse_document(demo_text(name))


async def install_demos(session: AsyncSession, ctx: TenantContext) -> list[PublishOut]:
    """Publish every demo (idempotent: an unchanged demo is not republished) and share it with
    the whole tenant."""
    out = []
    for name in DEMOS:
        published = await service.publish(session, ctx, demo_document(name))
        await service.share(session, ctx, published.workflow.slug, ShareIn(kind="tenant"))
        out.append(published)
    return out
