"""Browser sessions: an API key exchanged for an opaque cookie (the web console).

Server-side sessions rather than signed tokens: sign-out, a revoked key and an expired key
must end a session at once, and a row per session is what makes that a plain ``DELETE`` /
join instead of a revocation list beside a token. The cookie carries 256 random bits; the
table holds only their SHA-256 (``id``), so a copy of the database opens no session. Each
session has a synchronizer CSRF token, rendered into the pages and checked on every
state-changing request.

Lifetimes: absolute (``lifetime``, from sign-in) and idle (``idle``, since the last request;
``last_seen_at`` is written at most once a minute per session).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gasworks.db.engine import Database
from gasworks.db.types import utcnow
from gasworks.tenancy.context import TenantContext
from gasworks.tenancy.service import key_context, verify_key
from gasworks.tenancy.tables import ApiKeyRow, BrowserSessionRow, PrincipalRow, TenantRow

#: ``last_seen_at`` is refreshed at most this often (one write per minute, not per request)
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class BrowserSession:
    """A live session: who it acts as, its CSRF token and when it ends."""

    ctx: TenantContext
    csrf_token: str
    expires_at: datetime
    key_prefix: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_matches(expected: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(expected.encode(), presented.encode())


async def open_session(
    session: AsyncSession, ctx: TenantContext, *, lifetime: timedelta, now: datetime | None = None
) -> tuple[str, str]:
    """A new session for a verified key's context: (cookie value, CSRF token)."""
    assert ctx.api_key_id is not None, "a browser session is opened with an API key"
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    session.add(
        BrowserSessionRow(
            id=_digest(token),
            api_key_id=ctx.api_key_id,
            csrf_token=csrf,
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime,
        )
    )
    await session.flush()
    return token, csrf


async def resume_session(
    session: AsyncSession, token: str, *, idle: timedelta, now: datetime | None = None
) -> BrowserSession | None:
    """The live session behind a cookie value; None when unknown, expired, idle too long or
    when its key was revoked or has expired (an ended session's row is deleted)."""
    now = now or utcnow()
    sid = _digest(token)
    found = (
        await session.execute(
            select(BrowserSessionRow, ApiKeyRow, PrincipalRow, TenantRow.name)
            .join(ApiKeyRow, ApiKeyRow.id == BrowserSessionRow.api_key_id)
            .join(PrincipalRow, PrincipalRow.id == ApiKeyRow.principal_id)
            .join(TenantRow, TenantRow.id == ApiKeyRow.tenant_id)
            .where(BrowserSessionRow.id == sid)
        )
    ).first()
    if found is None:
        return None
    row, key, principal, tenant_name = found
    key_dead = key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now)
    if key_dead or row.expires_at <= now or row.last_seen_at + idle <= now:
        await session.execute(delete(BrowserSessionRow).where(BrowserSessionRow.id == sid))
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        await session.execute(
            update(BrowserSessionRow).where(BrowserSessionRow.id == sid).values(last_seen_at=now)
        )
    ctx = key_context(key, principal, tenant_name)
    ends = min(row.expires_at, key.expires_at) if key.expires_at else row.expires_at
    return BrowserSession(
        ctx=ctx, csrf_token=row.csrf_token, expires_at=ends, key_prefix=key.prefix
    )


async def close_session(session: AsyncSession, token: str) -> None:
    """Sign-out: the row goes, so the cookie opens nothing any more (in every process)."""
    await session.execute(delete(BrowserSessionRow).where(BrowserSessionRow.id == _digest(token)))


async def purge_expired(session: AsyncSession, now: datetime | None = None) -> int:
    """Delete sessions past their absolute lifetime (called at sign-in: no timer needed)."""
    result = await session.execute(
        delete(BrowserSessionRow).where(BrowserSessionRow.expires_at <= (now or utcnow()))
    )
    return int(getattr(result, "rowcount", 0) or 0)


class BrowserSessions:
    """Sign-in and sign-out as one service call each (the console's pages only translate)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def sign_in(self, key: str, *, lifetime: timedelta) -> str | None:
        """A new session's cookie value for a valid key (expired sessions are purged on the
        way); None for a key that is not valid, revoked or expired."""
        async with self.db.session() as s:
            verified = await verify_key(s, key) if key else None
            if verified is None:
                return None
            await purge_expired(s)
            token, _ = await open_session(s, verified.ctx, lifetime=lifetime)
        return token

    async def sign_out(self, token: str) -> None:
        async with self.db.session() as s:
            await close_session(s, token)
