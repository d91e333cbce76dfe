"""Per-process budget leases: a block of headroom reserved in the database, spent from memory.

A lease is a reservation row (``lease = true``) holding ``held`` cost/tokens on every counter a
scope's calls charge (the tenant's limits, plus the API key's own). Per-call reservations and
settlements are then plain arithmetic on the ``Lease`` object; the database is touched only to
take, resize, renew or return the block and to move settled usage from ``reserved`` to
``spent`` (the ledger writer's batches, see ``store.flush_in``).

Invariant: what this process promised calls (in flight + settled but not yet written) never
exceeds what the database holds for it. Amounts leave ``held`` in memory *before* the
transaction that returns them and enter it only *after* the transaction that grants them
commits, so a draw can never use capacity the database does not count.
"""

from __future__ import annotations

from dataclasses import dataclass

#: (tenant id, API key id whose own limits apply or "", counters as (budget id, period start))
ScopeKey = tuple[str, str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class LeasePolicy:
    """How large a lease is, and when a scope gets none (exact per-call reservations)."""

    #: the largest lease, in call estimates (0: leases off)
    calls: int = 64
    #: no lease unless the headroom is at least this many call estimates
    min_headroom_calls: int = 256
    #: a lease takes at most this share of the headroom
    fraction: float = 0.1
    #: seconds between checks of every lease (resize, renew, return when unused)
    interval: float = 1.0
    #: seconds without renewal after which a lease is considered abandoned
    ttl: float = 30.0

    @property
    def enabled(self) -> bool:
        return self.calls > 0

    def free_target(
        self,
        headroom: tuple[int | None, int | None],
        estimate: tuple[int, int],
    ) -> tuple[int, int] | None:
        """Free capacity a lease should hold per dimension (cost units, tokens), given the
        headroom available to it (None: no limit in that dimension) and one call's estimate.
        None: too close to a limit for a lease."""
        if not self.enabled:
            return None
        out: list[int] = []
        for head, est in zip(headroom, estimate, strict=True):
            if head is None:
                out.append(0)
                continue
            if head <= 0 or head < self.min_headroom_calls * est:
                return None
            size = min(int(head * self.fraction), self.calls * est)
            if size < est:
                return None
            out.append(size)
        return out[0], out[1]


@dataclass(slots=True, eq=False)
class Lease:
    id: str
    key: ScopeKey
    #: which dimensions any of the counters limits (only those are held and checked)
    cost_limited: bool
    token_limited: bool
    held_cost: int = 0
    held_tokens: int = 0
    inflight_cost: int = 0
    inflight_tokens: int = 0
    #: settled usage not yet written (still inside ``held`` until the writer moves it)
    pending_cost: int = 0
    pending_tokens: int = 0
    #: the largest per-call estimate seen (sizes top-ups)
    est_cost: int = 0
    est_tokens: int = 0
    #: free capacity aimed at by the last sizing
    target_cost: int = 0
    target_tokens: int = 0
    #: draws since the last check (0 at a check: the lease is returned)
    draws: int = 0
    #: no more draws (limits changed, too close to the limit, shutting down)
    retired: bool = False
    #: its row is gone (swept as abandoned): the database holds nothing for it any more
    lost: bool = False
    #: the writer was asked to top it up (reset by the next flush)
    wanted: bool = False

    @property
    def tenant_id(self) -> str:
        return self.key[0]

    @property
    def api_key_id(self) -> str | None:
        return self.key[1] or None

    @property
    def counters(self) -> tuple[tuple[str, str], ...]:
        return self.key[2]

    def free(self) -> tuple[int, int]:
        """Capacity not promised to any call (0 in a dimension without limits)."""
        c = self.held_cost - self.inflight_cost - self.pending_cost if self.cost_limited else 0
        t = (
            self.held_tokens - self.inflight_tokens - self.pending_tokens
            if self.token_limited
            else 0
        )
        return max(c, 0), max(t, 0)

    def try_draw(self, cost: int, tokens: int) -> bool:
        if self.retired:
            return False
        if self.cost_limited and self.held_cost - self.inflight_cost - self.pending_cost < cost:
            return False
        if (
            self.token_limited
            and self.held_tokens - self.inflight_tokens - self.pending_tokens < tokens
        ):
            return False
        self.inflight_cost += cost
        self.inflight_tokens += tokens
        self.draws += 1
        if cost > self.est_cost:
            self.est_cost = cost
        if tokens > self.est_tokens:
            self.est_tokens = tokens
        return True

    def settle(self, est_cost: int, est_tokens: int, cost: int, tokens: int) -> None:
        self.inflight_cost -= est_cost
        self.inflight_tokens -= est_tokens
        self.pending_cost += cost
        self.pending_tokens += tokens

    def release(self, est_cost: int, est_tokens: int) -> None:
        self.inflight_cost -= est_cost
        self.inflight_tokens -= est_tokens

    def low(self) -> bool:
        """Free capacity under half the target: the next flush should top it up."""
        if self.retired:
            return False
        free_c, free_t = self.free()
        return (self.cost_limited and 2 * free_c < self.target_cost) or (
            self.token_limited and 2 * free_t < self.target_tokens
        )

    def estimate(self) -> tuple[int, int]:
        return self.est_cost, self.est_tokens


@dataclass(slots=True, eq=False)
class Reservation:
    """What one call holds until it is settled or released (exactly once).

    ``lease`` set: drawn from this process's lease (no row of its own, ``id`` is "").
    Otherwise a per-call row of ``llm_budget_reservations`` with this ``id``."""

    id: str
    counters: tuple[tuple[str, str], ...]
    cost_units: int
    tokens: int
    lease: Lease | None = None
    done: bool = False


@dataclass(slots=True)
class Charge:
    """A settlement (or a release) of a reservation, written by the next ledger batch."""

    reservation: Reservation
    #: actual usage (0 for a release)
    cost_units: int
    tokens: int
    #: False: a release, or a call whose ledger row already existed (charged before)
    counted: bool = True


__all__ = ["Charge", "Lease", "LeasePolicy", "Reservation", "ScopeKey"]
