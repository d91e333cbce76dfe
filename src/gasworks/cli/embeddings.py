"""`gasworks embed`: vectors for texts, from the deployment's embedding models.

In-process by default (this machine's settings, database and the local model); with
``--server URL --api-key KEY`` (or GASWORKS_URL / GASWORKS_API_KEY) through a gasworks server
with the Python SDK. Either way the call goes through ``Gateway.embed`` (budgets, ledger).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from gasworks.cli.common import on_target, tenant_context
from gasworks.cli.models import KeyOpt, ServerOpt, _logs_to_stderr
from gasworks.cli.output import JsonOpt, console, emit_json, run
from gasworks.errors import ValidationFailed
from gasworks.modeltypes import CallScope, EmbedPurpose, EmbedRequest, EmbedResult

if TYPE_CHECKING:  # imported where used: `gasworks --help` loads none of the server
    from gasworks.runtime import Runtime


def embed(
    texts: Annotated[
        list[str], typer.Argument(help="Texts to embed ('-' reads one text per line of stdin).")
    ],
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Embedding model (default: GASWORKS_EMBEDDING_MODEL)."),
    ] = None,
    dimensions: Annotated[
        int | None, typer.Option(help="Reduced dimensions, where the model offers them.")
    ] = None,
    query: Annotated[
        bool, typer.Option("--query", help="Embed as search queries (some models differ).")
    ] = False,
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant (in-process).")] = "default",
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Embed texts: one vector each (the JSON output has the full vectors)."""
    _logs_to_stderr()
    inputs = [line.rstrip("\n") for line in sys.stdin if line.strip()] if texts == ["-"] else texts
    purpose: EmbedPurpose = "query" if query else "document"

    async def body() -> EmbedResult:
        if not inputs:
            raise ValidationFailed("Nothing to embed: stdin was empty.", details={"field": "input"})
        return await on_target(
            server,
            api_key,
            local=local,
            remote=lambda gw: gw.embed(inputs, model=model, dimensions=dimensions, purpose=purpose),
        )

    async def local(rt: Runtime) -> EmbedResult:
        from gasworks.llm.runtime import get_gateway

        ctx = await tenant_context(rt, tenant)
        req = EmbedRequest(model, inputs, dimensions=dimensions, purpose=purpose)
        return await get_gateway(rt).embed(CallScope(tenant_id=ctx.tenant_id), req)

    r = run(body, as_json)
    if as_json:
        emit_json(
            {
                "model": r.model,
                "provider": r.provider,
                "dimensions": r.dimensions,
                "inputTokens": r.input_tokens,
                "cost": str(r.cost),
                "vectors": r.vectors,
            }
        )
        return
    for text, v in zip(inputs, r.vectors, strict=True):
        head = ", ".join(f"{x:+.4f}" for x in v[:4])
        label = text if len(text) <= 40 else text[:39] + "…"
        console.print(f"{label!r}: [{head}, …] ({len(v)} floats)", highlight=False)
    console.print(f"[dim]{r.model} · {r.dimensions} dims · {r.input_tokens} tokens · ${r.cost}[/]")


__all__ = ["embed"]
