"""What every console page shares: the signed-in caller, CSRF on forms, rendering, errors.

Pages are thin adapters: they parse a query string or a form, call the same service
function as the REST route, and render a template. Errors are the same ``GasworksError``
classes; ``ConsoleRoute`` renders them as a message in the page (an htmx request gets the
message swapped into the flash area) instead of the JSON envelope.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import urlencode

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from gasworks.api.browser_auth import BrowserAuth, check_csrf
from gasworks.console.nav import sections
from gasworks.db.paging import Page
from gasworks.errors import GasworksError, Unauthenticated
from gasworks.observability.logging import get_logger
from gasworks.runtime import Runtime
from gasworks.tenancy.context import TenantContext
from gasworks.tenancy.service import tenancy_service
from gasworks.tenancy.sessions import BrowserSession
from gasworks.validation import validated

log = get_logger("gasworks.console")

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

#: rows per console page
PER_PAGE = 25
#: rows a searchable list asks its service for (the API's largest page)
SEARCH_WINDOW = Page(500, 0)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def sign_in_url(request: Request) -> str:
    nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/console/sign-in?" + urlencode({"next": nxt})


class ConsoleRoute(APIRoute):
    """Renders gasworks errors as HTML: not signed in → the sign-in page; anything else → the
    message in the page's flash area (htmx) or an error page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Unauthenticated:
                if is_htmx(request):
                    return Response(status_code=204, headers={"HX-Redirect": sign_in_url(request)})
                return RedirectResponse(sign_in_url(request), status_code=303)
            except GasworksError as exc:
                return error_response(request, exc)

        return route


def templates_of(request: Request) -> Jinja2Templates:
    t: Jinja2Templates = request.app.state.console_templates
    return t


def error_response(request: Request, exc: GasworksError) -> Response:
    html = templates_of(request).get_template("_flash.html").render(error=exc, message=None)
    if is_htmx(request):
        # swapped into the flash area whatever the request targeted
        return HTMLResponse(
            html,
            status_code=exc.status,
            headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"},
        )
    page = templates_of(request).get_template("error.html").render(error=exc, flash=html)
    return HTMLResponse(page, status_code=exc.status)


@dataclass
class Caller:
    """The signed-in browser of one request."""

    request: Request
    session: BrowserSession
    runtime: Runtime

    @property
    def ctx(self) -> TenantContext:
        return self.session.ctx

    async def people(self, *actors: Iterable[str | None]) -> dict[str, str]:
        """Principal id → name for the actors a page shows (the ``who`` filter renders them),
        in one query per page, through the tenancy service's scoping."""
        ids = {principal_of(a) for group in actors for a in group if a}
        return await tenancy_service(self.runtime).principal_names(self.ctx, ids)


def principal_of(actor: str) -> str:
    """The principal id an actor string starts with (breaker actors add ``(key …)``)."""
    return actor.split(" ", 1)[0]


async def caller(request: Request) -> Caller:
    """Dependency: the signed-in browser (UNAUTHENTICATED → the sign-in page). Unsafe
    methods also pass the CSRF check (header from htmx, or the form's ``csrf`` field)."""
    browser: BrowserAuth = request.app.state.browser_auth
    found = await browser.require(request, csrf=False)
    if request.method not in ("GET", "HEAD"):
        presented = request.headers.get("x-csrf-token")
        if presented is None:
            form = await request.form()
            value = form.get("csrf")
            presented = value if isinstance(value, str) else None
        check_csrf(request, found, presented)
    return Caller(request, found, request.app.state.runtime)


CallerDep = Annotated[Caller, Depends(caller)]


async def form_data(request: Request) -> dict[str, str]:
    """The posted form as plain strings (empty fields left out)."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str) and v != "" and k != "csrf"}


def parse(model: type[M], data: Any) -> M:
    """Form input through the API's own schema: bad input is VALIDATION_FAILED."""
    return validated(model, data, prefix=("form",))


def render(
    c: Caller,
    template: str,
    *,
    active: str = "",
    message: str | None = None,
    status_code: int = 200,
    push_url: str | None = None,
    **context: Any,
) -> HTMLResponse:
    ctx = c.ctx
    headers = {"HX-Push-Url": push_url} if push_url and is_htmx(c.request) else None
    return templates_of(c.request).TemplateResponse(
        c.request,
        template,
        {
            "me": ctx,
            "csrf": c.session.csrf_token,
            "session": c.session,
            "nav": sections(ctx),
            "active": active,
            "message": message,
            "people": {},  # principal id -> name, for the `who` filter (Caller.people)
            **context,
        },
        status_code=status_code,
        headers=headers,
    )


@dataclass
class Listing(Generic[T]):
    """One page of a list after an optional search, with what the pager needs."""

    rows: list[T]
    page: int
    pages: int
    total: int
    q: str
    params: dict[str, str] = field(default_factory=dict)
    page_param: str = "page"

    def url(self, page: int) -> str:
        return "?" + urlencode({**self.params, "q": self.q, self.page_param: page})


def listing(
    items: Sequence[T],
    request: Request,
    text: Callable[[T], Iterable[Any]],
    *,
    per_page: int = PER_PAGE,
    page_param: str = "page",
    extra: dict[str, str] | None = None,
) -> Listing[T]:
    """Filter ``items`` by the ``q`` query parameter (case-insensitive, any of ``text``'s
    fields) and cut page ``page`` (1-based)."""
    q = (request.query_params.get("q") or "").strip()
    needle = q.lower()
    found = [
        it
        for it in items
        if not needle or any(needle in str(v).lower() for v in text(it) if v is not None)
    ]
    pages = max(1, math.ceil(len(found) / per_page))
    try:
        page = int(request.query_params.get(page_param, "1"))
    except ValueError:
        page = 1
    page = min(max(page, 1), pages)
    rows = found[(page - 1) * per_page : page * per_page]
    return Listing(rows, page, pages, len(found), q, dict(extra or {}), page_param)
