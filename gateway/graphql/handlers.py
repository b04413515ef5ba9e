"""Strawberry's two websocket protocols, hardened, with subscriptions served from multiplexed
groups.

Only running an operation changes: connection_init, auth, ping, the per-connection limit and
`complete`/`stop` stay strawberry's. A document that is not one subscription (or any document,
with multiplexing off) runs exactly as strawberry runs it.

What a client sends is checked here, at the edge, before strawberry reads it: every frame must be
JSON text that is one of its protocol's messages with the fields that message needs (strawberry
reads `message["type"]`, `message["payload"]["query"]` and so on as they come, and a frame such as
`[]`, `null` or `{"id": "1"}` raised an uncaught error). A frame that is not is refused: the socket
is closed with 4400 and a short reason, and one log line says so. A legacy `graphql-ws` socket that
has not sent `connection_init` within the timeout is closed with 4408, as strawberry closes a
`graphql-transport-ws` one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, cast

from graphql import GraphQLError, GraphQLSyntaxError, OperationType, get_operation_ast, parse
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.websockets import WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import DataMessage, DataMessagePayload
from strawberry.types.execution import PreExecutionError

from gateway.errors import InvalidInput
from gateway.graphql.multiplex import Member, Multiplexer, encode, result_payload
from gateway.validation import load_json

log = logging.getLogger(__name__)

INIT_TIMEOUT_REASON = "Connection initialisation timeout"  # strawberry's words for the same close


@dataclass(frozen=True)
class Malformed:
    """A frame that is not JSON text (binary, not JSON, nested too deep), and why."""

    reason: str


class FrameAdapter(ASGIWebSocketAdapter):
    """Strawberry's websocket adapter, yielding every frame: one that is not JSON text comes as
    `Malformed` for the handler to refuse (strawberry's raises or skips it, by protocol)."""

    async def iter_json(self, *, ignore_parsing_errors: bool = False
                        ) -> AsyncGenerator[object, None]:
        # The frame's text is read in `_decoded`, so that this generator, suspended between
        # frames for as long as a socket lives, holds none of it.
        while self.ws.application_state == WebSocketState.CONNECTED:
            try:
                frame = _decoded(await self.ws.receive())
            except (WebSocketDisconnect, RuntimeError):  # gone, or closed meanwhile
                return
            if frame is _GONE:
                return
            yield frame


_GONE = object()  # the client went away


def _decoded(message: Mapping[str, Any]) -> object:
    """A websocket frame's JSON, `Malformed`, or `_GONE`."""
    if message["type"] == "websocket.disconnect":
        return _GONE
    text = message.get("text")
    if not isinstance(text, str):
        return Malformed("binary frames are not accepted: send JSON text")
    try:
        return load_json(text, "the message")
    except InvalidInput as exc:
        return Malformed(exc.message)


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class _Request(_Message):
    query: str
    variables: dict[str, Any] | None = None
    operationName: str | None = None
    extensions: dict[str, Any] | None = None


class _Init(_Message):
    type: Literal["connection_init"]
    payload: Any = None  # strawberry answers a payload that is not an object, as each protocol says


class _Ping(_Message):
    type: Literal["ping", "pong"]
    payload: dict[str, Any] | None = None


class _Subscribe(_Message):
    type: Literal["subscribe", "start"]
    id: str
    payload: _Request


class _Complete(_Message):
    type: Literal["complete", "stop"]
    id: str


class _Terminate(_Message):
    type: Literal["connection_terminate"]


TRANSPORT_MESSAGES: Mapping[str, type[_Message]] = {
    "connection_init": _Init, "ping": _Ping, "pong": _Ping, "subscribe": _Subscribe,
    "complete": _Complete}
LEGACY_MESSAGES: Mapping[str, type[_Message]] = {
    "connection_init": _Init, "start": _Subscribe, "stop": _Complete,
    "connection_terminate": _Terminate}
_WHAT_IS_WRONG = {"missing": "is required", "string_type": "must be a string",
                  "dict_type": "must be an object", "model_type": "must be an object"}


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return {str: "a string", list: "an array", type(None): "null"}.get(type(value), "an object")


def frame_problem(frame: object, messages: Mapping[str, type[_Message]]) -> str | None:
    """What is wrong with a frame for a protocol whose client messages are `messages`; None if
    nothing. The answer names types and fields, never what the frame holds."""
    if isinstance(frame, Malformed):
        return frame.reason
    if not isinstance(frame, dict):
        return f"a message must be a JSON object, not {_json_type(frame)}"
    kind = frame.get("type")
    model = messages.get(kind) if isinstance(kind, str) else None
    if model is None:
        known = ", ".join(messages)
        return (f"unknown message type, expected one of: {known}" if "type" in frame else
                f"a message needs a type, one of: {known}")
    try:
        model.model_validate(frame)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in error["loc"])
        return f"{kind} message: {where} {_WHAT_IS_WRONG.get(error['type'], error['msg'])}"
    return None


async def _close(websocket: Any, code: int, reason: str) -> None:
    """Close, unless the socket went away first."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await websocket.close(code=code, reason=reason[:120])  # a close reason holds 123 bytes


async def _refuse(websocket: Any, protocol: str, problem: str) -> None:
    log.info("websocket (%s) closed with 4400: %s", protocol, problem)
    await _close(websocket, 4400, problem)


async def _send_frames(websocket: Any, prefix: str, multiplexer: Multiplexer,
                       member: Member) -> PreExecutionError | None:
    """Send each payload wrapped in the protocol's envelope until the stream ends; stop at a
    request error. The member leaves its group however this ends.

    The payload is the group's text as is: only the envelope, which names the client's own
    operation id, is written per client.
    """
    try:
        while True:
            waiter = member.ready()
            if waiter is not None:
                await waiter
                continue
            item = member.take()
            if item is None or isinstance(item, PreExecutionError):
                return item
            try:
                await member.send(websocket.ws.send_text(prefix + item + "}"))
            except (WebSocketDisconnect, RuntimeError) as exc:  # the socket is gone or closing
                raise WebSocketDisconnected from exc
    finally:
        multiplexer.leave(member)


@lru_cache(maxsize=256)
def _operation(query: str, operation_name: str | None) -> GraphQLError | OperationType | None:
    """The type of the operation a document runs (None: it names none), or why the document does
    not parse. Strawberry's websocket handlers fail on such a document without telling the
    client (a bare `complete`, or nothing at all), so it is answered here as a request error.
    Each document is parsed once (the last 256 kept); parsing is bounded by the frame size."""
    try:
        document = parse(query)
    except GraphQLSyntaxError as error:
        return GraphQLError(error.message, source=error.source, positions=error.positions,
                            extensions={"code": "GRAPHQL_PARSE_FAILED"})
    operation = get_operation_ast(document, operation_name)
    return operation.operation if operation is not None else None


def _read(query: object, operation_name: object) -> GraphQLError | OperationType | None:
    """`_operation` of what a client sent; None for what strawberry refuses as it always has."""
    if isinstance(query, str) and isinstance(operation_name, str | None):
        return _operation(query, operation_name)
    return None


def _multiplexer(handler: Any, query: str, operation_name: str | None) -> Multiplexer | None:
    multiplexer: Multiplexer | None = getattr(handler.view, "multiplexer", None)
    if multiplexer is None or not isinstance(query, str) \
            or not isinstance(operation_name, str | None):
        return None  # what strawberry refuses, it refuses as it always has
    return multiplexer if multiplexer.is_subscription(query, operation_name) else None


class TransportWSHandler(BaseGraphQLTransportWSHandler):
    async def handle_message(self, message: Any) -> None:
        problem = frame_problem(message, TRANSPORT_MESSAGES)
        if problem is not None:
            await _refuse(self.websocket, "graphql-transport-ws", problem)
            return
        await super().handle_message(message)
        message.clear()  # strawberry's read loop holds it until the next frame: maybe for ever

    async def handle_invalid_message(self, error_message: str) -> None:
        await _refuse(self.websocket, "graphql-transport-ws", error_message)

    def on_request_accepted(self) -> None:
        """Strawberry's connection_init timer, let go once it ends (connection_init cancels it):
        kept, the ended task would hold its coroutine and cancellation for as long as the socket
        lives."""
        super().on_request_accepted()
        timer = self.connection_init_timeout_task
        assert timer is not None
        timer.add_done_callback(self._forget_timer)

    def _forget_timer(self, timer: asyncio.Task) -> None:
        if self.connection_init_timeout_task is timer:
            self.connection_init_timeout_task = None

    async def run_operation(self, operation: Operation) -> None:
        read = _read(operation.query, operation.operation_name)
        if isinstance(read, GraphQLError):
            await operation.send_initial_errors([read])
            return
        multiplexer = _multiplexer(self, operation.query, operation.operation_name)
        if multiplexer is None:
            return await super().run_operation(operation)
        prefix = '{"id":' + encode(operation.id) + ',"type":"next","payload":'
        try:
            member = multiplexer.join(operation.query, operation.variables,
                                      operation.operation_name,
                                      self.context)  # type: ignore[arg-type]
            error = await _send_frames(self.websocket, prefix, multiplexer, member)
            if error is not None:
                # As strawberry answers a request error. Strawberry closes the socket instead
                # for a document that does not parse or names no operation: neither comes here,
                # as only a document selecting one subscription is multiplexed.
                assert error.errors
                await operation.send_initial_errors(error.errors)
                return
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except WebSocketDisconnected:
            return


class LegacyWSHandler(BaseGraphQLWSHandler):
    initialised = False  # connection_init received
    _timer: asyncio.Task | None = None  # closes the socket unless connection_init comes in time

    async def handle(self) -> None:
        self._timer = asyncio.create_task(self._close_unless_initialised())
        try:
            await super().handle()
        finally:
            self._timer.cancel()

    async def _close_unless_initialised(self) -> None:
        await asyncio.sleep(self.view.connection_init_wait_timeout.total_seconds())
        if not self.initialised:
            await _close(self.websocket, 4408, INIT_TIMEOUT_REASON)

    async def handle_message(self, message: Any) -> None:
        problem = frame_problem(message, LEGACY_MESSAGES)
        if problem is not None:
            await _refuse(self.websocket, "graphql-ws", problem)
            return
        if message["type"] == "connection_init":
            if self.initialised:  # strawberry would start one more keep-alive task each time
                await _close(self.websocket, 4429, "Too many initialisation requests")
                return
            self.initialised = True
            if self._timer is not None:
                self._timer.cancel()  # not held for the rest of the timeout
        await super().handle_message(message)
        message.clear()  # strawberry's read loop holds it until the next frame: maybe for ever

    async def handle_async_results(self, operation_id: str, query: str,
                                   operation_name: str | None,
                                   variables: dict[str, object] | None) -> None:
        read = _read(query, operation_name)
        if isinstance(read, GraphQLError):
            await self.send_message({"type": "error", "id": operation_id,
                                     "payload": read.formatted})
            self.tasks.pop(operation_id, None)
            return
        if read in (OperationType.QUERY, OperationType.MUTATION):
            await self._execute(operation_id, query, operation_name, variables)
            return
        multiplexer = _multiplexer(self, query, operation_name)
        if multiplexer is None:
            return await super().handle_async_results(operation_id, query, operation_name,
                                                      variables)
        prefix = '{"type":"data","id":' + encode(operation_id) + ',"payload":'
        try:
            member = multiplexer.join(query, variables, operation_name,
                                      self.context)  # type: ignore[arg-type]
            error = await _send_frames(self.websocket, prefix, multiplexer, member)
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

    async def _execute(self, operation_id: str, query: str, operation_name: str | None,
                       variables: dict[str, object] | None) -> None:
        """A query or a mutation: one `data` message, then `complete`, as the legacy protocol
        (subscriptions-transport-ws) answers them; strawberry's handler only subscribes, and
        refused them with an unexpected error."""
        try:
            result = await self.schema.execute(
                query, variable_values=variables, context_value=self.context,
                root_value=self.root_value, operation_name=operation_name)
            await self.send_message(DataMessage(
                type="data", id=operation_id,
                payload=cast(DataMessagePayload, result_payload(result))))
            await self.send_message({"type": "complete", "id": operation_id})
        except asyncio.CancelledError:  # `stop`
            await self.send_message({"type": "complete", "id": operation_id})
        except WebSocketDisconnected:
            return
        finally:
            self.tasks.pop(operation_id, None)
