"""`gasworks workflows …`: validate, publish, list, run (optionally streaming), graph, demos."""

from __future__ import annotations

import functools
import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gasworks.cli.common import on_target, tenant_context
from gasworks.cli.models import KeyOpt, ServerOpt
from gasworks.cli.output import (
    JsonOpt,
    console,
    emit_json,
    err_console,
    esc,
    fail,
    progress,
    run,
    table,
)
from gasworks.errors import BadRequest, ServerUnreachable, WorkflowInvalid
from gasworks.limits import MAX_INT32

if TYPE_CHECKING:  # imported where used: `gasworks --help` loads none of the server
    from gasworks.client import AsyncGasworks
    from gasworks.runtime import Runtime
    from gasworks.workflows.schemas import PublishOut, RunOut, ShareOut, WorkflowOut


workflows_app = typer.Typer(
    rich_markup_mode=None, help="Workflows: validate, publish, run, graph.", no_args_is_help=True
)
demo_app = typer.Typer(
    rich_markup_mode=None, help="The shipped demo workflows.", no_args_is_help=True
)
workflows_app.add_typer(demo_app, name="demo")

TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="Tenant name.")]
FileArg = Annotated[Path, typer.Argument(help="Workflow document (.yaml, .yml or .json).")]


def _read(path: Path) -> dict[str, Any]:
    from gasworks.workflows.definition import parse_document

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadRequest(
            f"Cannot read {path}: {exc.strerror}.", details={"file": str(path)}
        ) from None
    return parse_document(text, filename=path.name)


@workflows_app.command("validate")
def validate_cmd(
    file: FileArg, server: ServerOpt = None, api_key: KeyOpt = None, as_json: JsonOpt = False
) -> None:
    """Validate a workflow file (offline, or with --server by that server: its models); every
    problem is listed (exit 1 when invalid)."""
    from gasworks.workflows.validator import validate

    async def body() -> list[dict[str, Any]]:
        try:
            doc = _read(file)
        except WorkflowInvalid as exc:
            return list(exc.details["issues"])
        if server:
            from gasworks.client import AsyncGasworks

            async with AsyncGasworks(server, api_key) as gw:
                return list((await gw.validate_workflow(doc))["issues"])
        return [i.to_dict() for i in validate(doc).issues]

    issues = run(body, as_json)
    if as_json:
        emit_json({"valid": not issues, "issues": issues})
    elif not issues:
        console.print(f"[green]✓[/] {esc(file)} is a valid workflow.")
    else:
        _issues_table(file, issues)
    if issues:
        raise typer.Exit(1)


def _issues_table(file: Path, issues: list[dict[str, Any]]) -> None:
    table(
        f"{len(issues)} problem(s) in {file}",
        ["code", "path", "message"],
        [(i["code"], i["path"], i["message"]) for i in issues],
    )


@workflows_app.command("publish")
def publish_cmd(
    file: FileArg,
    tenant: TenantOpt = "default",
    private: Annotated[
        bool,
        typer.Option(
            "--private",
            help="Do not share it with the whole tenant (by default every key of the tenant "
            "may run what the operator publishes).",
        ),
    ] = False,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate and publish a new immutable version (unchanged documents are not republished).

    The workflow is shared with the whole tenant unless --private (with --server: the key's
    tenant, published by the key); `gasworks workflows share` shares it with a role or a
    user instead."""
    from gasworks.workflows.schemas import PublishOut as Out
    from gasworks.workflows.schemas import ShareIn

    async def local(doc: dict[str, Any], rt: Runtime) -> PublishOut:
        from gasworks.llm.runtime import get_registry
        from gasworks.workflows import service

        ctx = await tenant_context(rt, tenant)
        async with rt.db.session() as s:
            out = await service.publish(s, ctx, doc, model_exists=get_registry(rt).get)
            if not private:
                await service.share(s, ctx, out.workflow.slug, ShareIn(kind="tenant"))
            return out

    async def remote(doc: dict[str, Any], gw: AsyncGasworks) -> PublishOut:
        out = Out.model_validate(await gw.publish_workflow(doc))
        if not private:
            await gw.share_workflow(out.workflow.slug, "tenant")
        return out

    async def body() -> PublishOut | WorkflowInvalid:
        try:
            doc = _read(file)
            return await on_target(
                server,
                api_key,
                local=functools.partial(local, doc),
                remote=functools.partial(remote, doc),
            )
        except WorkflowInvalid as exc:
            return exc

    out = run(body, as_json)
    if isinstance(out, WorkflowInvalid):
        if as_json or not out.details.get("issues"):
            fail(out, as_json)
        _issues_table(file, list(out.details["issues"]))  # as `validate` shows them
        raise typer.Exit(1)
    if as_json:
        emit_json(out)
    elif out.created:
        console.print(f"Published [bold]{out.workflow.slug}[/] version {out.version.version}.")
    else:
        console.print(
            f"[bold]{out.workflow.slug}[/] version {out.version.version} already has this content."
        )


@workflows_app.command("share")
def share_cmd(
    workflow: Annotated[str, typer.Argument(help="Workflow id.")],
    tenant: TenantOpt = "default",
    role: Annotated[
        str | None, typer.Option(help="Share with every principal of this role and above.")
    ] = None,
    user: Annotated[str | None, typer.Option(help="Share with this principal id (prn_…).")] = None,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Let others of the tenant run a workflow: the whole tenant (default), a role or a user."""
    from gasworks.workflows.schemas import ShareIn
    from gasworks.workflows.schemas import ShareOut as Out

    if role and user:
        raise BadRequest("Give --role or --user, not both.", details={"role": role, "user": user})
    data = ShareIn(
        kind="role" if role else "user" if user else "tenant", subject=role or user or None
    )

    async def local(rt: Runtime) -> ShareOut:
        from gasworks.workflows import service

        ctx = await tenant_context(rt, tenant)
        async with rt.db.session() as s:
            return await service.share(s, ctx, workflow, data)

    async def remote(gw: AsyncGasworks) -> ShareOut:
        return Out.model_validate(await gw.share_workflow(workflow, data.kind, data.subject))

    async def body() -> ShareOut:
        return await on_target(server, api_key, local=local, remote=remote)

    out = run(body, as_json)
    if as_json:
        emit_json(out)
        return
    who = "the whole tenant" if out.kind == "tenant" else f"{out.kind} {out.subject}"
    console.print(f"[bold]{esc(workflow)}[/] is shared with {esc(who)}.", highlight=False)


@workflows_app.command("list")
def list_cmd(
    tenant: TenantOpt = "default",
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the tenant's workflows (with --server: those the key may run)."""
    from gasworks.workflows.schemas import WorkflowOut as Out

    async def local(rt: Runtime) -> list[WorkflowOut]:
        from gasworks.workflows import service

        ctx = await tenant_context(rt, tenant)
        async with rt.db.session() as s:
            return await service.list_workflows(s, ctx)

    async def remote(gw: AsyncGasworks) -> list[WorkflowOut]:
        return [Out.model_validate(w) for w in await gw.workflows()]

    async def body() -> list[WorkflowOut]:
        return await on_target(server, api_key, local=local, remote=remote)

    items = run(body, as_json)
    if as_json:
        emit_json(items)
        return
    table(
        f"Workflows of {tenant}",
        ["id", "name", "latest version", "updated"],
        [
            (w.slug, w.name, w.latest_version, w.updated_at.isoformat(timespec="seconds"))
            for w in items
        ],
    )


def _inputs(values: list[str]) -> dict[str, Any]:
    """``--input '{"message": "hi"}'`` or repeated ``--input key=value`` (value JSON or text)."""
    out: dict[str, Any] = {}
    for raw in values:
        text = raw.strip()
        if text.startswith("{"):
            try:
                obj = json.loads(text)
            except ValueError:
                raise BadRequest("--input is not valid JSON.", details={"input": raw}) from None
            if not isinstance(obj, dict):
                raise BadRequest("--input JSON must be an object.")
            out.update(obj)
            continue
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise BadRequest("--input takes a JSON object or key=value.", details={"input": raw})
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


@workflows_app.command("run")
def run_cmd(
    workflow: Annotated[str, typer.Argument(help="Workflow id.")],
    input: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="JSON object or key=value (repeatable)."),
    ] = None,
    conversation: Annotated[
        str | None, typer.Option("--conversation", "-c", help="Conversation id (continue it).")
    ] = None,
    version: Annotated[
        int | None, typer.Option(min=1, max=MAX_INT32, help="Version (default: latest).")
    ] = None,
    stream: Annotated[bool, typer.Option("--stream", help="Print chunks as they arrive.")] = False,
    tenant: TenantOpt = "default",
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a workflow. With --stream the answer is printed as it is generated (with --json:
    one JSON event per line). With --server (GASWORKS_URL) it runs on that server as the
    key's tenant (--tenant is the local operator's)."""
    from gasworks.workflows import workflow_engine
    from gasworks.workflows.schemas import RunIn

    def show(seq: int, kind: str, ev: dict[str, Any]) -> None:
        if as_json:
            sys.stdout.write(json.dumps({"id": seq, "event": kind, "data": ev}) + "\n")
            sys.stdout.flush()
        elif kind == "chunk":
            sys.stdout.write(ev["chunk"])
            sys.stdout.flush()

    data = RunIn(
        input=_inputs(input or []), conversation_id=conversation, version=version, stream=stream
    )

    async def remote(gw: AsyncGasworks) -> RunOut:
        from gasworks.workflows.schemas import RunOut as Out

        if not stream:
            return Out.model_validate(
                await gw.run_workflow(
                    workflow, data.input, conversation_id=conversation, version=version
                )
            )
        final: dict[str, Any] | None = None
        events = gw.stream_workflow(
            workflow, data.input, conversation_id=conversation, version=version
        )
        async for seq, kind, ev in events:
            show(seq, kind, ev)
            if kind == "run.finished":
                final = ev
        if final is None:
            raise ServerUnreachable(
                "The server ended the run's event stream before run.finished.",
                details={"server": server},
            )
        return Out.model_validate(final)

    async def local(rt: Runtime) -> RunOut:
        ctx = await tenant_context(rt, tenant)
        eng = workflow_engine(rt)
        if not stream:
            return await eng.run(ctx, workflow, data)
        live = await eng.start(ctx, workflow, data)
        async for seq, kind, ev in live.follow(0):
            show(seq, kind, ev)
        assert live.result is not None
        return live.result

    async def body() -> RunOut:
        return await on_target(server, api_key, local=local, remote=remote)

    out = run(body, as_json)
    if stream:
        if not as_json:
            sys.stdout.write("\n")
            sys.stdout.flush()
            _summary(out)
        return
    if as_json:
        emit_json(out)
        return
    if out.output is not None:
        text = out.output if isinstance(out.output, str) else json.dumps(out.output, indent=2)
        console.print(text, markup=False, highlight=False)
    _summary(out)


def _summary(out: RunOut) -> None:
    path = " → ".join(t["nodeId"] for t in out.node_timings)
    err_console.print(
        f"[dim]run {out.id} · {out.status} · conversation {out.conversation_id} · "
        f"prompt {out.prompt_version_id or 'neutral'} · "
        f"{out.tokens} tokens · {out.duration_ms or 0:.1f} ms · {esc(path)}[/]"
    )
    if out.error:
        err_console.print(f"[bold red]{out.error.get('code')}[/]: {esc(out.error.get('message'))}")
        raise typer.Exit(1)


@workflows_app.command("graph")
def graph_cmd(
    workflow: Annotated[str, typer.Argument(help="Workflow id, or a workflow file.")],
    version: Annotated[
        int | None, typer.Option(min=1, max=MAX_INT32, help="Version (default: latest).")
    ] = None,
    tenant: TenantOpt = "default",
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the workflow as a Mermaid flowchart (a file: offline; an id: with --server from
    that server)."""
    from gasworks.workflows.mermaid import to_mermaid

    path = Path(workflow)
    from_file = path.suffix in {".yaml", ".yml", ".json"} and path.exists()

    async def local(rt: Runtime) -> dict[str, Any]:
        from gasworks.workflows import service

        ctx = await tenant_context(rt, tenant)
        async with rt.db.session() as s:
            ver = await service.get_version(s, ctx, workflow, version)
        return {"workflow": workflow, "version": ver.version, "mermaid": to_mermaid(ver.document)}

    async def body() -> dict[str, Any]:
        if from_file:
            doc = _read(path)
            return {"workflow": doc.get("id"), "version": None, "mermaid": to_mermaid(doc)}
        return await on_target(
            server, api_key, local=local, remote=lambda gw: gw.workflow_graph(workflow, version)
        )

    out = run(body, as_json)
    if as_json:
        emit_json(out)
    else:
        sys.stdout.write(out["mermaid"])


@demo_app.command("install")
def demo_install(
    tenant: TenantOpt = "default",
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Publish the demo workflows (chatbot, support, onboarding, rag), shared with the tenant,
    and upload the rag demo's corpus into the collection demo-handbook (readable by the
    tenant); a worker (`gasworks serve` or `gasworks worker`) makes it searchable. With
    --server: in the key's tenant, by the key."""
    from gasworks.workflows.demos import (
        CORPUS_COLLECTION,
        DEMOS,
        corpus_files,
        demo_document,
        install_corpus,
        install_demos,
    )

    async def local(rt: Runtime) -> dict[str, Any]:
        from gasworks.documents.domain import get_documents

        ctx = await tenant_context(rt, tenant)
        async with rt.db.session() as s:
            published = await install_demos(s, ctx)
        collection, uploads = await install_corpus(get_documents(rt).service, ctx)
        return {"workflows": published, "collection": collection, "documents": uploads}

    async def remote(gw: AsyncGasworks) -> dict[str, Any]:
        import tempfile

        from gasworks.documents.schemas import CollectionOut, UploadResult
        from gasworks.workflows.schemas import PublishOut as Out

        published = []
        for name in DEMOS:
            out = Out.model_validate(await gw.publish_workflow(demo_document(name)))
            await gw.share_workflow(out.workflow.slug, "tenant")
            published.append(out)
        found = [c for c in await gw.collections() if c["name"] == CORPUS_COLLECTION]
        collection = found[0] if found else await gw.create_collection(CORPUS_COLLECTION)
        await gw.grant(CORPUS_COLLECTION, "tenant")
        with tempfile.TemporaryDirectory() as folder:  # the SDK uploads files
            paths = []
            for name, data in corpus_files():
                (Path(folder) / name).write_bytes(data)
                paths.append(Path(folder) / name)
            uploads = await gw.upload_documents(paths, collections=[CORPUS_COLLECTION])
        return {
            "workflows": published,
            "collection": CollectionOut.model_validate(collection),
            "documents": [UploadResult.model_validate(u) for u in uploads],
        }

    async def body() -> dict[str, Any]:
        return await on_target(server, api_key, local=local, remote=remote)

    with progress("Publishing the demo workflows and their corpus…", as_json):
        out = run(body, as_json)
    if as_json:
        emit_json(out)
        return
    for p in out["workflows"]:
        state = "published" if p.created else "up to date"
        console.print(f"[bold]{p.workflow.slug}[/] v{p.version.version} ({state})")
    counts = Counter(u.document.status for u in out["documents"])
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    console.print(
        f"[bold]{out['collection'].name}[/] {len(out['documents'])} documents ({summary})"
    )
