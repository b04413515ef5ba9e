"""Errors a user can fix keep their message and get `extensions.code`; every other one is masked."""

from __future__ import annotations

import logging

from graphql.error import GraphQLError
from pymongo.errors import ConnectionFailure
from strawberry.extensions import MaskErrors

from gateway.bus import SubscriberTooSlow
from gateway.errors import GatewayError

log = logging.getLogger(__name__)


class GatewayErrors(MaskErrors):
    """MaskErrors gives every error to `anonymise_error` (its `should_mask_error` is left as
    "every error"), and the gateway's shaping is done there: one error in, one error out, for
    results, subscription events and request errors alike."""

    def __init__(self) -> None:
        super().__init__(error_message="Unexpected error.")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, SubscriberTooSlow):  # raised by the event stream: no path
            return too_slow(str(original))
        # Parse, validation, variables: about the request (they point into the document). An
        # error with neither a path nor a place in the document was raised by a subscription's
        # event source: unexpected, masked below like a resolver's.
        if original is None or (not error.path and error.nodes):
            return _with_code(error, error.message, "GRAPHQL_VALIDATION_FAILED")
        if isinstance(original, GatewayError):
            return _with_code(error, original.message, original.code)
        if isinstance(original, ConnectionFailure):
            return _with_code(error, "the store is unavailable, try again shortly",
                              "STORE_UNAVAILABLE")
        log.error("unexpected error in GraphQL %s", f"resolver {error.path}" if error.path
                  else "event source", exc_info=original)
        return _with_code(error, self.error_message, "INTERNAL_SERVER_ERROR")


def _with_code(error: GraphQLError, message: str, code: str) -> GraphQLError:
    return GraphQLError(
        message=message, nodes=error.nodes, source=error.source, positions=error.positions,
        path=error.path, original_error=None, extensions={**(error.extensions or {}), "code": code},
    )


def too_slow(message: str) -> GraphQLError:
    """What a subscriber cut off for falling behind is told."""
    return GraphQLError(message, extensions={"code": "SUBSCRIBER_TOO_SLOW"})
