"""FastAPI dependencies: the runtime and the caller's context (no route opens a session of its
own: the services do)."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends, Request

from gasworks.api.auth import authenticate_request
from gasworks.api.browser_auth import CSRF_HEADER, SESSION_COOKIE, BrowserAuth, same_origin
from gasworks.runtime import Runtime
from gasworks.tenancy.context import TenantContext
from gasworks.tenancy.sessions import csrf_matches

# Plain lookups are ``async def`` on purpose: FastAPI runs sync dependencies in a worker
# thread, a hop that costs more than the lookup itself on every request.


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_context(request: Request) -> TenantContext:
    # the authenticator straight from the app state, not as a sub-dependency: each
    # dependency costs ~10 µs of FastAPI's solving on every authenticated request
    header = request.headers.get("authorization")
    if header is None and SESSION_COOKIE in request.cookies:
        # a signed-in browser (the console's session cookie); never on an API key's path
        ctx = await _cookie_context(request)
        structlog.contextvars.bind_contextvars(tenantId=ctx.tenant_id)
        request.state.ctx = ctx
        return ctx
    return await authenticate_request(request.scope, header)


async def _cookie_context(request: Request) -> TenantContext:
    """A signed-in browser (no Authorization header): the session cookie, with the CSRF
    check on unsafe methods. GraphQL checks CSRF per operation (only mutations need it)."""
    browser: BrowserAuth = request.app.state.browser_auth
    graphql = request.url.path.startswith("/graphql")
    found = await browser.require(request, csrf=False if graphql else None)
    if graphql:
        presented = request.headers.get(CSRF_HEADER)
        request.state.csrf_ok = same_origin(request) and csrf_matches(found.csrf_token, presented)
    return found.ctx


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ContextDep = Annotated[TenantContext, Depends(get_context)]
