"""GraphQL request context: the caller, authenticated exactly as on REST."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from strawberry.fastapi import BaseContext

from gasworks.api.auth import Authenticator
from gasworks.api.deps import get_authenticator, get_context, get_runtime
from gasworks.runtime import Runtime
from gasworks.tenancy.context import TenantContext


class GqlContext(BaseContext):
    def __init__(
        self, ctx: TenantContext, runtime: Runtime, authenticator: Authenticator | None = None
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.runtime = runtime
        self.authenticator = authenticator

    def forget_key(self, api_key_id: str) -> None:
        """After a revocation: drop the key from this process's auth cache at once."""
        if self.authenticator is not None:
            self.authenticator.forget(api_key_id)


async def get_gql_context(
    request: Request,
    ctx: Annotated[TenantContext, Depends(get_context)],
    runtime: Annotated[Runtime, Depends(get_runtime)],
    authenticator: Annotated[Authenticator, Depends(get_authenticator)],
) -> GqlContext:
    return GqlContext(ctx, runtime, authenticator)
