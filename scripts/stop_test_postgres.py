"""Stop the PostgreSQL servers the test suite started (``tests/dbtemplates.py``).

The suite's processes share one server per data folder and leave it running between their
sessions (``cleanup_mode=None``: xdist workers start and end at different times). ``make
test`` calls this once the whole run has ended, and ``make clean`` before it removes the
folders, so no postmaster outlives the run or keeps deleted files open. Standard library
only: it runs before the virtualenv exists and after it is gone.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = (".pytest-pg", ".pytest-pg-pgvector08")


def _pid(folder: Path) -> int | None:
    pidfile = folder / "postmaster.pid"
    try:
        return int(pidfile.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def stop(folder: Path, timeout: float = 30.0) -> str:
    pid = _pid(folder)
    if pid is None:
        return "not running"
    try:
        os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
    except ProcessLookupError:
        return "not running (stale pid file)"
    except PermissionError:
        return f"pid {pid} belongs to another user: left alone"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return "stopped"
        time.sleep(0.1)
    return f"still running after {timeout:.0f}s (pid {pid})"


def main() -> int:
    for name in FOLDERS:
        folder = ROOT / name
        if folder.is_dir():
            print(f"test PostgreSQL in {name}: {stop(folder)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
