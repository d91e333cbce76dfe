"""The FastAPI application factory."""

from __future__ import annotations

import gc
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from opentelemetry.trace import TracerProvider

from gasworks import __version__
from gasworks.api import docs_assets
from gasworks.api.auth import Authenticator
from gasworks.api.browser_auth import BrowserAuth
from gasworks.api.drain import Drain, DrainGate
from gasworks.api.errors import (
    ErrorRenderer,
    OpenAIErrorEnvelope,
    error_responses,
    install_error_handlers,
)
from gasworks.api.fastpath import ChatCompletionsFastPath
from gasworks.api.middleware import RequestContextMiddleware
from gasworks.api.routes import (
    documents,
    guardrails,
    health,
    models,
    openai_compat,
    prompts,
    search,
    tenancy,
    workflows,
)
from gasworks.observability.logging import configure_logging
from gasworks.observability.tracing import configure_tracing, native_telemetry_off
from gasworks.runtime import Runtime
from gasworks.settings import Settings, get_settings
from gasworks.tenancy.service import tenancy_service
from gasworks.wiring import build_runtime

#: Every REST router, in order. Each domain adds its router here. Routes are matched in this
#: order, so the hot ``/v1`` gateway comes first (no route of another router starts with /v1).
ROUTERS: list[APIRouter] = [
    openai_compat.router,
    health.router,
    tenancy.router,
    models.router,
    guardrails.router,
    prompts.router,
    workflows.router,
    search.router,
    documents.router,
]


_frozen = False


async def swagger_ui(request: Request) -> HTMLResponse:
    """The API docs (Swagger UI). From a signed-in browser, its requests carry the session's
    CSRF token, so "Try it out" works with the session cookie, writes included."""
    html = docs_assets.swagger_ui_html("gasworks API", "/openapi.json")
    browser: BrowserAuth = request.app.state.browser_auth
    found = await browser.resume(request)
    if found is not None:
        token = json.dumps(found.csrf_token)
        html = html.replace(
            "const ui = SwaggerUIBundle({",
            "const ui = SwaggerUIBundle({\n    requestInterceptor: (r) => "
            f"{{ r.headers['X-CSRF-Token'] = {token}; return r; }},",
        )
    return docs_assets.page(html)


async def redoc() -> HTMLResponse:
    """The API reference (ReDoc), read-only."""
    return docs_assets.redoc_html("gasworks API", "/openapi.json")


def freeze_startup_objects() -> None:
    """Move everything alive after start-up out of the garbage collector's sight.

    Modules, pydantic schemas, routes and the registry live as long as the process; left in
    the collected generations, every full collection walks all of them again (40-90 ms on the
    reference machine, every few thousand requests, stalling every open stream at once).
    Collected once here, then frozen (``gc.freeze``), a full collection only walks what was
    allocated since.
    """
    global _frozen
    if _frozen:  # once per process (tests and embedders may start many apps)
        return
    _frozen = True
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings | None = None,
    runtime: Runtime | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """The API app. ``tracer_provider`` overrides the process-wide one (tests)."""
    settings = settings or (runtime.settings if runtime else get_settings())
    configure_logging(json=settings.json_logs, level=settings.log_level)
    rt = runtime or build_runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not rt.started:
            await rt.start()
        freeze_startup_objects()
        yield
        if runtime is None:
            await rt.stop()

    app = FastAPI(
        title="gasworks",
        version=__version__,
        description=(
            "Models, prompts and workflows as infrastructure, for many tenants.\n\n"
            'Every error is `{"error": {"code", "message", "details", '
            '"requestId"}}` (OpenAI\'s error shape under `/v1`). Text anywhere in a request '
            "(path, query, body) must not contain NUL characters (U+0000); JSON and YAML "
            "bodies nest at most 64 levels."
        ),
        lifespan=lifespan,
        docs_url=None,  # swagger_ui below: with a signed-in browser's CSRF token
        redoc_url=None,  # redoc below: both load their files from the app (docs_assets)
        **native_telemetry_off(),
    )
    app.state.runtime = rt
    app.state.authenticator = Authenticator(
        rt.db,
        ttl=settings.auth_cache_ttl_seconds,
        touch_every=settings.key_last_used_resolution_seconds,
    )
    # a key revoked through the tenancy service (any adapter) leaves this cache at once
    tenancy_service(rt).add_key_cache(app.state.authenticator)
    # errors under /v1/ answer in OpenAI's shape, everywhere else in the gasworks envelope
    install_error_handlers(app, ErrorRenderer({"/v1/": openai_compat.render_openai_error}))
    for router in ROUTERS:
        shape = OpenAIErrorEnvelope if router is openai_compat.router else None
        app.include_router(router, responses=error_responses(shape) if shape else error_responses())
    from gasworks.api.graphql import graphql_router

    app.include_router(graphql_router(settings), prefix="/graphql", include_in_schema=False)
    # signed-in browsers (the console): a session cookie instead of a key (api/browser_auth.py)
    app.state.browser_auth = BrowserAuth(
        rt.db,
        lifetime=timedelta(hours=settings.console_session_hours),
        idle=timedelta(minutes=settings.console_idle_minutes),
    )
    app.add_api_route("/docs", swagger_ui, include_in_schema=False)
    app.add_api_route("/redoc", redoc, include_in_schema=False)
    app.mount(docs_assets.PREFIX, StaticFiles(directory=docs_assets.DIRECTORY), name="docs-assets")
    # the gateway's hot route, in front of the router (inside the request id, logging,
    # metrics and tracing middleware below)
    app.add_middleware(ChatCompletionsFastPath)
    app.state.drain = Drain()  # graceful shutdown (api/drain.py; driven by `gasworks serve`)
    app.add_middleware(DrainGate, drain=app.state.drain)
    configure_tracing(app, settings, tracer_provider)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_request_bytes,
        access_log=settings.access_log,
    )
    return app
