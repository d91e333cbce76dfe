"""`gasworks documents …` and `gasworks worker`: upload files, folders and globs, list and
inspect documents, collections and grants, dead letters, delete, reconcile.

With ``--server`` (GASWORKS_URL) the tenant's commands go through that server's REST API as
the key's tenant (``--tenant`` is the local operator's); ``purge-tenant``, ``reconcile`` and
``worker`` act on the operator's database and storage and refuse ``--server``."""

from __future__ import annotations

import glob
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gasworks.cli.common import on_target, operator_only, runtime, tenant_context
from gasworks.cli.models import KeyOpt, OperatorServerOpt, ServerOpt
from gasworks.cli.output import JsonOpt, console, emit_json, err_console, esc, run, table
from gasworks.errors import (
    Forbidden,
    GasworksError,
    ServerUnreachable,
    Unauthenticated,
    ValidationFailed,
)

if TYPE_CHECKING:  # imported where used: `gasworks --help` loads none of the server
    from gasworks.client import AsyncGasworks
    from gasworks.documents.schemas import (
        CollectionOut,
        DeadLetterOut,
        DocumentEventOut,
        DocumentOut,
        GrantOut,
    )
    from gasworks.runtime import Runtime

documents_app = typer.Typer(
    rich_markup_mode=None,
    help="Documents: upload, status, collections, dead letters.",
    no_args_is_help=True,
)
collections_app = typer.Typer(
    rich_markup_mode=None, help="Collections and their grants.", no_args_is_help=True
)
dead_app = typer.Typer(
    rich_markup_mode=None, help="The pipeline's dead letters.", no_args_is_help=True
)
documents_app.add_typer(collections_app, name="collections")
documents_app.add_typer(dead_app, name="dead-letters")

TenantOpt = Annotated[
    str, typer.Option("--tenant", "-t", help="Tenant name (with --server: the key's tenant).")
]
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


def _bar(count: Any, as_json: bool) -> Any:
    """A transient progress bar on stderr (none under --json): description, bar, ``count``."""
    from rich.progress import BarColumn, Progress, TextColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        count,
        console=err_console,
        disable=as_json,
        transient=True,
    )


async def _read(path: Path, progress: Any, task: Any) -> AsyncIterator[bytes]:
    import asyncio

    with path.open("rb") as f:
        while piece := f.read(PIECE):
            progress.advance(task, len(piece))
            yield piece
            await asyncio.sleep(0)


#: a server's refusal of the whole command rather than of one file
_FATAL = (ServerUnreachable, Unauthenticated, Forbidden)


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
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Upload files; each becomes a document that the pipeline makes searchable (with
    --server: one request per file, as the key's tenant)."""
    from rich.progress import DownloadColumn

    def result(f: Path, doc: dict[str, Any], duplicate: bool) -> dict[str, Any]:
        return {
            "path": str(f),
            "id": doc["id"],
            "status": "duplicate" if duplicate else doc["status"],
            "mediaType": doc["mediaType"],
        }

    def refused(f: Path, exc: GasworksError) -> dict[str, Any]:
        return {"path": str(f), "error": exc.code, "message": exc.message}

    async def body() -> list[dict[str, Any]]:
        files = expand(paths)
        results: list[dict[str, Any]] = []
        total = sum(f.stat().st_size for f in files)
        with _bar(DownloadColumn(), as_json) as progress:
            task = progress.add_task(f"uploading {len(files)} file(s)", total=total)

            async def local(rt: Runtime) -> None:
                from gasworks.documents.domain import get_documents

                ctx = await tenant_context(rt, tenant)
                svc = get_documents(rt).service
                for f in files:
                    try:
                        res = await svc.upload(
                            ctx,
                            f.name,
                            _read(f, progress, task),
                            collections=collection or [],
                            new=new,
                        )
                    except GasworksError as exc:
                        results.append(refused(f, exc))
                        continue
                    doc = res.document.model_dump(mode="json", by_alias=True)
                    results.append(result(f, doc, res.duplicate))

            async def remote(gw: AsyncGasworks) -> None:
                for f in files:
                    try:
                        (res,) = await gw.upload_documents(
                            [f], collections=collection or [], new=new
                        )
                    except _FATAL:
                        raise
                    except GasworksError as exc:
                        results.append(refused(f, exc))
                        continue
                    finally:
                        progress.advance(task, f.stat().st_size)
                    results.append(result(f, res["document"], bool(res["duplicate"])))

            await on_target(server, api_key, local=local, remote=remote)
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
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Watch until every listed document is ready or failed, then list."
        ),
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="With --wait: give up after this many seconds (exit 1).")
    ] = 600.0,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Documents with their status (with --server: those the key may read)."""
    from gasworks.documents.service import FINAL

    async def watched(fetch: Callable[[], Awaitable[list[DocumentOut]]]) -> list[DocumentOut]:
        """The list; with --wait, fetched again until every document is final or time is up."""
        import asyncio
        import time

        from rich.progress import MofNCompleteColumn

        docs = await fetch()
        if not wait:
            return docs
        deadline = time.monotonic() + timeout
        with _bar(MofNCompleteColumn(), as_json) as bar:
            task = bar.add_task("indexing", total=len(docs))
            while True:
                done = sum(1 for d in docs if d.status in FINAL)
                bar.update(task, total=len(docs), completed=done)
                if done == len(docs) or time.monotonic() >= deadline:
                    return docs
                await asyncio.sleep(0.25)
                docs = await fetch()

    async def local(rt: Runtime) -> list[DocumentOut]:
        from gasworks.documents.domain import get_documents

        ctx = await tenant_context(rt, tenant)
        svc = get_documents(rt).service
        return await watched(lambda: svc.list_documents(ctx, collection=collection, status=status))

    async def remote(gw: AsyncGasworks) -> list[DocumentOut]:
        from gasworks.documents.schemas import DocumentOut as Out

        async def fetch() -> list[DocumentOut]:
            found = await gw.documents(collection=collection, status=status)
            return [Out.model_validate(d) for d in found]

        return await watched(fetch)

    async def body() -> list[DocumentOut]:
        return await on_target(server, api_key, local=local, remote=remote)

    docs = run(body, as_json)
    if as_json:
        emit_json(docs)
    else:
        table(
            "documents",
            ["id", "name", "status", "chunks", "error"],
            [(d.id, d.name, d.status, d.chunks or "", d.error_code or "") for d in docs],
        )
    pending = sum(1 for d in docs if d.status not in FINAL)
    if wait and pending:
        err_console.print(
            f"{pending} document(s) still in the pipeline after {timeout:g} s: is a worker "
            "running (`gasworks serve` or `gasworks worker`)?"
        )
        raise typer.Exit(1)


@documents_app.command("show")
def show_cmd(
    document_id: str,
    tenant: TenantOpt = "default",
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One document: status per stage, attempts, last error, events."""

    async def local(rt: Runtime) -> tuple[DocumentOut, list[DocumentEventOut]]:
        from gasworks.documents.domain import get_documents

        ctx = await tenant_context(rt, tenant)
        svc = get_documents(rt).service
        return await svc.get(ctx, document_id), await svc.events(ctx, document_id)

    async def remote(gw: AsyncGasworks) -> tuple[DocumentOut, list[DocumentEventOut]]:
        from gasworks.documents.schemas import DocumentEventOut as Event
        from gasworks.documents.schemas import DocumentOut as Out

        doc = Out.model_validate(await gw.document(document_id))
        events = [Event.model_validate(e) for e in await gw.document_events(document_id)]
        return doc, events

    async def body() -> tuple[DocumentOut, list[DocumentEventOut]]:
        return await on_target(server, api_key, local=local, remote=remote)

    doc, events = run(body, as_json)
    if as_json:
        emit_json({"document": doc, "events": events})
        return
    console.print(
        f"[bold]{esc(doc.name)}[/] {doc.id}: {doc.status} (generation {doc.generation})",
        highlight=False,
    )
    if doc.error_code:
        console.print(f"[red]{doc.error_code}[/]: {esc(doc.error_message)}", highlight=False)
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
def delete_cmd(
    document_id: str,
    tenant: TenantOpt = "default",
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a document (invisible at once; its data is removed by a job)."""

    async def local(rt: Runtime) -> None:
        from gasworks.documents.domain import get_documents

        ctx = await tenant_context(rt, tenant)
        await get_documents(rt).service.delete(ctx, document_id)

    async def body() -> None:
        await on_target(
            server, api_key, local=local, remote=lambda gw: gw.delete_document(document_id)
        )

    run(body, as_json)
    emit_json({"deleted": document_id}) if as_json else console.print(f"Deleting {document_id}.")


@documents_app.command("purge-tenant")
def purge_tenant_cmd(
    tenant: TenantOpt,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: every document goes.")] = False,
    server: OperatorServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete every document and collection of a tenant (hidden at once, removed by jobs;
    operator only)."""
    from gasworks.documents.domain import get_documents

    operator_only(server, "documents purge-tenant")
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
    server: OperatorServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare database, blobs and vectors; remove orphans (all tenants; operator only)."""
    from gasworks.documents.domain import get_documents

    operator_only(server, "documents reconcile")

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
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a collection."""
    from gasworks.documents.schemas import CollectionIn
    from gasworks.documents.schemas import CollectionOut as Out
    from gasworks.validation import validated

    data = validated(
        CollectionIn, {"name": name, "chunkTokens": chunk_tokens, "chunkOverlap": chunk_overlap}
    )

    async def local(rt: Runtime) -> CollectionOut:
        from gasworks.documents.domain import get_documents

        ctx = await tenant_context(rt, tenant)
        return await get_documents(rt).service.create_collection(ctx, data)

    async def remote(gw: AsyncGasworks) -> CollectionOut:
        options = data.model_dump(mode="json", by_alias=True, exclude_none=True)
        options.pop("name")
        return Out.model_validate(await gw.create_collection(data.name, **options))

    async def body() -> CollectionOut:
        return await on_target(server, api_key, local=local, remote=remote)

    out = run(body, as_json)
    emit_json(out) if as_json else console.print(f"Created collection {out.name} ({out.id}).")


@collections_app.command("list")
def collection_list(
    tenant: TenantOpt = "default",
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Collections."""

    async def local(rt: Runtime) -> list[CollectionOut]:
        from gasworks.documents.domain import get_documents

        ctx = await tenant_context(rt, tenant)
        return await get_documents(rt).service.list_collections(ctx)

    async def remote(gw: AsyncGasworks) -> list[CollectionOut]:
        from gasworks.documents.schemas import CollectionOut as Out

        return [Out.model_validate(c) for c in await gw.collections()]

    async def body() -> list[CollectionOut]:
        return await on_target(server, api_key, local=local, remote=remote)

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
def collection_delete(
    name: str,
    tenant: TenantOpt = "default",
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a collection and the documents in no other collection."""

    async def local(rt: Runtime) -> None:
        from gasworks.documents.domain import get_documents

        ctx = await tenant_context(rt, tenant)
        await get_documents(rt).service.delete_collection(ctx, name)

    async def body() -> None:
        await on_target(server, api_key, local=local, remote=lambda gw: gw.delete_collection(name))

    run(body, as_json)
    emit_json({"deleted": name}) if as_json else console.print(f"Deleting collection {name}.")


@collections_app.command("grant")
def collection_grant(
    name: str,
    kind: Annotated[str, typer.Argument(help="user, role or tenant.")],
    subject: Annotated[str | None, typer.Argument(help="Principal id or role.")] = None,
    tenant: TenantOpt = "default",
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Let a principal, a role (and above) or the whole tenant read a collection."""
    from gasworks.documents.schemas import GrantIn
    from gasworks.documents.schemas import GrantOut as Out
    from gasworks.validation import validated

    data = validated(GrantIn, {"kind": kind, "subject": subject})

    async def local(rt: Runtime) -> GrantOut:
        from gasworks.documents.domain import get_documents

        ctx = await tenant_context(rt, tenant)
        return await get_documents(rt).service.grant(ctx, name, data)

    async def remote(gw: AsyncGasworks) -> GrantOut:
        return Out.model_validate(await gw.grant(name, data.kind, data.subject))

    async def body() -> GrantOut:
        return await on_target(server, api_key, local=local, remote=remote)

    out = run(body, as_json)
    emit_json(out) if as_json else console.print(f"Granted {out.kind} {out.subject} ({out.id}).")


# --- dead letters -----------------------------------------------------------------------------


@dead_app.command("list")
def dead_list(
    tenant: TenantOpt = "default",
    stage: Annotated[str | None, typer.Option(help="extract, ocr, chunk, embed, index...")] = None,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Dead letters with their error."""

    async def local(rt: Runtime) -> list[DeadLetterOut]:
        from gasworks.documents.domain import get_documents

        ctx = await tenant_context(rt, tenant)
        return await get_documents(rt).service.dead_letters(ctx, stage=stage)

    async def remote(gw: AsyncGasworks) -> list[DeadLetterOut]:
        from gasworks.documents.schemas import DeadLetterOut as Out

        return [Out.model_validate(d) for d in await gw.dead_letters(stage=stage)]

    async def body() -> list[DeadLetterOut]:
        return await on_target(server, api_key, local=local, remote=remote)

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
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue dead letters again with fresh attempts."""

    async def local(rt: Runtime) -> int:
        from gasworks.documents.domain import get_documents

        ctx = await tenant_context(rt, tenant)
        return await get_documents(rt).service.replay(ctx, ids=ids or None, stage=stage)

    async def body() -> int:
        return await on_target(
            server,
            api_key,
            local=local,
            remote=lambda gw: gw.replay_dead_letters(ids or (), stage=stage),
        )

    n = run(body, as_json)
    emit_json({"replayed": n}) if as_json else console.print(f"Replayed {n} dead letter(s).")


@dead_app.command("discard")
def dead_discard(
    ids: Annotated[list[str] | None, typer.Argument(help="Dead letters (default: all).")] = None,
    tenant: TenantOpt = "default",
    stage: Annotated[str | None, typer.Option(help="Only this stage.")] = None,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Drop dead letters."""

    async def local(rt: Runtime) -> int:
        from gasworks.documents.domain import get_documents

        ctx = await tenant_context(rt, tenant)
        return await get_documents(rt).service.discard(ctx, ids=ids or None, stage=stage)

    async def body() -> int:
        return await on_target(
            server,
            api_key,
            local=local,
            remote=lambda gw: gw.discard_dead_letters(ids or (), stage=stage),
        )

    n = run(body, as_json)
    emit_json({"discarded": n}) if as_json else console.print(f"Discarded {n} dead letter(s).")


# --- workers ----------------------------------------------------------------------------------


def worker_cmd(
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs at once (GASWORKS_DOCUMENTS_WORKER_CONCURRENCY).")
    ] = None,
    server: OperatorServerOpt = None,
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

    operator_only(server, "worker")

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
