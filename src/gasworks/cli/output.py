"""CLI output: rich tables for people, ``--json`` for scripts (JSON only, on stdout)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from gasworks.errors import GasworksError

T = TypeVar("T")

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON only.", show_default=False)
]

console = Console()
err_console = Console(stderr=True)


def to_jsonable(value: Any) -> Any:
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
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    console.print(t)


def fail(exc: GasworksError, as_json: bool) -> None:
    if as_json:
        emit_json({"error": exc.to_dict()})
    else:
        err_console.print(f"[bold red]{exc.code}[/]: {exc.message}")
        if exc.details:
            err_console.print(f"[dim]{json.dumps(exc.details, default=str)}[/]")
    raise typer.Exit(1)


def run(coro_fn: Callable[[], Coroutine[Any, Any, T]], as_json: bool) -> T:
    """Run an async command body; gasworks errors become a clean message and exit code 1."""
    try:
        return asyncio.run(coro_fn())
    except GasworksError as exc:
        fail(exc, as_json)
        raise AssertionError("unreachable") from exc
