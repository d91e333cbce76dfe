"""`gasworks prompts …`: push, deploy, rollback, canary, history, diff, resolve, dead letters,
retention. Without ``--tenant`` the command acts as the platform operator (in the tenant named by
GASWORKS_PROMPT_OPERATOR_TENANT) on platform-wide pointers; with ``--tenant T`` it acts inside T
on T's own pointers.

With ``--server`` (GASWORKS_URL) every command goes through that server's ``/api/prompts`` as
the key's tenant: without ``--tenant`` on platform-wide pointers (a platform-admin key), with
``--tenant T`` on the key's tenant's own pointers (T must be the key's tenant)."""

from __future__ import annotations

import dataclasses
import getpass
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:  # imported where used: `gasworks --help` loads none of the server
    from gasworks.client import AsyncGasworks
    from gasworks.prompts.content import PromptContent
    from gasworks.prompts.schemas import (
        PointerOut,
        ScopeIn,
    )
    from gasworks.prompts.service import PromptService
    from gasworks.runtime import Runtime


from gasworks.cli.common import on_target, runtime, tenant_context
from gasworks.cli.models import KeyOpt, ServerOpt
from gasworks.cli.output import JsonOpt, console, echo_stream, emit_json, esc, run, table
from gasworks.errors import (
    BadRequest,
    PromptPointerNotFound,
    PromptVersionNotFound,
    ValidationFailed,
)
from gasworks.limits import MAX_DAYS
from gasworks.modeltypes import StreamChunk
from gasworks.tenancy.context import TenantContext

T = TypeVar("T")

prompts_app = typer.Typer(
    rich_markup_mode=None, help="Prompts as infrastructure.", no_args_is_help=True
)
dead_app = typer.Typer(rich_markup_mode=None, help="Failed pointer changes.", no_args_is_help=True)
canary_app = typer.Typer(
    rich_markup_mode=None, help="Canary a candidate version on a pointer.", no_args_is_help=True
)
prompts_app.add_typer(dead_app, name="dead-letters")
prompts_app.add_typer(canary_app, name="canary")

TenantOpt = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        "-t",
        help="Act inside this tenant on its own pointers "
        "(default: platform-wide pointers, as the operator).",
    ),
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", "-m", help="Model id (default: GASWORKS_DEFAULT_MODEL).")
]
WorkflowOpt = Annotated[str | None, typer.Option("--workflow", "-w", help="Workflow id.")]
ExpectedOpt = Annotated[
    int | None,
    typer.Option(
        "--expected-version",
        help="Pointer version you last saw (default: the one "
        "read just before the move; the move is a compare-and-set either way).",
    ),
]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (kept in the history).")]


async def _with(
    tenant: str | None, fn: Callable[[PromptService, TenantContext], Awaitable[T]]
) -> T:
    from gasworks.prompts.service import prompt_service

    async with runtime() as rt:
        return await fn(prompt_service(rt), await _operator(rt, tenant))


async def _operator(rt: Runtime, tenant: str | None) -> TenantContext:
    """The local operator's context: inside ``tenant``, else the prompt operator tenant."""
    ctx = await tenant_context(rt, tenant or rt.settings.prompt_operator_tenant)
    return dataclasses.replace(ctx, principal_id=f"cli:{getpass.getuser()}")


async def _on(
    tenant: str | None,
    server: str | None,
    api_key: str | None,
    *,
    local: Callable[[PromptService, TenantContext], Awaitable[T]],
    remote: Callable[[AsyncGasworks], Awaitable[T]],
) -> T:
    """A prompts command on its target: the local database as the operator, or ``--server``
    as the key's tenant (``--tenant`` then has to name the key's tenant)."""
    return await on_target(
        server,
        api_key,
        local=lambda rt: _with(tenant, local),
        remote=_in_key_tenant(tenant, remote),
    )


def _in_key_tenant(
    tenant: str | None, remote: Callable[[AsyncGasworks], Awaitable[T]]
) -> Callable[[AsyncGasworks], Awaitable[T]]:
    """``remote``, refused when ``--tenant`` names another tenant than the key's."""

    async def checked(gw: AsyncGasworks) -> T:
        if tenant is not None:
            me = await gw.me()
            if me["tenantName"] != tenant:
                raise BadRequest(
                    f"--tenant {tenant} is not the tenant of --api-key ({me['tenantName']}): "
                    "through --server a command acts in its key's tenant only.",
                    details={"tenant": tenant, "keyTenant": me["tenantName"]},
                )
        return await remote(gw)

    return checked


def _scope(
    svc: PromptService, model: str | None, workflow: str | None, tenant: str | None
) -> ScopeIn:
    from gasworks.prompts.schemas import ScopeIn

    return ScopeIn(
        model=model or svc.settings.default_model,
        workflow_id=workflow,
        tenant_scoped=tenant is not None,
    )


async def _remote_scope(
    gw: AsyncGasworks, model: str | None, workflow: str | None, tenant: str | None
) -> dict[str, Any]:
    """A scope on the server; no --model: the server's default model (what it resolves)."""
    if model is None:
        model = str((await gw.resolve_prompt({}))["model"])
    return {"model": model, "workflowId": workflow, "tenantScoped": tenant is not None}


async def _expected(
    svc: PromptService, ctx: TenantContext, scope: ScopeIn, given: int | None
) -> int:
    if given is not None:
        return given
    try:
        return (await svc.get_pointer(ctx, scope)).version
    except PromptPointerNotFound:
        return 0


async def _remote_pointer(gw: AsyncGasworks, scope: dict[str, Any]) -> PointerOut | None:
    from gasworks.prompts.schemas import PointerOut as Out

    try:
        return Out.model_validate(await gw.prompt_pointer(scope))
    except PromptPointerNotFound:
        return None


async def _remote_expected(gw: AsyncGasworks, scope: dict[str, Any], given: int | None) -> int:
    if given is not None:
        return given
    current = await _remote_pointer(gw, scope)
    return 0 if current is None else current.version


async def _remote_action(gw: AsyncGasworks, action: Any, body: dict[str, Any]) -> PointerOut:
    from gasworks.prompts.schemas import PointerOut as Out

    return Out.model_validate(await gw.prompt_pointer_action(action, body))


def load_prompt_file(path: Path) -> tuple[str, PromptContent, str, dict[str, Any]]:
    """``.yaml``/``.yml``/``.json``: ``{name, system|user|messages, parameters, message,
    model, workflow}``; any other file: its whole text is the system template."""
    from gasworks.prompts.content import PromptContent
    from gasworks.yamlsafe import DataParseError, load_data

    text = path.read_text(encoding="utf-8")
    if path.suffix in {".yaml", ".yml", ".json"}:
        try:
            data = load_data(text, json_only=path.suffix == ".json")
        except DataParseError as exc:
            raise ValidationFailed(
                f"{path} does not parse: {exc.reason}",
                details={"file": str(path), "line": exc.line, "column": exc.column},
            ) from None
        if not isinstance(data, dict):
            raise ValidationFailed(
                f"{path} must hold a mapping (system:, user: or messages:), "
                f"not {'nothing' if data is None else type(data).__name__}.",
                details={"file": str(path)},
            )
        meta = {k: data.pop(k) for k in ("name", "message", "model", "workflow") if k in data}
        from pydantic import ValidationError

        try:
            content = PromptContent.model_validate(data)
        except ValidationError as exc:
            from gasworks.validation import validation_failed

            bad = validation_failed(exc.errors())
            raise ValidationFailed(f"{path}: {bad.message}", details=bad.details) from None
        return str(meta.get("name") or path.stem), content, str(meta.get("message", "")), meta
    return path.stem, PromptContent(system=text), "", {}


def _pointer_line(p: PointerOut) -> str:
    canary = f", canary {p.canary_version_id} at {p.canary_percent}%" if p.canary_version_id else ""
    return (
        f"[bold]{p.level}[/] pointer {p.model}{' / ' + p.workflow_id if p.workflow_id else ''} "
        f"→ {p.active_version_id} (pointer version {p.version}, previous "
        f"{p.previous_version_id or '-'}{canary})"
    )


@prompts_app.command("push")
def push(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Prompt file.")],
    workflow: WorkflowOpt = None,
    model: ModelOpt = None,
    tenant: TenantOpt = None,
    name: Annotated[
        str | None, typer.Option(help="Prompt name (default: file's or its stem).")
    ] = None,
    message: Annotated[str | None, typer.Option("--message", help="Version message.")] = None,
    deploy: Annotated[
        bool, typer.Option("--deploy/--no-deploy", help="Move the scope's pointer to it.")
    ] = True,
    expected_version: ExpectedOpt = None,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Save FILE as a version (identical content reuses the version) and deploy it to the scope."""
    from gasworks.prompts.schemas import MoveRequest, VersionCreate
    from gasworks.prompts.schemas import VersionOut as VOut

    pname, content, fmessage, meta = load_prompt_file(file)
    model = model or meta.get("model")
    workflow = workflow or meta.get("workflow")

    async def local(svc: PromptService, ctx: TenantContext) -> dict[str, Any]:
        v = await svc.create_version(
            ctx, VersionCreate(name=name or pname, content=content, message=message or fmessage)
        )
        out: dict[str, Any] = {"version": v, "pointer": None}
        if deploy:
            scope = _scope(svc, model, workflow, tenant)
            exp = await _expected(svc, ctx, scope, expected_version)
            current = None if exp == 0 else await svc.get_pointer(ctx, scope)
            if current is not None and current.active_version_id == v.id:
                out["pointer"] = current  # already live: no move, no new history entry
            else:
                out["pointer"] = await svc.move(
                    ctx,
                    MoveRequest(
                        scope=scope, version_id=v.id, expected_version=exp, reason=v.message
                    ),
                )
        return out

    async def remote(gw: AsyncGasworks) -> dict[str, Any]:
        v = VOut.model_validate(
            await gw.create_prompt_version(
                name or pname, content.canonical_dict(), message or fmessage
            )
        )
        out: dict[str, Any] = {"version": v, "pointer": None}
        if deploy:
            scope = await _remote_scope(gw, model, workflow, tenant)
            current = await _remote_pointer(gw, scope) if expected_version is None else None
            exp = (
                expected_version
                if expected_version is not None
                else (current.version if current is not None else 0)
            )
            if current is not None and current.active_version_id == v.id:
                out["pointer"] = current  # already live: no move, no new history entry
            else:
                body = {
                    "scope": scope,
                    "versionId": v.id,
                    "expectedVersion": exp,
                    "reason": v.message,
                }
                out["pointer"] = await _remote_action(gw, "move", body)
        return out

    out = run(lambda: _on(tenant, server, api_key, local=local, remote=remote), as_json)
    if as_json:
        emit_json(out)
        return
    v = out["version"]
    state = "new version" if v.created else "unchanged content, existing version"
    console.print(f"{state}: [bold]{v.name} v{v.number}[/] {v.id} sha256 {v.content_hash[:12]}…")
    if out["pointer"] is not None:
        console.print(_pointer_line(out["pointer"]))


@prompts_app.command("deploy")
def deploy_cmd(
    version_id: Annotated[str, typer.Argument(help="Version id (pv_…).")],
    workflow: WorkflowOpt = None,
    model: ModelOpt = None,
    tenant: TenantOpt = None,
    expected_version: ExpectedOpt = None,
    reason: ReasonOpt = "",
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move a scope's pointer to a version (compare-and-set)."""
    from gasworks.prompts.schemas import MoveRequest

    async def local(svc: PromptService, ctx: TenantContext) -> PointerOut:
        scope = _scope(svc, model, workflow, tenant)
        exp = await _expected(svc, ctx, scope, expected_version)
        return await svc.move(
            ctx,
            MoveRequest(scope=scope, version_id=version_id, expected_version=exp, reason=reason),
        )

    async def remote(gw: AsyncGasworks) -> PointerOut:
        scope = await _remote_scope(gw, model, workflow, tenant)
        exp = await _remote_expected(gw, scope, expected_version)
        body = {"scope": scope, "versionId": version_id, "expectedVersion": exp, "reason": reason}
        return await _remote_action(gw, "move", body)

    p = run(lambda: _on(tenant, server, api_key, local=local, remote=remote), as_json)
    emit_json(p) if as_json else console.print(_pointer_line(p))


@prompts_app.command("rollback")
def rollback_cmd(
    workflow: WorkflowOpt = None,
    model: ModelOpt = None,
    tenant: TenantOpt = None,
    expected_version: ExpectedOpt = None,
    reason: ReasonOpt = "",
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move a scope's pointer back to its previous version (compare-and-set)."""
    from gasworks.prompts.schemas import RollbackRequest

    async def local(svc: PromptService, ctx: TenantContext) -> PointerOut:
        scope = _scope(svc, model, workflow, tenant)
        exp = await _expected(svc, ctx, scope, expected_version)
        return await svc.rollback(
            ctx, RollbackRequest(scope=scope, expected_version=max(exp, 1), reason=reason)
        )

    async def remote(gw: AsyncGasworks) -> PointerOut:
        scope = await _remote_scope(gw, model, workflow, tenant)
        exp = await _remote_expected(gw, scope, expected_version)
        body = {"scope": scope, "expectedVersion": max(exp, 1), "reason": reason}
        return await _remote_action(gw, "rollback", body)

    p = run(lambda: _on(tenant, server, api_key, local=local, remote=remote), as_json)
    emit_json(p) if as_json else console.print(_pointer_line(p))


@canary_app.command("start")
def canary_start(
    version_id: Annotated[str, typer.Argument(help="Candidate version id.")],
    percent: Annotated[
        int, typer.Option("--percent", min=1, max=99, help="Share of conversations.")
    ],
    workflow: WorkflowOpt = None,
    model: ModelOpt = None,
    tenant: TenantOpt = None,
    expected_version: ExpectedOpt = None,
    reason: ReasonOpt = "",
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send PERCENT% of conversations (sticky by conversation id) to a candidate version."""
    from gasworks.prompts.schemas import CanaryRequest

    async def local(svc: PromptService, ctx: TenantContext) -> PointerOut:
        scope = _scope(svc, model, workflow, tenant)
        exp = await _expected(svc, ctx, scope, expected_version)
        req = CanaryRequest(
            scope=scope,
            version_id=version_id,
            percent=percent,
            expected_version=max(exp, 1),
            reason=reason,
        )
        return await svc.start_canary(ctx, req)

    async def remote(gw: AsyncGasworks) -> PointerOut:
        scope = await _remote_scope(gw, model, workflow, tenant)
        exp = await _remote_expected(gw, scope, expected_version)
        body = {
            "scope": scope,
            "versionId": version_id,
            "percent": percent,
            "expectedVersion": max(exp, 1),
            "reason": reason,
        }
        return await _remote_action(gw, "canary", body)

    p = run(lambda: _on(tenant, server, api_key, local=local, remote=remote), as_json)
    emit_json(p) if as_json else console.print(_pointer_line(p))


def _decide(promote: bool) -> Callable[..., None]:
    def command(
        workflow: WorkflowOpt = None,
        model: ModelOpt = None,
        tenant: TenantOpt = None,
        expected_version: ExpectedOpt = None,
        reason: ReasonOpt = "",
        server: ServerOpt = None,
        api_key: KeyOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        async def local(svc: PromptService, ctx: TenantContext) -> PointerOut:
            from gasworks.prompts.schemas import CanaryDecision

            scope = _scope(svc, model, workflow, tenant)
            exp = await _expected(svc, ctx, scope, expected_version)
            req = CanaryDecision(scope=scope, expected_version=max(exp, 1), reason=reason)
            return await svc.decide_canary(ctx, req, promote=promote)

        async def remote(gw: AsyncGasworks) -> PointerOut:
            scope = await _remote_scope(gw, model, workflow, tenant)
            exp = await _remote_expected(gw, scope, expected_version)
            body = {"scope": scope, "expectedVersion": max(exp, 1), "reason": reason}
            action = "canary/promote" if promote else "canary/abort"
            return await _remote_action(gw, action, body)

        p = run(lambda: _on(tenant, server, api_key, local=local, remote=remote), as_json)
        emit_json(p) if as_json else console.print(_pointer_line(p))

    command.__doc__ = (
        "Make the canary version active (compare-and-set)."
        if promote
        else "Stop the canary; the active version keeps all traffic (compare-and-set)."
    )
    return command


canary_app.command("promote")(_decide(True))
canary_app.command("abort")(_decide(False))


@prompts_app.command("history")
def history_cmd(
    workflow: WorkflowOpt = None,
    model: ModelOpt = None,
    tenant: TenantOpt = None,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every move of a scope's pointer, newest first."""
    from gasworks.prompts.schemas import HistoryEntry

    async def local(svc: PromptService, ctx: TenantContext) -> list[HistoryEntry]:
        return await svc.history(ctx, _scope(svc, model, workflow, tenant))

    async def remote(gw: AsyncGasworks) -> list[HistoryEntry]:
        scope = await _remote_scope(gw, model, workflow, tenant)
        return [HistoryEntry.model_validate(h) for h in await gw.prompt_history(scope)]

    items = run(lambda: _on(tenant, server, api_key, local=local, remote=remote), as_json)
    if as_json:
        emit_json(items)
        return
    table(
        "Pointer history",
        ["seq", "action", "from", "to", "who", "when", "why"],
        [
            (
                h.seq,
                h.action,
                h.from_version_id,
                h.to_version_id,
                h.actor,
                h.at.isoformat(timespec="seconds"),
                h.reason,
            )
            for h in items
        ],
    )


@prompts_app.command("versions")
def versions_cmd(
    name: Annotated[str | None, typer.Option(help="Only this prompt.")] = None,
    tenant: TenantOpt = None,
    include_archived: Annotated[bool, typer.Option("--archived", help="Include archived.")] = False,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List versions."""
    from gasworks.prompts.schemas import VersionSummary

    async def local(svc: PromptService, ctx: TenantContext) -> list[VersionSummary]:
        return await svc.list_versions(ctx, name=name, include_archived=include_archived)

    async def remote(gw: AsyncGasworks) -> list[VersionSummary]:
        found = await gw.prompt_versions(name=name, include_archived=include_archived)
        return [VersionSummary.model_validate(v) for v in found]

    items = run(lambda: _on(tenant, server, api_key, local=local, remote=remote), as_json)
    if as_json:
        emit_json(items)
        return
    table(
        "Prompt versions",
        ["id", "name", "v", "sha256", "storage", "author", "created", "message"],
        [
            (
                v.id,
                v.name,
                v.number,
                v.content_hash[:12],
                v.storage,
                v.author,
                v.created_at.isoformat(timespec="seconds"),
                v.message,
            )
            for v in items
        ],
    )


@prompts_app.command("show")
def show_cmd(
    ref: Annotated[
        str,
        typer.Argument(
            help="A prompt name (its newest version), name@N (version N) or a version id (pv_…)."
        ),
    ],
    tenant: TenantOpt = None,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One version with its content (hash verified)."""
    from gasworks.prompts.schemas import VersionOut, VersionSummary
    from gasworks.yamlsafe import dump_yaml

    async def local(svc: PromptService, ctx: TenantContext) -> VersionOut:
        found = await svc.list_versions(ctx, name=_ref_name(ref), include_archived=True)
        return await svc.get_version(ctx, _version_id(ref, found))

    async def remote(gw: AsyncGasworks) -> VersionOut:
        found: list[VersionSummary] = []
        if not ref.startswith("pv_"):
            versions = await gw.prompt_versions(name=_ref_name(ref), include_archived=True)
            found = [VersionSummary.model_validate(v) for v in versions]
        return VersionOut.model_validate(await gw.prompt_version(_version_id(ref, found)))

    v = run(lambda: _on(tenant, server, api_key, local=local, remote=remote), as_json)
    if as_json:
        emit_json(v)
        return
    console.print(f"[bold]{v.name} v{v.number}[/] {v.id} sha256 {v.content_hash}")
    console.print(dump_yaml(v.content.canonical_dict()))


def _ref_name(ref: str) -> str | None:
    return None if ref.startswith("pv_") else ref.partition("@")[0]


def _version_id(ref: str, found: list[Any]) -> str:
    """``pv_…`` as it is; ``name`` → its newest version; ``name@N`` → its version N
    (``found``: the versions of that name)."""
    if ref.startswith("pv_"):
        return ref
    _, _, number = ref.partition("@")
    if number:
        found = [v for v in found if str(v.number) == number]
    if not found:
        raise PromptVersionNotFound(
            f"No prompt version '{ref}'. List them with `gasworks prompts versions`.",
            details={"ref": ref},
        )
    return str(max(found, key=lambda v: v.number).id)


@prompts_app.command("archive")
def archive_cmd(
    version_id: str,
    tenant: TenantOpt = None,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Archive a version (the retention job deletes it later if nothing needs it)."""
    from gasworks.prompts.schemas import VersionSummary

    async def local(svc: PromptService, ctx: TenantContext) -> VersionSummary:
        return await svc.archive_version(ctx, version_id)

    async def remote(gw: AsyncGasworks) -> VersionSummary:
        return VersionSummary.model_validate(await gw.archive_prompt_version(version_id))

    v = run(lambda: _on(tenant, server, api_key, local=local, remote=remote), as_json)
    emit_json(v) if as_json else console.print(f"Archived {v.id} at {v.archived_at}.")


@prompts_app.command("diff")
def diff_cmd(
    from_id: str,
    to_id: str,
    tenant: TenantOpt = None,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Unified diff between two versions."""
    from gasworks.prompts.schemas import VersionDiff

    async def local(svc: PromptService, ctx: TenantContext) -> VersionDiff:
        return await svc.diff(ctx, from_id, to_id)

    async def remote(gw: AsyncGasworks) -> VersionDiff:
        return VersionDiff.model_validate(await gw.prompt_diff(from_id, to_id))

    d = run(lambda: _on(tenant, server, api_key, local=local, remote=remote), as_json)
    if as_json:
        emit_json(d)
    elif d.identical:
        console.print("The versions are identical.")
    else:
        console.print(d.diff, markup=False, highlight=False)


def parse_vars(items: list[str] | None) -> dict[str, Any]:
    """``["inputs.q=hi", "slots.city=Lyon"]`` → ``{"inputs": {"q": "hi"}, "slots": {...}}``."""
    values: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--var wants path=value, got {item!r}")
        *parents, leaf = key.strip().split(".")
        cur = values
        for p in parents:
            cur = cur.setdefault(p, {})
        cur[leaf] = value
    return values


@prompts_app.command("resolve")
def resolve_cmd(
    workflow: WorkflowOpt = None,
    model: ModelOpt = None,
    tenant: TenantOpt = None,
    conversation: Annotated[
        str | None, typer.Option("--conversation", help="Conversation id.")
    ] = None,
    var: Annotated[
        list[str] | None, typer.Option("--var", help="path=value, e.g. inputs.user_prompt=hi")
    ] = None,
    strict: Annotated[bool, typer.Option(help="Fail on a missing variable.")] = False,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Which prompt a call would get (and its rendered messages), with the matched level."""
    from gasworks.prompts.schemas import ResolvedOut, ResolveRequest

    values = parse_vars(var)
    req = ResolveRequest(
        model=model,
        workflow_id=workflow,
        conversation_id=conversation,
        variables=values,
        strict=strict,
    )

    async def local(svc: PromptService, ctx: TenantContext) -> ResolvedOut:
        return await svc.resolve(ctx, req)

    async def remote(gw: AsyncGasworks) -> ResolvedOut:
        body = req.model_dump(mode="json", by_alias=True, exclude_none=True)
        return ResolvedOut.model_validate(await gw.resolve_prompt(body))

    r = run(lambda: _on(tenant, server, api_key, local=local, remote=remote), as_json)
    if as_json:
        emit_json(r)
        return
    console.print(
        f"level [bold]{r.level}[/], source {r.source}, model {r.model}, version "
        f"{r.version_id or '(neutral built-in)'}{' (canary)' if r.canary else ''}"
    )
    for m in r.messages:
        console.print(f"[bold]{m.role}[/]: {esc(m.content)}", highlight=False)
    if r.missing:
        console.print(f"[yellow]missing variables:[/] {esc(', '.join(r.missing))}")


@dead_app.command("list")
def dead_list(
    tenant: TenantOpt = None,
    status: Annotated[str | None, typer.Option(help="pending or replayed.")] = None,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Failed pointer changes with their request and reason."""
    from gasworks.prompts.schemas import DeadLetterOut

    async def local(svc: PromptService, ctx: TenantContext) -> list[DeadLetterOut]:
        return await svc.dead_letters(ctx, status)

    async def remote(gw: AsyncGasworks) -> list[DeadLetterOut]:
        return [
            DeadLetterOut.model_validate(d) for d in await gw.prompt_dead_letters(status=status)
        ]

    items = run(lambda: _on(tenant, server, api_key, local=local, remote=remote), as_json)
    if as_json:
        emit_json(items)
        return
    table(
        "Prompt dead letters",
        ["id", "operation", "reason", "status", "attempts", "when", "request"],
        [
            (
                d.id,
                d.operation,
                d.reason_code,
                d.status,
                d.attempts,
                d.created_at.isoformat(timespec="seconds"),
                json.dumps(d.request),
            )
            for d in items
        ],
    )


@dead_app.command("replay")
def dead_replay(
    dead_letter_id: str,
    tenant: TenantOpt = None,
    rebase: Annotated[bool, typer.Option(help="Expect the pointer's current version.")] = False,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-run a failed pointer change."""
    from gasworks.prompts.service import ReplayOut

    async def local(svc: PromptService, ctx: TenantContext) -> ReplayOut:
        return await svc.replay(ctx, dead_letter_id, rebase=rebase)

    async def remote(gw: AsyncGasworks) -> ReplayOut:
        out = await gw.replay_prompt_dead_letter(dead_letter_id, rebase=rebase)
        return ReplayOut.model_validate(out)

    out = run(lambda: _on(tenant, server, api_key, local=local, remote=remote), as_json)
    emit_json(out) if as_json else console.print(_pointer_line(out.pointer))


@prompts_app.command("retention")
def retention_cmd(
    days: Annotated[
        int | None,
        typer.Option(min=0, max=MAX_DAYS, help="Default: GASWORKS_PROMPT_RETENTION_DAYS."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report.")] = False,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete archived versions past retention that no pointer or recent history needs
    (with --server: a platform-admin key)."""
    from gasworks.prompts.schemas import RetentionReport

    async def local(svc: PromptService, ctx: TenantContext) -> RetentionReport:
        return await svc.retention(ctx, days=days, dry_run=dry_run)

    async def remote(gw: AsyncGasworks) -> RetentionReport:
        out = await gw.prompt_retention(days=days, dry_run=dry_run)
        return RetentionReport.model_validate(out)

    r = run(lambda: _on(None, server, api_key, local=local, remote=remote), as_json)
    if as_json:
        emit_json(r)
    else:
        verb = "Would delete" if r.dry_run else "Deleted"
        console.print(f"{verb} {len(r.deleted)} version(s); {r.kept_in_use} archived still needed.")


@prompts_app.command("chat")
def chat_cmd(
    message: Annotated[str, typer.Argument(help="Your message (the value of inputs.user_prompt).")],
    workflow: WorkflowOpt = None,
    model: ModelOpt = None,
    tenant: TenantOpt = None,
    conversation: Annotated[
        str | None, typer.Option("--conversation", help="Conversation id.")
    ] = None,
    var: Annotated[
        list[str] | None, typer.Option("--var", help="path=value, e.g. slots.city=Lyon")
    ] = None,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Call a model through the gateway with the prompt resolved for the scope; the answer is
    printed as it streams (with --json: one object once the answer is complete)."""
    from gasworks.prompts.schemas import PromptChatRequest

    values = parse_vars(var)
    values.setdefault("inputs", {})["user_prompt"] = message
    req = PromptChatRequest(
        model=model, workflow_id=workflow, conversation_id=conversation, variables=values
    )

    def summary(text: str, last: StreamChunk | None, prompt: dict[str, Any]) -> dict[str, Any]:
        usage = last.usage if last is not None else None
        return {
            "text": text,
            "model": last.model if last else None,
            "finishReason": last.finish_reason.value if last and last.finish_reason else None,
            "inputTokens": usage.input_tokens if usage else 0,
            "outputTokens": usage.output_tokens if usage else 0,
            "estimated": usage.estimated if usage else True,
            "cost": str(last.cost) if last and last.cost is not None else None,
            "prompt": prompt,
        }

    async def local(rt: Runtime) -> dict[str, Any]:
        from gasworks.prompts.service import prompt_service

        ctx = await _operator(rt, tenant)
        used, chunks = await prompt_service(rt).chat_stream(rt, ctx, req)
        text, last = await echo_stream(chunks, as_json)
        return summary(text, last, used.model_dump(mode="json", by_alias=True))

    async def remote(gw: AsyncGasworks) -> dict[str, Any]:
        prompt: dict[str, Any] = {}

        async def chunks() -> AsyncIterator[StreamChunk]:
            events = gw.stream_prompt_chat(req.model_dump(mode="json", by_alias=True))
            async for kind, data in events:
                if kind == "prompt":
                    prompt.update(data)
                elif kind == "delta":
                    yield StreamChunk(delta=str(data.get("text", "")))
                elif kind == "done":
                    yield _done_chunk(data)

        text, last = await echo_stream(chunks(), as_json)
        return summary(text, last, prompt)

    async def body() -> dict[str, Any]:
        return await on_target(server, api_key, local=local, remote=_in_key_tenant(tenant, remote))

    out = run(body, as_json)
    if as_json:
        emit_json(out)
        return
    p = out["prompt"]
    console.print(
        f"[dim]{out['model']}, prompt {p['level']} "
        f"{p['versionId'] or 'neutral built-in'} from {p['source']}, "
        f"{out['inputTokens']}+{out['outputTokens']} tokens"
        f"{' (estimated)' if out['estimated'] else ''}, cost {out['cost']}[/]"
    )
    if p["missing"]:
        console.print(f"[yellow]missing variables:[/] {esc(', '.join(p['missing']))}")


def _done_chunk(data: dict[str, Any]) -> StreamChunk:
    """The ``done`` event of /api/prompts/chat/stream as the last chunk of the answer."""
    from decimal import Decimal

    from gasworks.modeltypes import FinishReason, Usage

    return StreamChunk(
        finish_reason=FinishReason(data.get("finishReason") or "stop"),
        usage=Usage(
            input_tokens=int(data.get("inputTokens") or 0),
            output_tokens=int(data.get("outputTokens") or 0),
            cached_input_tokens=int(data.get("cachedInputTokens") or 0),
            estimated=bool(data.get("estimated")),
        ),
        model=data.get("model"),
        cost=Decimal(data["cost"]) if data.get("cost") is not None else None,
        notes=data.get("notes") or None,
        demo=bool(data.get("demo")),
    )
