"""The schema: each domain contributes a Query and a Mutation class, merged here."""

from __future__ import annotations

import strawberry
from strawberry.extensions import QueryDepthLimiter
from strawberry.fastapi import GraphQLRouter
from strawberry.tools import merge_types

from gasworks.api.graphql.context import GqlContext, get_gql_context
from gasworks.api.graphql.errors import ErrorCodes
from gasworks.api.graphql.tenancy import TenancyMutation, TenancyQuery
from gasworks.api.graphql.workflows import WorkflowsMutation, WorkflowsQuery
from gasworks.settings import Settings

#: Each domain appends its Query / Mutation classes here.
QUERIES: list[type] = [TenancyQuery, WorkflowsQuery]
MUTATIONS: list[type] = [TenancyMutation, WorkflowsMutation]


def build_schema(max_depth: int) -> strawberry.Schema:
    query = merge_types("Query", tuple(QUERIES))
    mutation = merge_types("Mutation", tuple(MUTATIONS))
    return strawberry.Schema(
        query=query,
        mutation=mutation,
        extensions=[lambda: QueryDepthLimiter(max_depth=max_depth), ErrorCodes],
    )


def graphql_router(settings: Settings) -> GraphQLRouter[GqlContext, None]:
    return GraphQLRouter(
        build_schema(settings.graphql_max_depth),
        context_getter=get_gql_context,
        graphql_ide="graphiql",
    )
