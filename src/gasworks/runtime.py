"""The process-wide runtime: settings, database and the services built on them.

The API server, the CLI and workers each build one ``Runtime``. Domain packages attach their
long-lived services here (model registry, prompt cache, ...) through ``startup``/``shutdown``
hooks instead of module globals, so tests can run several runtimes side by side.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from gasworks.db.engine import Database
from gasworks.home import prepare_home
from gasworks.observability.logging import get_logger
from gasworks.settings import Settings

Hook = Callable[["Runtime"], Awaitable[None]]

#: Hooks registered by domain packages, run in order on start and in reverse on stop.
STARTUP_HOOKS: list[Hook] = []
SHUTDOWN_HOOKS: list[Hook] = []

log = get_logger("gasworks.runtime")


class Runtime:
    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        self.settings = settings
        self.db = db or Database(
            settings.resolved_database_url,
            pool_size=settings.database_pool_size,
            echo=settings.database_echo,
        )
        #: domain services by name, set by startup hooks (typed accessors live in each domain)
        self.services: dict[str, Any] = {}
        self.started = False

    async def start(self, *, migrate: bool | None = None) -> None:
        for warning in prepare_home(self.settings.home):  # created 0700 when missing
            log.warning("home.not_private", problem=warning)
        if self.settings.auto_migrate if migrate is None else migrate:
            revision = await self.db.upgrade()
            log.info("database.ready", dialect=self.db.dialect.name, revision=revision)
        from gasworks import domains  # here, not at import time: domains import this module

        domains.load()
        for hook in STARTUP_HOOKS:
            await hook(self)
        self.started = True

    async def stop(self) -> None:
        for hook in reversed(SHUTDOWN_HOOKS):
            try:
                await hook(self)
            except Exception:
                log.exception("runtime.shutdown_hook_failed", hook=getattr(hook, "__name__", "?"))
        await self.db.dispose()
        self.started = False
