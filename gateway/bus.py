"""Live events for subscribers, fed by MongoDB change streams: the store is the bus.

Each process follows one change stream per collection that live subscriptions or the query
cache follow (`gateway.changes`), so a write made by any process reaches the subscribers of every
process with no other infrastructure. A stream that breaks is resumed from its last resume token,
so nothing is missed. Each subscriber has its own queue, bounded in events and in bytes: a slow
one is cut off with a reason, never the rest. Watchers (the query cache) hear of every change,
deletions included, and of every stream that opens; `live` says whether all of them are open.
A subscriber is offered deletions (a change without a value, whose key names what went) only
when it asks for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from pymongo.errors import OperationFailure

from gateway import retry
from gateway.changes import STREAMS
from gateway.store import Store
from gateway.store.mongo import Change, changes
from gateway.workers import cancel_all

log = logging.getLogger(__name__)

Filter = Callable[[Change], bool]
HISTORY_LOST = (280, 286)  # ChangeStreamFatalError, ChangeStreamHistoryLost
RETRY_CAP = 10.0  # seconds at most between tries to reopen a change stream


class SubscriberTooSlow(Exception):
    """The subscriber's queue overflowed; it was closed rather than left to fall behind."""

    @classmethod
    def after(cls, size: int) -> SubscriberTooSlow:
        return cls(f"subscription closed: more than {size} events were waiting for this "
                   "client; subscribe again to continue")

    @classmethod
    def after_bytes(cls, max_bytes: int) -> SubscriberTooSlow:
        return cls(f"subscription closed: more than {max_bytes / 2**20:g} MiB of events were "
                   "waiting for this client; subscribe again to continue")

    @classmethod
    def check(cls, events: int, size: int, max_events: int,
              max_bytes: int) -> SubscriberTooSlow | None:
        """Why a subscriber whose queue would hold `events` events of `size` bytes in all is cut
        off, if it is. One event alone is never too big: the bound is on what waits."""
        if events > max_events:
            return cls.after(max_events)
        if events > 1 and size > max_bytes:
            return cls.after_bytes(max_bytes)
        return None


def estimate_size(value: Any) -> int:
    """About how many bytes `value` holds (a domain object, its fields, their contents): the
    shallow size of every object in it, which is what holding it costs."""
    total = 0
    stack = [value]
    for _ in range(100_000):  # an estimate: a bound on the work, whatever the shape
        if not stack:
            break
        item = stack.pop()
        total += sys.getsizeof(item)
        if isinstance(item, str | bytes | int | float | bool | None):
            continue
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        elif hasattr(item, "__dict__"):
            stack.append(vars(item))
    return total


class Subscription:
    """One subscriber's queue of changes, bounded in events (`size`) and bytes (`max_bytes`):
    past either, the subscriber is cut off and what was queued for it is let go at once."""

    # The last change sized, and its size: a publish offers one change to every subscriber in
    # turn, so it is estimated once, not once per subscriber.
    _sized: tuple[Change | None, int] = (None, 0)

    def __init__(self, bus: EventBus, accepts: Filter, size: int,
                 max_bytes: int = 4 * 2**20, deletions: bool = False) -> None:
        self._bus = bus
        self._accepts = accepts
        # Offered deletions too (a change whose value is None and whose key names what went).
        self.deletions = deletions
        self._size = size
        self._max_bytes = max_bytes
        self._queue: deque[tuple[Change, int]] = deque()
        self._bytes = 0  # the sizes of the changes in the queue
        self._waiter: asyncio.Future[None] | None = None
        self._cut: SubscriberTooSlow | None = None  # why it was cut off
        self.overflowed = False
        # How many clients this subscription serves: a multiplexed group serves all its members.
        self.listeners = 1

    def offer(self, change: Change) -> None:
        if self.overflowed or not self._accepts(change):
            return
        if Subscription._sized[0] is not change:
            Subscription._sized = (change, estimate_size(change.value))
        size = Subscription._sized[1]
        self._cut = SubscriberTooSlow.check(len(self._queue) + 1, self._bytes + size,
                                            self._size, self._max_bytes)
        if self._cut is not None:
            self.overflowed = True
            self._queue.clear()  # not held until the client reads: it may never
            self._bytes = 0
            self._bus.unsubscribe(self)  # done with: it no longer counts as a subscriber
        else:
            self._queue.append((change, size))
            self._bytes += size
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def __aiter__(self) -> AsyncIterator[Change]:
        try:
            while True:
                while not self._queue:
                    if self._cut is not None:
                        raise self._cut
                    self._waiter = asyncio.get_running_loop().create_future()
                    await self._waiter
                change, size = self._queue.popleft()
                self._bytes -= size
                yield change
        finally:
            self._bus.unsubscribe(self)


class EventBus:
    def __init__(self, queue_size: int = 1000, retry_seconds: float = 1.0,
                 queue_bytes: int = 4 * 2**20) -> None:
        self._store: Store | None = None  # given at `start` (the app builds the bus before it)
        self._queue_size = queue_size
        self._queue_bytes = queue_bytes
        self._retry_seconds = retry_seconds
        self._subscribers: set[Subscription] = set()
        self._tasks: list[asyncio.Task] = []
        self.ready = asyncio.Event()  # set once every stream has opened
        self._open: set[str] = set()  # the streams following their collection right now
        self._watchers: list[Callable[[str | None], None]] = []

    def watch(self, watcher: Callable[[str | None], None]) -> None:
        """Call `watcher(collection)` on every change, and `watcher(None)` whenever a stream
        opens, since changes may have gone by unseen while it was shut."""
        self._watchers.append(watcher)

    @property
    def live(self) -> bool:
        """Every stream is open: every change any process makes will be seen here."""
        return bool(self._tasks) and len(self._open) == len(self._tasks)

    def _tell(self, collection: str | None) -> None:
        for watcher in self._watchers:
            watcher(collection)

    def subscribe(self, accepts: Filter, deletions: bool = False) -> Subscription:
        """A queue of the changes `accepts` takes; deletions only if asked for."""
        subscription = Subscription(self, accepts, self._queue_size, self._queue_bytes,
                                    deletions)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    @property
    def subscriber_count(self) -> int:
        """Live subscriptions of clients (a multiplexed group counts each of its members)."""
        return sum(subscription.listeners for subscription in self._subscribers)

    def publish(self, change: Change) -> None:
        self._tell(change.collection)
        deleted = change.value is None
        # Unreadable, or deleted before the update could be read (its deletion follows).
        if deleted and change.operation != "delete":
            return
        for subscription in list(self._subscribers):
            if not deleted or subscription.deletions:
                subscription.offer(change)

    async def start(self, store: Store, collections: tuple[str, ...] = STREAMS) -> None:
        self._store = store
        for name in collections:
            self._tasks.append(asyncio.create_task(self._follow(name), name=f"watch:{name}"))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.ready.wait(), 10)

    async def stop(self) -> None:
        await cancel_all(self._tasks)

    async def _follow(self, collection: str) -> None:
        token: Any = None
        failures = 0

        def opened() -> None:
            self._open.add(collection)
            self._tell(None)
            if self.live:
                self.ready.set()

        while True:
            try:
                try:
                    assert self._store is not None, "the bus was started without a store"
                    async for change in changes(self._store, collection, token, opened,
                                                deletes=True):
                        token = change.resume_token
                        failures = 0
                        self.publish(change)
                finally:  # not live until reopened: changes may go by unseen
                    self._open.discard(collection)
            except asyncio.CancelledError:
                raise
            except OperationFailure as exc:
                if exc.code in HISTORY_LOST:  # the token is too old: start from now
                    token = None
                failures += 1
                log.warning("change stream on %s failed (%s); reopening", collection, exc.code)
                await asyncio.sleep(retry.delay(self._retry_seconds, failures, RETRY_CAP))
            except Exception as exc:  # noqa: BLE001  # cursor lost, server away: resume from the last token
                failures += 1
                log.warning("change stream on %s interrupted (%s); resuming", collection,
                            type(exc).__name__)
                await asyncio.sleep(retry.delay(self._retry_seconds, failures, RETRY_CAP))
