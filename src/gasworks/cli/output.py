"""CLI output: rich tables for people, ``--json`` for scripts (JSON only, on stdout)."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterable, Callable, Coroutine, Sequence
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from gasworks.errors import GasworksError, InternalError
from gasworks.modeltypes import StreamChunk

T = TypeVar("T")

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON only.", show_default=False)
]

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def to_jsonable(value: Any) -> Any:
    from pydantic import BaseModel  # here: `gasworks --help` does not load pydantic

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    return value


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, default=str) + "\n")


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.table import Table

    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    console.print(t)


def fail(exc: GasworksError, as_json: bool) -> NoReturn:
    if as_json:
        emit_json({"error": exc.to_dict()})
    else:
        err_console.print(f"[bold red]{exc.code}[/]: {exc.message}")
        if exc.details:
            err_console.print(f"[dim]{json.dumps(exc.details, default=str)}[/]")
    raise typer.Exit(1)


def run(coro_fn: Callable[[], Coroutine[Any, Any, T]], as_json: bool) -> T:
    """Run an async command body. Exit codes: 0 success, 1 a gasworks error (a clean message,
    or ``{"error": …}`` with ``--json``), 2 a usage error (typer), 1 an unexpected failure
    (``INTERNAL``; the traceback goes to the log on stderr, never to stdout)."""
    try:
        import asyncio  # here, like the server stack: `gasworks --help` needs none of it

        return asyncio.run(coro_fn())
    except GasworksError as exc:
        fail(exc, as_json)
        raise AssertionError("unreachable") from exc
    except (KeyboardInterrupt, typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        from gasworks.observability.logging import get_logger

        get_logger("gasworks.cli").exception("cli.crashed", error_type=type(exc).__name__)
        fail(InternalError("An internal error occurred; see the log above."), as_json)
        raise AssertionError("unreachable") from exc


async def echo_stream(
    chunks: AsyncIterable[StreamChunk], as_json: bool
) -> tuple[str, StreamChunk | None]:
    """Print a model's answer to stdout as it streams (not with ``--json``); return the whole
    text and the last chunk (finish reason, usage, cost)."""
    parts: list[str] = []
    last: StreamChunk | None = None
    async for c in chunks:
        if c.delta:
            parts.append(c.delta)
            if not as_json:
                sys.stdout.write(c.delta)
                sys.stdout.flush()
        if c.finish_reason is not None:
            last = c
    if not as_json:
        sys.stdout.write("\n")
    return "".join(parts), last
