"""Mount the console on the API app: its routers, templates, static files, ``/`` → ``/console``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from gasworks.api.browser_auth import BrowserAuth
from gasworks.console.pages import auth, models, overview, prompts, spend, tenancy, workflows
from gasworks.runtime import Runtime
from gasworks.settings import Settings

HERE = Path(__file__).parent

#: the console's routers, mounted under /console
ROUTERS: tuple[APIRouter, ...] = (
    auth.router,
    overview.router,
    models.router,
    spend.router,
    prompts.router,
    workflows.router,
    tenancy.router,
)


def money(value: Decimal | float | int | None, places: int = 4) -> str:
    if value is None:
        return "—"
    return f"{Decimal(value):,.{places}f}"


def ago(value: datetime | None) -> str:
    if value is None:
        return "never"
    secs = (datetime.now(UTC) - value).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(secs) >= size:
            return f"{int(secs // size)} {unit} ago"
    return "just now"


def make_templates() -> Jinja2Templates:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(("html",)),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money
    env.filters["ago"] = ago
    return Jinja2Templates(env=env)


def install_console(app: FastAPI, runtime: Runtime, settings: Settings) -> None:
    """Add the console to ``app`` (called once by ``create_app``)."""
    app.state.browser_auth = BrowserAuth(
        runtime.db,
        lifetime=timedelta(hours=settings.console_session_hours),
        idle=timedelta(minutes=settings.console_idle_minutes),
    )
    app.state.console_templates = make_templates()
    for router in ROUTERS:
        app.include_router(router, prefix="/console", include_in_schema=False)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/console", status_code=307)

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        """Swagger UI; from a signed-in browser its requests carry the session's CSRF token,
        so "Try it out" works with the session cookie."""
        page = get_swagger_ui_html(openapi_url="/openapi.json", title="gasworks API")
        html = bytes(page.body).decode()
        found = await app.state.browser_auth.resume(request)
        if found is not None:
            token = json.dumps(found.csrf_token)
            html = html.replace(
                "const ui = SwaggerUIBundle({",
                "const ui = SwaggerUIBundle({\n    requestInterceptor: (r) => "
                f"{{ r.headers['X-CSRF-Token'] = {token}; return r; }},",
            )
        return HTMLResponse(html)
