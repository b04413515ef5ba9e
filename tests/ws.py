"""A small GraphQL-over-websocket client for tests, speaking graphql-transport-ws or legacy graphql-ws."""

from __future__ import annotations

import json
import time
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
PROTOCOLS = (TRANSPORT_WS, LEGACY_WS)


class GraphQLSocket:
    def __init__(self, base_url: str, protocol: str, headers: dict[str, str] | None = None,
                 **options: Any) -> None:
        """`options` go to websockets' connect (e.g. `sock`, `max_queue`)."""
        self.protocol = protocol
        url = base_url.replace("http://", "ws://") + "/graphql"
        self._connection = connect(url, subprotocols=[protocol],
                                   additional_headers=headers or {}, open_timeout=10, **options)
        self.ws = self._connection.__enter__()
        assert self.ws.subprotocol == protocol

    def __enter__(self) -> GraphQLSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self._connection.__exit__(None, None, None)

    def send(self, message: dict[str, Any]) -> None:
        self.ws.send(json.dumps(message))

    def receive(self, timeout: float = 10) -> dict[str, Any]:
        """The next message that is not a keep-alive (answering pings as the protocol says)."""
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if message["type"] == "ping":
                self.send({"type": "pong"})
            elif message["type"] not in ("ka", "pong"):
                return message

    def init(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        self.send({"type": "connection_init", "payload": payload or {}})
        return self.receive()

    def subscribe(self, op_id: str, query: str, variables: dict[str, Any] | None = None) -> None:
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        self.send({"type": kind, "id": op_id,
                   "payload": {"query": query, "variables": variables or {}}})

    def next(self, op_id: str, timeout: float = 10) -> dict[str, Any]:
        """The next result for `op_id`: its payload (`data` and maybe `errors`)."""
        message = self.receive(timeout)
        assert message.get("id") == op_id, message
        assert message["type"] in ("next", "data", "error"), message
        return message["payload"] if message["type"] != "error" else {"errors": message["payload"]}

    def nothing_within(self, seconds: float) -> bool:
        try:
            message = self.receive(seconds)
        except TimeoutError:
            return True
        raise AssertionError(f"expected no message, got {message}")

    def closed_code(self, timeout: float = 10) -> int | None:
        try:
            while True:
                self.receive(timeout)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
