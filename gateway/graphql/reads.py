"""Which GraphQL requests read only the store, so that their answers may be cached."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache

from graphql import (
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    get_operation_ast,
    parse,
)

from gateway.changes import GRAPHQL_READS

# Root fields answered from collections the query cache follows (`gateway.changes`), and the
# operation's type name. Not among them: facebookPages (asks the Graph API) and webhooks (their
# delivery counts move on their own).
STORE_FIELDS = GRAPHQL_READS | {"__typename"}
MAX_QUERY_LENGTH = 10_000  # an inbox's queries are far shorter; longer ones are not cached


def store_reads(max_tokens: int, cache_size: int) -> Callable[[bytes], bool]:
    """A test of request bodies: True for a query operation whose root fields are all in
    STORE_FIELDS. Documents are parsed once each (the last `cache_size` kept)."""

    @lru_cache(maxsize=cache_size)
    def reads_only_the_store(query: str, operation_name: str | None) -> bool:
        operation = selected_operation(query, operation_name, max_tokens)
        if operation is None or operation.operation != OperationType.QUERY:
            return False
        return all(isinstance(selection, FieldNode) and selection.name.value in STORE_FIELDS
                   for selection in operation.selection_set.selections)

    def test(body: bytes) -> bool:
        try:
            request = json.loads(body)
        except (ValueError, RecursionError):
            return False
        if not isinstance(request, dict):
            return False
        query, name = request.get("query"), request.get("operationName")
        if not isinstance(query, str) or len(query) > MAX_QUERY_LENGTH:
            return False
        if name is not None and not isinstance(name, str):
            return False
        return reads_only_the_store(query, name)

    return test


def selected_operation(query: str, operation_name: str | None,
                       max_tokens: int) -> OperationDefinitionNode | None:
    """The operation a request runs; None when the document does not parse or names none."""
    try:
        document = parse(query, no_location=True, max_tokens=max_tokens)
    except (GraphQLError, TypeError):
        return None
    return get_operation_ast(document, operation_name)
