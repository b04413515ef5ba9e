"""The GraphQL adapter: schema, resolvers and the `/graphql` endpoint."""

from __future__ import annotations

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig

from gateway.config import Settings
from gateway.graphql.errors import GatewayErrors
from gateway.graphql.multiplex import Multiplexer
from gateway.graphql.schema import Mutation, Query, Subscription
from gateway.graphql.types import SCALARS
from gateway.graphql.view import GatewayGraphQL


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or Settings()
    # The limits' validation rules are made once. The validation cache is keyed on the rule
    # classes, and a limiter made per operation makes new ones: nothing was ever found in it.
    depth_rules = QueryDepthLimiter(max_depth=settings.graphql_max_depth).validation_rules
    alias_rules = MaxAliasesLimiter(max_alias_count=settings.graphql_max_aliases).validation_rules
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(scalar_map=SCALARS),  # times as REST writes them
        # Factories, so each operation gets fresh extensions (strawberry gives an extension the
        # operation it serves); the parser and validation caches are shared module-wide anyway.
        extensions=[
            GatewayErrors,
            lambda: AddValidationRules(depth_rules),
            lambda: MaxTokensLimiter(max_token_count=settings.graphql_max_tokens),
            lambda: AddValidationRules(alias_rules),
            lambda: ParserCache(maxsize=settings.graphql_cache_size),
            lambda: ValidationCache(maxsize=settings.graphql_cache_size),
        ],
    )


def graphql_app(settings: Settings) -> GatewayGraphQL:
    schema = build_schema(settings)
    multiplexer = Multiplexer(
        schema, queue_size=settings.subscription_queue_size,
        queue_bytes=int(settings.subscription_queue_mb * 2**20),
        max_tokens=settings.graphql_max_tokens, cache_size=settings.graphql_cache_size,
    ) if settings.subscription_multiplex else None
    return GatewayGraphQL(schema, system_token=settings.system_token,
                          max_subscriptions=settings.ws_max_subscriptions,
                          init_timeout_seconds=settings.ws_init_timeout_seconds,
                          max_tokens=settings.graphql_max_tokens,
                          cache_size=settings.graphql_cache_size,
                          allowed_origins=settings.allowed_origins,
                          multiplexer=multiplexer,
                          http_max_subscriptions=settings.http_max_subscriptions,
                          queue_size=settings.subscription_queue_size,
                          queue_bytes=int(settings.subscription_queue_mb * 2**20),
                          persisted_queries_bytes=int(settings.persisted_queries_mb * 2**20))


def sdl() -> str:
    """The schema in SDL, as kept in schema/schema.graphql."""
    return build_schema().as_str() + "\n"
