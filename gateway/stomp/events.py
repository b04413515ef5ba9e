"""Airy's realtime events, fed by the bus: what `/events` subscribers are sent.

Every change the bus hears of (the store's change streams: a write made by any process) becomes
Airy's events, each a JSON body `{"type", "payload"}` in the REST shapes (`gateway.rest.shapes`):

- a new message: `message.created`; a changed one: `message.updated` and `metadata.updated`
  (subject `message`), each `{"conversation_id", "channel_id", "message"}`;
- a conversation, new or changed (contact, tags, state, unread count, user data, last message):
  `metadata.updated` (subject `conversation`), its full current metadata;
- a channel: `channel.updated` (the channel) and `metadata.updated` (subject `channel`);
- a tag, created or changed: `tag.updated`.

One process runs one feed for all its STOMP subscribers: one bus subscription, each change
turned into events once (a conversation's and a contact's message cost a read of the
conversation, as its REST shape shows it) and each event encoded once, then queued for every
listener. A listener's queue is bounded in events and bytes as a GraphQL subscriber's is
(SUBSCRIPTION_QUEUE_SIZE, SUBSCRIPTION_QUEUE_MB): one that cannot keep up is cut off alone.
The feed runs while anyone listens.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from pymongo.errors import PyMongoError

from gateway.bus import EventBus, SubscriberTooSlow, Subscription
from gateway.errors import NotFound
from gateway.rest.shapes import channel_json, conversation_json, message_json, tag_json
from gateway.store.mongo import Change
from gateway.usecases.conversations import Conversations

log = logging.getLogger(__name__)

FOLLOWED = frozenset({"messages", "conversations", "channels", "tags"})


def _metadata(subject: str, identifier: str, metadata: dict[str, Any]) -> dict[str, Any]:
    return {"type": "metadata.updated",
            "payload": {"subject": subject, "identifier": identifier, "metadata": metadata}}


async def events_of(change: Change, conversations: Conversations) -> list[dict[str, Any]]:
    """Airy's events for one change (none for what Airy's client is not told of)."""
    value = change.value
    if change.collection == "messages":
        contact = None
        if value.from_contact:  # the sender's name and picture are the conversation's contact
            try:
                contact = conversation_json(await conversations.get(value.conversation_id))[
                    "contact"]
            except NotFound:
                pass
        message = message_json(value, contact)
        payload = {"conversation_id": value.conversation_id, "channel_id": value.channel_id,
                   "message": message}
        if change.operation == "insert":
            return [{"type": "message.created", "payload": payload}]
        return [{"type": "message.updated", "payload": payload},
                _metadata("message", value.id, dict(message["metadata"]))]
    if change.collection == "conversations":
        try:
            view = await conversations.get(value.id)
        except NotFound:  # gone since, or its channel is
            return []
        return [_metadata("conversation", value.id, dict(conversation_json(view)["metadata"]))]
    if change.collection == "channels":
        channel = channel_json(value)
        return [{"type": "channel.updated", "payload": channel},
                _metadata("channel", value.id, dict(channel["metadata"]))]
    if change.collection == "tags":
        return [{"type": "tag.updated", "payload": tag_json(value)}]
    return []


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


class Listener:
    """One connection's queue of encoded events, at most `size` of them and `max_bytes` bytes;
    past either, it is cut off: what was queued is let go and `on_cut` is told why."""

    def __init__(self, size: int, max_bytes: int,
                 on_cut: Callable[[SubscriberTooSlow], None]) -> None:
        self._size = size
        self._max_bytes = max_bytes
        self._on_cut = on_cut
        self._items: deque[bytes] = deque()
        self._bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self.cut: SubscriberTooSlow | None = None

    def offer(self, body: bytes) -> None:
        if self.cut is not None:
            return
        cut = SubscriberTooSlow.check(len(self._items) + 1, self._bytes + len(body),
                                      self._size, self._max_bytes)
        if cut is not None:
            self.end(cut)
            return
        self._items.append(body)
        self._bytes += len(body)
        self._wake()

    def end(self, reason: SubscriberTooSlow) -> None:
        """Cut off: nothing more is sent to it."""
        if self.cut is not None:
            return
        self.cut = reason
        self._items.clear()  # not held until the client reads: it may never
        self._bytes = 0
        self._wake()
        self._on_cut(reason)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """The bodies in order; ends once cut off."""
        while self.cut is None:
            if not self._items:
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
                continue
            body = self._items.popleft()
            self._bytes -= len(body)
            yield body


class Feed:
    """The process's STOMP listeners, fed by one bus subscription while any listen."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._listeners: set[Listener] = set()
        self._source: Subscription | None = None
        self._task: asyncio.Task | None = None

    def join(self, listener: Listener, conversations: Conversations) -> None:
        """Queue every event from now on for `listener` (the feed started if need be)."""
        self._listeners.add(listener)
        if self._task is None:
            self._source = self._bus.subscribe(lambda change: change.collection in FOLLOWED)
            self._task = asyncio.create_task(self._run(self._source, conversations),
                                             name="stomp-feed")
        self._recount()

    def leave(self, listener: Listener) -> None:
        self._listeners.discard(listener)
        self._recount()
        if not self._listeners and self._task is not None:
            self._task.cancel()
            self._task = self._source = None

    def _recount(self) -> None:
        """Listeners count as subscribers (`/health`) until they leave."""
        if self._source is not None:
            self._source.listeners = len(self._listeners)

    async def _run(self, source: Subscription, conversations: Conversations) -> None:
        try:
            async for change in source:
                try:
                    events = await events_of(change, conversations)
                except PyMongoError as exc:  # the store is away: the event cannot be shaped
                    log.warning("realtime: a %s change was not sent: the store failed (%s)",
                                change.collection, type(exc).__name__)
                    continue
                for body in map(encode, events):
                    for listener in list(self._listeners):
                        listener.offer(body)
        except SubscriberTooSlow as exc:  # the feed fell behind the bus: every listener did
            for listener in list(self._listeners):
                listener.end(exc)
        finally:
            if self._task is asyncio.current_task():
                self._task = self._source = None
