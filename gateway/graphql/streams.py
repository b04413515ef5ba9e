"""Subscriptions over HTTP: Apollo's multipart subscriptions and GraphQL over Server-Sent Events.

A POST (or GET) to /graphql asking for `Accept: multipart/mixed;subscriptionSpec="1.0"` (Apollo
Client's HTTP transport) or `Accept: text/event-stream` (graphql-sse, "distinct connections"
mode) runs its subscription for as long as the response is read: each result is one part
(`{"payload": {"data": …}}`) or one `next` event, a heartbeat (`{}`, or an SSE comment) goes every
few seconds while nothing else does, and the end of the stream is the closing boundary or a
`complete` event. Over SSE a query or a mutation is one `next` event, then `complete`.

These subscriptions are the websockets' own: the token is checked by `TokenAuth` before the
request gets here, depth, token and alias limits are the schema's, subscribers of the same document
share one execution through the `Multiplexer`, and each response reads from a `Member` queue,
bounded as a websocket's (a reader that falls behind is cut off with SUBSCRIBER_TOO_SLOW). A
response is one subscription (HTTP/1.1 carries one at a time); at most `max_streams` are open at
once per process, as each holds a descriptor as a websocket does, and the next is answered 503.
The subscription ends when the client goes away: the response watches for the disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from strawberry.schema import BaseSchema
from strawberry.types.execution import ExecutionResult, PreExecutionError

from gateway.graphql.multiplex import Member, Multiplexer, encode, payload_of

HEARTBEAT_SECONDS = 5.0  # Apollo's multipart protocol: a heartbeat at least every 5 s
BOUNDARY = "graphql"


@dataclass(frozen=True)
class Framing:
    """How one transport writes a stream: its headers, its opening, a result, a heartbeat, an
    error of the stream itself, and its end."""

    content_type: str
    opening: bytes
    before: bytes  # a part's JSON goes between these two
    after: bytes
    heartbeat: bytes
    end: bytes
    wrapped: bool  # a result goes as {"payload": result}, a stream's error beside it

    def frame(self, text: str) -> bytes:
        """A result (`text`: its JSON)."""
        if self.wrapped:
            text = '{"payload":' + text + "}"
        return self.before + text.encode() + self.after

    def fatal(self, message: str, code: str) -> bytes:
        """An error of the stream, not of a result: Apollo reads it as a transport error."""
        errors = [{"message": message, "extensions": {"code": code}}]
        body = {"payload": None, "errors": errors} if self.wrapped else {"errors": errors}
        return self.before + encode(body).encode() + self.after


_PART = b"\r\nContent-Type: application/json; charset=utf-8\r\n\r\n"
MULTIPART = Framing(
    content_type=f'multipart/mixed;boundary="{BOUNDARY}";subscriptionSpec=1.0',
    opening=f"--{BOUNDARY}".encode(),
    before=_PART, after=f"\r\n--{BOUNDARY}".encode(),
    heartbeat=_PART + f"{{}}\r\n--{BOUNDARY}".encode(),
    end=b"--\r\n", wrapped=True,
)
SSE = Framing(
    content_type="text/event-stream",
    opening=b": stream open\n\n",
    before=b"event: next\ndata: ", after=b"\n\n",
    heartbeat=b": \n\n",
    end=b"event: complete\ndata:\n\n", wrapped=False,
)
FRAMINGS = {"multipart-subscription": MULTIPART, "sse": SSE}


def error_text(error: PreExecutionError) -> str:
    """A request error (the document does not validate, a limit): `errors` without `data`."""
    return encode({"errors": [item.formatted for item in error.errors or ()]})


class HTTPSubscription:
    """One operation streamed over HTTP: joined when its response starts (so that nothing is
    joined for a response never sent), left when it ends."""

    __slots__ = ("_join", "_leave", "member")

    def __init__(self, join: Callable[[], Member], leave: Callable[[Member], None]) -> None:
        self._join = join
        self._leave = leave
        self.member: Member | None = None

    def open(self) -> Member:
        if self.member is None:
            self.member = self._join()
        return self.member

    def close(self) -> None:
        if self.member is not None:
            self._leave(self.member)


def multiplexed(multiplexer: Multiplexer, query: str, variables: dict[str, Any] | None,
                operation_name: str | None, context: dict[str, Any]) -> HTTPSubscription:
    """A member of the group running this subscription for every client of it."""
    return HTTPSubscription(
        lambda: multiplexer.join(query, variables, operation_name, context), multiplexer.leave)


def running_alone(schema: BaseSchema, query: str, variables: dict[str, Any] | None,
                  operation_name: str | None, context: dict[str, Any], *, queue_size: int,
                  queue_bytes: int) -> HTTPSubscription:
    """A subscription run for this client alone (SUBSCRIPTION_MULTIPLEX off), through a queue
    bounded as a group member's."""
    tasks: list[asyncio.Task] = []

    def join() -> Member:
        member = Member(queue_size, queue_bytes)
        subscribing = functools.partial(schema.subscribe, query, variable_values=variables,
                                        context_value=context, operation_name=operation_name)
        tasks.append(asyncio.create_task(_pump(subscribing, member), name="http-subscription"))
        return member

    def leave(member: Member) -> None:
        for task in tasks:
            task.cancel()

    return HTTPSubscription(join, leave)


def one_result(result: ExecutionResult) -> HTTPSubscription:
    """A query or a mutation asked for as a stream: its one result, then the end."""
    def join() -> Member:
        member = Member(2)
        member.offer(error_text(result) if isinstance(result, PreExecutionError)
                     else payload_of(result))
        member.offer(None)
        return member

    return HTTPSubscription(join, lambda member: None)


async def _pump(subscribing: Callable[[], Awaitable[Any]], member: Member) -> None:
    """The results of a subscription into `member`, until it ends or the member is cut off."""
    try:
        stream = await subscribing()
        async with contextlib.aclosing(stream):
            async for result in stream:
                if isinstance(result, PreExecutionError):
                    member.offer(result)
                    return
                member.offer(payload_of(result))
                if member.overflowed:
                    return
    finally:
        member.offer(None)


class Streaming(Exception):  # not an error: the answer, carried past strawberry's run
    """Raised by the view's `execute_operation` with a stream's response, for the view's `_http`
    to send: strawberry's `run` streams only what it executes and encodes itself, per client."""

    def __init__(self, response: StreamResponse) -> None:
        super().__init__("a stream")
        self.response = response


class StreamCount:
    """The HTTP streams open in this process, up to `cap`."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open = 0


class StreamResponse(Response):
    """An ASGI response streaming an `HTTPSubscription` in a transport's framing (its own
    `__init__`, as Starlette's StreamingResponse has)."""

    def __init__(self, subscription: HTTPSubscription, framing: Framing,
                 count: StreamCount) -> None:
        self.subscription = subscription
        self.framing = framing
        self.count = count
        self.heartbeat_seconds = HEARTBEAT_SECONDS
        self.started = False  # the headers went out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.count.open >= self.count.cap:
            await _too_many(send, self.count.cap)
            return
        self.count.open += 1
        sending = asyncio.ensure_future(self._stream(send))
        gone = asyncio.ensure_future(_disconnect(receive))
        cut = False
        try:
            await asyncio.wait((sending, gone), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # uvicorn gives up on responses still open SHUTDOWN_GRACEFUL_SECONDS after SIGTERM
            # (it has no way to tell them sooner): this one ends whole, saying why, so that the
            # client subscribes again (elsewhere, or here once the gateway is back).
            if not self.started or gone.done():
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            cut = True
        finally:
            self.count.open -= 1
            gone.cancel()
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sending  # it leaves the group, whoever ended first; its error goes on
        if cut:
            body = self.framing.fatal("the gateway is shutting down: subscribe again",
                                      "SHUTTING_DOWN") + self.framing.end
            with contextlib.suppress(OSError, RuntimeError):  # the client may be gone meanwhile
                await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _stream(self, send: Send) -> None:
        framing = self.framing
        headers = [(b"content-type", framing.content_type.encode()),
                   (b"cache-control", b"no-cache, no-transform"),
                   (b"x-accel-buffering", b"no")]  # nginx: pass each part on at once
        try:
            member = self.subscription.open()
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            self.started = True
            await _body(send, framing.opening + framing.heartbeat)
            while True:
                waiter = member.ready()
                if waiter is not None:
                    done, _ = await asyncio.wait((waiter,), timeout=self.heartbeat_seconds)
                    if not done:
                        await member.send(_body(send, framing.heartbeat))
                    continue
                item = member.take()
                if item is None:
                    break
                text = item if isinstance(item, str) else error_text(item)
                await member.send(_body(send, framing.frame(text)))
                if not isinstance(item, str):
                    break
            await send({"type": "http.response.body", "body": framing.end, "more_body": False})
        finally:
            self.subscription.close()


def _body(send: Send, data: bytes) -> Awaitable[None]:
    return send({"type": "http.response.body", "body": data, "more_body": True})


async def _disconnect(receive: Receive) -> None:
    """Returns once the client has gone (the request's body was read before the stream began)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _too_many(send: Send, cap: int) -> None:
    message = f"too many subscriptions over HTTP (at most {cap}); try again later"
    body = json.dumps({"message": message, "errors": [
        {"message": message, "extensions": {"code": "TOO_MANY_SUBSCRIPTIONS"}}]}).encode()
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"5")]})
    await send({"type": "http.response.body", "body": body})
