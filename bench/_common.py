"""Shared benchmark helpers: the machine line, timing loops, recording results.

Every benchmark is a script ``bench/bench_<name>.py`` with a ``main() -> str`` returning its
markdown report; ``bench/run.py`` runs them all and ``record()`` writes
``bench/results/<name>.md``. Figures are medians over repeated rounds; ratios are computed
against the anchor measured in the same run on the same machine.
"""

from __future__ import annotations

import difflib
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
#: what a run replaced in a results file, newest first (``history/<name>.md``)
HISTORY = RESULTS / "history"


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        mem = f", {pages / 2**30:.0f} GiB"
    except (ValueError, OSError):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores{mem}, Python {sys.version.split()[0]}, "
        f"{platform.system()} {platform.release()}, {datetime.now(UTC):%Y-%m-%d}"
    )


def per_call(fn: Callable[[], object], *, n: int, rounds: int = 7) -> list[float]:
    """Seconds per call of ``fn`` for each of ``rounds`` rounds of ``n`` calls."""
    fn()  # warm up
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        out.append((time.perf_counter() - t0) / n)
    return out


async def per_call_async(
    fn: Callable[[], Awaitable[object]],
    *,
    n: int,
    rounds: int = 7,
    between: Callable[[], Awaitable[object]] | None = None,
) -> list[float]:
    """Seconds per call of ``fn`` for each round; ``between`` runs untimed after each."""
    await fn()
    if between is not None:
        await between()
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            await fn()
        out.append((time.perf_counter() - t0) / n)
        if between is not None:
            await between()
    return out


def median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def record(name: str, body: str) -> str:
    """Write ``bench/results/<name>.md`` (with the machine line) and return the text."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = f"# {name}\n\nMachine: {machine_line()}\n\n{body.strip()}\n"
    write_results(RESULTS / f"{name}.md", text)
    return text


def write_results(path: Path, text: str) -> None:
    """Write a results file, keeping whatever the new text drops or rewrites.

    A run rewrites its report (or its section of a shared report) whole; the figures and
    hand-written verdicts it replaces are not lost: the replaced lines, in their order, go to
    the top of ``bench/results/history/<name>.md`` under the time of the run, and git keeps
    that file like the report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text() if path.exists() else ""
    path.write_text(text)
    before, after = old.split("\n"), text.split("\n")
    blocks = [
        "\n".join(before[i1:i2]).strip("\n")
        for tag, i1, i2, _, _ in difflib.SequenceMatcher(
            None, before, after, autojunk=False
        ).get_opcodes()
        if tag in ("replace", "delete")
    ]
    blocks = [b for b in blocks if b.strip()]
    if all(b.startswith("Machine:") and "\n" not in b for b in blocks):
        return  # only the machine line (date, load) changed: nothing was replaced
    HISTORY.mkdir(parents=True, exist_ok=True)
    kept = HISTORY / path.name
    previous = kept.read_text() if kept.exists() else f"# {path.stem}: replaced records\n"
    title, _, rest = previous.partition("\n")
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    entry = f"## Replaced by a run at {when}\n\n" + "\n\n[…]\n\n".join(blocks)
    kept.write_text(f"{title}\n\n{entry}\n\n{rest.lstrip(chr(10))}".rstrip("\n") + "\n")


@dataclass(frozen=True)
class Interleaved:
    """Per-round seconds per call of two paths timed in alternating rounds (A, B, A, B, …) in
    one process, so load on a shared machine moves both sides of every ratio alike."""

    a: list[float]
    b: list[float]
    load: tuple[float, float]  # 1-minute load average before and after
    #: this process's CPU seconds per call per round (all threads): under load, wall time
    #: includes waiting for a core, CPU time much less so
    a_cpu: list[float] = field(default_factory=list)
    b_cpu: list[float] = field(default_factory=list)

    @property
    def a_cpu_us(self) -> float:
        return median_us(self.a_cpu) if self.a_cpu else float("nan")

    @property
    def b_cpu_us(self) -> float:
        return median_us(self.b_cpu) if self.b_cpu else float("nan")

    def scaled(self, per_a: int, per_b: int) -> Interleaved:
        """Per-round figures of rounds of ``per_a`` / ``per_b`` calls, per call."""
        return Interleaved(
            [x / per_a for x in self.a],
            [x / per_b for x in self.b],
            self.load,
            [x / per_a for x in self.a_cpu],
            [x / per_b for x in self.b_cpu],
        )

    @property
    def a_us(self) -> float:
        return median_us(self.a)

    @property
    def b_us(self) -> float:
        return median_us(self.b)

    @property
    def ratio(self) -> float:
        """The median of the per-round ratios A / B (not the ratio of the medians)."""
        return statistics.median(x / y for x, y in zip(self.a, self.b, strict=True))

    @property
    def inverse(self) -> float:
        """The median of the per-round ratios B / A."""
        return statistics.median(y / x for x, y in zip(self.a, self.b, strict=True))

    def load_note(self) -> str:
        return f"load average {self.load[0]:.1f} → {self.load[1]:.1f} on {os.cpu_count()} cores"


async def interleaved_async(
    a: Callable[[], Awaitable[object]],
    b: Callable[[], Awaitable[object]],
    *,
    n: int,
    rounds: int = 9,
) -> Interleaved:
    """``a`` and ``b`` timed in alternating rounds of ``n`` calls (after one warm-up call each);
    the order within a round alternates too, so neither side always runs second."""
    await a()
    await b()
    load0 = os.getloadavg()[0]
    out_a: list[float] = []
    out_b: list[float] = []
    cpu_a: list[float] = []
    cpu_b: list[float] = []

    async def one(fn: Callable[[], Awaitable[object]], into: list[float], cpu: list[float]) -> None:
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(n):
            await fn()
        into.append((time.perf_counter() - t0) / n)
        cpu.append((time.process_time() - c0) / n)

    for i in range(rounds):
        if i % 2 == 0:
            await one(a, out_a, cpu_a)
            await one(b, out_b, cpu_b)
        else:
            await one(b, out_b, cpu_b)
            await one(a, out_a, cpu_a)
    return Interleaved(out_a, out_b, (load0, os.getloadavg()[0]), cpu_a, cpu_b)


def interleaved(
    a: Callable[[], object], b: Callable[[], object], *, n: int, rounds: int = 9
) -> Interleaved:
    """The synchronous form of ``interleaved_async``."""
    a()
    b()
    load0 = os.getloadavg()[0]
    out_a: list[float] = []
    out_b: list[float] = []

    cpu_a: list[float] = []
    cpu_b: list[float] = []

    def one(fn: Callable[[], object], into: list[float], cpu: list[float]) -> None:
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(n):
            fn()
        into.append((time.perf_counter() - t0) / n)
        cpu.append((time.process_time() - c0) / n)

    for i in range(rounds):
        if i % 2 == 0:
            one(a, out_a, cpu_a)
            one(b, out_b, cpu_b)
        else:
            one(b, out_b, cpu_b)
            one(a, out_a, cpu_a)
    return Interleaved(out_a, out_b, (load0, os.getloadavg()[0]), cpu_a, cpu_b)


def record_section(name: str, section: str, body: str) -> str:
    """Write one section of ``bench/results/<name>.md`` (between ``<!-- section -->``
    markers, with its own machine line), keeping the other sections as they are: several
    benchmarks share one results file (``retrieval.md``: embeddings, indexes)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    text = path.read_text() if path.exists() else f"# {name}\n"
    start, end = f"<!-- {section} -->", f"<!-- /{section} -->"
    block = f"{start}\n\nMachine: {machine_line()}\n\n{body.strip()}\n\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    write_results(path, text)
    return block
