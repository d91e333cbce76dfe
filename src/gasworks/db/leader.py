"""The leader lease: work that must run once per deployment, not once per process.

A deployment's processes (``gasworks serve`` without ``--no-worker``, and workers) each run a
:class:`Leadership` heartbeat. One row per lease name in ``leader_leases`` holds the current
holder and a deadline; every ``ttl / 3`` each process runs one UPDATE that takes the row if it
is free, expired or already its own (a compare-and-set: two processes can never both match).
The holder's renewal pushes the deadline; a follower's matches nothing. A holder that stops
cleanly returns the lease (deadline in the past), so another process takes over at its next
heartbeat; one that dies (``kill -9``, lost host) stops renewing and another takes over at most
``ttl + ttl / 3`` later.

The holder believes it leads only until ``ttl`` after the start of its last successful
renewal (monotonic clock), so when the database is unreachable it stops leading before another
process can take over. Deadlines are written from each process's wall clock: hosts need NTP
(skew shortens or lengthens the takeover by the skew, it never makes two leaders for longer).

Idle cost: one single-row UPDATE per process per ``ttl / 3`` (default 10 s → 0.3 per second).

Same pattern as the budget leases and the workflow run leases (a deadline in the database
renewed by a heartbeat); hand-written because it is two statements, and a library
(advisory locks) would tie a session to a pooled connection for the lease's whole life and
exist on PostgreSQL only.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import String, Table, or_, update
from sqlalchemy.orm import Mapped, mapped_column

from gasworks.background import PeriodicTask
from gasworks.db.base import Base
from gasworks.db.types import UTCDateTime, utcnow
from gasworks.observability.logging import get_logger

if TYPE_CHECKING:
    from gasworks.db.engine import Database
    from gasworks.runtime import Runtime

log = get_logger("gasworks.leader")

SERVICE = "leadership"
#: the lease that gates the deployment-wide maintenance (budget sweeps, interrupted runs)
MAINTENANCE = "maintenance"
_FREE = datetime(1970, 1, 1, tzinfo=UTC)


class LeaderLeaseRow(Base):
    __tablename__ = "leader_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(80))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


_TABLE: Table = LeaderLeaseRow.__table__  # type: ignore[assignment]


class LeaderLease:
    """One named lease as seen by one process (``holder``)."""

    def __init__(
        self,
        db: Database,
        name: str,
        *,
        ttl: float,
        holder: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.name = name
        self.ttl = ttl
        # host and pid first: an operator reading leader_leases sees which process leads
        self.holder = holder or f"{socket.gethostname()[:48]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.clock = clock
        self._valid_until = 0.0  # monotonic
        self._row_exists = False

    @property
    def held(self) -> bool:
        """True while this process holds the lease (by its own monotonic clock)."""
        return time.monotonic() < self._valid_until

    async def hold(self) -> bool:
        """Take or renew the lease; True when this process holds it now. One UPDATE (plus an
        INSERT … ON CONFLICT DO NOTHING the first time, in case no process created the row)."""
        started = time.monotonic()
        now = self.clock()
        async with self.db.session() as s:
            if not self._row_exists:
                await s.execute(
                    self.db.dialect.insert(_TABLE)
                    .values(name=self.name, holder="", expires_at=_FREE)
                    .on_conflict_do_nothing(index_elements=["name"])
                )
                self._row_exists = True
            res = await s.execute(
                update(LeaderLeaseRow)
                .where(
                    LeaderLeaseRow.name == self.name,
                    or_(LeaderLeaseRow.holder == self.holder, LeaderLeaseRow.expires_at < now),
                )
                .values(holder=self.holder, expires_at=now + timedelta(seconds=self.ttl))
            )
            won = getattr(res, "rowcount", 0) == 1
        was = self.held
        self._valid_until = started + self.ttl if won else 0.0
        if won and not was:
            log.info("leader.acquired", lease=self.name, holder=self.holder)
        elif was and not won:
            log.warning("leader.lost", lease=self.name, holder=self.holder)
        return won

    async def release(self) -> None:
        """Give the lease back (another process takes it at its next heartbeat)."""
        if not self.held:
            return
        self._valid_until = 0.0
        async with self.db.session() as s:
            await s.execute(
                update(LeaderLeaseRow)
                .where(LeaderLeaseRow.name == self.name, LeaderLeaseRow.holder == self.holder)
                .values(expires_at=_FREE)
            )
        log.info("leader.released", lease=self.name, holder=self.holder)


class Leadership:
    """A process's heartbeat for the maintenance lease (``is_leader(rt)`` reads it)."""

    def __init__(self, db: Database, *, ttl: float, holder: str | None = None) -> None:
        self.lease = LeaderLease(db, MAINTENANCE, ttl=ttl, holder=holder)
        self.task = PeriodicTask("leader-lease", self._beat, ttl / 3, on_error=self._failed)

    async def _beat(self) -> None:
        await self.lease.hold()

    def _failed(self, exc: BaseException) -> None:
        # the database is unreachable: ``held`` lapses by itself within ttl
        log.warning("leader.heartbeat_failed", error=type(exc).__name__)

    async def stop(self) -> None:
        await self.task.stop()
        try:
            await self.lease.release()
        except Exception:
            log.exception("leader.release_failed")


def is_leader(rt: Runtime) -> bool:
    """Whether this process runs the deployment-wide maintenance now: never in a process that
    runs no background work (``serve --no-worker``); while it holds the lease when the runtime
    elects (``LeadershipDomain``, in ``wiring.default_domains``); always in a runtime built
    without the election (an embedding program or a test with its own domain list)."""
    if not rt.settings.background_work:
        return False
    leadership = rt.services.get(SERVICE)
    return not isinstance(leadership, Leadership) or leadership.lease.held


class LeadershipDomain:
    """Starts the maintenance-lease heartbeat when this process runs background work
    (``GASWORKS_BACKGROUND_WORK``, off for ``serve --no-worker``). First in start order, so
    the lease is returned last."""

    name = SERVICE

    async def start(self, rt: Runtime) -> None:
        if not rt.settings.background_work:
            return
        leadership = Leadership(rt.db, ttl=rt.settings.leader_lease_seconds)
        rt.services[SERVICE] = leadership
        try:  # the first election before the other domains start: a lone process leads at once
            await leadership.lease.hold()
        except Exception as exc:
            leadership._failed(exc)
        leadership.task.start()

    async def stop(self, rt: Runtime) -> None:
        leadership = rt.services.pop(SERVICE, None)
        if isinstance(leadership, Leadership):
            await leadership.stop()
