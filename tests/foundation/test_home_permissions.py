"""Data at rest: GASWORKS_HOME is 0700 and every file gasworks creates in it 0600, whatever the
umask; an existing home readable by others is reported at start."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from gasworks.blobs.factory import blob_store
from gasworks.home import prepare_home
from gasworks.settings import Settings
from gasworks.wiring import build_runtime


@pytest.fixture
def open_umask(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The most permissive umask: nothing is removed from the modes gasworks asks for."""
    for key in list(os.environ):
        if key.startswith("GASWORKS_") and key != "GASWORKS_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _modes(home: Path) -> dict[str, int]:
    out = {".": stat.S_IMODE(home.stat().st_mode)}
    for p in home.rglob("*"):
        out[str(p.relative_to(home))] = stat.S_IMODE(p.lstat().st_mode)
    return out


async def test_a_new_home_and_everything_in_it_are_private(
    tmp_path: Path, open_umask: None
) -> None:
    home = tmp_path / "deep" / "home"
    rt = build_runtime(Settings(home=home))  # the embedded default: SQLite under the home
    await rt.start()
    try:
        await blob_store(rt).put("t1/documents/a.txt", b"secret")  # also creates the master key
        modes = _modes(home)  # while the database is open: its -wal and -shm exist
    finally:
        await rt.stop()
    for name in (
        "gasworks.db",
        "gasworks.db-wal",
        "gasworks.db-shm",
        "gasworks.db.migrate.lock",
        "keys/master.key",
        "blobs/t1/documents/a.txt",
    ):
        assert name in modes, sorted(modes)
    for name, mode in modes.items():
        is_dir = name == "." or (home / name).is_dir()
        assert mode == (0o700 if is_dir else 0o600), (name, oct(mode))
    assert stat.S_IMODE((tmp_path / "deep").stat().st_mode) == 0o700  # a created parent too


async def test_an_existing_home_readable_by_others_is_reported_at_start(
    tmp_path: Path, open_umask: None, sqlite_template: Any
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    (home / "gasworks.db").touch(mode=0o644)
    assert prepare_home(tmp_path / "new") == []
    rt = build_runtime(Settings(home=home, database_url=sqlite_template.new()))  # migrated
    with structlog.testing.capture_logs() as logs:
        await rt.start(migrate=False)
        await rt.stop()
    problems = [e["problem"] for e in logs if e["event"] == "home.not_private"]
    assert len(problems) == 2, logs
    assert "mode 0755" in problems[0] and f"chmod 700 {home}" in problems[0]
    assert "gasworks.db" in problems[1] and "mode 0644" in problems[1]
    assert stat.S_IMODE(home.stat().st_mode) == 0o755  # reported, not changed behind one's back
