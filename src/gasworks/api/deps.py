"""FastAPI dependencies: the runtime, a transactional session, the caller's context."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from gasworks.api.auth import Authenticator, authenticate_request
from gasworks.runtime import Runtime
from gasworks.tenancy.context import TenantContext

# Plain lookups are ``async def`` on purpose: FastAPI runs sync dependencies in a worker
# thread, a hop that costs more than the lookup itself on every request.


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_authenticator(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.authenticator
    return auth


async def get_session(
    runtime: Annotated[Runtime, Depends(get_runtime)],
) -> AsyncIterator[AsyncSession]:
    async with runtime.db.session() as session:
        yield session


async def get_context(request: Request) -> TenantContext:
    # the authenticator straight from the app state, not as a sub-dependency: each
    # dependency costs ~10 µs of FastAPI's solving on every authenticated request
    return await authenticate_request(request.scope, request.headers.get("authorization"))


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
ContextDep = Annotated[TenantContext, Depends(get_context)]
