"""The process runtime: settings, database and the domains' services built on them.

The API server, the CLI and workers each build one ``Runtime``, usually through
``gasworks.wiring.build_runtime`` (the one place that lists the default domains). A domain is
an object with a ``name`` and ``start``/``stop``; the runtime starts them in the order given
and stops them in reverse. Domains keep their long-lived services in ``Runtime.services`` and
offer typed accessors (``get_gateway(rt)``), so two runtimes in one process never share state.
Importing a module registers nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from gasworks.home import prepare_home
from gasworks.observability.logging import get_logger
from gasworks.settings import Settings

if TYPE_CHECKING:
    from gasworks.db.engine import Database

log = get_logger("gasworks.runtime")


class Domain(Protocol):
    """One domain's life cycle in a runtime (models, guardrails, prompts, workflows, ...)."""

    name: str

    async def start(self, rt: Runtime) -> None: ...

    async def stop(self, rt: Runtime) -> None: ...


class Runtime:
    def __init__(
        self,
        settings: Settings,
        db: Database | None = None,
        *,
        domains: Sequence[Domain] = (),
    ) -> None:
        from gasworks.db.engine import Database  # the server stack, only when a runtime is built

        self.settings = settings
        self.db = db or Database(
            settings.resolved_database_url,
            pool_size=settings.database_pool_size,
            echo=settings.database_echo,
        )
        self.domains: tuple[Domain, ...] = tuple(domains)
        names = [d.name for d in self.domains]
        if len(set(names)) != len(names):
            raise ValueError(f"domain names must be unique: {names}")
        #: domain services by name, set by the domains' ``start`` (typed accessors in each domain)
        self.services: dict[str, Any] = {}
        self._running: list[Domain] = []
        self.started = False

    async def start(self, *, migrate: bool | None = None) -> None:
        for warning in prepare_home(self.settings.home):  # created 0700 when missing
            log.warning("home.not_private", problem=warning)
        if self.settings.auto_migrate if migrate is None else migrate:
            revision = await self.db.upgrade()
            log.info("database.ready", dialect=self.db.dialect.name, revision=revision)
        try:
            for domain in self.domains:
                await domain.start(self)
                self._running.append(domain)
        except BaseException:
            await self._stop_domains()  # the ones already started
            raise
        self.started = True

    async def stop(self) -> None:
        await self._stop_domains()
        await self.db.dispose()
        self.started = False

    async def _stop_domains(self) -> None:
        while self._running:
            domain = self._running.pop()
            try:
                await domain.stop(self)
            except Exception:
                log.exception("runtime.domain_stop_failed", domain=domain.name)


# --- the maintenance leader -------------------------------------------------------------------

#: ``Runtime.services`` key of this process's ``db.leader.Leadership``
LEADERSHIP = "leadership"


def is_leader(rt: Runtime) -> bool:
    """Whether this process runs the deployment-wide maintenance now: never in a process that
    runs no background work (``serve --no-worker``); while it holds the lease when the runtime
    elects (``LeadershipDomain``, in ``wiring.default_domains``); always in a runtime built
    without the election (an embedding program or a test with its own domain list)."""
    from gasworks.db.leader import Leadership

    if not rt.settings.background_work:
        return False
    leadership = rt.services.get(LEADERSHIP)
    return not isinstance(leadership, Leadership) or leadership.lease.held


class LeadershipDomain:
    """Starts the maintenance-lease heartbeat (``db.leader.Leadership``) when this process
    runs background work (``GASWORKS_BACKGROUND_WORK``, off for ``serve --no-worker``). First
    in start order, so the lease is returned last."""

    name = LEADERSHIP

    async def start(self, rt: Runtime) -> None:
        from gasworks.db.leader import Leadership

        if not rt.settings.background_work:
            return
        leadership = Leadership(rt.db, ttl=rt.settings.leader_lease_seconds)
        rt.services[LEADERSHIP] = leadership
        try:  # the first election before the other domains start: a lone process leads at once
            await leadership.lease.hold()
        except Exception as exc:
            leadership._failed(exc)
        leadership.task.start()

    async def stop(self, rt: Runtime) -> None:
        from gasworks.db.leader import Leadership

        leadership = rt.services.pop(LEADERSHIP, None)
        if isinstance(leadership, Leadership):
            await leadership.stop()
