"""Private files: GASWORKS_HOME is 0700 and every file gasworks creates in it is 0600.

The home holds the SQLite database (inline prompts, conversation messages, run inputs), the
local blobs and the master key, so nothing in it is for other users of the host. Modes are given
explicitly at creation (``os.open(..., 0o600)``, ``mkdir(0o700)`` one level at a time: Python's
``mkdir(parents=True)`` creates the parents with the umask's default mode), so a permissive umask
cannot widen them. SQLite creates the database's ``-wal`` and ``-shm`` files with the mode of
the database file itself, so :func:`private_file` on the database before SQLite opens it covers
all three.

An *existing* home is never changed (an operator may have chosen a group on purpose):
:func:`home_warnings` lists what other users can read, and the runtime logs it at start.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dirs(path: Path) -> None:
    """Create ``path`` and any missing parents, each 0700 (existing folders are left as
    they are)."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            d.mkdir(mode=DIR_MODE)
            os.chmod(d, DIR_MODE)  # mkdir's mode is masked by the umask; 0700 is the intent


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (its folders 0700)."""
    private_dirs(path.parent)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)  # exactly 0600, whatever the umask removed
        finally:
            os.close(fd)


def prepare_home(home: Path) -> list[str]:
    """Create the home (0700) if missing; return warnings about an existing one."""
    if not home.exists():
        private_dirs(home)
        return []
    return home_warnings(home)


def home_warnings(home: Path) -> list[str]:
    """One line per entry of the home (and the home itself) that other users can read."""
    out: list[str] = []
    entries = [home]
    with contextlib.suppress(OSError):
        entries.extend(sorted(home.iterdir()))
    for p in entries:
        try:
            mode = stat.S_IMODE(p.lstat().st_mode)
        except OSError:
            continue
        if mode & 0o077:
            want = DIR_MODE if p.is_dir() else FILE_MODE
            out.append(
                f"{p} is accessible to other users (mode {mode:04o}); it holds private data: "
                f"chmod {want:o} {p}"
            )
    return out


__all__ = ["DIR_MODE", "FILE_MODE", "home_warnings", "prepare_home", "private_dirs", "private_file"]
