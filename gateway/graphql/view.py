"""The `/graphql` endpoint: HTTP (POST and GET), GraphiQL, and websockets in both protocols."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.dataloader import DataLoader
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from gateway.auth import token_matches, token_of
from gateway.graphql.handlers import LegacyWSHandler, TransportWSHandler
from gateway.graphql.multiplex import Multiplexer
from gateway.service import Gateway


@dataclass
class Loaders:
    """Batch lookups, so a page of conversations costs a fixed number of queries.

    Not caching: a websocket lives long, and what a loader returned an hour ago may be stale.
    """

    channel: DataLoader
    message: DataLoader

    @classmethod
    def for_service(cls, gateway: Gateway) -> Loaders:
        return cls(channel=DataLoader(gateway.channels_by_ids, cache=False),
                   message=DataLoader(gateway.messages_by_ids, cache=False))


class GatewayGraphQL(GraphQL):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(self, schema, *, system_token: str, max_subscriptions: int,
                 multiplexer: Multiplexer | None = None) -> None:
        super().__init__(
            schema,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
            max_subscriptions_per_connection=max_subscriptions,
            keep_alive=True,
            keep_alive_interval=15,
        )
        self.system_token = system_token
        self.multiplexer = multiplexer  # None: every subscription runs on its own

    async def get_context(self, request: Request | WebSocket, response: Any) -> dict[str, Any]:
        state = request.app.state
        return {"request": request, "response": response, "gateway": state.gateway,
                "bus": state.bus, "loaders": Loaders.for_service(state.gateway)}

    async def on_ws_connect(self, context: dict[str, Any]) -> Any:
        """With SYSTEM_TOKEN set, a websocket presents it in connection_init or the upgrade."""
        if not self.system_token:
            return None
        params = context.get("connection_params") or {}
        presented = [str(value) for key, value in params.items()
                     if isinstance(key, str) and key.lower() == "authorization"]
        header = context["request"].headers.get("authorization")
        if header:
            presented.append(header)
        if any(token_matches(self.system_token, token_of(value)) for value in presented):
            return None
        reason = "the API token is not valid" if presented else \
            'connection_init must carry {"Authorization": "Bearer <token>"}'
        raise ConnectionRejectionError({"message": reason})
