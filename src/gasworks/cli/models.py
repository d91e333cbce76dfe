"""`gasworks models list|show` and `gasworks chat`.

In-process by default (the local runtime: this machine's settings and database); with
``--server URL --api-key KEY`` (or GASWORKS_URL / GASWORKS_API_KEY) the same commands go
through a gasworks server with the Python SDK.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gasworks.cli.common import now, on_target, tenant_context
from gasworks.cli.output import (
    JsonOpt,
    console,
    echo_stream,
    emit_json,
    esc,
    plain,
    run,
    table,
)

if TYPE_CHECKING:  # imported where used: `gasworks --help` loads none of the server
    from gasworks.modelcard import ModelEntry
    from gasworks.runtime import Runtime

from gasworks.modeltypes import CallScope, ChatRequest, Message, StreamChunk

models_app = typer.Typer(rich_markup_mode=None, help="The model registry.", no_args_is_help=True)

ServerOpt = Annotated[
    str | None,
    typer.Option("--server", envvar="GASWORKS_URL", help="Go through this gasworks server."),
]
KeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", envvar="GASWORKS_API_KEY", help="API key for --server."),
]
#: an operator command's --server: accepted only to be refused with OPERATOR_ONLY
OperatorServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="GASWORKS_URL",
        hidden=True,
        help="Refused: an operator command acts on the local database.",
    ),
]


def _logs_to_stderr() -> None:
    """Keep stdout for answers and JSON: logs go to stderr, warnings and up."""
    from gasworks.observability.logging import configure_logging

    configure_logging(json=False, level="WARNING")


def _entry_json(e: ModelEntry) -> dict[str, Any]:
    return e.model_dump(mode="json", by_alias=True)


@models_app.command("list")
def models_list(
    include_disabled: Annotated[
        bool, typer.Option("--all", help="Show disabled ones too.")
    ] = False,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the models gasworks can call."""
    _logs_to_stderr()

    async def body() -> list[ModelEntry]:
        from gasworks.llm.runtime import get_registry

        return await on_target(
            server,
            api_key,
            local=lambda rt: now(get_registry(rt).entries(include_disabled=include_disabled)),
            remote=lambda gw: gw.models(include_disabled=include_disabled),
        )

    entries = run(body, as_json)
    if as_json:
        emit_json([_entry_json(e) for e in entries])
        return
    table(
        "Models",
        ["id", "provider", "kind", "context", "in $/1K", "out $/1K", "enabled"],
        [
            (
                e.id,
                e.provider.value,
                e.kind.value,
                e.context_window,
                e.input_per_1k,
                e.output_per_1k,
                "yes" if e.enabled else "no",
            )
            for e in entries
        ],
    )


@models_app.command("show")
def models_show(
    model_id: Annotated[str, typer.Argument(metavar="ID", help="Registry id or alias.")],
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one model's entry: provider, prices, limits, capabilities."""
    _logs_to_stderr()

    async def body() -> ModelEntry:
        from gasworks.llm.runtime import get_registry

        return await on_target(
            server,
            api_key,
            local=lambda rt: now(get_registry(rt).get(model_id, include_disabled=True)),
            remote=lambda gw: gw.model(model_id),
        )

    e = run(body, as_json)
    if as_json:
        emit_json(_entry_json(e))
        return
    for key, value in _entry_json(e).items():
        if value not in (None, [], {}):
            console.print(f"[bold]{key}[/] = {esc(plain(value))}", highlight=False)


def chat(
    text: Annotated[str, typer.Argument(help="What to ask.")],
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Model id (default: GASWORKS_DEFAULT_MODEL)."),
    ] = None,
    system: Annotated[str | None, typer.Option(help="A system message.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Longest answer, in tokens.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant (in-process).")] = "default",
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask a model; the answer is printed token by token as it streams."""
    _logs_to_stderr()
    messages = [Message("user", text)]
    if system:
        messages.insert(0, Message("system", system))
    req = ChatRequest(
        model=model, messages=messages, max_tokens=max_tokens, temperature=temperature
    )

    async def local(rt: Runtime) -> AsyncIterator[StreamChunk]:
        from gasworks.llm.runtime import get_gateway

        ctx = await tenant_context(rt, tenant)
        async for c in get_gateway(rt).stream(CallScope(tenant_id=ctx.tenant_id), req):
            yield c

    async def body() -> tuple[str, StreamChunk | None]:
        return await on_target(
            server,
            api_key,
            local=lambda rt: echo_stream(local(rt), as_json),
            remote=lambda gw: echo_stream(
                gw.stream(messages, model=model, max_tokens=max_tokens, temperature=temperature),
                as_json,
            ),
        )

    text_out, last = run(body, as_json)
    usage = last.usage if last is not None else None
    if as_json:
        emit_json(
            {
                "model": last.model if last else None,
                "text": text_out,
                "finishReason": last.finish_reason.value if last and last.finish_reason else None,
                "usage": {
                    "inputTokens": usage.input_tokens,
                    "outputTokens": usage.output_tokens,
                    "cachedInputTokens": usage.cached_input_tokens,
                    "estimated": usage.estimated,
                }
                if usage
                else None,
                "cost": str(last.cost) if last and last.cost is not None else None,
            }
        )
    elif usage is not None and last is not None:
        console.print(
            f"[dim]{last.model} · {usage.input_tokens} in / {usage.output_tokens} out"
            f"{' (estimated)' if usage.estimated else ''} · ${last.cost}[/]"
        )


__all__ = ["chat", "models_app"]


def _set_enabled(
    model_id: str, enabled: bool, server: str | None, api_key: str | None, as_json: bool
) -> None:
    from gasworks.llm.registry import admin
    from gasworks.llm.runtime import get_registry, refresh
    from gasworks.tenancy.context import TenantContext

    _logs_to_stderr()

    async def local(rt: Runtime) -> ModelEntry:
        async with rt.db.session() as s:
            await admin.update_model(
                s, TenantContext.system("-"), get_registry(rt), model_id, {"enabled": enabled}
            )
        await refresh(rt)
        return get_registry(rt).get(model_id, include_disabled=True)

    async def body() -> ModelEntry:
        return await on_target(
            server,
            api_key,
            local=local,
            remote=lambda gw: gw.set_model_enabled(model_id, enabled),
        )

    e = run(body, as_json)
    if as_json:
        emit_json(_entry_json(e))
    else:
        console.print(f"Model [bold]{e.id}[/] is now {'enabled' if e.enabled else 'disabled'}.")


@models_app.command("disable")
def models_disable(
    model_id: Annotated[str, typer.Argument(metavar="ID", help="Registry id.")],
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Disable a model: calls naming it get MODEL_NOT_FOUND (with --server: a platform-admin
    key)."""
    _set_enabled(model_id, False, server, api_key, as_json)


@models_app.command("enable")
def models_enable(
    model_id: Annotated[str, typer.Argument(metavar="ID", help="Registry id.")],
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Enable a model again (with --server: a platform-admin key)."""
    _set_enabled(model_id, True, server, api_key, as_json)
