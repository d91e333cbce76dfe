"""The README's tour, run as printed against a fresh GASWORKS_HOME, so it cannot drift.

Every ```console block of README.md is a list of ``$ command`` lines, each followed by what
it prints. The test runs them in order: ``gasworks …`` (bare or ``.venv/bin/gasworks``) in
process through the CLI, ``curl …`` against the same database served on a loopback port, and
``NAME=value`` / ``cat > file <<'EOF'`` / ``mkdir -p folder`` as a shell would. What a
command prints must match the README after ids, keys, timestamps, request ids and durations
are replaced by placeholders. A README line ending in ``…`` matches any line that starts like
it; a line that is only ``…`` skips any number of lines; ``(exit status N)`` is the command's
exit status.
A console block without any ``$`` line (a Python snippet's output) is not run.

``README_TOUR_PRINT=1 pytest tests/test_readme_tour.py -s`` prints what each command printed,
to update the README after a deliberate change.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from gasworks.cli.main import app
from tests.llm.conftest import serve

README = Path(__file__).resolve().parents[1] / "README.md"
URL = "http://127.0.0.1:8000"

_PLACEHOLDERS = [
    (re.compile(r"gw_[A-Za-z0-9]{12}_[A-Za-z0-9_-]+"), "<KEY>"),
    (re.compile(r"\b(ten|key|prn|pv|run|cnv|wf|call|svc|doc|col|grt)_[0-9a-f]{32}\b"), r"<\1>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)?"), "<TIME>"),
    (re.compile(r"\d{4}-\d\d-\d\dT[\d:]*…"), "<TIME>"),
    (re.compile(r"\b\d{4}-\d\d-\d\d\b"), "<DAY>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<REQUEST>"),
    (re.compile(r"\b[0-9a-f]{12}…"), "<HASH>"),
    (re.compile(r"\"prefix\": \"[A-Za-z0-9]{12}\""), '"prefix": "<PREFIX>"'),
    (re.compile(r"\(([0-9a-f]{8})\)"), "(<SUFFIX>)"),
    (re.compile(r"\d+(\.\d+)? ms"), "<N> ms"),
    (re.compile(r"\"durationMs\": [\d.]+"), '"durationMs": <N>'),
    (re.compile(r"date: .*GMT"), "date: <DATE>"),
    (re.compile(r"[ ─━┃│┏┓┗┛┡┩└┘┳┻╇┼┬┴]+"), " "),  # table borders and padding
]


def normalize(line: str) -> str:
    for pattern, repl in _PLACEHOLDERS:
        line = pattern.sub(repl, line)
    return line.strip()


def blocks(text: str) -> list[list[tuple[str, list[str]]]]:
    """Each console block as (command, expected output lines)."""
    out = []
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        steps: list[tuple[str, list[str]]] = []
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            if not line.startswith("$ "):
                if steps:  # lines before any command: a program's output shown, not run
                    steps[-1][1].append(line)
                i += 1
                continue
            cmd = line[2:]
            if "<<'EOF'" in cmd:  # a here-document: the text up to EOF is part of the command
                body = []
                i += 1
                while lines[i] != "EOF":
                    body.append(lines[i])
                    i += 1
                cmd += "\n" + "\n".join(body)
            while cmd.endswith("\\"):
                i += 1
                cmd = cmd[:-1] + lines[i].strip()
            steps.append((cmd, []))
            i += 1
        out.append(steps)
    return out


def matches(expected: list[str], actual: list[str]) -> str | None:
    """None when ``actual`` has ``expected`` in order (see the module doc), else the first
    expected line that was not found."""
    got = [n for n in (normalize(a) for a in actual) if n]
    j = 0
    skipping = False
    for raw in expected:
        want = normalize(raw)
        if not want:
            continue
        if want == "…":
            skipping = True
            continue
        prefix = want.endswith("…") or want.endswith("…}")
        stem = want[: want.rindex("…")] if prefix else want
        while j < len(got) and not (got[j].startswith(stem) if prefix else got[j] == stem):
            if not skipping:
                return raw
            j += 1
        if j == len(got):
            return raw
        j += 1
        skipping = False
    return None


class Shell:
    """Runs the tour's commands; ``gasworks`` in process, ``curl`` over HTTP."""

    def __init__(self, env: dict[str, str], url: str, cwd: Path) -> None:
        self.env, self.url, self.cwd = env, url, cwd
        self.vars: dict[str, str] = {}
        self.runner = CliRunner()

    def expand(self, cmd: str) -> str:
        for name, value in self.vars.items():
            cmd = cmd.replace(f"${name}", value)
        return cmd.replace(URL, self.url)

    async def run(self, cmd: str) -> tuple[int, list[str]]:
        if "<<'EOF'" in cmd:
            head, _, body = cmd.partition("\n")
            target = head.split(">", 1)[1].split("<<", 1)[0].strip()
            (self.cwd / target).write_text(body + "\n")
            return 0, []
        if cmd.startswith("mkdir -p "):
            for folder in shlex.split(cmd)[2:]:
                (self.cwd / folder).mkdir(parents=True, exist_ok=True)
            return 0, []
        m = re.fullmatch(r"([A-Z_]+)=(\S+)", cmd)
        if m:  # a key or id copied from an earlier output: the one this run printed
            value = m.group(2)
            if value.startswith("gw_"):
                value = self.last_key
            elif kind := re.fullmatch(r"([a-z]+)_[0-9a-f]{32}", value):
                value = re.findall(rf"\b{kind.group(1)}_[0-9a-f]{{32}}\b", self.seen)[-1]
            self.vars[m.group(1)] = value
            return 0, []
        argv = shlex.split(self.expand(cmd))
        if argv[0] in ("gasworks", ".venv/bin/gasworks"):
            code, lines = await asyncio.to_thread(self.gasworks, argv[1:])
        elif argv[0] == "curl":
            code, lines = await self.curl(argv[1:])
        else:
            raise AssertionError(f"the tour runs a command this test does not know: {cmd}")
        self.seen += "\n".join(lines) + "\n"
        return code, lines

    seen = ""

    def gasworks(self, args: list[str]) -> tuple[int, list[str]]:
        old = os.getcwd()
        os.chdir(self.cwd)
        try:
            result = self.runner.invoke(app, args, env=self.env)
        finally:
            os.chdir(old)
        text = result.output
        if args[:1] == ["init"] and "--json" in args:
            self.last_key = json.loads(result.stdout)["key"]
        return result.exit_code, text.splitlines()

    last_key = ""

    async def curl(self, args: list[str]) -> tuple[int, list[str]]:
        headers: dict[str, str] = {}
        data: str | None = None
        show_headers = False
        url = ""
        it = iter(args)
        for a in it:
            if a == "-H":
                name, _, value = next(it).partition(":")
                headers[name.strip()] = value.strip()
            elif a == "-d":
                data = next(it)
            elif a in ("-s", "-N"):
                continue
            elif a in ("-i", "-si", "-is"):
                show_headers = True
            else:
                url = a
        async with httpx.AsyncClient(timeout=30) as http:
            if data is None:
                r = await http.get(url, headers=headers)
            else:
                r = await http.post(url, headers=headers, content=data)
        lines = []
        if show_headers:
            lines.append(f"HTTP/1.1 {r.status_code} {r.reason_phrase}")
            lines += [f"{k}: {v}" for k, v in r.headers.items()]
            lines.append("")
        lines += r.text.replace(self.url, URL).splitlines()
        return 0, lines


async def test_the_readme_tour_reproduces_on_a_fresh_home(tmp_path, monkeypatch) -> None:
    from gasworks.api.app import create_app
    from gasworks.settings import Settings
    from gasworks.wiring import build_runtime

    for key in list(os.environ):
        if key.startswith("GASWORKS_"):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    env = {"GASWORKS_HOME": str(home), "GASWORKS_DEMO_STREAM_DELAY_MS": "0", "COLUMNS": "80"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings = Settings()
    runtime = build_runtime(settings)
    await runtime.start(migrate=True)
    printing = bool(os.environ.get("README_TOUR_PRINT"))
    try:
        async with serve(create_app(runtime=runtime)) as url:
            shell = Shell(env, url, tmp_path)
            for steps in blocks(README.read_text()):
                for cmd, expected in steps:
                    code, actual = await shell.run(cmd)
                    codes = [re.match(r"\(exit status (\d+)\)", e) for e in expected]
                    status = next((int(m.group(1)) for m in codes if m), 0)
                    shown = [e for e in expected if not e.startswith("(exit status")]
                    if printing:
                        print(f"$ {cmd}\n" + "\n".join(actual))
                        continue
                    assert code == status, (cmd, code, actual)
                    missing = matches(shown, actual)
                    assert missing is None, (
                        f"README: `{cmd}` should print\n  {missing!r}\nbut printed:\n"
                        + "\n".join(actual)
                    )
    finally:
        await runtime.stop()
    if printing:
        pytest.skip("printed the tour's output")
