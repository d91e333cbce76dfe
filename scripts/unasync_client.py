"""Generate the synchronous SDK client from the async one with unasync.

    python scripts/unasync_client.py          # (re)write src/gasworks/client/_sync/client.py
    python scripts/unasync_client.py --check  # exit 1 when the committed file is stale

``src/gasworks/client/_async/client.py`` is the one hand-written source; unasync (python-trio's
token-level rewriter, which Elasticsearch's Python clients generate their sync code with the
same way) drops ``async``/``await`` and renames the async names below, then ruff fixes and
formats the result with the project's settings. ``make sdk`` runs
this script, ``make lint`` and ``tests/foundation/test_sdk_parity.py`` run ``--check``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import unasync

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "src" / "gasworks" / "client"
SOURCE = CLIENT / "_async" / "client.py"
TARGET = CLIENT / "_sync" / "client.py"

#: the async names with a sync twin that unasync does not know (it knows ``__aenter__``,
#: ``AsyncIterator``, ``asynccontextmanager``, ...)
REPLACEMENTS = {
    "AsyncGasworks": "Gasworks",
    "_AsyncTransport": "_Transport",
    "AsyncClient": "Client",
    "AsyncBaseTransport": "BaseTransport",
    "AsyncHTTPTransport": "HTTPTransport",
    "handle_async_request": "handle_request",
    "aclose": "close",
    "aread": "read",
    "aiter_lines": "iter_lines",
}

HEADER = (
    "# Generated from src/gasworks/client/_async/client.py by scripts/unasync_client.py\n"
    "# (`make sdk`): do not edit; change the async client and run `make sdk`.\n"
)


def _ruff(args: list[str], source: str) -> str:
    """``ruff <args>`` over ``source`` as if it were the target file (its settings apply)."""
    done = subprocess.run(  # noqa: S603 (this interpreter's ruff, fixed arguments)
        [sys.executable, "-m", "ruff", *args, "--stdin-filename", str(TARGET), "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return done.stdout


def render() -> str:
    """The sync client as the async source makes it now."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "_async" / "client.py"
        source.parent.mkdir()
        shutil.copyfile(SOURCE, source)
        rule = unasync.Rule("/_async/", "/_sync/", additional_replacements=REPLACEMENTS)
        unasync.unasync_files([str(source)], [rule])
        text = (Path(tmp) / "_sync" / "client.py").read_text(encoding="utf-8")
    text = _ruff(["check", "--fix", "--exit-zero", "--quiet"], HEADER + text)
    return _ruff(["format", "--quiet"], text)


def stale() -> bool:
    return not TARGET.exists() or TARGET.read_text(encoding="utf-8") != render()


def main(argv: list[str]) -> int:
    if "--check" in argv:
        if stale():
            rel = TARGET.relative_to(ROOT)
            print(f"{rel} is out of date with its async source: run `make sdk` and commit it.")
            return 1
        return 0
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
