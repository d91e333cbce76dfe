"""CLI output: rich tables for people, ``--json`` for scripts (JSON only, on stdout)."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import AsyncIterable, Callable, Coroutine, Sequence
from contextlib import AbstractContextManager
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup
from typer.exceptions import TyperException

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


def plain(value: Any) -> str:
    """A value as a user reads it: JSON for mappings and lists, never a Python repr."""
    if isinstance(value, dict | list | tuple):
        return json.dumps(to_jsonable(value), default=str, ensure_ascii=False)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def esc(value: Any) -> str:
    """A value shown inside Rich markup: brackets in it are text, never markup."""
    return escape(str(value))


#: an id of gasworks (``pv_…``, ``key_…``, ``run_…``): never cut, never wrapped
_ID = re.compile(r"^[a-z]{1,8}_[0-9a-f]{8,}$")
#: columns whose values are identifiers a user copies (model ids, breaker names, ...)
_ID_COLUMNS = frozenset({"id", "model", "breaker", "from", "to", "version", "workflow"})


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table of plain text (cells are never read as markup). Id columns keep their values
    whole at any terminal width (the other columns wrap instead): ids must stay copyable."""
    from rich.table import Table

    cells = [["" if v is None else str(v) for v in r] for r in rows]
    t = Table(title=esc(title))
    needed = 1
    for i, c in enumerate(columns):
        values = [r[i] for r in cells if i < len(r)]
        widest = max([len(c), *(len(v) for v in values)])
        if c in _ID_COLUMNS or any(_ID.match(v) for v in values):
            t.add_column(esc(c), no_wrap=True, min_width=widest)
            needed += widest + 3
        else:  # wraps between words; a single token (a time, a path) stays whole
            tokens = all(" " not in v for v in values) and widest <= 32
            least = widest if tokens else min(widest, max(len(c), 12))
            t.add_column(esc(c), overflow="fold", min_width=least)
            needed += least + 3
    for r in cells:
        t.add_row(*[esc(v) for v in r])
    if needed <= console.width:
        console.print(t)
    else:  # wider than the terminal rather than an id cut: the terminal wraps its lines
        Console(width=needed, soft_wrap=True).print(t)


def fail(exc: GasworksError, as_json: bool) -> NoReturn:
    """One line on stderr (``CODE: message``, its details after), or ``{"error": …}`` with
    ``--json``; exit status 1."""
    if as_json:
        emit_json({"error": exc.to_dict()})
    else:
        err_console.print(f"[bold red]{exc.code}[/]: {esc(exc.message)}", highlight=False)
        if exc.details:
            err_console.print(
                json.dumps(exc.details, default=str), style="dim", markup=False, highlight=False
            )
    raise typer.Exit(1)


def crash(exc: BaseException, as_json: bool) -> NoReturn:
    """An unexpected exception: ``INTERNAL`` in one line, never a traceback on the terminal
    (``GASWORKS_DEBUG=1`` prints it, for a bug report)."""
    import os
    import traceback

    if os.environ.get("GASWORKS_DEBUG"):
        traceback.print_exception(exc, file=sys.stderr)
    fail(
        InternalError(
            f"An internal error occurred ({type(exc).__name__}). Rerun with GASWORKS_DEBUG=1 "
            "for the traceback, and please report it.",
            details={"error": type(exc).__name__},
        ),
        as_json,
    )


class GasworksGroup(TyperGroup):
    """The top command: whatever a command raises, the user sees one line with a stable code
    (or a JSON error object under ``--json``), never a Python traceback."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer vendors click
        ctx.meta["gasworks.json"] = "--json" in args
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        as_json = bool(ctx.meta.get("gasworks.json"))
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException, KeyboardInterrupt):
            raise
        except GasworksError as exc:
            fail(exc, as_json)
        except Exception as exc:
            _unexpected(exc, as_json)


def progress(message: str, as_json: bool) -> AbstractContextManager[Any]:
    """A spinner with ``message`` on stderr while a long operation runs (migrations, installs,
    re-wrapping every blob), in a terminal only: never under --json, never into a pipe."""
    if as_json or not err_console.is_terminal:
        return contextlib.nullcontext()
    return err_console.status(esc(message), spinner="dots")


def run(coro_fn: Callable[[], Coroutine[Any, Any, T]], as_json: bool) -> T:
    """Run an async command body. Exit codes: 0 success, 1 a gasworks error (a clean message,
    or ``{"error": …}`` with ``--json``), 2 a usage error (typer), 1 an unexpected failure
    (``INTERNAL``; the traceback goes to the log on stderr, never to stdout)."""
    try:
        import asyncio  # here, like the server stack: `gasworks --help` needs none of it

        return asyncio.run(coro_fn())
    except GasworksError as exc:
        fail(exc, as_json)
    except (KeyboardInterrupt, typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        _unexpected(exc, as_json)


def _unexpected(exc: Exception, as_json: bool) -> NoReturn:
    """A pydantic error is VALIDATION_FAILED (naming the fields); anything else INTERNAL."""
    from pydantic import ValidationError  # here: `gasworks --help` does not load pydantic

    if isinstance(exc, ValidationError):
        from gasworks.validation import validation_failed

        fail(validation_failed(exc.errors(include_url=False)), as_json)
    crash(exc, as_json)


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
