"""The GraphQL adapter: schema, resolvers and the `/graphql` endpoint."""

from __future__ import annotations

import strawberry
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)

from gateway.config import Settings
from gateway.graphql.errors import GatewayErrors
from gateway.graphql.schema import Mutation, Query, Subscription
from gateway.graphql.view import GatewayGraphQL


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or Settings()
    parser_cache = ParserCache(maxsize=settings.graphql_cache_size)
    validation_cache = ValidationCache(maxsize=settings.graphql_cache_size)
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        # Factories, so each operation gets fresh extensions; the caches are shared on purpose.
        extensions=[
            GatewayErrors,
            lambda: QueryDepthLimiter(max_depth=settings.graphql_max_depth),
            lambda: MaxTokensLimiter(max_token_count=settings.graphql_max_tokens),
            lambda: MaxAliasesLimiter(max_alias_count=settings.graphql_max_aliases),
            lambda: parser_cache,
            lambda: validation_cache,
        ],
    )


def graphql_app(settings: Settings) -> GatewayGraphQL:
    return GatewayGraphQL(build_schema(settings), system_token=settings.system_token,
                          max_subscriptions=settings.ws_max_subscriptions)


def sdl() -> str:
    """The schema in SDL, as kept in schema/schema.graphql."""
    return build_schema().as_str() + "\n"
