"""Multiplexed subscriptions: one execution and one JSON encoding per event for all the clients
of the same document, variables and operation name (the idea behind Hasura's multiplexing).

Run per client, a subscription costs a GraphQL execution and a JSON encoding per event per client;
with a thousand inboxes watching `messageCreated`, that is a thousand identical executions of every
message. Here the first client of a (document, variables, operation name) starts a group that
runs the subscription once; each event's payload is encoded once and the same text is queued for
every member. Each member keeps its own bounded queue, so one that cannot keep up is cut off with
SUBSCRIBER_TOO_SLOW alone, as without multiplexing. The group ends when its last member leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from functools import lru_cache
from typing import Any

from graphql import OperationType
from strawberry.schema import BaseSchema
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.utils.aio import aclosing

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


def payload_of(result: ExecutionResult) -> str:
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [error.formatted for error in result.errors]
    if result.extensions:
        payload["extensions"] = result.extensions
    return encode(payload)


class Member:
    """One client's subscription in a group: a bounded queue of payloads, read by its sender."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: deque[Item] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.overflowed = False

    def offer(self, item: Item) -> None:
        if self.overflowed:
            return
        if isinstance(item, str) and len(self._items) >= self._size:
            self.overflowed = True
            self._items.append(encode({"data": None, "errors": [
                too_slow(str(SubscriberTooSlow.after(self._size))).formatted]}))
            item = None
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def __aiter__(self) -> AsyncIterator[str | PreExecutionError]:
        """Payloads in order; ends after the stream ends or after a request error."""
        while True:
            while not self._items:
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
            item = self._items.popleft()
            if item is None:
                return
            yield item
            if isinstance(item, PreExecutionError):
                return


class _GroupBus:
    """The bus as the group's resolver sees it: its one subscription counts every member."""

    def __init__(self, bus: EventBus, group: Group) -> None:
        self._bus = bus
        self._group = group

    def subscribe(self, accepts: Filter) -> Subscription:
        subscription = self._bus.subscribe(accepts)
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
        self.source: Subscription | None = None
        self.task: asyncio.Task | None = None

    def recount(self) -> None:
        if self.source is not None:
            self.source.listeners = len(self.members)

    def broadcast(self, item: Item) -> None:
        for member in self.members:
            member.offer(item)

    async def run(self, schema: BaseSchema, forget: Callable[[Group], None]) -> None:
        """Run the subscription once for every member; once it ends no one new may join."""
        query, operation_name, variables = self.key
        try:
            stream = await schema.subscribe(query, variable_values=json.loads(variables),
                                            context_value=self.context,
                                            operation_name=operation_name)
            async with aclosing(stream):
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
                 cache_size: int) -> None:
        self._schema = schema
        self._queue_size = queue_size
        self._groups: dict[Key, Group] = {}
        self.is_subscription: Callable[[str, str | None], bool] = lru_cache(cache_size)(
            lambda query, operation_name: _is_subscription(query, operation_name, max_tokens))

    @contextlib.asynccontextmanager
    async def join(self, query: str, variables: dict[str, Any] | None,
                   operation_name: str | None, context: dict[str, Any]) -> AsyncIterator[Member]:
        """Be a member of the group for this subscription (started if need be) until exit."""
        key = (query, operation_name, encode_key(variables))
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(key, context)
            group.task = asyncio.create_task(group.run(self._schema, self._forget),
                                             name="subscription-group")
        member = Member(self._queue_size)
        group.members.add(member)
        group.recount()
        try:
            yield member
        finally:
            group.members.discard(member)
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


def _is_subscription(query: str, operation_name: str | None, max_tokens: int) -> bool:
    """Whether the document parses to one subscription; anything else takes the plain path,
    which answers with the errors it always has."""
    operation = selected_operation(query, operation_name, max_tokens)
    return operation is not None and operation.operation == OperationType.SUBSCRIPTION
