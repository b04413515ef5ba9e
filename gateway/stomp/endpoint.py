"""`/ws.communication`: Airy's realtime endpoint, STOMP 1.0, 1.1 and 1.2 over a websocket.

A client (Airy's, which wraps @stomp/stompjs) opens the websocket with a `v12.stomp`, `v11.stomp`
or `v10.stomp` subprotocol, sends CONNECT (or STOMP), SUBSCRIBEs to `/events` and is sent every
event as a MESSAGE (`gateway.stomp.events`). The server is a broker of one read-only destination:
SEND and transactions are refused, ACK and NACK are taken and change nothing (events are not
redelivered). Whatever goes wrong is told in an ERROR frame whose `message` header says what,
and the socket is then closed, as the spec says, with a code that says why:

- 4400: a frame that is malformed, or not allowed where it comes;
- 4401: SYSTEM_TOKEN is set and no valid token was presented (the `message` holds `401`);
- 4408: no CONNECT within WS_INIT_TIMEOUT_SECONDS, or no frame nor heart-beat within twice the
  agreed interval;
- 1013: the client reads its events too slowly (as GraphQL subscribers are cut off).

With SYSTEM_TOKEN set, the token may come on the upgrade (`Authorization` header, or the
`airy_auth_token` cookie: Airy's browser client), or in CONNECT's `Authorization` or `passcode`
header. Frames are at most WS_MAX_MESSAGE_BYTES (also what the server takes in one websocket
message), subscriptions per connection at most WS_MAX_SUBSCRIPTIONS, and open websockets at most
WS_MAX_CONNECTIONS (`gateway.websockets`, for every websocket of the process).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from dataclasses import dataclass

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.auth import authorised, presented_tokens, token_of
from gateway.bus import SubscriberTooSlow
from gateway.stomp.events import Feed, Listener
from gateway.stomp.frames import VERSIONS, Frame, FrameError, Parser, encode

log = logging.getLogger(__name__)

SUBPROTOCOLS = {"v12.stomp": "1.2", "v11.stomp": "1.1", "v10.stomp": "1.0"}
DESTINATION = "/events"
ACK_MODES = ("auto", "client", "client-individual")
# What the server offers in CONNECTED's heart-beat (ms): it can send as often as every second, and
# asks a client that sends heart-beats for one at least that often.
SERVER_HEART_BEAT = (1000, 1000)
BAD_FRAME, UNAUTHORISED, TIMEOUT, TOO_SLOW, NORMAL = 4400, 4401, 4408, 1013, 1000
ERROR_SEND_SECONDS = 2.0  # how long an ERROR frame may wait for a client that does not read


class Refused(Exception):
    """The session ends with an ERROR frame: `message` (its header), then a close."""

    def __init__(self, message: str, code: int = BAD_FRAME,
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.headers = headers


@dataclass
class Subscribed:
    id: str | None  # None: a STOMP 1.0 SUBSCRIBE without one (MESSAGEs then name none)
    ack: str


def heart_beats(header: str | None) -> tuple[int, int]:
    """CONNECT's `heart-beat: cx,cy` as (ms the client sends at, ms it wants to receive at)."""
    if header is None:
        return 0, 0
    parts = header.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() and len(p.strip()) <= 9 for p in parts):
        raise Refused("heart-beat must be two numbers of milliseconds, such as 10000,10000")
    return int(parts[0]), int(parts[1])


def chosen_version(header: str | None) -> str:
    """The highest version both speak; a CONNECT without accept-version speaks 1.0."""
    offered = {v.strip() for v in (header or "1.0").split(",")}
    common = [version for version in VERSIONS if version in offered]
    if not common:
        raise Refused("this server speaks STOMP 1.0, 1.1 and 1.2",
                      headers=(("version", ",".join(VERSIONS)),))
    return common[-1]


class StompEndpoint:
    """The ASGI app of `/ws.communication`."""

    def __init__(self, feed: Feed, *, system_token: str, max_frame_bytes: int,
                 connect_timeout_seconds: float, max_subscriptions: int, queue_size: int,
                 queue_bytes: int) -> None:
        self.feed = feed
        self.system_token = system_token
        self.max_frame_bytes = max_frame_bytes
        self.connect_timeout_seconds = connect_timeout_seconds
        self.max_subscriptions = max_subscriptions
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await Session(self, WebSocket(scope, receive, send)).run()


class Session:
    """One websocket: its version, subscriptions and tasks."""

    def __init__(self, endpoint: StompEndpoint, websocket: WebSocket) -> None:
        self.endpoint = endpoint
        self.websocket = websocket
        self.parser = Parser(endpoint.max_frame_bytes)
        self.version: str | None = None  # agreed at CONNECT
        self.receive_ms = 0  # the client's heart-beat interval, 0: none
        self.subscriptions: dict[str | None, Subscribed] = {}
        self.listener: Listener | None = None
        self.tasks: list[asyncio.Task] = []
        self.lock = asyncio.Lock()  # one frame written at a time, whole
        self.sent_at = 0.0  # when a frame or heart-beat was last written
        self.name = uuid.uuid4().hex[:12]
        self.ids = itertools.count(1)
        self.closed = False

    async def run(self) -> None:
        offered = self.websocket.scope.get("subprotocols") or []
        subprotocol = next((name for name in SUBPROTOCOLS if name in offered), None)
        await self.websocket.accept(subprotocol=subprotocol)
        try:
            await self._read()
        except Refused as refusal:
            log.info("STOMP session closed with %d: %s", refusal.code, refusal.message)
            await self._error(refusal.message, refusal.code, refusal.headers)
        except WebSocketDisconnect:
            pass
        finally:
            self.closed = True
            if self.listener is not None:
                self.endpoint.feed.leave(self.listener)
            for task in self.tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*self.tasks, return_exceptions=True)

    # --- reading ------------------------------------------------------------------------------

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.endpoint.connect_timeout_seconds
        while True:
            if self.version is None:
                wait: float | None = max(deadline - loop.time(), 0.0)
            else:
                wait = 2 * self.receive_ms / 1000 if self.receive_ms else None
            try:
                message = await asyncio.wait_for(self.websocket.receive(), wait)
            except TimeoutError:
                raise Refused("no CONNECT frame within "
                              f"{self.endpoint.connect_timeout_seconds:g} s" if self.version is None
                              else f"no frame nor heart-beat for {wait:g} s", TIMEOUT) from None
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                data = (message.get("text") or "").encode()
            try:
                frames = self.parser.feed(data)
            except FrameError as exc:
                raise Refused(str(exc)) from None
            for frame in frames:
                if frame is not None and not await self._handle(frame):
                    return

    async def _handle(self, frame: Frame) -> bool:
        """Act on one frame; False once the session is over."""
        receipt = frame.get("receipt")
        try:
            going_on = await self._act(frame)
        except Refused as refusal:
            if receipt is not None:
                refusal.headers = (*refusal.headers, ("receipt-id", receipt))
            raise
        if receipt is not None and frame.command not in ("CONNECT", "STOMP"):
            await self._send(Frame("RECEIPT", (("receipt-id", receipt),)))
        if not going_on:
            await self._close(NORMAL, "DISCONNECT")
        return going_on

    async def _act(self, frame: Frame) -> bool:
        command = frame.command
        if self.version is None:
            if command not in ("CONNECT", "STOMP"):
                raise Refused(f"the first frame must be CONNECT (or STOMP), not {command}")
            await self._connect(frame)
            return True
        if command in ("CONNECT", "STOMP"):
            raise Refused("already connected")
        if command == "SUBSCRIBE":
            self._subscribe(frame)
        elif command == "UNSUBSCRIBE":
            self._unsubscribe(frame)
        elif command == "DISCONNECT":
            return False
        elif command in ("ACK", "NACK"):
            pass  # events are not redelivered: there is nothing to acknowledge
        elif command in ("SEND", "BEGIN", "COMMIT", "ABORT"):
            raise Refused(f"{command} is not accepted: this endpoint only delivers events "
                          "(send messages with POST /messages.send)")
        else:
            raise Refused(f"unknown command {command[:40]}")
        return True

    async def _connect(self, frame: Frame) -> None:
        version = chosen_version(frame.get("accept-version"))
        # Heart-beats came with 1.1: a 1.0 client's header means nothing.
        client_sends, client_wants = heart_beats(frame.get("heart-beat")) \
            if version != "1.0" else (0, 0)
        token = self.endpoint.system_token
        if token:
            presented = presented_tokens(self.websocket.scope["headers"])
            for name in ("Authorization", "authorization"):
                value = frame.get(name)
                if value and value.strip():
                    presented.append(token_of(value))
            passcode = frame.get("passcode")
            if passcode and passcode.strip():
                presented.append(passcode.strip())
            if not authorised(token, presented):
                raise Refused("401 Unauthorized: " + (
                    "the token is not valid" if presented else
                    "present the token (Authorization header or airy_auth_token cookie on the "
                    "upgrade, or CONNECT's Authorization or passcode header)"), UNAUTHORISED)
        self.version = self.parser.version = version
        send_ms = max(client_wants, SERVER_HEART_BEAT[0]) if client_wants else 0
        self.receive_ms = max(client_sends, SERVER_HEART_BEAT[1]) if client_sends else 0
        headers = [("version", version), ("session", self.name),
                   ("server", "messenger-gateway")]
        if version != "1.0":
            headers.append(("heart-beat", f"{SERVER_HEART_BEAT[0]},{SERVER_HEART_BEAT[1]}"))
        await self._send(Frame("CONNECTED", tuple(headers)))
        if send_ms:
            self.tasks.append(asyncio.create_task(self._beat(send_ms / 1000),
                                                  name="stomp-heart-beat"))

    def _subscribe(self, frame: Frame) -> None:
        destination = frame.get("destination")
        if destination is None:
            raise Refused("SUBSCRIBE needs a destination header")
        if destination != DESTINATION:
            raise Refused(f"unknown destination: subscribe to {DESTINATION}")
        sub_id = frame.get("id")
        if sub_id is None and self.version != "1.0":
            raise Refused("SUBSCRIBE needs an id header")
        ack = frame.get("ack", "auto") or "auto"
        if ack not in ACK_MODES:
            raise Refused("ack must be one of " + ", ".join(ACK_MODES))
        if sub_id in self.subscriptions:
            raise Refused("a subscription with this id is already open")
        if len(self.subscriptions) >= self.endpoint.max_subscriptions:
            raise Refused(f"at most {self.endpoint.max_subscriptions} subscriptions "
                          "per connection")
        self.subscriptions[sub_id] = Subscribed(sub_id, ack)
        if self.listener is None:
            self.listener = Listener(self.endpoint.queue_size, self.endpoint.queue_bytes,
                                     self._too_slow)
            self.endpoint.feed.join(self.listener,
                                    self.websocket.scope["app"].state.gateway.conversations)
            self.tasks.append(asyncio.create_task(self._deliver(self.listener),
                                                  name="stomp-deliver"))

    def _unsubscribe(self, frame: Frame) -> None:
        sub_id = frame.get("id")
        if sub_id is None and self.version == "1.0":
            sub_id = None if frame.get("destination") == DESTINATION else ""
        elif sub_id is None:
            raise Refused("UNSUBSCRIBE needs an id header")
        self.subscriptions.pop(sub_id, None)  # an unknown id: nothing to end

    # --- writing ------------------------------------------------------------------------------

    async def _send(self, frame: Frame | None) -> None:
        """Write a frame (None: a heart-beat)."""
        data = b"\n" if frame is None else encode(frame, self.version or "1.0")
        async with self.lock:
            try:
                if _is_text(data):
                    await self.websocket.send_text(data.decode())
                else:
                    await self.websocket.send_bytes(data)
            except (OSError, RuntimeError):  # the client went away, or the socket is closing
                raise WebSocketDisconnect(1006) from None
            self.sent_at = asyncio.get_running_loop().time()

    async def _deliver(self, listener: Listener) -> None:
        """Each event as a MESSAGE to each subscription."""
        async for body in listener:
            for subscribed in list(self.subscriptions.values()):
                message_id = f"{self.name}-{next(self.ids)}"
                headers = [("destination", DESTINATION), ("message-id", message_id),
                           ("content-type", "application/json"),
                           ("content-length", str(len(body)))]
                if subscribed.id is not None:
                    headers.insert(0, ("subscription", subscribed.id))
                if subscribed.ack != "auto" and self.version == "1.2":
                    headers.append(("ack", message_id))
                await self._send(Frame("MESSAGE", tuple(headers), body))

    async def _beat(self, every: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(self.sent_at + every - loop.time(), 0.0))
            if loop.time() - self.sent_at >= every * 0.99:
                await self._send(None)

    def _too_slow(self, reason: SubscriberTooSlow) -> None:
        """Cut off as a slow subscriber: the frame being written is given up, ERROR, close."""
        if not self.closed:
            self.tasks.append(asyncio.create_task(self._end_too_slow(str(reason))))

    async def _end_too_slow(self, message: str) -> None:
        deliver = next((t for t in self.tasks if t.get_name() == "stomp-deliver"), None)
        if deliver is not None:
            deliver.cancel()
        if self.listener is not None:  # no longer counted as a subscriber
            self.endpoint.feed.leave(self.listener)
            self.listener = None
        log.info("STOMP session closed with %d: %s", TOO_SLOW, message)
        await self._error(message, TOO_SLOW)

    async def _error(self, message: str, code: int,
                     headers: tuple[tuple[str, str], ...] = ()) -> None:
        """ERROR (for a client that does not read, given up after a while), then close."""
        short = " ".join(message.split())[:200]
        frame = Frame("ERROR", (("message", short), ("content-type", "text/plain"), *headers),
                      message.encode())
        with contextlib.suppress(WebSocketDisconnect, TimeoutError):
            await asyncio.wait_for(self._send(frame), ERROR_SEND_SECONDS)
        await self._close(code, short)

    async def _close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
            await self.websocket.close(code, reason[:120])


def _is_text(data: bytes) -> bool:
    """Frames go as text messages when they are UTF-8 without NULs but the terminating one,
    which every client reads; a body with a NUL or raw bytes goes as a binary message."""
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return data.count(b"\0") <= 1

