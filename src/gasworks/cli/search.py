"""`gasworks search`: the same search as ``POST /api/search``.

In-process by default (as the platform operator inside ``--tenant``); with ``--server URL
--api-key KEY`` (or GASWORKS_URL / GASWORKS_API_KEY) through a server with the SDK, as that
key's caller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from gasworks.cli.common import on_target, tenant_context
from gasworks.cli.models import KeyOpt, ServerOpt
from gasworks.cli.output import JsonOpt, console, emit_json, esc, run

if TYPE_CHECKING:  # imported where used: `gasworks --help` loads none of the server
    from gasworks.runtime import Runtime
    from gasworks.searchtypes import SearchResponse


def search(
    query: Annotated[str, typer.Argument(help="What to search for.")],
    k: Annotated[int, typer.Option("--k", "-k", help="How many hits at most (1-100).")] = 5,
    mode: Annotated[str, typer.Option(help="vector, keyword or hybrid.")] = "hybrid",
    min_score: Annotated[float | None, typer.Option(help="Drop hits scoring below.")] = None,
    document: Annotated[
        list[str] | None, typer.Option("--document", "-d", help="Only this document (repeat).")
    ] = None,
    collection: Annotated[
        list[str] | None,
        typer.Option("--collection", "-c", help="Only this collection (repeat)."),
    ] = None,
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant (in-process).")] = "default",
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Search documents; each hit is printed with its citation."""

    async def body() -> SearchResponse:
        from gasworks.searchtypes import SearchRequest
        from gasworks.validation import validated

        req = validated(
            SearchRequest,
            {
                "query": query,
                "k": k,
                "mode": mode,
                "minScore": min_score,
                "documents": document,
                "collections": collection,
            },
        )

        async def local(rt: Runtime) -> SearchResponse:
            from gasworks.retrieval import service

            return await service.search(rt, await tenant_context(rt, tenant), req)

        return await on_target(
            server,
            api_key,
            local=local,
            remote=lambda gw: gw.search(
                req.query,
                k=req.k,
                mode=req.mode,
                min_score=req.min_score,
                documents=req.documents,
                collections=req.collections,
            ),
        )

    out = run(body, as_json)
    if as_json:
        emit_json(out.model_dump(mode="json", by_alias=True))
        return
    if not out.hits:
        console.print("[dim]no hits[/]")
    for n, hit in enumerate(out.hits, start=1):
        c = hit.citation
        where = c.document_name or c.document_id
        if c.page is not None:
            where += f", page {c.page}"
        if c.heading:
            where += f", § {c.heading}"
        console.print(
            f"[bold]{n}.[/] {hit.score:.3f}  [cyan]{esc(where)}[/]  [dim]chunk {c.chunk_id}[/]"
        )
        console.print(f"   {hit.text}", markup=False, highlight=False)
