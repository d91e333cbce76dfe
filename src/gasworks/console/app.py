"""Mount the console on the API app: its routers, templates, static files, ``/`` → ``/console``."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from opentelemetry.trace import TracerProvider

from gasworks.api.app import create_app
from gasworks.console.pages import (
    auth,
    documents,
    models,
    overview,
    prompts,
    spend,
    tenancy,
    workflows,
)
from gasworks.console.web import principal_of
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
    documents.router,
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


def who(actor: str | None, people: dict[str, str]) -> Markup:
    """An actor as its principal's name, the raw id (and key) on hover; unknown ids as they
    are (a CLI operator, a principal of a tenant the caller cannot see)."""
    if not actor:
        return Markup("—")
    name = people.get(principal_of(actor))
    if name is None:
        return Markup('<span class="mono">{}</span>').format(actor)
    return Markup('<span title="{}">{}</span>').format(actor, name)


def make_templates() -> Jinja2Templates:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(("html",)),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money
    env.filters["ago"] = ago
    env.filters["who"] = who
    return Jinja2Templates(env=env)


def install_console(app: FastAPI) -> None:
    """Add the console to an API app (``gasworks.api.app.create_app``)."""
    app.state.console_templates = make_templates()
    for router in ROUTERS:
        app.include_router(router, prefix="/console", include_in_schema=False)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/console", status_code=307)


def create_web_app(
    settings: Settings | None = None,
    runtime: Runtime | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """What ``gasworks serve`` runs: the API app with the console on top. The console is the
    layer above the API (it reuses its authentication and services), so it mounts itself here
    rather than the API importing it."""
    app = create_app(settings, runtime, tracer_provider=tracer_provider)
    install_console(app)
    return app
