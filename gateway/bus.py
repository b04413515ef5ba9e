"""Live events for subscribers, fed by MongoDB change streams: the store is the bus.

Each process follows one change stream per collection it serves (messages, conversations,
channels, tags), so a write made by any process reaches the subscribers of every process with no
other infrastructure. A stream that breaks is resumed from its last resume token, so nothing is
missed. Each subscriber has its own bounded queue: a slow one is cut off with a reason, never the
rest. Watchers (the query cache) hear of every change, deletions included, and of every stream
that opens; `live` says whether all of them are open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from pymongo.errors import OperationFailure

from gateway.store import Store
from gateway.store.mongo import Change, changes
from gateway.workers import cancel_all

log = logging.getLogger(__name__)

Filter = Callable[[Change], bool]
HISTORY_LOST = (280, 286)  # ChangeStreamFatalError, ChangeStreamHistoryLost


class SubscriberTooSlow(Exception):
    """The subscriber's queue overflowed; it was closed rather than left to fall behind."""

    @classmethod
    def after(cls, size: int) -> SubscriberTooSlow:
        return cls(f"subscription closed: more than {size} events were waiting for this "
                   "client; subscribe again to continue")


class Subscription:
    def __init__(self, bus: EventBus, accepts: Filter, size: int) -> None:
        self._bus = bus
        self._accepts = accepts
        self._size = size
        # One slot more than `size`, for the end marker that says why the subscription ends.
        self._queue: asyncio.Queue[Change | None] = asyncio.Queue(maxsize=size + 1)
        self.overflowed = False
        # How many clients this subscription serves: a multiplexed group serves all its members.
        self.listeners = 1

    def offer(self, change: Change) -> None:
        if self.overflowed or not self._accepts(change):
            return
        if self._queue.qsize() >= self._size:
            self.overflowed = True
            self._queue.put_nowait(None)
        else:
            self._queue.put_nowait(change)

    async def __aiter__(self) -> AsyncIterator[Change]:
        try:
            while True:
                change = await self._queue.get()
                if change is None:
                    raise SubscriberTooSlow.after(self._size)
                yield change
        finally:
            self._bus.unsubscribe(self)


class EventBus:
    def __init__(self, store: Store, queue_size: int = 1000, retry_seconds: float = 1.0) -> None:
        self._store = store
        self._queue_size = queue_size
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

    def subscribe(self, accepts: Filter) -> Subscription:
        subscription = Subscription(self, accepts, self._queue_size)
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
        if change.value is None:  # a deletion: no subscription follows those
            return
        for subscription in list(self._subscribers):
            subscription.offer(change)

    async def start(self, collections: tuple[str, ...] = ("messages", "conversations",
                                                          "channels", "tags")) -> None:
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
                await asyncio.sleep(min(self._retry_seconds * failures, 10))
            except Exception as exc:  # cursor lost, server away: resume from the last token
                failures += 1
                log.warning("change stream on %s interrupted (%s); resuming", collection,
                            type(exc).__name__)
                await asyncio.sleep(min(self._retry_seconds * failures, 10))
