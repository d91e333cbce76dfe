"""Bearer-key authentication with a short, bounded in-process cache.

A verified key is trusted for ``auth_cache_ttl_seconds`` (default 5 s) before it is checked
against the database again: this keeps the hot path free of a query per request and bounds how
long a key revoked by another process keeps working. A revocation made in this process takes
effect at once: the app factory hands its authenticator to the tenancy service
(``TenancyService.add_key_cache``), whose ``revoke_api_key`` calls ``forget``. An expiry takes
effect at the expiry instant, cache or not. The cache is keyed by SHA-256 of the presented key
(never the key itself) and holds at most ``_MAX_CACHE`` entries, evicting the oldest.

One verification per key at a time: when the cached verdict of a busy key runs out, the
requests that arrive before its new verdict share one database check instead of each opening
its own write transaction (issue #19: after a few idle seconds a burst of 100 requests on one
key paid 100 serialized transactions on SQLite, a quarter of the throughput).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from starlette.types import Scope

from gasworks.db.engine import Database
from gasworks.db.types import utcnow
from gasworks.errors import Unauthenticated
from gasworks.observability.metrics import AUTH_FAILURES
from gasworks.singleflight import SingleFlight
from gasworks.tenancy import keys, service
from gasworks.tenancy.context import TenantContext

_MAX_CACHE = 10_000


@dataclass(slots=True)
class _Entry:
    ctx: TenantContext
    expires_at: datetime | None
    checked_at: float
    touched_at: float


class Authenticator:
    def __init__(self, db: Database, *, ttl: float, touch_every: float) -> None:
        self.db = db
        self.ttl = ttl
        self.touch_every = touch_every
        self._cache: dict[str, _Entry] = {}
        #: the verification in progress per key digest (the others wait for it)
        self._inflight: SingleFlight[str, _Entry | None] = SingleFlight()
        #: injectable clocks (tests move time instead of sleeping)
        self.monotonic: Callable[[], float] = time.monotonic
        self.clock: Callable[[], datetime] = utcnow

    async def authenticate(self, authorization: str | None) -> TenantContext:
        token = _bearer_token(authorization)
        digest = keys.hash_key(token)
        now = self.monotonic()
        entry = self._cache.get(digest)
        if entry is not None and self._expired(entry):
            del self._cache[digest]
            AUTH_FAILURES.labels("invalid").inc()
            raise Unauthenticated(
                "Invalid, expired or revoked API key.", details={"header": "Authorization"}
            )
        if entry is not None and now - entry.checked_at < self.ttl:
            if now - entry.touched_at >= self.touch_every:
                entry.touched_at = now
                await self._touch(entry.ctx)
            return entry.ctx
        # a caller that gives up leaves the verification to the others
        fresh = await self._inflight.run(digest, lambda: self._verify(token, digest, now, entry))
        if fresh is None:
            AUTH_FAILURES.labels("invalid").inc()
            raise Unauthenticated(
                "Invalid, expired or revoked API key.", details={"header": "Authorization"}
            )
        return fresh.ctx

    async def _verify(
        self, token: str, digest: str, now: float, entry: _Entry | None
    ) -> _Entry | None:
        """Check the key against the database and cache the verdict; None if refused."""
        verified = await service.lookup_key(self.db, token)
        touched = entry.touched_at if entry is not None else float("-inf")
        key_id = verified.ctx.api_key_id if verified is not None else None
        if key_id is not None and now - touched >= self.touch_every:
            async with self.db.session() as session:
                await service.touch_key(session, key_id, self.clock())
            touched = now
        self._cache.pop(digest, None)
        if verified is None:
            return None
        while len(self._cache) >= _MAX_CACHE:
            del self._cache[next(iter(self._cache))]  # oldest first (dicts keep insertion order)
        fresh = _Entry(
            ctx=verified.ctx, expires_at=verified.expires_at, checked_at=now, touched_at=touched
        )
        self._cache[digest] = fresh
        return fresh

    def _expired(self, entry: _Entry) -> bool:
        return entry.expires_at is not None and entry.expires_at <= self.clock()

    async def _touch(self, ctx: TenantContext) -> None:
        if ctx.api_key_id is None:
            return
        async with self.db.session() as session:
            await service.touch_key(session, ctx.api_key_id, self.clock())

    def forget(self, api_key_id: str) -> None:
        """Drop a key from the cache at once (after a revocation in this process)."""
        self._inflight.when_settled(lambda: self.forget(api_key_id))  # a verdict in flight
        for digest, entry in list(self._cache.items()):
            if entry.ctx.api_key_id == api_key_id:
                del self._cache[digest]


async def authenticate_request(scope: Scope, authorization: str | None) -> TenantContext:
    """Authenticate one HTTP request: the app's ``Authenticator`` on its Authorization header,
    the tenant bound to the request's log lines, the context kept in the request state
    (``request.state.ctx``). The one way in for ``deps.get_context`` and the ``/v1`` fast path.
    """
    authenticator: Authenticator = scope["app"].state.authenticator
    ctx = await authenticator.authenticate(authorization)
    structlog.contextvars.bind_contextvars(tenantId=ctx.tenant_id)
    scope.setdefault("state", {})["ctx"] = ctx
    return ctx


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        AUTH_FAILURES.labels("missing").inc()
        raise Unauthenticated(
            "Missing API key: send 'Authorization: Bearer <key>'.",
            details={"header": "Authorization"},
        )
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        AUTH_FAILURES.labels("malformed").inc()
        raise Unauthenticated(
            "Malformed Authorization header: expected 'Bearer <key>'.",
            details={"header": "Authorization"},
        )
    return token
