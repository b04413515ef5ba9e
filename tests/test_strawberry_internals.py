"""What the gateway leans on in strawberry beyond its documented API, checked against the
installed version, so that an upgrade that moves any of it fails here, by name, rather than
quietly dropping a hardening.

The gateway imports no private strawberry name. It does override hooks strawberry's docs do
not describe (the websocket handlers' and the view's methods, `MaskErrors.anonymise_error`):
an override of a hook that was renamed is never called, and nothing else would notice.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import textwrap
from collections.abc import AsyncGenerator, Callable
from importlib.metadata import version
from pathlib import Path
from typing import get_origin

import pytest
import strawberry
from graphql import GraphQLError
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.extensions import MaskErrors
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types.execution import PreExecutionError
from websockets.exceptions import ConnectionClosed

import gateway
from gateway.bus import SubscriberTooSlow
from gateway.errors import NotFound
from gateway.graphql.errors import GatewayErrors
from gateway.graphql.handlers import FrameAdapter, LegacyWSHandler, TransportWSHandler
from gateway.graphql.view import GatewayGraphQL
from tests.ws import PROTOCOLS, TRANSPORT_WS, GraphQLSocket

STRAWBERRY = f"strawberry-graphql {version('strawberry-graphql')}"

# Each gateway class that extends strawberry's, and the names in it that are the gateway's own
# (every other name it defines overrides one of strawberry's).
EXTENDED = {
    GatewayGraphQL: (GraphQL, {"subscription_over_http"}),
    TransportWSHandler: (BaseGraphQLTransportWSHandler, set()),
    LegacyWSHandler: (BaseGraphQLWSHandler, {"initialised"}),
    FrameAdapter: (ASGIWebSocketAdapter, set()),
    GatewayErrors: (MaskErrors, set()),
}


def _defined(cls: type) -> list[str]:
    """The names a class body defines, constructors and dunders aside (ours differ on purpose)."""
    return [name for name in vars(cls) if not name.startswith("__") and name != "_abc_impl"]


def _parameters(function: Callable[..., object]) -> list[tuple[str, object]]:
    return [(p.name, p.kind) for p in inspect.signature(function).parameters.values()]


@pytest.mark.parametrize("ours", list(EXTENDED), ids=lambda cls: cls.__name__)
def test_every_override_still_overrides_a_strawberry_hook(ours: type) -> None:
    base, own = EXTENDED[ours]
    for name in _defined(ours):
        where = f"{ours.__name__}.{name} (over {base.__module__}.{base.__name__}, {STRAWBERRY})"
        if name in own or name.startswith("_"):
            assert not hasattr(base, name), \
                f"{where}: strawberry now has a {name} of its own, which the gateway's shadows"
            continue
        assert hasattr(base, name), \
            f"{where}: strawberry no longer has {name}; the override is never called"
        ours_value, base_value = vars(ours)[name], getattr(base, name)
        if inspect.isfunction(ours_value):
            assert _parameters(ours_value) == _parameters(base_value), \
                f"{where}: strawberry's parameters changed: {inspect.signature(base_value)}"
        elif isinstance(ours_value, type):
            base_class = get_origin(base_value) or base_value  # a generic alias names its class
            assert isinstance(base_class, type) and issubclass(ours_value, base_class), \
                f"{where}: strawberry's {name} is now {base_value!r}"


def _taken_from_strawberry(node: ast.ImportFrom | ast.Import) -> list[tuple[str, str]]:
    """(module, name) for each name an import takes from strawberry."""
    if isinstance(node, ast.ImportFrom):
        module = node.module or ""
        return [(module, alias.name) for alias in node.names] \
            if module.split(".")[0] == "strawberry" else []
    return [(alias.name, "") for alias in node.names if alias.name.split(".")[0] == "strawberry"]


def test_no_private_strawberry_name_is_imported() -> None:
    private = []
    for path in sorted(Path(gateway.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for module, name in _taken_from_strawberry(node):
                parts = [*module.split("."), name]
                if any(part.startswith("_") for part in parts) or parts[1:2] == ["utils"]:
                    private.append(f"{path.name}:{node.lineno} {module} {name}".rstrip())
    assert not private, f"private strawberry names imported ({STRAWBERRY}): {private}"


@pytest.mark.parametrize("ours", list(EXTENDED), ids=lambda cls: cls.__name__)
def test_no_private_strawberry_member_is_called(ours: type) -> None:
    """`self._x` and `super()._x` in a subclass name only what the gateway's class defines."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(ours)))
    own = set(_defined(ours)) | {
        target.attr for node in ast.walk(tree) if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Attribute)}
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
            and node.attr.startswith("_") and not node.attr.startswith("__")
            and (isinstance(node.value, ast.Name) and node.value.id == "self"
                 or isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
                 and node.value.func.id == "super")}
    assert used <= own, f"{ours.__name__} uses strawberry's private {sorted(used - own)} " \
                        f"({STRAWBERRY})"


# A schema whose resolvers fail in each way the gateway's errors are shaped.
@strawberry.type
class Tick:
    n: int

    @strawberry.field
    def broken(self) -> str | None:
        raise RuntimeError("a secret detail")


@strawberry.type
class TinyQuery:
    @strawberry.field
    def missing(self) -> str | None:
        raise NotFound("conversation nope not found")

    @strawberry.field
    def broken(self) -> str | None:
        raise RuntimeError("a secret detail")


@strawberry.type
class TinySubscription:
    @strawberry.subscription
    async def ticks(self) -> AsyncGenerator[Tick, None]:
        yield Tick(n=1)
        raise SubscriberTooSlow("subscription closed")

    @strawberry.subscription
    async def failing(self) -> AsyncGenerator[Tick, None]:
        yield Tick(n=1)
        raise RuntimeError("a secret detail of the event source")


def _shaped(errors: list[GraphQLError]) -> list[tuple[str, str | None]]:
    return sorted((error.message, (error.extensions or {}).get("code")) for error in errors)


def test_masking_passes_every_error_through_the_gateways_shape() -> None:
    """MaskErrors gives each error to `anonymise_error` (the hook GatewayErrors overrides):
    resolver errors, request errors, and a subscription's events and request errors alike."""
    schema = strawberry.Schema(query=TinyQuery, subscription=TinySubscription,
                               extensions=[GatewayErrors])
    hint = f"MaskErrors no longer calls anonymise_error for every error ({STRAWBERRY})"

    async def run() -> None:
        result = await schema.execute("{ missing broken }")
        assert _shaped(result.errors or []) == sorted([
            ("Unexpected error.", "INTERNAL_SERVER_ERROR"),
            ("conversation nope not found", "NOT_FOUND")]), hint
        result = await schema.execute("{ nothingHere }")
        assert [code for _, code in _shaped(result.errors or [])] == \
            ["GRAPHQL_VALIDATION_FAILED"], hint

        stream = await schema.subscribe("subscription { ticks { n broken } }")
        results = [item async for item in stream]
        assert [result.data for result in results] == [{"ticks": {"n": 1, "broken": None}}, None]
        assert [_shaped(result.errors or []) for result in results] == [
            [("Unexpected error.", "INTERNAL_SERVER_ERROR")],
            [("subscription closed", "SUBSCRIBER_TOO_SLOW")]], hint

        # An event source that fails (not a resolver: the error has no path) is masked too.
        stream = await schema.subscribe("subscription { failing { n } }")
        results = [item async for item in stream]
        assert [_shaped(result.errors or []) for result in results] == [
            [], [("Unexpected error.", "INTERNAL_SERVER_ERROR")]], hint

        stream = await schema.subscribe("subscription { ticks(nope: 1) { n } }")
        results = [item async for item in stream]
        assert len(results) == 1 and isinstance(results[0], PreExecutionError)
        assert [code for _, code in _shaped(results[0].errors or [])] == \
            ["GRAPHQL_VALIDATION_FAILED"], hint

    asyncio.run(run())


# Subscriptions strawberry refuses before running them: the multiplexed path answers those it
# takes itself, and must answer as strawberry does when each subscriber runs its own.
REFUSED = {
    "unknown argument": ("subscription { messageCreated(nope: 1) { id } }", None, None),
    "unknown field": ("subscription { messageCreated { nothingHere } }", None, None),
    "bad variable": ("subscription ($c: ID) { messageCreated(conversationId: $c) { id } }",
                     {"c": {"not": "an id"}}, None),
    "missing variable": ("subscription ($c: ID!) { messageCreated(conversationId: $c) { id } }",
                         {}, None),
    "unknown operation": ("subscription A { messageCreated { id } }", None, "B"),
}


def _answers(url: str, protocol: str) -> dict[str, object]:
    """What each refused subscription gets first: a message, or the socket's close code."""
    answers: dict[str, object] = {}
    start = "subscribe" if protocol == TRANSPORT_WS else "start"
    for case, (query, variables, name) in REFUSED.items():
        with GraphQLSocket(url, protocol) as ws:
            assert ws.init()["type"] == "connection_ack"
            ws.send({"type": start, "id": "1", "payload": {
                "query": query, "variables": variables, "operationName": name}})
            try:
                answers[case] = ws.receive(timeout=5)
            except ConnectionClosed as closed:
                answers[case] = ("closed", closed.rcvd.code if closed.rcvd else None)
    return answers


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_refused_subscription_is_answered_alike_multiplexed_or_not(start_gateway, protocol):
    multiplexed = _answers(start_gateway(SUBSCRIPTION_MULTIPLEX="1").url, protocol)
    alone = _answers(start_gateway(SUBSCRIPTION_MULTIPLEX="0").url, protocol)
    assert multiplexed == alone
    assert all(isinstance(answer, dict) and answer["type"] == "error"
               for answer in multiplexed.values()), multiplexed
