"""Sign-in (an API key exchanged for a session cookie) and sign-out."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from gasworks.api.browser_auth import SESSION_COOKIE, BrowserAuth, same_origin
from gasworks.api.deps import get_runtime
from gasworks.console.web import CallerDep, ConsoleRoute, templates_of
from gasworks.errors import Forbidden
from gasworks.tenancy.sessions import BrowserSessions

router = APIRouter(route_class=ConsoleRoute)


def _safe_next(raw: str | None) -> str:
    """Only a path inside the console (no open redirect to another site)."""
    if not raw:
        return "/console"
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or not parts.path.startswith("/console"):
        return "/console"
    return raw


def _page(request: Request, status: int = 200, **ctx: object) -> HTMLResponse:
    return templates_of(request).TemplateResponse(
        request,
        "sign_in.html",
        {"next": _safe_next(request.query_params.get("next")), "csrf": "", **ctx},
        status_code=status,
    )


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request) -> Response:
    browser: BrowserAuth = request.app.state.browser_auth
    if await browser.resume(request) is not None:
        return RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
    ended = "Your session has ended; sign in again." if "next" in request.query_params else None
    return _page(request, ended=ended)


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request) -> Response:
    # no session yet, so no CSRF token: a cross-site sign-in (login CSRF) is refused by Origin
    if not same_origin(request):
        raise Forbidden("Cross-site sign-in refused.", details={"reason": "origin"})
    form = await request.form()
    key = str(form.get("key") or "").strip()
    nxt = _safe_next(str(form.get("next") or ""))
    runtime = await get_runtime(request)
    browser: BrowserAuth = request.app.state.browser_auth
    token = await BrowserSessions(runtime.db).sign_in(key, lifetime=browser.lifetime)
    if token is None:
        return _page(request, 401, error="That key is not valid, or it was revoked or expired.")
    response = RedirectResponse(nxt, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(browser.lifetime.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/sign-out")
async def sign_out(c: CallerDep) -> Response:
    token = c.request.cookies.get(SESSION_COOKIE, "")
    await BrowserSessions(c.runtime.db).sign_out(token)
    response = RedirectResponse("/console/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
