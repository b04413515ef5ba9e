"""Strawberry's two websocket protocols, with subscriptions served from multiplexed groups.

Only running an operation changes: connection_init, auth, ping, the per-connection limit and
`complete`/`stop` stay strawberry's. A document that is not one subscription (or any document,
with multiplexing off) runs exactly as strawberry runs it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.websockets import WebSocketDisconnect
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types.execution import PreExecutionError

from gateway.graphql.multiplex import Member, Multiplexer, encode


async def _send_frames(websocket: Any, prefix: str, member: Member) -> PreExecutionError | None:
    """Send each payload wrapped in the protocol's envelope; stop at a request error.

    The payload is the group's text as is: only the envelope, which names the client's own
    operation id, is written per client.
    """
    async for item in member:
        if isinstance(item, PreExecutionError):
            return item
        try:
            await websocket.ws.send_text(prefix + item + "}")
        except (WebSocketDisconnect, RuntimeError) as exc:  # the socket is gone or closing
            raise WebSocketDisconnected from exc
    return None


def _multiplexer(handler: Any, query: str, operation_name: str | None) -> Multiplexer | None:
    multiplexer: Multiplexer | None = getattr(handler.view, "multiplexer", None)
    if multiplexer is None or not isinstance(query, str) \
            or not isinstance(operation_name, str | None):
        return None  # what strawberry refuses, it refuses as it always has
    return multiplexer if multiplexer.is_subscription(query, operation_name) else None


class TransportWSHandler(BaseGraphQLTransportWSHandler):
    async def run_operation(self, operation: Operation) -> None:
        multiplexer = _multiplexer(self, operation.query, operation.operation_name)
        if multiplexer is None:
            return await super().run_operation(operation)
        prefix = '{"id":' + encode(operation.id) + ',"type":"next","payload":'
        try:
            async with multiplexer.join(operation.query, operation.variables,
                                        operation.operation_name, self.context) as member:
                error = await _send_frames(self.websocket, prefix, member)
            if error is not None:
                await self._handle_pre_execution_error(operation, error)
                return
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except (_OperationStreamClosed, WebSocketDisconnected):
            return


class LegacyWSHandler(BaseGraphQLWSHandler):
    async def handle_async_results(self, operation_id: str, query: str,
                                   operation_name: str | None,
                                   variables: dict[str, object] | None) -> None:
        multiplexer = _multiplexer(self, query, operation_name)
        if multiplexer is None:
            return await super().handle_async_results(operation_id, query, operation_name,
                                                      variables)
        prefix = '{"type":"data","id":' + encode(operation_id) + ',"payload":'
        try:
            async with multiplexer.join(query, variables, operation_name,
                                        self.context) as member:
                error = await _send_frames(self.websocket, prefix, member)
            if error is not None:
                assert error.errors
                await self.send_message({"type": "error", "id": operation_id,
                                         "payload": error.errors[0].formatted})
                return
            await self.send_message({"type": "complete", "id": operation_id})
        except asyncio.CancelledError:  # `stop`, as strawberry answers it
            await self.send_message({"type": "complete", "id": operation_id})
        except WebSocketDisconnected:
            return
        finally:
            self.tasks.pop(operation_id, None)
