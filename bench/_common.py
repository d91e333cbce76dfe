"""Shared benchmark helpers: the machine line, timing loops, recording results.

Every benchmark is a script ``bench/bench_<name>.py`` with a ``main() -> str`` returning its
markdown report; ``bench/run.py`` runs them all and ``record()`` writes
``bench/results/<name>.md``. Figures are medians over repeated rounds; ratios are computed
against the anchor measured in the same run on the same machine.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


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
    (RESULTS / f"{name}.md").write_text(text)
    return text


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
    path.write_text(text)
    return block
