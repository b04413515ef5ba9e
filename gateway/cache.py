"""Answers to reads (GraphQL queries, REST list and info routes), kept until the store changes.

A page of conversations costs the store four queries and GraphQL the execution of hundreds of
fields; the same page asked for again, with nothing changed in between, costs neither. An answer
is kept only while every change to what it was read from is sure to be heard of:

- this process's writes tell the cache when the server answers, before the write's `await`
  returns (`store.Writes`), so whoever made a change reads it back at once;
- other processes' writes come through the change streams (`EventBus.watch`), so this process
  sees them once their change arrives (the same delay as subscriptions: milliseconds, or up to
  50 ms on nx-27017 after a quiet spell, see `store.mongo.changes`);
- while a stream is shut (store away, stream reopening) nothing is kept and nothing is served.

Any change to a collection cached answers are read from (`gateway.changes` declares which reads
are kept and what each reads) forgets every answer: simple, and right for an inbox, where a change
touches most pages anyway. After a change, the clients asking for the same page at the same time
share one reading of it rather than each making their own.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.changes import CACHE_FOLLOWS

HEADER = b"x-query-cache"

Key = tuple[str, bytes, bytes, bytes, bytes]  # path, query string, content type, accept, body


def always(body: bytes) -> bool:
    return True


@dataclass(frozen=True)
class Reads:
    """Which requests to a path read only the store, and which of their answers may be kept."""

    request: Callable[[bytes], bool] = always
    answer: Callable[[bytes], bool] = always


@dataclass
class Answer:
    headers: list[tuple[bytes, bytes]]
    body: bytes
    size: int


@dataclass
class QueryCache:
    """Answers by request, least recently used first out, in at most `max_bytes`."""

    max_bytes: int
    live: Callable[[], bool] = lambda: False  # the bus's: are all its streams open?
    generation: int = 0  # moves on each change; an answer read across a change is not kept
    _answers: OrderedDict[Key, Answer] = field(default_factory=OrderedDict)
    _size: int = 0

    def changed(self, collection: str | None) -> None:
        """Forget everything on a change to what answers are read from (None: maybe anything).
        Other collections (raw events, work queues, webhook deliveries) change all the time and
        no cached answer reads them."""
        if collection is None or collection in CACHE_FOLLOWS:
            self.generation += 1
            self._answers.clear()
            self._size = 0

    def get(self, key: Key) -> Answer | None:
        if not self._answers or not self.live():
            return None
        answer = self._answers.get(key)
        if answer is not None:
            self._answers.move_to_end(key)
        return answer

    def put(self, key: Key, answer: Answer, generation: int) -> None:
        """Keep `answer`, read since `generation`, unless something changed meanwhile."""
        if generation != self.generation or not self.live() or answer.size > self.max_bytes // 4:
            return
        old = self._answers.pop(key, None)
        self._size += answer.size - (old.size if old else 0)
        self._answers[key] = answer
        while self._size > self.max_bytes:
            _, evicted = self._answers.popitem(last=False)
            self._size -= evicted.size

    def __len__(self) -> int:
        return len(self._answers)


@dataclass
class Flight:
    """A request being answered; the same requests arriving meanwhile wait for its answer."""

    generation: int
    answer: asyncio.Future[Answer | None]


class CacheReads:
    """ASGI middleware: answers POSTs to the paths in `reads` from `cache` when it can.

    Answers say `X-Query-Cache: hit` (kept, or shared with a request already under way) or
    `miss`; requests it will not cache pass untouched.
    """

    def __init__(self, app: ASGIApp, cache: QueryCache, reads: Mapping[str, Reads]) -> None:
        self.app = app
        self.cache = cache
        self.reads = dict(reads)
        self._flights: dict[Key, Flight] = {}

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        reads = self.reads.get(scope["path"]) if scope["type"] == "http" else None
        if reads is None or scope["method"] != "POST":
            # Handed on, not awaited here: a websocket holds no frame of ours for its life.
            return self.app(scope, receive, send)
        return self._cached(reads, scope, receive, send)

    async def _cached(self, reads: Reads, scope: Scope, receive: Receive, send: Send) -> None:
        body, disconnected = await _read_body(receive)
        if disconnected:
            return
        content_type = accept = b""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"accept":
                accept = value
        key = (scope["path"], scope["query_string"], content_type, accept, body)
        answer = self.cache.get(key)
        generation = self.cache.generation
        flight = self._flights.get(key)
        if answer is None and flight and flight.generation == generation and self.cache.live():
            # Under way since before this request came, with no change between: as fresh as a hit.
            answer = await asyncio.shield(flight.answer)
        if answer is not None:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [*answer.headers, (HEADER, b"hit")]})
            await send({"type": "http.response.body", "body": answer.body})
            return
        replay = _replay(body, receive)
        if not reads.request(body):
            await self.app(scope, replay, send)
            return
        mine = None
        if self.cache.live() and (flight is None or flight.generation != generation):
            future = asyncio.get_running_loop().create_future()
            mine = self._flights[key] = Flight(generation, future)
        try:
            answer = await self._answer(scope, replay, send, key, body, reads, generation)
        finally:
            if mine:
                mine.answer.set_result(answer)
                if self._flights.get(key) is mine:
                    del self._flights[key]

    async def _answer(self, scope: Scope, receive: Receive, send: Send, key: Key, body: bytes,
                      reads: Reads, generation: int) -> Answer | None:
        """Let the app answer, keep the answer if it may be kept, and return it if so."""
        start: Message = {}
        chunks: list[bytes] = []

        async def keeping_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                message = {**message, "headers": [*message.get("headers", []), (HEADER, b"miss")]}
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, keeping_send)
        headers = list(start.get("headers", []))
        answer_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
        if start.get("status") != 200 or not answer_type.startswith(b"application/json"):
            return None
        answer_body = b"".join(chunks)
        if not reads.answer(answer_body):
            return None
        answer = Answer(headers, answer_body, len(answer_body) + len(body) + 200)
        self.cache.put(key, answer, generation)
        return answer


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole body, and whether the client went away instead."""
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", True
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts), False


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the app the body already read, then whatever comes next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def json_without_errors(body: bytes) -> bool:
    """A GraphQL answer that is all data: errors (a store timeout, say) are not kept."""
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return isinstance(answer, dict) and "errors" not in answer
