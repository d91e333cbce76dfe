"""GraphQL request context: the caller, authenticated exactly as on REST."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from strawberry.fastapi import BaseContext

from gasworks.api.deps import get_context, get_runtime
from gasworks.runtime import Runtime
from gasworks.tenancy.context import TenantContext


class GqlContext(BaseContext):
    def __init__(self, ctx: TenantContext, runtime: Runtime) -> None:
        super().__init__()
        self.ctx = ctx
        self.runtime = runtime


async def get_gql_context(
    request: Request,
    ctx: Annotated[TenantContext, Depends(get_context)],
    runtime: Annotated[Runtime, Depends(get_runtime)],
) -> GqlContext:
    return GqlContext(ctx, runtime)
