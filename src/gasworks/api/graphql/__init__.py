"""The GraphQL endpoint (Strawberry), sharing REST's authentication and services."""

from gasworks.api.graphql.schema import graphql_router

__all__ = ["graphql_router"]
