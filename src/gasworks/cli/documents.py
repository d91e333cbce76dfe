"""`gasworks documents …` and `gasworks worker`: upload files, folders and globs, list and
inspect documents, collections and grants, dead letters, delete, reconcile."""

from __future__ import annotations

import glob
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import typer

from gasworks.cli.common import runtime, tenant_context
from gasworks.cli.output import JsonOpt, console, emit_json, err_console, run, table
from gasworks.errors import GasworksError, ValidationFailed

documents_app = typer.Typer(
    help="Documents: upload, status, collections, dead letters.", no_args_is_help=True
)
collections_app = typer.Typer(help="Collections and their grants.", no_args_is_help=True)
dead_app = typer.Typer(help="The pipeline's dead letters.", no_args_is_help=True)
documents_app.add_typer(collections_app, name="collections")
documents_app.add_typer(dead_app, name="dead-letters")

TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="Tenant name.")]
PIECE = 1 << 20


def expand(paths: list[str]) -> list[Path]:
    """Files named, files under folders (recursively, hidden ones skipped), glob matches."""
    out: list[Path] = []
    for raw in paths:
        matches = [Path(m) for m in glob.glob(raw, recursive=True)] or [Path(raw)]
        for p in matches:
            if p.is_dir():
                out.extend(
                    f
                    for f in sorted(p.rglob("*"))
                    if f.is_file() and not any(part.startswith(".") for part in f.parts)
                )
            elif p.is_file():
                out.append(p)
            else:
                raise ValidationFailed(f"No such file or folder: {raw}", details={"path": raw})
    seen: set[Path] = set()
    unique = []
    for p in out:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique


async def _read(path: Path, progress: Any, task: Any) -> AsyncIterator[bytes]:
    import asyncio

    with path.open("rb") as f:
        while piece := f.read(PIECE):
            progress.advance(task, len(piece))
            yield piece
            await asyncio.sleep(0)


@documents_app.command("upload")
def upload_cmd(
    paths: Annotated[list[str], typer.Argument(help="Files, folders or globs ('docs/**/*.pdf').")],
    tenant: TenantOpt = "default",
    collection: Annotated[
        list[str] | None, typer.Option("--collection", "-c", help="Add to this collection.")
    ] = None,
    new: Annotated[
        bool, typer.Option(help="A new document even for bytes already uploaded.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Upload files; each becomes a document that the pipeline makes searchable."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from gasworks.documents.domain import get_documents

    async def body() -> list[dict[str, Any]]:
        files = expand(paths)
        results: list[dict[str, Any]] = []
        async with runtime() as rt:
            ctx = await tenant_context(rt, tenant)
            svc = get_documents(rt).service
            total = sum(f.stat().st_size for f in files)
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                console=err_console,
                disable=as_json,
                transient=True,
            ) as progress:
                task = progress.add_task(f"uploading {len(files)} file(s)", total=total)
                for f in files:
                    try:
                        res = await svc.upload(
                            ctx,
                            f.name,
                            _read(f, progress, task),
                            collections=collection or [],
                            new=new,
                        )
                        results.append(
                            {
                                "path": str(f),
                                "id": res.document.id,
                                "status": "duplicate" if res.duplicate else res.document.status,
                                "mediaType": res.document.media_type,
                            }
                        )
                    except GasworksError as exc:
                        results.append({"path": str(f), "error": exc.code, "message": exc.message})
        return results

    results = run(body, as_json)
    if as_json:
        emit_json(results)
    else:
        table(
            "upload",
            ["file", "document", "status"],
            [
                (r["path"], r.get("id", "-"), r.get("status") or f"{r['error']}: {r['message']}")
                for r in results
            ],
        )
        failed = sum(1 for r in results if "error" in r)
        dup = sum(1 for r in results if r.get("status") == "duplicate")
        console.print(
            f"{len(results) - failed} uploaded ({dup} already present), {failed} refused."
        )
    if any("error" in r for r in results):
        raise typer.Exit(1)


@documents_app.command("list")
def list_cmd(
    tenant: TenantOpt = "default",
    collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Documents with their status."""
    from gasworks.documents.domain import get_documents

    async def body() -> Any:
        async with runtime() as rt:
            ctx = await tenant_context(rt, tenant)
            return await get_documents(rt).service.list_documents(
                ctx, collection=collection, status=status
            )

    docs = run(body, as_json)
    if as_json:
        emit_json(docs)
    else:
        table(
            "documents",
            ["id", "name", "status", "chunks", "error"],
            [(d.id, d.name, d.status, d.chunks or "", d.error_code or "") for d in docs],
        )


@documents_app.command("show")
def show_cmd(document_id: str, tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """One document: status per stage, attempts, last error, events."""
    from gasworks.documents.domain import get_documents

    async def body() -> Any:
        async with runtime() as rt:
            ctx = await tenant_context(rt, tenant)
            svc = get_documents(rt).service
            return await svc.get(ctx, document_id), await svc.events(ctx, document_id)

    doc, events = run(body, as_json)
    if as_json:
        emit_json({"document": doc, "events": events})
        return
    console.print(f"[bold]{doc.name}[/] {doc.id}: {doc.status} (generation {doc.generation})")
    if doc.error_code:
        console.print(f"[red]{doc.error_code}[/]: {doc.error_message}")
    table(
        "stages",
        ["stage", "started", "finished", "attempts"],
        [
            (k, v.get("started", ""), v.get("finished", ""), v.get("attempts", ""))
            for k, v in doc.stages.items()
        ],
    )
    table("events", ["#", "kind", "data"], [(e.seq, e.kind, e.data) for e in events])


@documents_app.command("delete")
def delete_cmd(document_id: str, tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """Delete a document (invisible at once; its data is removed by a job)."""
    from gasworks.documents.domain import get_documents

    async def body() -> None:
        async with runtime() as rt:
            ctx = await tenant_context(rt, tenant)
            await get_documents(rt).service.delete(ctx, document_id)

    run(body, as_json)
    emit_json({"deleted": document_id}) if as_json else console.print(f"Deleting {document_id}.")


@documents_app.command("purge-tenant")
def purge_tenant_cmd(
    tenant: TenantOpt,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: every document goes.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete every document and collection of a tenant (hidden at once, removed by jobs)."""
    from gasworks.documents.domain import get_documents

    if not yes:
        raise typer.BadParameter("add --yes: every document of the tenant is deleted")

    async def body() -> int:
        async with runtime() as rt:
            ctx = await tenant_context(rt, tenant)
            return await get_documents(rt).service.delete_tenant_documents(ctx)

    n = run(body, as_json)
    emit_json({"deleting": n}) if as_json else console.print(f"Deleting {n} document(s).")


@documents_app.command("reconcile")
def reconcile_cmd(
    grace: Annotated[
        float, typer.Option(help="Remove only orphans seen at least this many seconds ago.")
    ] = 600.0,
    as_json: JsonOpt = False,
) -> None:
    """Compare database, blobs and vectors; remove orphans (all tenants)."""
    from gasworks.documents.domain import get_documents

    async def body() -> Any:
        async with runtime() as rt:
            return await get_documents(rt).reconciler.run(grace=grace)

    out = run(body, as_json)
    if as_json:
        emit_json(out)
    else:
        console.print(
            f"removed {out.blobs_removed} blob(s), {out.sources_removed} vector source(s); "
            f"{out.documents_failed} document(s) without their file marked failed; "
            f"{out.documents_purged} deleted document(s) purged."
        )


# --- collections ------------------------------------------------------------------------------


@collections_app.command("create")
def collection_create(
    name: str,
    tenant: TenantOpt = "default",
    chunk_tokens: Annotated[int, typer.Option(help="Tokens per chunk.")] = 400,
    chunk_overlap: Annotated[int, typer.Option(help="Tokens shared by neighbours.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Create a collection."""
    from gasworks.documents.domain import get_documents
    from gasworks.documents.schemas import CollectionIn
    from gasworks.validation import validated

    async def body() -> Any:
        data = validated(
            CollectionIn, {"name": name, "chunkTokens": chunk_tokens, "chunkOverlap": chunk_overlap}
        )
        async with runtime() as rt:
            ctx = await tenant_context(rt, tenant)
            return await get_documents(rt).service.create_collection(ctx, data)

    out = run(body, as_json)
    emit_json(out) if as_json else console.print(f"Created collection {out.name} ({out.id}).")


@collections_app.command("list")
def collection_list(tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """Collections."""
    from gasworks.documents.domain import get_documents

    async def body() -> Any:
        async with runtime() as rt:
            ctx = await tenant_context(rt, tenant)
            return await get_documents(rt).service.list_collections(ctx)

    rows = run(body, as_json)
    if as_json:
        emit_json(rows)
    else:
        table(
            "collections",
            ["id", "name", "chunk tokens", "overlap"],
            [(c.id, c.name, c.chunk_tokens, c.chunk_overlap) for c in rows],
        )


@collections_app.command("delete")
def collection_delete(name: str, tenant: TenantOpt = "default", as_json: JsonOpt = False) -> None:
    """Delete a collection and the documents in no other collection."""
    from gasworks.documents.domain import get_documents

    async def body() -> None:
        async with runtime() as rt:
            ctx = await tenant_context(rt, tenant)
            await get_documents(rt).service.delete_collection(ctx, name)

    run(body, as_json)
    emit_json({"deleted": name}) if as_json else console.print(f"Deleting collection {name}.")


@collections_app.command("grant")
def collection_grant(
    name: str,
    kind: Annotated[str, typer.Argument(help="user, role or tenant.")],
    subject: Annotated[str | None, typer.Argument(help="Principal id or role.")] = None,
    tenant: TenantOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Let a principal, a role (and above) or the whole tenant read a collection."""
    from gasworks.documents.domain import get_documents
    from gasworks.documents.schemas import GrantIn
    from gasworks.validation import validated

    async def body() -> Any:
        data = validated(GrantIn, {"kind": kind, "subject": subject})
        async with runtime() as rt:
            ctx = await tenant_context(rt, tenant)
            return await get_documents(rt).service.grant(ctx, name, data)

    out = run(body, as_json)
    emit_json(out) if as_json else console.print(f"Granted {out.kind} {out.subject} ({out.id}).")


# --- dead letters -----------------------------------------------------------------------------


@dead_app.command("list")
def dead_list(
    tenant: TenantOpt = "default",
    stage: Annotated[str | None, typer.Option(help="extract, ocr, chunk, embed, index...")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Dead letters with their error."""
    from gasworks.documents.domain import get_documents

    async def body() -> Any:
        async with runtime() as rt:
            ctx = await tenant_context(rt, tenant)
            return await get_documents(rt).service.dead_letters(ctx, stage=stage)

    rows = run(body, as_json)
    if as_json:
        emit_json(rows)
    else:
        table(
            "dead letters",
            ["id", "stage", "document", "attempts", "error"],
            [
                (d.id, d.kind, d.subject, d.attempts, f"{d.error_code}: {d.error_message}")
                for d in rows
            ],
        )


@dead_app.command("replay")
def dead_replay(
    ids: Annotated[list[str] | None, typer.Argument(help="Dead letters (default: all).")] = None,
    tenant: TenantOpt = "default",
    stage: Annotated[str | None, typer.Option(help="Only this stage.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue dead letters again with fresh attempts."""
    from gasworks.documents.domain import get_documents

    async def body() -> int:
        async with runtime() as rt:
            ctx = await tenant_context(rt, tenant)
            return await get_documents(rt).service.replay(ctx, ids=ids or None, stage=stage)

    n = run(body, as_json)
    emit_json({"replayed": n}) if as_json else console.print(f"Replayed {n} dead letter(s).")


@dead_app.command("discard")
def dead_discard(
    ids: Annotated[list[str] | None, typer.Argument(help="Dead letters (default: all).")] = None,
    tenant: TenantOpt = "default",
    stage: Annotated[str | None, typer.Option(help="Only this stage.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Drop dead letters."""
    from gasworks.documents.domain import get_documents

    async def body() -> int:
        async with runtime() as rt:
            ctx = await tenant_context(rt, tenant)
            return await get_documents(rt).service.discard(ctx, ids=ids or None, stage=stage)

    n = run(body, as_json)
    emit_json({"discarded": n}) if as_json else console.print(f"Discarded {n} dead letter(s).")


# --- workers ----------------------------------------------------------------------------------


def worker_cmd(
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs at once (GASWORKS_DOCUMENTS_WORKER_CONCURRENCY).")
    ] = None,
) -> None:
    """Run background work until SIGINT/SIGTERM, without serving HTTP: document ingestion and
    cascade deletes (any number of workers, on any host sharing the database and blob store),
    and, in the one process of the deployment holding the leader lease, the periodic tasks
    (reconciliation, prompt retention, budget and run-lease sweeps). Running jobs finish; a
    killed worker's jobs return to the queue when their lease expires, and another process
    takes the leader lease within one lease interval."""
    import asyncio
    import signal

    from gasworks.documents.domain import get_documents
    from gasworks.observability.logging import configure_logging
    from gasworks.settings import Settings
    from gasworks.wiring import build_runtime

    async def body() -> None:
        update: dict[str, object] = {"documents_run_workers": True, "background_work": True}
        if concurrency is not None:
            update["documents_worker_concurrency"] = concurrency
        settings = Settings().model_copy(update=update)
        # a long-running process: its log is the operator's view (as `gasworks serve`'s)
        configure_logging(json=settings.json_logs, level=settings.log_level)
        rt = build_runtime(settings)
        await rt.start()
        try:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            ids = ", ".join(w.worker_id for w in get_documents(rt).workers)
            err_console.print(f"worker {ids} ready")
            await stop.wait()
        finally:
            await rt.stop()

    run(body, False)
