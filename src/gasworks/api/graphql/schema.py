"""The schema: each domain contributes a Query and a Mutation class, merged here."""

from __future__ import annotations

import json

import strawberry
from fastapi import Request
from fastapi.responses import HTMLResponse
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.tools import merge_types

from gasworks.api import docs_assets
from gasworks.api.browser_auth import BrowserAuth
from gasworks.api.graphql.context import get_gql_context
from gasworks.api.graphql.csrf import CookieCsrf
from gasworks.api.graphql.documents import DocumentsMutation, DocumentsQuery
from gasworks.api.graphql.errors import DocumentLimits, ErrorCodes
from gasworks.api.graphql.guardrails import GuardrailsMutation, GuardrailsQuery
from gasworks.api.graphql.models import ModelsMutation, ModelsQuery
from gasworks.api.graphql.prompts import PromptsMutation, PromptsQuery
from gasworks.api.graphql.search import SearchQuery
from gasworks.api.graphql.tenancy import TenancyMutation, TenancyQuery
from gasworks.api.graphql.view import GuardedGraphQLRouter
from gasworks.api.graphql.workflows import WorkflowsMutation, WorkflowsQuery
from gasworks.api.routing import GuardedRoute
from gasworks.settings import Settings

#: Each domain appends its Query / Mutation classes here.
QUERIES: list[type] = [
    TenancyQuery,
    ModelsQuery,
    PromptsQuery,
    GuardrailsQuery,
    WorkflowsQuery,
    SearchQuery,
    DocumentsQuery,
]
MUTATIONS: list[type] = [
    TenancyMutation,
    ModelsMutation,
    PromptsMutation,
    GuardrailsMutation,
    WorkflowsMutation,
    DocumentsMutation,
]

#: Bounds on one document. The depth limit does not count introspection fields (GraphiQL's
#: own schema query nests deeper than any real query should), so the token and alias bounds
#: are what keep a hostile introspection query cheap.
MAX_TOKENS = 5000
MAX_ALIASES = 30


def build_schema(max_depth: int) -> strawberry.Schema:
    query = merge_types("Query", tuple(QUERIES))
    mutation = merge_types("Mutation", tuple(MUTATIONS))
    return strawberry.Schema(
        query=query,
        mutation=mutation,
        extensions=[
            DocumentLimits,
            lambda: QueryDepthLimiter(max_depth=max_depth),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
            CookieCsrf,
            ErrorCodes,
        ],
    )


class BrowserGraphQLRouter(GuardedGraphQLRouter):
    """GraphiQL for a signed-in browser: the page sends the session's CSRF token with every
    request (the cookie authenticates; the token lets mutations through). Its scripts and
    styles come from the app (``docs_assets``), never from a CDN."""

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        html = docs_assets.local_graphiql(self.graphql_ide_html)
        browser: BrowserAuth | None = getattr(request.app.state, "browser_auth", None)
        found = await browser.resume(request) if browser is not None else None
        if found is not None:
            headers = json.dumps({"X-CSRF-Token": found.csrf_token})
            html = html.replace("const defaultHeaders = {};", f"const defaultHeaders = {headers};")
        return docs_assets.page(html)


def graphql_router(settings: Settings) -> GuardedGraphQLRouter:
    return BrowserGraphQLRouter(
        build_schema(settings.graphql_max_depth),
        context_getter=get_gql_context,
        graphql_ide="graphiql",
        route_class=GuardedRoute,
        # document uploads (the GraphQL multipart request spec). Strawberry leaves them off
        # by default against cross-site form posts riding on a cookie: here a cookie-signed-in
        # mutation (uploadDocuments is one) needs the X-CSRF-Token header (CookieCsrf), which
        # a cross-site form cannot send; API keys come in the Authorization header.
        multipart_uploads_enabled=True,
    )
