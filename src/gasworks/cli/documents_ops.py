"""`gasworks documents queue` and `gasworks documents audit`: what the console's ingestion
panel and audit pages show, for the operator at a terminal and for scripts (``--json``).

Both act on the local database as the operator, or with ``--server`` (GASWORKS_URL) through
``GET /api/documents/ingestion`` and ``GET /api/documents/audit`` as the key's tenant, with
the API's role rules: the queue per stage is for tenant admins (other keys see the documents
by status only), the audit for tenant admins or, with ``--collection``, the collection's
owner. Registered on ``documents_app`` in ``gasworks.cli.main``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from gasworks.cli.common import on_target, tenant_context
from gasworks.cli.documents import TenantOpt
from gasworks.cli.models import KeyOpt, ServerOpt
from gasworks.cli.output import JsonOpt, console, emit_json, run, table

if TYPE_CHECKING:
    from gasworks.client import AsyncGasworks
    from gasworks.documents.schemas import DocumentEventOut, IngestionOut
    from gasworks.runtime import Runtime


def _age(seconds: float) -> str:
    """An age as an operator reads it: ``-`` for none, else s / min / h."""
    if seconds <= 0:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def queue_cmd(
    tenant: TenantOpt = "default",
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The ingestion queue per stage (waiting, running, dead letters, oldest job's age) and
    the documents by status (with --server: the queue needs a tenant admin's key)."""

    async def local(rt: Runtime) -> IngestionOut:
        from gasworks.documents.domain import get_documents
        from gasworks.documents.schemas import IngestionOut as Out

        ctx = await tenant_context(rt, tenant)
        found = await get_documents(rt).service.ingestion(ctx)
        return Out.of(found.statuses, found.jobs)

    async def remote(gw: AsyncGasworks) -> IngestionOut:
        from gasworks.documents.schemas import IngestionOut as Out

        return Out.model_validate(await gw.document_ingestion())

    async def body() -> IngestionOut:
        return await on_target(server, api_key, local=local, remote=remote)

    out = run(body, as_json)
    if as_json:
        emit_json(out)
        return
    table(
        "documents by status",
        ["status", "documents"],
        [(k, n) for k, n in sorted(out.statuses.items())] or [("(none)", 0)],
    )
    q = out.queue
    if q is None:
        console.print("The queue per stage is shown to tenant admins only.")
        return
    table(
        "ingestion queue",
        ["stage", "waiting", "running", "dead letters", "oldest"],
        [
            *(
                (s.stage, s.waiting, s.running, s.dead, _age(s.oldest_age_seconds))
                for s in q.stages
            ),
            ("total", q.waiting, q.running, q.dead, _age(q.oldest_age_seconds)),
        ],
    )
    if q.dead:
        console.print(
            f"{q.dead} dead letter(s): `gasworks documents dead-letters list` shows their errors."
        )


def audit_cmd(
    tenant: TenantOpt = "default",
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", help="Only this collection's events.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Newest events to show.")] = 100,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Collection and dead-letter events, newest first: collections created, granted, revoked
    and deleted, dead letters replayed and discarded (tenant admins; --collection: also its
    owner)."""

    async def local(rt: Runtime) -> list[DocumentEventOut]:
        from gasworks.db.paging import Page
        from gasworks.documents.domain import get_documents

        ctx = await tenant_context(rt, tenant)
        svc = get_documents(rt).service
        return await svc.audit(ctx, collection=collection, page=Page(limit, 0))

    async def remote(gw: AsyncGasworks) -> list[DocumentEventOut]:
        from gasworks.documents.schemas import DocumentEventOut as Event

        found = await gw.document_audit(collection=collection, limit=limit)
        return [Event.model_validate(e) for e in found]

    async def body() -> list[DocumentEventOut]:
        return await on_target(server, api_key, local=local, remote=remote)

    rows = run(body, as_json)
    if as_json:
        emit_json(rows)
        return
    table(
        "documents audit",
        ["#", "when", "event", "by", "data"],
        [
            (e.seq, e.created_at.isoformat(timespec="seconds"), e.kind, e.actor, e.data)
            for e in rows
        ],
    )
