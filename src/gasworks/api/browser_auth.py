"""Cookie authentication for signed-in browsers (the web console, GraphiQL, the API docs).

A browser cannot send ``Authorization: Bearer``; after signing in to the console it holds an
HttpOnly, SameSite=Strict session cookie (``tenancy/sessions.py``). This module turns that
cookie into the same ``TenantContext`` an API key gives, so every route and service applies
the same roles and tenant scope to both.

CSRF: a request that changes state with a cookie must carry the session's synchronizer
token in ``X-CSRF-Token`` (htmx sends it on every request; plain forms post it as ``csrf``)
and, when the browser sends an ``Origin``, come from this server's own origin. GraphQL
accepts cookie-authenticated queries without the token (a cross-site page cannot read the
answer) and refuses mutations without it (``GqlContext.require_csrf``).
"""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request

from gasworks.db.engine import Database
from gasworks.errors import Forbidden, Unauthenticated
from gasworks.tenancy import sessions
from gasworks.tenancy.sessions import BrowserSession

SESSION_COOKIE = "gw_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BrowserAuth:
    """Opens, resumes and closes browser sessions for one app."""

    def __init__(self, db: Database, *, lifetime: timedelta, idle: timedelta) -> None:
        self.db = db
        self.lifetime = lifetime
        self.idle = idle

    async def resume(self, request: Request) -> BrowserSession | None:
        """The request's live session (cached on the request), or None."""
        if hasattr(request.state, "browser_session"):
            cached: BrowserSession | None = request.state.browser_session
            return cached
        token = request.cookies.get(SESSION_COOKIE)
        found = None
        if token:
            async with self.db.session() as s:
                found = await sessions.resume_session(s, token, idle=self.idle)
        request.state.browser_session = found
        return found

    async def require(self, request: Request, *, csrf: bool | None = None) -> BrowserSession:
        """The live session or UNAUTHENTICATED; the CSRF check on unsafe methods (or when
        ``csrf`` says so)."""
        found = await self.resume(request)
        if found is None:
            raise Unauthenticated(
                "Not signed in, or the session has ended: sign in again at /console.",
                details={"cookie": SESSION_COOKIE},
            )
        needs = request.method not in SAFE_METHODS if csrf is None else csrf
        if needs:
            check_csrf(request, found, request.headers.get(CSRF_HEADER))
        return found


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin."""
    origin = request.headers.get("origin")
    if origin is None or (origin == "null" and request.method in SAFE_METHODS):
        return True
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def check_csrf(request: Request, found: BrowserSession, presented: str | None) -> None:
    if not same_origin(request):
        raise Forbidden(
            "Cross-site request refused: the Origin is not this server.",
            details={"reason": "origin"},
        )
    if not sessions.csrf_matches(found.csrf_token, presented):
        raise Forbidden(
            "Missing or wrong CSRF token: reload the page and try again.",
            details={"reason": "csrf", "header": "X-CSRF-Token"},
        )
