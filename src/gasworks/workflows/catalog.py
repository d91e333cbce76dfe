"""The workflow catalog: workflows, their published versions and their shares (everything but
runs, which are the engine's). It is the service every adapter calls for these actions (REST,
GraphQL, CLI, console): each method opens its own short transaction over the query functions
of ``workflows/service.py`` and drops the engine's cached access decisions after a change.

The runtime's catalog is ``workflow_engine(rt).catalog``: the engine's run cache reads its
``generation``, so a share removed here stops a run of the same process at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gasworks.db.paging import ALL, Page
from gasworks.tenancy.context import TenantContext
from gasworks.workflows import service
from gasworks.workflows.demos import install_demos
from gasworks.workflows.mermaid import to_mermaid
from gasworks.workflows.schemas import (
    PublishOut,
    ShareIn,
    ShareOut,
    ValidationOut,
    VersionOut,
    WorkflowOut,
)
from gasworks.workflows.validator import validate

if TYPE_CHECKING:
    from gasworks.db.engine import Database

#: raises ``ModelNotFound`` for an unknown or disabled model id (the registry's ``get``)
ModelCheck = Callable[[str], object]

TENANT = ShareIn(kind="tenant")


class WorkflowCatalog:
    def __init__(self, db: Database, *, models: Callable[[], ModelCheck | None] = lambda: None):
        self.db = db
        #: the model check of ``publish`` (read at each call: the registry is the runtime's)
        self._models = models
        #: bumped by every change made here (workflows, versions, shares), so in-process caches
        #: of access decisions are dropped at once (other processes: their TTL)
        self.generation = 0

    def _changed(self) -> None:
        self.generation += 1

    # --- documents ------------------------------------------------------------------------

    @staticmethod
    def validate(doc: dict[str, Any]) -> ValidationOut:
        """Every problem of a document (nothing is stored, no model is looked up)."""
        result = validate(doc)
        return ValidationOut(valid=result.ok, issues=[i.to_dict() for i in result.issues])

    async def publish(
        self, ctx: TenantContext, doc: dict[str, Any], *, share_with_tenant: bool = False
    ) -> PublishOut:
        """Validate (every model a node names included) and publish a new immutable version;
        with ``share_with_tenant``, shared with the whole tenant in the same transaction."""
        async with self.db.session() as s:
            out = await service.publish(s, ctx, doc, model_exists=self._models())
            if share_with_tenant:
                await service.share(s, ctx, out.workflow.slug, TENANT)
        self._changed()
        return out

    async def install_demos(self, ctx: TenantContext) -> list[PublishOut]:
        """Publish every demo workflow (an unchanged one is not republished), shared with the
        whole tenant, in one transaction."""
        async with self.db.session() as s:
            out = await install_demos(s, ctx)
        self._changed()
        return out

    # --- workflows and versions -----------------------------------------------------------

    async def list_workflows(self, ctx: TenantContext, page: Page = ALL) -> list[WorkflowOut]:
        async with self.db.read_session() as s:
            return await service.list_workflows(s, ctx, page)

    async def get_workflow(self, ctx: TenantContext, slug: str) -> WorkflowOut:
        async with self.db.read_session() as s:
            return await service.get_workflow(s, ctx, slug)

    async def delete_workflow(self, ctx: TenantContext, slug: str) -> None:
        async with self.db.session() as s:
            await service.delete_workflow(s, ctx, slug)
        self._changed()

    async def list_versions(
        self, ctx: TenantContext, slug: str, page: Page = ALL
    ) -> list[VersionOut]:
        async with self.db.read_session() as s:
            return await service.list_versions(s, ctx, slug, page)

    async def get_version(
        self, ctx: TenantContext, slug: str, version: int | None = None
    ) -> VersionOut:
        async with self.db.read_session() as s:
            return await service.get_version(s, ctx, slug, version)

    async def graph(
        self, ctx: TenantContext, slug: str, version: int | None = None
    ) -> dict[str, Any]:
        """A version (the latest by default) as a Mermaid flowchart."""
        ver = await self.get_version(ctx, slug, version)
        return {"workflow": slug, "version": ver.version, "mermaid": to_mermaid(ver.document)}

    # --- sharing --------------------------------------------------------------------------

    async def list_shares(self, ctx: TenantContext, slug: str, page: Page = ALL) -> list[ShareOut]:
        async with self.db.read_session() as s:
            return await service.list_shares(s, ctx, slug, page)

    async def share(self, ctx: TenantContext, slug: str, data: ShareIn) -> ShareOut:
        async with self.db.session() as s:
            out = await service.share(s, ctx, slug, data)
        self._changed()
        return out

    async def unshare(self, ctx: TenantContext, slug: str, share_id: str) -> None:
        async with self.db.session() as s:
            await service.unshare(s, ctx, slug, share_id)
        self._changed()
