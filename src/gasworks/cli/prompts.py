"""`gasworks prompts …`: push, deploy, rollback, canary, history, diff, resolve, dead letters,
retention. Without ``--tenant`` the command acts as the platform operator (in the tenant named by
GASWORKS_PROMPT_OPERATOR_TENANT) on platform-wide pointers; with ``--tenant T`` it acts inside T
on T's own pointers."""

from __future__ import annotations

import dataclasses
import getpass
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:  # imported where used: `gasworks --help` loads none of the server
    from gasworks.prompts.content import PromptContent
    from gasworks.prompts.schemas import (
        PointerOut,
        ScopeIn,
    )
    from gasworks.prompts.service import PromptService


from gasworks.cli.common import runtime, tenant_context
from gasworks.cli.output import JsonOpt, console, echo_stream, emit_json, esc, run, table
from gasworks.errors import PromptPointerNotFound, PromptVersionNotFound, ValidationFailed
from gasworks.limits import MAX_DAYS
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
        ctx = await tenant_context(rt, tenant or rt.settings.prompt_operator_tenant)
        ctx = dataclasses.replace(ctx, principal_id=f"cli:{getpass.getuser()}")
        return await fn(prompt_service(rt), ctx)


def _scope(
    svc: PromptService, model: str | None, workflow: str | None, tenant: str | None
) -> ScopeIn:
    from gasworks.prompts.schemas import ScopeIn

    return ScopeIn(
        model=model or svc.settings.default_model,
        workflow_id=workflow,
        tenant_scoped=tenant is not None,
    )


async def _expected(
    svc: PromptService, ctx: TenantContext, scope: ScopeIn, given: int | None
) -> int:
    if given is not None:
        return given
    try:
        return (await svc.get_pointer(ctx, scope)).version
    except PromptPointerNotFound:
        return 0


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
    as_json: JsonOpt = False,
) -> None:
    """Save FILE as a version (identical content reuses the version) and deploy it to the scope."""
    from gasworks.prompts.schemas import MoveRequest, VersionCreate

    pname, content, fmessage, meta = load_prompt_file(file)
    model = model or meta.get("model")
    workflow = workflow or meta.get("workflow")

    async def body(svc: PromptService, ctx: TenantContext) -> dict[str, Any]:
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

    out = run(lambda: _with(tenant, body), as_json)
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
    as_json: JsonOpt = False,
) -> None:
    """Move a scope's pointer to a version (compare-and-set)."""
    from gasworks.prompts.schemas import MoveRequest

    async def body(svc: PromptService, ctx: TenantContext) -> PointerOut:
        scope = _scope(svc, model, workflow, tenant)
        exp = await _expected(svc, ctx, scope, expected_version)
        return await svc.move(
            ctx,
            MoveRequest(scope=scope, version_id=version_id, expected_version=exp, reason=reason),
        )

    p = run(lambda: _with(tenant, body), as_json)
    emit_json(p) if as_json else console.print(_pointer_line(p))


@prompts_app.command("rollback")
def rollback_cmd(
    workflow: WorkflowOpt = None,
    model: ModelOpt = None,
    tenant: TenantOpt = None,
    expected_version: ExpectedOpt = None,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Move a scope's pointer back to its previous version (compare-and-set)."""
    from gasworks.prompts.schemas import RollbackRequest

    async def body(svc: PromptService, ctx: TenantContext) -> PointerOut:
        scope = _scope(svc, model, workflow, tenant)
        exp = await _expected(svc, ctx, scope, expected_version)
        return await svc.rollback(
            ctx, RollbackRequest(scope=scope, expected_version=max(exp, 1), reason=reason)
        )

    p = run(lambda: _with(tenant, body), as_json)
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
    as_json: JsonOpt = False,
) -> None:
    """Send PERCENT% of conversations (sticky by conversation id) to a candidate version."""
    from gasworks.prompts.schemas import CanaryRequest

    async def body(svc: PromptService, ctx: TenantContext) -> PointerOut:
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

    p = run(lambda: _with(tenant, body), as_json)
    emit_json(p) if as_json else console.print(_pointer_line(p))


def _decide(promote: bool) -> Callable[..., None]:
    def command(
        workflow: WorkflowOpt = None,
        model: ModelOpt = None,
        tenant: TenantOpt = None,
        expected_version: ExpectedOpt = None,
        reason: ReasonOpt = "",
        as_json: JsonOpt = False,
    ) -> None:
        async def body(svc: PromptService, ctx: TenantContext) -> PointerOut:
            from gasworks.prompts.schemas import CanaryDecision

            scope = _scope(svc, model, workflow, tenant)
            exp = await _expected(svc, ctx, scope, expected_version)
            req = CanaryDecision(scope=scope, expected_version=max(exp, 1), reason=reason)
            return await svc.decide_canary(ctx, req, promote=promote)

        p = run(lambda: _with(tenant, body), as_json)
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
    as_json: JsonOpt = False,
) -> None:
    """Every move of a scope's pointer, newest first."""

    async def body(svc: PromptService, ctx: TenantContext) -> Any:
        return await svc.history(ctx, _scope(svc, model, workflow, tenant))

    items = run(lambda: _with(tenant, body), as_json)
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
    as_json: JsonOpt = False,
) -> None:
    """List versions."""

    async def body(svc: PromptService, ctx: TenantContext) -> Any:
        return await svc.list_versions(ctx, name=name, include_archived=include_archived)

    items = run(lambda: _with(tenant, body), as_json)
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
    as_json: JsonOpt = False,
) -> None:
    """One version with its content (hash verified)."""
    from gasworks.yamlsafe import dump_yaml

    async def body(svc: PromptService, ctx: TenantContext) -> Any:
        return await svc.get_version(ctx, await _version_id(svc, ctx, ref))

    v = run(lambda: _with(tenant, body), as_json)
    if as_json:
        emit_json(v)
        return
    console.print(f"[bold]{v.name} v{v.number}[/] {v.id} sha256 {v.content_hash}")
    console.print(dump_yaml(v.content.canonical_dict()))


async def _version_id(svc: PromptService, ctx: TenantContext, ref: str) -> str:
    """``pv_…`` as it is; ``name`` → its newest version; ``name@N`` → its version N."""
    if ref.startswith("pv_"):
        return ref
    name, _, number = ref.partition("@")
    found = await svc.list_versions(ctx, name=name, include_archived=True)
    if number:
        found = [v for v in found if str(v.number) == number]
    if not found:
        raise PromptVersionNotFound(
            f"No prompt version '{ref}'. List them with `gasworks prompts versions`.",
            details={"ref": ref},
        )
    return max(found, key=lambda v: v.number).id


@prompts_app.command("archive")
def archive_cmd(version_id: str, tenant: TenantOpt = None, as_json: JsonOpt = False) -> None:
    """Archive a version (the retention job deletes it later if nothing needs it)."""

    async def body(svc: PromptService, ctx: TenantContext) -> Any:
        return await svc.archive_version(ctx, version_id)

    v = run(lambda: _with(tenant, body), as_json)
    emit_json(v) if as_json else console.print(f"Archived {v.id} at {v.archived_at}.")


@prompts_app.command("diff")
def diff_cmd(from_id: str, to_id: str, tenant: TenantOpt = None, as_json: JsonOpt = False) -> None:
    """Unified diff between two versions."""

    async def body(svc: PromptService, ctx: TenantContext) -> Any:
        return await svc.diff(ctx, from_id, to_id)

    d = run(lambda: _with(tenant, body), as_json)
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
    as_json: JsonOpt = False,
) -> None:
    """Which prompt a call would get (and its rendered messages), with the matched level."""
    from gasworks.prompts.schemas import ResolveRequest

    values = parse_vars(var)

    async def body(svc: PromptService, ctx: TenantContext) -> Any:
        req = ResolveRequest(
            model=model,
            workflow_id=workflow,
            conversation_id=conversation,
            variables=values,
            strict=strict,
        )
        return await svc.resolve(ctx, req)

    r = run(lambda: _with(tenant, body), as_json)
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
    as_json: JsonOpt = False,
) -> None:
    """Failed pointer changes with their request and reason."""

    async def body(svc: PromptService, ctx: TenantContext) -> Any:
        return await svc.dead_letters(ctx, status)

    items = run(lambda: _with(tenant, body), as_json)
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
    as_json: JsonOpt = False,
) -> None:
    """Re-run a failed pointer change."""

    async def body(svc: PromptService, ctx: TenantContext) -> Any:
        return await svc.replay(ctx, dead_letter_id, rebase=rebase)

    out = run(lambda: _with(tenant, body), as_json)
    emit_json(out) if as_json else console.print(_pointer_line(out.pointer))


@prompts_app.command("retention")
def retention_cmd(
    days: Annotated[
        int | None,
        typer.Option(min=0, max=MAX_DAYS, help="Default: GASWORKS_PROMPT_RETENTION_DAYS."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete archived versions past retention that no pointer or recent history needs."""

    async def body(svc: PromptService, ctx: TenantContext) -> Any:
        return await svc.retention(ctx, days=days, dry_run=dry_run)

    r = run(lambda: _with(None, body), as_json)
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
    as_json: JsonOpt = False,
) -> None:
    """Call a model through the gateway with the prompt resolved for the scope; the answer is
    printed as it streams (with --json: one object once the answer is complete)."""
    from gasworks.prompts.schemas import PromptChatRequest
    from gasworks.prompts.service import prompt_service

    values = parse_vars(var)
    values.setdefault("inputs", {})["user_prompt"] = message

    async def body() -> dict[str, Any]:
        async with runtime() as rt:
            ctx = await tenant_context(rt, tenant or rt.settings.prompt_operator_tenant)
            ctx = dataclasses.replace(ctx, principal_id=f"cli:{getpass.getuser()}")
            req = PromptChatRequest(
                model=model, workflow_id=workflow, conversation_id=conversation, variables=values
            )
            used, chunks = await prompt_service(rt).chat_stream(rt, ctx, req)
            text, last = await echo_stream(chunks, as_json)
            usage = last.usage if last is not None else None
            return {
                "text": text,
                "model": last.model if last else None,
                "finishReason": last.finish_reason.value if last and last.finish_reason else None,
                "inputTokens": usage.input_tokens if usage else 0,
                "outputTokens": usage.output_tokens if usage else 0,
                "estimated": usage.estimated if usage else True,
                "cost": str(last.cost) if last and last.cost is not None else None,
                "prompt": used.model_dump(mode="json", by_alias=True),
            }

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
