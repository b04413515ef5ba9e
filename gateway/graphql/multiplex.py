"""Multiplexed subscriptions: one execution and one JSON encoding per event for all the clients
of the same document, variables and operation name (the idea behind Hasura's multiplexing).

Run per client, a subscription costs a GraphQL execution and a JSON encoding per event per client;
with a thousand inboxes watching `messageCreated`, that is a thousand identical executions of every
message. Here the first client of a (document, variables, operation name) starts a group that
runs the subscription once; each event's payload is encoded once and the same text is queued for
every member. Each member keeps its own queue, bounded in events and in bytes (the shared text
counts against each member holding it), so one that cannot keep up is cut off with
SUBSCRIBER_TOO_SLOW alone, as without multiplexing, and what was queued for it is let go at once.
The group ends when its last member leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

from graphql import OperationType
from strawberry.schema import BaseSchema
from strawberry.types.execution import ExecutionResult, PreExecutionError

from gateway.bus import EventBus, Filter, SubscriberTooSlow, Subscription
from gateway.graphql.errors import too_slow
from gateway.graphql.reads import selected_operation

log = logging.getLogger(__name__)

Key = tuple[str, str | None, str]
# What a member's queue holds: an encoded `payload`, a request error, or the end of the stream.
Item = str | PreExecutionError | None


def encode(data: Any) -> str:
    """JSON as strawberry's websocket handlers write it, so both paths send the same bytes."""
    return json.dumps(data, separators=(",", ":"))


def result_payload(result: ExecutionResult) -> dict[str, Any]:
    """A result as both websocket protocols carry it."""
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [error.formatted for error in result.errors]
    if result.extensions:
        payload["extensions"] = result.extensions
    return payload


def payload_of(result: ExecutionResult) -> str:
    return encode(result_payload(result))


class Member:
    """One client's subscription in a group: a queue of payloads, read by its sender, of at most
    `size` payloads and `max_bytes` bytes of them.

    Read with `ready()` and `take()` rather than as an async iterator: a waiting reader then holds
    a future, not a suspended generator, which counts with ten thousand idle websockets."""

    __slots__ = ("group", "_size", "_max_bytes", "_items", "_head", "_bytes", "_waiter",
                 "_sender", "_dropping", "overflowed")

    def __init__(self, size: int, max_bytes: int = 4 * 2**20, group: Group | None = None) -> None:
        self.group = group
        self._size = size
        self._max_bytes = max_bytes
        # A list read from `_head` on, emptied whenever it is read to the end: an idle member
        # holds an empty list (56 bytes), where a deque holds a 64-slot block (600 bytes).
        self._items: list[Item] = []
        self._head = 0
        self._bytes = 0  # the payloads' length in the queue (ASCII: characters are bytes)
        self._waiter: asyncio.Future[None] | None = None
        self._sender: asyncio.Task | None = None  # the task sending a payload, while it does
        self._dropping = False  # the payload being sent is dropped: the member was cut off
        self.overflowed = False

    def offer(self, item: Item) -> bool:
        """Queue `item`; whether this cut the member off."""
        if self.overflowed:
            return False
        cut_off = False
        if isinstance(item, str):
            cut = SubscriberTooSlow.check(len(self._items) - self._head + 1,
                                          self._bytes + len(item), self._size, self._max_bytes)
            if cut is not None:
                self.overflowed = cut_off = True
                self._items.clear()  # not held until the client reads: it may never
                self._head = 0
                self._bytes = 0
                if self._sender is not None:  # nor the payload whose send waits for it
                    self._dropping = True
                    self._sender.cancel()
                self._items.append(encode({"data": None, "errors": [too_slow(str(cut)).formatted]}))
                item = None
            else:
                self._bytes += len(item)
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        return cut_off

    def ready(self) -> asyncio.Future[None] | None:
        """None when `take()` has an item; else a future done once it has."""
        if self._head < len(self._items):
            return None
        self._waiter = asyncio.get_running_loop().create_future()
        return self._waiter

    def take(self) -> Item:
        """The next item, in order: a payload, a request error or None (the stream ended); after
        either of the last two there are no more."""
        items = self._items
        item = items[self._head]
        self._head += 1
        if self._head == len(items):
            items.clear()
            self._head = 0
        elif self._head >= 1024 and 2 * self._head >= len(items):
            del items[:self._head]  # read half of a long queue: let it go
            self._head = 0
        if isinstance(item, str) and not self.overflowed:
            self._bytes -= len(item)
        return item

    async def send(self, sending: Awaitable[None]) -> None:
        """Await `sending`, a payload's frame. A client that stops reading holds a send until its
        buffers drain, maybe for ever: if the member is cut off meanwhile, the send is given up
        and its frame let go (nothing of it was written: the server writes a frame whole once
        the socket can take more), and the sender goes on to say why."""
        task = asyncio.current_task()
        self._sender = task
        try:
            await sending
        except asyncio.CancelledError:
            if not self._dropping or task is None or task.uncancel() > 0:
                raise  # cancelled by someone else too (the client's `complete`, the socket)
        finally:
            self._sender = None
            self._dropping = False


class _GroupBus:
    """The bus as the group's resolver sees it: its one subscription counts every member."""

    def __init__(self, bus: EventBus, group: Group) -> None:
        self._bus = bus
        self._group = group

    def subscribe(self, accepts: Filter, deletions: bool = False) -> Subscription:
        subscription = self._bus.subscribe(accepts, deletions)
        self._group.source = subscription
        subscription.listeners = len(self._group.members)
        return subscription


class Group:
    """One running subscription whose every result goes to all its members."""

    def __init__(self, key: Key, context: dict[str, Any]) -> None:
        self.key = key
        # A context of no one client: the group outlives the client that started it.
        self.context = {name: value for name, value in context.items()
                        if name not in ("request", "response", "connection_params")}
        self.context.update(request=None, response=None, bus=_GroupBus(context["bus"], self))
        self.members: set[Member] = set()
        self.listening = 0  # members not cut off
        self.source: Subscription | None = None
        self.task: asyncio.Task | None = None

    def recount(self) -> None:
        """Members count as subscribers until they leave or are cut off."""
        if self.source is not None:
            self.source.listeners = self.listening

    def broadcast(self, item: Item) -> None:
        for member in self.members:
            if member.offer(item):
                self.listening -= 1
        self.recount()

    async def run(self, schema: BaseSchema, forget: Callable[[Group], None]) -> None:
        """Run the subscription once for every member; once it ends no one new may join."""
        query, operation_name, variables = self.key
        try:
            stream = await schema.subscribe(query, variable_values=json.loads(variables),
                                            context_value=self.context,
                                            operation_name=operation_name)
            async with contextlib.aclosing(stream):
                async for result in stream:
                    if isinstance(result, PreExecutionError):
                        forget(self)
                        self.broadcast(result)
                        return
                    self.broadcast(payload_of(result))
        except Exception:
            log.exception("subscription group %r failed", operation_name)
        finally:
            forget(self)
            self.broadcast(None)


class Multiplexer:
    """The groups of one process, by document, operation name and variables."""

    def __init__(self, schema: BaseSchema, *, queue_size: int, max_tokens: int,
                 cache_size: int, queue_bytes: int = 4 * 2**20) -> None:
        self._schema = schema
        self._queue_size = queue_size
        self._queue_bytes = queue_bytes
        self._groups: dict[Key, Group] = {}
        self.is_subscription = subscription_test(max_tokens, cache_size)

    def join(self, query: str, variables: dict[str, Any] | None, operation_name: str | None,
             context: dict[str, Any]) -> Member:
        """A member of the group for this subscription (started if need be), until `leave`."""
        key = (query, operation_name, encode_key(variables))
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(key, context)
            group.task = asyncio.create_task(group.run(self._schema, self._forget),
                                             name="subscription-group")
        member = Member(self._queue_size, self._queue_bytes, group)
        group.members.add(member)
        group.listening += 1
        group.recount()
        return member

    def leave(self, member: Member) -> None:
        group = member.group
        if group is None or member not in group.members:
            return
        group.members.discard(member)
        if not member.overflowed:
            group.listening -= 1
        group.recount()
        if not group.members:
            self._forget(group)
            if group.task:
                group.task.cancel()

    def _forget(self, group: Group) -> None:
        if self._groups.get(group.key) is group:
            del self._groups[group.key]


def encode_key(variables: dict[str, Any] | None) -> str:
    return json.dumps(variables or {}, sort_keys=True, separators=(",", ":"))


def subscription_test(max_tokens: int, cache_size: int) -> Callable[[str, str | None], bool]:
    """Whether a document and operation name select one subscription, each pair parsed once
    (the last `cache_size` kept)."""
    return lru_cache(cache_size)(
        lambda query, operation_name: _is_subscription(query, operation_name, max_tokens))


def _is_subscription(query: str, operation_name: str | None, max_tokens: int) -> bool:
    """Whether the document parses to one subscription; anything else takes the plain path,
    which answers with the errors it always has."""
    operation = selected_operation(query, operation_name, max_tokens)
    return operation is not None and operation.operation == OperationType.SUBSCRIPTION
