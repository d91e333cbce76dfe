"""A real ``gasworks serve`` in a subprocess and the system Chromium, for browser tests and
the console screenshots (``make screenshots``).

Playwright's own browser download needs the internet; the system Chromium (Debian's
``chromium`` package, installed by ``make test``) is driven through ``executable_path``.
A missing browser is an error, never a skip.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

CHROMIUM = os.environ.get("GASWORKS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def require_chromium() -> str:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            f"No Chromium at {CHROMIUM}: `make test` installs it (apt-get install -y chromium); "
            "or set GASWORKS_TEST_CHROMIUM to a Chromium binary."
        )
    return CHROMIUM


def launch(playwright: Any) -> Any:
    """The system Chromium, headless, under Playwright."""
    return playwright.chromium.launch(
        executable_path=require_chromium(), args=CHROMIUM_ARGS, headless=True
    )


def _gasworks() -> str:
    """The ``gasworks`` command of the running interpreter's environment."""
    return str(Path(sys.executable).with_name("gasworks"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    """``gasworks serve`` on a free loopback port with its own home; ``key`` is the first
    tenant's platform-admin key (``gasworks init``)."""

    home: Path
    database_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    #: the server command before ``--port N`` (default: ``gasworks serve``)
    command: list[str] | None = None
    port: int = 0
    key: str = ""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GASWORKS_")}
        env.update(
            {
                "GASWORKS_HOME": str(self.home),
                "GASWORKS_LOG_LEVEL": "warning",
                "GASWORKS_LEDGER_FLUSH_INTERVAL_MS": "0",
                **self.extra_env,
            }
        )
        if self.database_url:
            env["GASWORKS_DATABASE_URL"] = self.database_url
        return env

    def cli(self, *args: str) -> Any:
        out = subprocess.run(  # noqa: S603 (our own command, no shell)
            [_gasworks(), *args, "--json"],
            env=self.env(),
            capture_output=True,
            check=True,
            timeout=120,
        )
        return json.loads(out.stdout)

    async def _bootstrap(self) -> str:
        """Migrate and create the first tenant's admin key in this process (what ``gasworks
        init`` does, without paying for one more interpreter start)."""
        from gasworks.runtime import Runtime
        from gasworks.settings import Settings
        from gasworks.tenancy import service

        env = self.env()
        settings = Settings(home=self.home, database_url=env.get("GASWORKS_DATABASE_URL"))
        rt = Runtime(settings)
        await rt.db.upgrade()
        try:
            async with rt.db.session() as s:
                _, created = await service.bootstrap(s, "default")
        finally:
            await rt.db.dispose()
        assert created is not None, "a fresh database has no tenant yet"
        return created.key

    def start(self) -> Server:
        self.home.mkdir(parents=True, exist_ok=True)
        # in a thread of its own: the caller may be inside an event loop (pytest-asyncio)
        with ThreadPoolExecutor(1) as pool:
            self.key = pool.submit(lambda: asyncio.run(self._bootstrap())).result()
        self.port = self.port or free_port()
        log = (self.home / "serve.log").open("wb")
        self.proc = subprocess.Popen(  # noqa: S603 (our own command, no shell)
            [*(self.command or [_gasworks(), "serve"]), "--port", str(self.port)],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "gasworks serve exited: " + (self.home / "serve.log").read_text()
                )
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("gasworks serve did not answer /healthz within 60 s")

    def api(
        self,
        method: str,
        path: str,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        headers = {**(headers or {}), "Authorization": f"Bearer {key or self.key}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
