"""MongoDB repositories. Domain dataclasses go in and come out; documents never leave this module.

Written for what both real MongoDB and the embedded nx-27017 server do the same way: collection
names of `[a-z_]`, indexes created idempotently by key, fields always present (never queried as
missing), `_id` kept out of compound indexes, and upserts avoided where an insert that may meet a
duplicate key says the same thing more plainly.

Every query has a shape both servers answer from an index, with work that follows the page, not
the data (docs/costs.md). nx-27017 answers a query in SQL when it can, and
otherwise reads the whole collection into Python; so, here:
- equality on any field but `_id` is written `{"$eq": value}` (`eq`): nx-27017 reads a bare value
  as "equal, or an array holding it", which no index serves;
- no `$or`, `$and` or `$nor` at the top of a query (nx-27017 evaluates those in Python over every
  document), and no range on `_id` (the same): a list goes on from a position with two index
  lookups instead (`read_after`);
- no `count_documents` (an aggregation, which nx-27017 runs in Python over every document): totals
  are counters kept with the writes that change them, or the `count` command, which both servers
  answer from an index (`count`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import builtins
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
    ConnectionPoolListener,
    PoolClearedEvent,
)

from gateway import changes as registry
from gateway.domain import (
    Channel,
    Contact,
    ContactCard,
    Conversation,
    ConversationFilter,
    DeliveryState,
    FetchState,
    InboundEvent,
    Message,
    MessageEdit,
    Optin,
    Page,
    Referral,
    SenderType,
    Tag,
    TagColor,
    ThreadOwner,
    Webhook,
    clamp_ms,
    new_id,
)
from gateway.errors import Conflict, InvalidInput
from gateway.store import lucene
from gateway.store.attachments import AttachmentRepo
from gateway.store.contacts import ContactRepo, to_contact
from gateway.store.documents import Malformed, Unreadable, convert, read, read_all, validate
from gateway.store.ports import PARKED_EDIT_MS, PARKED_EDITS_MAX, Job, Note, ParkedEdit
from gateway.store.queries import count, eq
from gateway.store.secrets import TokenCipher
from gateway.store.webhooks import DeliveryRepo, FeedPositions, WebhookRepo, to_webhook

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
Doc = Mapping[str, Any]  # a document as the driver hands it back
# A count keeps a short mark of each of the last items it counted (a conversation its messages,
# see note_messages; a channel's count its conversations, see CounterRepo): enough to cover an
# apply that is tried again minutes later, small enough that the document every change stream
# reads stays small. A mark is the first 12 hex digits of the item's id (48 bits: two of 50 alike
# is a chance of about 1 in 10**11).
COUNTED_WINDOW = 50
MARK_DIGITS = 12


def counted_mark(message_id: str) -> str:
    return message_id.replace("-", "")[:MARK_DIGITS]


# (collection, keys, options): every index the queries below rely on.
INDEXES: list[tuple[str, list[tuple[str, int]], dict[str, Any]]] = [
    ("channels", [("source_channel_id", ASCENDING)], {"unique": True}),
    ("conversations", [("channel_id", ASCENDING), ("contact_id", ASCENDING)], {"unique": True}),
    ("conversations", [("last_message_at", DESCENDING)], {}),
    ("conversations", [("channel_id", ASCENDING), ("last_message_at", DESCENDING)], {}),
    ("conversations", [("state", ASCENDING), ("last_message_at", DESCENDING)], {}),
    ("conversations", [("unread_count", ASCENDING), ("last_message_at", DESCENDING)], {}),
    ("tags", [("name", ASCENDING)], {"unique": True}),
    ("webhook_deliveries", [("webhook_id", ASCENDING), ("state", ASCENDING), ("seq", ASCENDING)],
     {}),
    ("webhook_deliveries", [("state", ASCENDING), ("finished_at", ASCENDING)], {}),
    ("messages", [("mid", ASCENDING)],
     {"unique": True, "partialFilterExpression": {"mid": {"$type": "string"}}}),
    ("messages", [("conversation_id", ASCENDING), ("sent_at", DESCENDING)], {}),
    # Meta's delivery and read receipts: the page's messages not yet delivered, or not yet read.
    ("messages", [("conversation_id", ASCENDING), ("state", ASCENDING), ("sent_at", ASCENDING)],
     {}),
    ("messages", [("conversation_id", ASCENDING), ("sender_type", ASCENDING),
                  ("read_by_contact", ASCENDING), ("sent_at", ASCENDING)], {}),
    ("outbox", [("next_at", ASCENDING)], {}),
    ("profile_jobs", [("next_at", ASCENDING)], {}),
    ("events", [("processed", ASCENDING), ("received_at", ASCENDING)], {}),
    ("contacts", [("sort_key", DESCENDING)], {"unique": True}),
    ("contact_links", [("contact_id", ASCENDING)], {}),
    ("parked_edits", [("parked_at", ASCENDING)], {}),
]


WRITE_COMMANDS = frozenset({"insert", "update", "delete", "findAndModify"})


class Writes(CommandListener):
    """Tells its watchers which collection this process has just written, once the server has
    answered (or failed to). PyMongo calls it before the write's await returns, so whatever a
    watcher forgets is forgotten before the writer can answer anyone."""

    def __init__(self) -> None:
        self._watchers: list[Callable[[str], None]] = []
        self._pending: dict[int, str] = {}  # request id -> collection

    def watch(self, watcher: Callable[[str], None]) -> None:
        self._watchers.append(watcher)

    def unwatch(self, watcher: Callable[[str], None]) -> None:
        self._watchers.remove(watcher)

    def started(self, event: CommandStartedEvent) -> None:
        if event.command_name in WRITE_COMMANDS and self._watchers:
            self._pending[event.request_id] = str(event.command.get(event.command_name))

    def succeeded(self, event: CommandSucceededEvent) -> None:
        self._done(event.request_id)

    def failed(self, event: CommandFailedEvent) -> None:  # a failed write may have written
        self._done(event.request_id)

    def _done(self, request_id: int) -> None:
        collection = self._pending.pop(request_id, None)
        if collection is not None:
            for watcher in self._watchers:
                watcher(collection)


class Losses(ConnectionPoolListener):
    """Counts the times the driver lost the server (it clears its connection pool then).

    A change stream opened before a loss is not trusted after it: PyMongo resumes a stream by
    itself after a network error, and a stream resumed that way across a restart of nx-27017 has
    been seen to hand back another collection's changes, or none. `changes()` ends such a stream,
    and its follower opens a new one from the last change it took.
    """

    def __init__(self) -> None:
        self.count = 0

    def pool_cleared(self, event: PoolClearedEvent) -> None:
        self.count += 1

    # The other pool events say nothing about losing the server.
    def pool_created(self, event: Any) -> None: ...
    def pool_ready(self, event: Any) -> None: ...
    def pool_closed(self, event: Any) -> None: ...
    def connection_created(self, event: Any) -> None: ...
    def connection_ready(self, event: Any) -> None: ...
    def connection_closed(self, event: Any) -> None: ...
    def connection_check_out_started(self, event: Any) -> None: ...
    def connection_check_out_failed(self, event: Any) -> None: ...
    def connection_checked_out(self, event: Any) -> None: ...
    def connection_checked_in(self, event: Any) -> None: ...


class Store:
    """One database: channels, conversations, messages and the raw events log."""

    def __init__(
        self, client: AsyncMongoClient, database: str, cipher: TokenCipher | None = None,
        writes: Writes | None = None, losses: Losses | None = None,
        live: Callable[[], bool] = lambda: False,
    ) -> None:
        self.client = client
        self.db = client[database]
        self.writes = writes or Writes()  # this process's writes, for caches to forget
        self.losses = losses or Losses()  # how often the server was lost, for change streams
        # `live`: every change any process makes is seen here (the bus's streams are open), so
        # what is read may be kept until a change says otherwise (KnownChannels).
        self.channels = ChannelRepo(self.db.channels, cipher or TokenCipher(),
                                    KnownChannels(live))
        self.counters = CounterRepo(self.db.counters)
        self.conversations = ConversationRepo(self.db.conversations, self.counters,
                                              cipher or TokenCipher())
        self.messages = MessageRepo(self.db.messages)
        self.events = EventRepo(self.db.events, cipher or TokenCipher())
        self.parked_edits = ParkedEditRepo(self.db.parked_edits)
        self.tags = TagRepo(self.db.tags)
        self.webhooks = WebhookRepo(self.db.webhooks)
        self.deliveries = DeliveryRepo(self.db.webhook_deliveries)
        self.feed_positions = FeedPositions(self.db.webhook_feed)
        self.contacts = ContactRepo(self.db.contacts, self.db.contact_links, self.db.counters)
        # Work queues live apart from what users see, so a lease or a retry is no visible change.
        self.outbox = JobRepo(self.db.outbox, subjects=(self.db.messages, _to_message))
        self.profile_jobs = JobRepo(self.db.profile_jobs,
                                    subjects=(self.db.conversations, _to_conversation))
        self.attachments = AttachmentRepo(self.db)

    @classmethod
    async def connect(
        cls, url: str, database: str, *, timeout_ms: int = 10_000,
        cipher: TokenCipher | None = None, live: Callable[[], bool] = lambda: False,
    ) -> Store:
        writes, losses = Writes(), Losses()
        client: AsyncMongoClient = AsyncMongoClient(
            url, serverSelectionTimeoutMS=timeout_ms, tz_aware=True, uuidRepresentation="standard",
            event_listeners=[writes, losses],
        )
        store = cls(client, database, cipher, writes, losses, live)
        writes.watch(store.channels.known.changed)
        await store.ping()
        await store.ensure_indexes()
        await store.count_stored_messages()
        await store.count_stored_conversations()
        return store

    async def ping(self) -> None:
        await self.client.admin.command("ping")

    async def ensure_indexes(self) -> None:
        """Create missing indexes, recognised by their keys (names may differ between servers)."""
        for name, keys, options in INDEXES:
            collection = self.db[name]
            existing = await collection.index_information()
            known = {tuple((k, 1) for k, _ in spec["key"]) for spec in existing.values()}
            if tuple((k, 1) for k, _ in keys) in known:
                continue
            await collection.create_index(keys, **options)

    async def count_stored_conversations(self) -> None:
        """Channels stored before each kept a count of its conversations get one, once."""
        given = 0
        async for doc in self.channels.c.find({}, {"_id": 1}):
            given += await self.conversations.count_channel_once(doc["_id"])
        if given:
            log.info("counted the conversations of %d channel(s) stored by an earlier version",
                     given)

    async def count_stored_messages(self) -> None:
        """Conversations stored before each kept a count of its messages get one, once."""
        given = await self.conversations.count_messages_once(
            lambda conversation: count(self.db.messages, {"conversation_id": eq(conversation)}))
        if given:
            log.info("counted the messages of %d conversation(s) stored by an earlier version",
                     given)

    async def merge_user_data(self, subject: str, owner_id: str, data: dict[str, Any]
                              ) -> dict[str, Any] | None:
        return await merge_user_data(self, subject, owner_id, data)

    async def close(self) -> None:
        await self.client.close()


# --- cursors --------------------------------------------------------------------------------


# A list goes on from a position: after the document at (value, id) in descending (field, _id)
# order (from the top when there is none), then past `skip` more documents. Positions come from
# documents as stored, readable or not, so that a page ending on documents it skipped does not
# leave the next page to read them again. A document whose sort value is no integer of at most
# 18 digits, or whose id is no string, cannot be a position: it is counted in `skip` instead.
# (A query after a position matches numbers only, in the order the sort gives them, so what the
# skip counts is what the next query returns first; other types sort before every number or
# after, and are met only by a page read from the top.)
POSITION_LIMIT = 10**18 - 1


@dataclass(frozen=True)
class Position:
    value: int | None = None
    item_id: str | None = None
    skip: int = 0

    def past(self, doc: Doc, field: str) -> Position:
        """Where the list is once `doc`, read next from here, is behind."""
        value, item_id = doc.get(field), doc.get("_id")
        if isinstance(value, int) and not isinstance(value, bool) \
                and abs(value) <= POSITION_LIMIT and isinstance(item_id, str):
            return Position(value, item_id)
        return Position(self.value, self.item_id, self.skip + 1)


def encode_cursor(sort_value: int | None, item_id: str | None, skip: int = 0) -> str:
    raw = (f"+{skip}/" if skip else "") + \
        (f"{sort_value}:{item_id}" if sort_value is not None and item_id is not None else "")
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


_CURSOR = re.compile(r"^(?:\+([1-9][0-9]{0,8})/)?(?:(-?[0-9]{1,18}):(.+))?$",
                     flags=re.ASCII | re.DOTALL)


def decode_position(cursor: str) -> Position:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        match = _CURSOR.match(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, binascii.Error, UnicodeError):
        match = None
    if match is None or not (match.group(1) or match.group(2)):
        # only what encode_cursor makes: a skip, a 64-bit time and an id, or both
        raise InvalidInput("cursor is not one this gateway handed out")
    skip = int(match.group(1) or 0)
    if match.group(2) is None:
        return Position(skip=skip)
    return Position(int(match.group(2)), match.group(3), skip)


def decode_cursor(cursor: str) -> tuple[int | None, str | None]:
    position = decode_position(cursor)
    return position.value, position.item_id


async def read_after(collection, query: dict[str, Any], field: str, start: Position,
                     limit: int) -> list[Doc]:
    """Up to `limit` documents of `query` in descending (field, _id) order, from `start` on.

    From a position, in two lookups of the index on (…, field) rather than one `$or`: the
    documents tied with the position's value whose id sorts below its id (a handful at most: ids
    within one millisecond), then those below the value."""
    order = [(field, DESCENDING), ("_id", DESCENDING)]
    if start.value is None or start.item_id is None:
        return await collection.find(query).sort(order).skip(start.skip).limit(limit).to_list()
    ties = await collection.find({**query, field: eq(start.value)}).sort(
        "_id", DESCENDING).to_list()
    docs = [doc for doc in ties if isinstance(doc["_id"], str) and doc["_id"] < start.item_id]
    wanted = start.skip + limit
    if len(docs) < wanted:
        docs += await collection.find({**query, field: {"$lt": start.value}}).sort(order).limit(
            wanted - len(docs)).to_list()
    return docs[start.skip:wanted]


async def read_before(collection, query: dict[str, Any], field: str, end: Position,
                      limit: int) -> list[Doc]:
    """Up to `limit` documents of `query` that come before `end` in descending (field, _id)
    order, nearest first: read_after's lookups with the sort reversed (the same indexes, read
    the other way). Without a position, from the bottom of the list; a position that is only a
    skip from the top ends the list after that many documents."""
    order = [(field, ASCENDING), ("_id", ASCENDING)]
    if end.value is None or end.item_id is None:
        if not end.skip:
            return await collection.find(query).sort(order).limit(limit).to_list()
        top = await collection.find(query).sort(
            [(field, DESCENDING), ("_id", DESCENDING)]).limit(end.skip).to_list()
        return top[::-1][:limit]
    ties = await collection.find({**query, field: eq(end.value)}).sort(
        "_id", ASCENDING).to_list()
    docs = [doc for doc in ties if isinstance(doc["_id"], str) and doc["_id"] > end.item_id]
    if len(docs) < limit:
        docs += await collection.find({**query, field: {"$gt": end.value}}).sort(
            order).limit(limit - len(docs)).to_list()
    return docs[:limit]


def _paged_before(collection: str, docs: list[Doc], size: int, to: Callable[[Doc], Any],
                  field: str, cursor_of: Callable[[Position], str], before: str | None,
                  total: int) -> Page:
    """A backward page of the first `size` of `docs` (read by read_before, nearest first, one
    more than the page holds), in the list's order: the cursors are those a forward page gives
    the same items, so both directions meet at the same cursors."""
    shown, beyond = docs[:size][::-1], docs[size:]
    # Each item's cursor is its position as the forward read from above the page reaches it.
    position = Position().past(beyond[0], field) if beyond else Position()
    above = position
    items: list[Any] = []
    cursors: list[str] = []
    for doc in shown:
        position = position.past(doc, field)
        item = read(collection, doc, to)
        if item is not None:
            items.append(item)
            cursors.append(cursor_of(position))
    # Going further back starts above the first document read (readable or not).
    first = Position().past(shown[0], field) if shown else above
    start = cursor_of(first) if first.value is not None else None
    return Page(items=items, cursors=cursors, has_more=before is not None,
                previous_cursor=(start or (cursors[0] if cursors else None)) if beyond else None,
                total=total, start_cursor=start)


def _paged(collection: str, docs: list[Doc], size: int, to: Callable[[Doc], Any], field: str,
           start: Position, cursor_of: Callable[[Position], str], previous: str | None,
           total: int) -> Page:
    """A page of the first `size` of `docs` (read from `start`, one more than the page holds):
    those that can be read, each with the cursor after it, and the cursor after the last one
    read, readable or not."""
    items: list[Any] = []
    cursors: list[str] = []
    position = start
    for doc in docs[:size]:
        position = position.past(doc, field)
        item = read(collection, doc, to)
        if item is not None:
            items.append(item)
            cursors.append(cursor_of(position))
    return Page(items=items, cursors=cursors, has_more=len(docs) > size,
                previous_cursor=previous, total=total,
                end_cursor=cursor_of(position) if docs[:size] else None)


# --- channels -------------------------------------------------------------------------------


class KnownChannels:
    """The channels read lately, kept while every change to `channels` is seen: this process's
    writes (`Writes`) and other processes' (the bus's change stream, `live` while it is open)
    each forget them all, as they empty the query cache. Channels are few and rarely change,
    and nearly every request reads one (a page of conversations, a send, a webhook POST)."""

    LIMIT = 1000  # channels kept at most; past it, all are forgotten

    def __init__(self, live: Callable[[], bool]) -> None:
        self.live = live
        self.generation = 0  # moves on each change: a read across one is not kept
        self._by_id: dict[str, Channel] = {}
        self._by_page: dict[str, str] = {}

    def changed(self, collection: str | None) -> None:
        if collection is None or collection == "channels":
            self.generation += 1
            self._by_id.clear()
            self._by_page.clear()

    def get(self, channel_id: str) -> Channel | None:
        channel = self._by_id.get(channel_id) if self.live() else None
        return replace(channel) if channel else None  # a copy: callers may change theirs

    def of_page(self, page_id: str) -> Channel | None:
        channel_id = self._by_page.get(page_id)
        return self.get(channel_id) if channel_id else None

    def keep(self, channels: Iterable[Channel], generation: int) -> None:
        """Keep channels read since `generation`, unless something changed meanwhile."""
        if generation != self.generation or not self.live():
            return
        for channel in channels:
            if len(self._by_id) >= self.LIMIT:
                self.changed(None)
                return
            self._by_id[channel.id] = replace(channel)
            self._by_page[channel.source_channel_id] = channel.id


class ChannelRepo:
    def __init__(self, collection, cipher: TokenCipher,
                 known: KnownChannels | None = None) -> None:
        self.c = collection
        self.cipher = cipher
        self.known = known or KnownChannels(live=lambda: False)

    def _channel(self, doc: Doc | None) -> Channel | None:
        channel = _channel(doc)
        if channel:
            channel.page_token = self.cipher.open(channel.page_token)
        return channel

    def _channels(self, docs: list[Doc]) -> list[Channel]:
        return [channel for doc in docs if (channel := self._channel(doc))]

    async def get(self, channel_id: str) -> Channel | None:
        if (channel := self.known.get(channel_id)) is not None:
            return channel
        generation = self.known.generation
        channel = self._channel(await self.c.find_one({"_id": channel_id}))
        self.known.keep([channel] if channel else [], generation)
        return channel

    async def by_page(self, page_id: str) -> Channel | None:
        if (channel := self.known.of_page(page_id)) is not None:
            return channel
        generation = self.known.generation
        channel = self._channel(await self.c.find_one({"source_channel_id": eq(page_id)}))
        self.known.keep([channel] if channel else [], generation)
        return channel

    async def many(self, ids: list[str]) -> dict[str, Channel]:
        found: dict[str, Channel] = {}
        missing = []
        for channel_id in set(ids):
            if (channel := self.known.get(channel_id)) is not None:
                found[channel_id] = channel
            else:
                missing.append(channel_id)
        if missing:
            generation = self.known.generation
            docs = await self.c.find({"_id": {"$in": missing}}).to_list()
            read = self._channels(docs)
            self.known.keep(read, generation)
            found |= {channel.id: channel for channel in read}
        return found

    async def ids_of_source(self, source: str) -> list[str]:
        """Every channel of a source, connected or not (their conversations stay listed)."""
        return [doc["_id"] async for doc in self.c.find({"source": eq(source)}, {"_id": 1})]

    async def list(self, source: str | None = None, connected: bool = True) -> list[Channel]:
        query: dict[str, Any] = {"connected": eq(connected)}
        if source:
            query["source"] = eq(source)
        return self._channels(await self.c.find(query).sort("created_at", ASCENDING).to_list())

    async def token_refused(self, channel_id: str, at: int) -> None:
        """Meta no longer accepts the page token: the page must be connected again."""
        await self.c.update_one({"_id": channel_id, "token_valid": eq(True)},
                                {"$set": {"token_valid": False, "updated_at": at}})

    async def save_connected(
        self, page_id: str, name: str, image_url: str | None, token: str, at: int
    ) -> Channel:
        """Store the page as connected: a page connected before keeps its id."""
        values = {
            "name": name, "image_url": image_url, "page_token": self.cipher.seal(token),
            "connected": True, "token_valid": True, "updated_at": at,
        }
        for _ in range(2):
            doc = await self.c.find_one_and_update(
                {"source_channel_id": eq(page_id)}, {"$set": values},
                return_document=ReturnDocument.AFTER,
            )
            if doc:
                return self._channel(doc) or _unreadable_channel(page_id)
            try:
                doc = {"_id": new_id(), "source": "facebook", "source_channel_id": page_id,
                       "created_at": at, **values}
                await self.c.insert_one(doc)
                return self._channel(doc) or _unreadable_channel(page_id)
            except DuplicateKeyError:
                continue  # connected concurrently: update the one that won
        raise RuntimeError("could not store the channel")

    async def set_disconnected(self, channel_id: str, at: int) -> Channel | None:
        doc = await self.c.find_one_and_update(
            {"_id": channel_id},
            {"$set": {"connected": False, "page_token": "", "updated_at": at}},
            return_document=ReturnDocument.AFTER,
        )
        return self._channel(doc)

    async def update(self, channel_id: str, changes: dict[str, Any], at: int) -> Channel | None:
        doc = await self.c.find_one_and_update(
            {"_id": channel_id, "connected": eq(True)},
            {"$set": {**changes, "updated_at": at}},
            return_document=ReturnDocument.AFTER,
        )
        return self._channel(doc)


def _unreadable_channel(page_id: str) -> Channel:
    """A stored channel in a shape this cannot read (stored by something else) is no answer."""
    raise Conflict(f"the stored channel of page {page_id} cannot be read "
                   "(the gateway's log says why)")


def _channel(doc: Doc | None) -> Channel | None:
    """The channel a document holds (its page token still sealed); None: none, or unreadable."""
    return read("channels", doc, _to_channel)


def _to_channel(doc: Doc) -> Channel:
    return validate(Channel, {
        "id": doc["_id"], "source_channel_id": doc.get("source_channel_id"),
        "name": doc.get("name") or "", "image_url": doc.get("image_url"),
        # nx-27017 may hand back 0 and 1 for booleans: pydantic reads those as bools.
        "connected": doc.get("connected") or False, "token_valid": doc.get("token_valid", True),
        "created_at": doc.get("created_at", 0), "updated_at": doc.get("updated_at", 0),
        "source": doc.get("source", "facebook"), "page_token": doc.get("page_token") or "",
        "user_data": doc.get("user_data") or {},
    })


# --- conversations --------------------------------------------------------------------------


class CounterRepo:
    """Counts kept with the writes that change them: one document per count, which counts each
    item once (a mark of each of the last COUNTED_WINDOW it counted, checked and added in the same
    atomic update, as note_messages does), so that counting again after a failure is harmless."""

    def __init__(self, collection) -> None:
        self.c = collection

    async def create(self, key: str, value: int) -> None:
        """Start the count at `value`, unless it exists."""
        with contextlib.suppress(DuplicateKeyError):
            await self.c.insert_one({"_id": key, "value": value, "counted_ids": []})

    async def exists(self, key: str) -> bool:
        return await self.c.find_one({"_id": key}, {"_id": 1}) is not None

    async def add_once(self, key: str, item_id: str) -> bool:
        """Count the item unless it is counted; False when there is no such count."""
        mark = counted_mark(item_id)
        result = await self.c.update_one(
            {"_id": key, "counted_ids": {"$nin": [mark]}},
            {"$inc": {"value": 1},
             "$push": {"counted_ids": {"$each": [mark], "$slice": -COUNTED_WINDOW}}})
        return bool(result.matched_count) or await self.exists(key)

    async def values(self, keys: list[str]) -> dict[str, int]:
        docs = await self.c.find({"_id": {"$in": keys}}, {"value": 1}).to_list()
        return _values(docs)

    async def values_of(self, prefix: str) -> dict[str, int]:
        """Every count whose key starts with `prefix` (there are a few per channel at most)."""
        docs = await self.c.find({}, {"value": 1}).to_list()
        return _values([doc for doc in docs if str(doc["_id"]).startswith(prefix)])


def _values(docs: list[Doc]) -> dict[str, int]:
    return {doc["_id"]: doc["value"] for doc in docs
            if isinstance(doc.get("value"), int) and not isinstance(doc["value"], bool)}


def conversations_of(channel_id: str) -> str:
    """The key of the count of a channel's conversations."""
    return f"conversations:{channel_id}"


class ConversationRepo:
    def __init__(self, collection, counters: CounterRepo, cipher: TokenCipher | None = None
                 ) -> None:
        self.c = collection
        self.counters = counters
        self.cipher = cipher or TokenCipher()  # opt-ins' notification-messages tokens

    async def get(self, conversation_id: str) -> Conversation | None:
        return _conversation(await self.c.find_one({"_id": conversation_id}))

    async def find(self, channel_id: str, contact_id: str) -> Conversation | None:
        return _conversation(
            await self.c.find_one({"channel_id": eq(channel_id), "contact_id": eq(contact_id)})
        )

    async def find_many(self, channel_id: str, contact_ids: list[str]) -> dict[str, Conversation]:
        """The conversations of this channel with these people, by contact id: a lookup of the
        unique index each, at once (nx-27017 serves `$in` on a field other than `_id` by reading
        every conversation of the channel)."""
        docs = await asyncio.gather(*(
            self.c.find_one({"channel_id": eq(channel_id), "contact_id": eq(contact_id)})
            for contact_id in dict.fromkeys(contact_ids)))
        found = read_all("conversations", [doc for doc in docs if doc is not None],
                         _to_conversation)
        return {conversation.contact.id: conversation for conversation in found}

    async def create(
        self, conversation_id: str, channel_id: str, contact_id: str, at: int,
    ) -> tuple[Conversation, bool]:
        """A new conversation with this person on this channel under `conversation_id` (the
        caller makes it, to queue work for it first), for a caller that found none; if another
        process has just made it, that one, and False."""
        doc = {
            "_id": conversation_id, "channel_id": channel_id, "contact_id": contact_id,
            "created_at": at, "last_message_at": at, "last_message_id": None, "unread_count": 0,
            "message_count": 0, "counted_ids": [],
            "contact": {"display_name": None, "avatar_url": None,
                        "fetch_state": FetchState.PENDING.value, "fetch_error": None},
        }
        try:
            await self.c.insert_one(doc)
        except DuplicateKeyError:
            stored = await self.c.find_one({"channel_id": eq(channel_id),
                                            "contact_id": eq(contact_id)})
            if stored is None:
                raise
            found = _conversation(stored)
            if found is None and isinstance(stored["_id"], str):
                # Stored, but it cannot be read (and is skipped where it would be shown): what
                # the person writes is still kept under it, rather than refused again and again.
                found = Conversation(id=stored["_id"], channel_id=channel_id,
                                     contact=Contact(id=contact_id), created_at=at,
                                     last_message_at=at)
            if found is None:
                raise
            return found, False
        return _to_conversation(doc), True

    async def note_messages(
        self, conversation_id: str, message_id: str, sent_at: int, new_ids: list[str],
        unread_ids: list[str] = (),  # type: ignore[assignment]
    ) -> None:
        """Make `message_id` the last message if it is the newest, and count each of `new_ids`
        (messages stored for this conversation) exactly once: in `message_count`, and, for those
        also in `unread_ids` (the person's), in `unread_count`.

        The conversation keeps a mark of each message it counted last (`counted_ids`, see
        COUNTED_WINDOW), and an update counts only when none of its marks is among them, in the
        same atomic update that adds them: applying the same messages again (Meta's retry after
        a failure, the unprocessed-events worker, the same POST twice at once, the send worker
        after a send that failed half-way) never counts one twice, and an apply that failed
        before counting gets them counted by the next. One update in the usual case.
        """
        unread = {counted_mark(i) for i in unread_ids}
        ids = list(dict.fromkeys(counted_mark(i) for i in [*new_ids, *unread_ids]))
        chunks = [ids[i:i + COUNTED_WINDOW] for i in range(0, len(ids), COUNTED_WINDOW)]
        newer = {"_id": conversation_id, "last_message_at": {"$lte": sent_at}}
        last = {"$set": {"last_message_at": sent_at, "last_message_id": message_id}}
        if chunks:
            result = await self.c.update_one({**newer, "counted_ids": {"$nin": chunks[0]}},
                                             {**last, **_counting(chunks[0], unread)})
            if result.matched_count:
                chunks.pop(0)
            else:  # older than the last message, or counted (in part) already
                await self.c.update_one(newer, last)
        else:
            await self.c.update_one(newer, last)
        for chunk in chunks:
            await self._count(conversation_id, chunk, unread)

    async def note_many(self, notes: list[Note]) -> None:
        """note_messages for several conversations at once, in one round trip in the usual case:
        for each, an update that makes its message the last if it is the newest, and one that
        counts its messages if none of them is counted yet (see note_messages). When some update
        did not match (an older message, or messages counted before, in whole or in part), one
        read of the conversations' marks tells which messages are still to count."""
        ops: list[UpdateOne] = []
        counting: dict[str, tuple[list[str], set[str]]] = {}
        unsettled = False
        for conversation_id, message_id, sent_at, new_ids, unread_ids in notes:
            ops.append(UpdateOne(
                {"_id": conversation_id, "last_message_at": {"$lte": sent_at}},
                {"$set": {"last_message_at": sent_at, "last_message_id": message_id}}))
            ids = list(dict.fromkeys(counted_mark(i) for i in [*new_ids, *unread_ids]))
            if not ids:
                continue
            counting[conversation_id] = (ids, {counted_mark(i) for i in unread_ids})
            if len(ids) <= COUNTED_WINDOW:
                ops.append(UpdateOne({"_id": conversation_id, "counted_ids": {"$nin": ids}},
                                     _counting(ids, counting[conversation_id][1])))
            else:  # counted below, a window at a time
                unsettled = True
        if ops:
            unsettled |= (await self.c.bulk_write(ops, ordered=False)).matched_count < len(ops)
        if not unsettled or not counting:
            return
        cursor = self.c.find({"_id": {"$in": list(counting)}}, {"counted_ids": 1})
        for doc in await cursor.to_list(None):
            ids, unread = counting[doc["_id"]]
            counted = set(doc.get("counted_ids") or [])
            missing = [i for i in ids if i not in counted]
            for chunk in [missing[i:i + COUNTED_WINDOW]
                          for i in range(0, len(missing), COUNTED_WINDOW)]:
                await self._count(doc["_id"], chunk, unread)

    async def _count(self, conversation_id: str, ids: list[str], unread: set[str]) -> None:
        """Count those of `ids` that are not in the window of counted ids, atomically with it."""
        for _ in range(10):  # each round counts, or finds some counted by a concurrent apply
            result = await self.c.update_one(
                {"_id": conversation_id, "counted_ids": {"$nin": ids}}, _counting(ids, unread))
            if result.matched_count:
                return
            doc = await self.c.find_one({"_id": conversation_id}, {"counted_ids": 1})
            if doc is None:
                return
            counted = set(doc.get("counted_ids") or [])
            ids = [i for i in ids if i not in counted]
            if not ids:
                return
        raise RuntimeError(f"conversation {conversation_id}: the counts did not settle")

    async def uncount(self, conversation_id: str, message_id: str) -> None:
        """A message counted here was removed (a second copy of the same echo)."""
        mark = counted_mark(message_id)
        # `$in`, not `$eq`: nx-27017's find does not read `$eq` on an array as "holds".
        await self.c.update_one({"_id": conversation_id, "counted_ids": {"$in": [mark]}},
                                {"$inc": {"message_count": -1}, "$pull": {"counted_ids": mark}})

    async def count_new(self, conversation: Conversation) -> None:
        """Count a conversation just stored in its channel's count, once."""
        key = conversations_of(conversation.channel_id)
        if not await self.counters.add_once(key, conversation.id):
            # A channel connected by an earlier version since this process started: its count
            # starts from the index (this conversation is stored, so it is in it).
            await self.count_channel_once(conversation.channel_id)

    async def count_channel_once(self, channel_id: str) -> int:
        """Give a channel with no count of its conversations one, counted from the index;
        returns 1 if it was given one."""
        key = conversations_of(channel_id)
        if await self.counters.exists(key):
            return 0
        await self.counters.create(key, await count(self.c, {"channel_id": eq(channel_id)}))
        return 1

    async def count_messages_once(self, count_of: Callable[[str], Awaitable[int]]) -> int:
        """Give every conversation stored before counters were kept its `message_count`
        (counted from the index, once); returns how many were given one."""
        given = 0
        async for doc in self.c.find({"message_count": {"$exists": False}}, {"_id": 1}):
            n = await count_of(doc["_id"])
            result = await self.c.update_one(
                {"_id": doc["_id"], "message_count": {"$exists": False}},
                {"$set": {"message_count": n}})
            given += result.modified_count
        return given

    async def replace_last_message(self, conversation_id: str, old_id: str, new_id: str) -> None:
        await self.c.update_one({"_id": conversation_id, "last_message_id": old_id},
                                {"$set": {"last_message_id": new_id}})

    async def set_fields(self, conversation_id: str, values: dict[str, Any]) -> bool:
        result = await self.c.update_one({"_id": conversation_id}, {"$set": values})
        return result.matched_count == 1

    async def set_thread_owner(self, conversation_id: str, owner: ThreadOwner) -> bool:
        return await self.set_fields(conversation_id, {"thread_owner": asdict(owner)})

    async def mark_read(self, conversation_id: str) -> bool:
        result = await self.c.update_one({"_id": conversation_id}, {"$set": {"unread_count": 0}})
        return result.matched_count == 1

    async def refer(self, conversation_id: str, referral: Referral) -> bool:
        """Keep `referral` as the conversation's latest, unless a later one is kept already."""
        doc = await self.c.find_one({"_id": conversation_id}, {"referral": 1})
        if doc is None or _later(doc.get("referral"), referral.updated_at):
            return False
        return await self._keep(conversation_id, {"referral": asdict(referral)})

    async def add_optin(self, conversation_id: str, optin: Optin, token: str | None) -> bool:
        """Keep `optin` in place of the conversation's opt-in of the same type and payload,
        unless that one is later; its token sealed (an opt-in without one keeps the token the
        earlier had, e.g. one that stops notifications)."""
        doc = await self.c.find_one({"_id": conversation_id}, {"optins": 1})
        if doc is None:
            return False
        stored = [item for item in _listed(doc.get("optins")) if isinstance(item, Mapping)]
        same = [item for item in stored
                if (item.get("type"), item.get("payload")) == (optin.type, optin.payload)]
        if same and _later(same[0], optin.updated_at):
            return False
        sealed = self.cipher.seal(token) if token else (same[0].get("token") if same else None)
        item = {**asdict(optin), "has_token": bool(sealed), "token": sealed}
        kept = [i for i in stored if i not in same][-(MAX_OPTINS - 1):] + [item]
        return await self._keep(conversation_id, {"optins": kept})

    async def _keep(self, conversation_id: str, values: dict[str, Any]) -> bool:
        """$set `values`, every JSON type kept as it is (see keeping_types)."""
        result = await self.c.update_one({"_id": conversation_id},
                                         keeping_types({"$set": values}))
        return result.matched_count == 1

    async def optin_token(self, conversation_id: str, type: str, payload: str | None
                          ) -> str | None:
        """The notification-messages token of an opt-in, opened; for the Send API only."""
        doc = await self.c.find_one({"_id": conversation_id}, {"optins": 1})
        for item in _listed((doc or {}).get("optins")):
            if isinstance(item, Mapping) and (item.get("type"), item.get("payload")) == (
                    type, payload) and isinstance(item.get("token"), str):
                return self.cipher.open(item["token"]) or None
        return None

    async def tag(self, conversation_id: str, tag_id: str) -> bool:
        return await self.set_fields(conversation_id, {f"tags.{tag_id}": ""})

    async def untag(self, conversation_id: str, tag_id: str) -> bool:
        result = await self.c.update_one({"_id": conversation_id},
                                         {"$unset": {f"tags.{tag_id}": ""}})
        return result.matched_count == 1

    async def drop_tag(self, tag_id: str) -> None:
        """A deleted tag leaves every conversation that carried it (reading every conversation:
        no index holds tags, and deleting a tag is rare)."""
        await self.c.update_many({f"tags.{tag_id}": {"$exists": True}},
                                 {"$unset": {f"tags.{tag_id}": ""}})

    async def page(self, where: ConversationFilter, cursor: str | None, size: int) -> Page:
        """Newest activity first: the conversations, a cursor after each and after the page,
        whether more follow, and how many documents match (unreadable ones too)."""
        if where.query is not None:
            where = replace(where, query=await lucene.with_channels(where.query,
                                                                    self.c.database.channels))
        query = _conversation_query(where)
        start = decode_position(cursor) if cursor else Position()
        if cursor is None:
            # A first page that holds every match is its own count: no second pass for it.
            docs = await read_after(self.c, query, "last_message_at", start, size + 1)
            total = len(docs) if len(docs) <= size else await self._total(where, query)
        else:  # the count and the page at once: round trips that need not wait on each other
            total, docs = await asyncio.gather(
                self._total(where, query),
                read_after(self.c, query, "last_message_at", start, size + 1))
        return _paged("conversations", docs, size, _to_conversation, "last_message_at", start,
                      lambda p: encode_cursor(p.value, p.item_id, p.skip), cursor, total)

    async def page_before(self, where: ConversationFilter, cursor: str | None, size: int
                          ) -> Page:
        """The `size` conversations just before `cursor` in `page`'s order (the last ones
        without), in that order; the same cursors as `page`, with the count `page` gives."""
        if where.query is not None:
            where = replace(where, query=await lucene.with_channels(where.query,
                                                                    self.c.database.channels))
        query = _conversation_query(where)
        end = decode_position(cursor) if cursor else Position()
        # what a cursor skips lies after its document: nothing before it is skipped
        end = Position(end.value, end.item_id) if end.value is not None else end
        total, docs = await asyncio.gather(
            self._total(where, query),
            read_before(self.c, query, "last_message_at", end, size + 1))
        return _paged_before("conversations", docs, size, _to_conversation, "last_message_at",
                             lambda p: encode_cursor(p.value, p.item_id, p.skip), cursor, total)

    async def many(self, ids: list[str]) -> dict[str, Conversation]:
        docs = await self.c.find({"_id": {"$in": list(set(ids))}}).to_list()
        return {c.id: c for c in read_all("conversations", docs, _to_conversation)}

    async def _total(self, where: ConversationFilter, query: dict[str, Any]) -> int:
        """How many conversations match: from the channels' counts when only channels narrow
        the list, else counted by the server from an index (the conversations that match);
        with a Lucene query, counted by the server as it finds them (store/lucene.py)."""
        if where.query is not None:
            return await lucene.count(self.c, query)
        if query.keys() - {"channel_id"}:
            return await count(self.c, query)
        if where.channel_ids is None:  # every channel's, connected or not
            return sum((await self.counters.values_of(conversations_of(""))).values())
        keys = [conversations_of(c) for c in dict.fromkeys(where.channel_ids)]
        return sum((await self.counters.values(keys)).values())

    async def profile_fetched(
        self, conversation_id: str, display_name: str | None, avatar_url: str | None
    ) -> None:
        await self.c.update_one(
            {"_id": conversation_id},
            {"$set": {
                "contact.display_name": display_name, "contact.avatar_url": avatar_url,
                "contact.fetch_state": FetchState.OK.value, "contact.fetch_error": None,
            }},
        )

    async def profile_failed(self, conversation_id: str, error: str) -> None:
        await self.c.update_one(
            {"_id": conversation_id, "contact.fetch_state": FetchState.PENDING.value},
            {"$set": {"contact.fetch_state": FetchState.FAILED.value,
                      "contact.fetch_error": error}},
        )


def _counting(ids: list[str], unread: set[str]) -> dict[str, Any]:
    """The update that counts these messages (those in `unread` unread too) and remembers them
    as counted."""
    return {"$inc": {"message_count": len(ids), "unread_count": len(unread.intersection(ids))},
            "$push": {"counted_ids": {"$each": ids, "$slice": -COUNTED_WINDOW}}}


def _conversation_query(where: ConversationFilter) -> dict[str, Any]:
    """One condition per field, never `$and` (see the module's docstring). One channel, or one
    state, is served by its index on (…, last_message_at); other filters are checked on the
    conversations read in last-activity order until the page is full. Only a Lucene query with
    OR or NOT brings `$and`, `$or` or `$nor` (read in Python by nx-27017; store/lucene.py)."""
    query: dict[str, Any] = {}
    if where.channel_ids is not None:
        channels = list(dict.fromkeys(where.channel_ids))  # none: no conversation matches
        query["channel_id"] = eq(channels[0]) if len(channels) == 1 else {"$in": channels}
    if where.state is not None:
        query["state"] = eq(where.state)
    for tag_id in where.tag_ids or []:
        query[f"tags.{tag_id}"] = {"$exists": True}
    if where.unread is True:
        query["unread_count"] = {"$gt": 0}
    elif where.unread is False:
        query["unread_count"] = eq(0)
    if where.display_name:
        # Case-insensitive by an inline flag: nx-27017 runs a `$regex` with `$options` in Python
        # over every document, and one without in SQL (MongoDB takes both).
        query["contact.display_name"] = {"$regex": "(?i)" + re.escape(where.display_name)}
    if where.query is not None:
        query.update(lucene.conditions(where.query, query))
    return query


def _conversation(doc: Doc | None) -> Conversation | None:
    """The conversation a document holds; None: none, or unreadable (skipped with a warning)."""
    return read("conversations", doc, _to_conversation)


def _to_conversation(doc: Doc) -> Conversation:
    contact = doc.get("contact") or {}
    tags = doc.get("tags") or {}
    if not isinstance(contact, dict):
        raise Malformed("contact: not an object")
    if not isinstance(tags, dict):
        raise Malformed("tags: not an object")
    # Its times are those of its first and newest messages, copied from them: one out of range
    # (a message the store should never have taken, itself skipped) is read as the nearest time
    # in range, so that the thread stays readable and can take new messages.
    created, last = (doc.get(name, 0) for name in ("created_at", "last_message_at"))
    created, last = (clamp_ms(t) if isinstance(t, int) and not isinstance(t, bool) else t
                     for t in (created, last))
    return validate(Conversation, {
        "id": doc["_id"], "channel_id": doc.get("channel_id"), "state": doc.get("state"),
        "contact": {
            "id": doc.get("contact_id"), "display_name": contact.get("display_name"),
            "avatar_url": contact.get("avatar_url"),
            "fetch_state": contact.get("fetch_state", FetchState.PENDING.value),
            "fetch_error": contact.get("fetch_error"),
        },
        "created_at": created, "last_message_at": last,
        "unread_count": doc.get("unread_count", 0), "message_count": doc.get("message_count", 0),
        "last_message_id": doc.get("last_message_id"),
        "tag_ids": sorted(tags), "user_data": doc.get("user_data") or {},
        "referral": _tolerant(Referral, doc.get("referral")),
        "optins": [optin for item in _listed(doc.get("optins"))
                   if (optin := _tolerant(Optin, _public(item))) is not None],
        "thread_owner": _thread_owner(doc.get("thread_owner")),
    })


def _thread_owner(value: Any) -> ThreadOwner | None:
    """The stored thread owner; one that cannot be read is not known (None), and the
    conversation stays readable."""
    if not isinstance(value, Mapping):
        return None
    try:
        return validate(ThreadOwner, value)
    except ValueError:
        return None


# A conversation keeps its last opt-ins, one per (type, payload): a page has a few topics.
MAX_OPTINS = 20


def _tolerant(kind: Any, value: Any) -> Any:
    """A stored referral or opt-in; one that cannot be read is left out (None), and the
    conversation stays readable."""
    if not isinstance(value, Mapping):
        return None
    try:
        return validate(kind, value)
    except ValueError:
        return None


def _public(item: Any) -> Any:
    """A stored opt-in without its sealed token (which never leaves the store)."""
    return {k: v for k, v in item.items() if k != "token"} if isinstance(item, Mapping) else None


def _listed(value: Any) -> list[Any]:
    """A stored list; anything else as none."""
    return value if isinstance(value, list) else []


def _later(stored: Any, at: int) -> bool:
    """Is the stored referral or opt-in later than `at`?"""
    when = stored.get("updated_at") if isinstance(stored, Mapping) else None
    return isinstance(when, int) and when > at


# --- messages -------------------------------------------------------------------------------


class MessageRepo:
    def __init__(self, collection) -> None:
        self.c = collection

    async def insert(self, message: Message) -> bool:
        """Store a new message; False when a message with its mid is stored already."""
        doc = _message_doc(message)
        try:
            await self.c.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def insert_many(self, messages: list[Message]) -> list[Message]:
        """Store new messages in one round trip; returns those whose mid was stored already."""
        if not messages:
            return []
        try:
            await self.c.insert_many([_message_doc(m) for m in messages], ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            return [messages[error["index"]] for error in errors]
        return []

    async def stored_copies(self, messages: list[Message]) -> list[Message]:
        """The stored copies of messages an insert found stored already (by mid; by id for
        those without one)."""
        mids = list({m.source_message_id for m in messages if m.source_message_id})
        ids = list({m.id for m in messages if not m.source_message_id})
        # By mid, one lookup of the unique index each (see find_many on `$in`).
        docs = [doc for doc in await asyncio.gather(*(
            self.c.find_one({"mid": eq(mid)}) for mid in mids)) if doc is not None]
        docs += await self.c.find({"_id": {"$in": ids}}).to_list() if ids else []
        return read_all("messages", docs, _to_message)

    async def get(self, message_id: str) -> Message | None:
        return _message(await self.c.find_one({"_id": message_id}))

    async def many(self, ids: list[str]) -> dict[str, Message]:
        docs = self.c.find({"_id": {"$in": list(set(ids))}})
        found = read_all("messages", await docs.to_list(), _to_message)
        return {message.id: message for message in found}

    async def page(self, conversation_id: str, cursor: str | None, size: int, total: int
                   ) -> Page:
        """Newest first. The cursor is the id of the last message of the previous page; after
        messages that could not be read, `<id>~<n>`: that many more documents behind it.
        `total` is the conversation's count of its messages (kept as they are stored)."""
        query: dict[str, Any] = {"conversation_id": eq(conversation_id)}
        start = await self._start(conversation_id, cursor) if cursor else Position()
        docs = await read_after(self.c, query, "sent_at", start, size + 1)
        return _paged("messages", docs, size, _to_message, "sent_at", start, _message_cursor,
                      cursor, total)

    async def page_before(self, conversation_id: str, cursor: str | None, size: int,
                          total: int) -> Page:
        """The `size` messages just before `cursor` (a message id, as `page` hands out) in
        `page`'s order, newest first (the oldest ones without a cursor)."""
        query: dict[str, Any] = {"conversation_id": eq(conversation_id)}
        end = await self._start(conversation_id, cursor) if cursor else Position()
        # what a cursor skips lies after its message: nothing before it is skipped
        end = Position(end.value, end.item_id) if end.value is not None else end
        docs = await read_before(self.c, query, "sent_at", end, size + 1)
        return _paged_before("messages", docs, size, _to_message, "sent_at", _message_cursor,
                             cursor, total)

    async def _start(self, conversation_id: str, cursor: str) -> Position:
        def anchor(message_id: str):
            return self.c.find_one({"_id": message_id, "conversation_id": eq(conversation_id)},
                                   {"sent_at": 1})

        after, skip = await anchor(cursor), 0
        if after is None and (match := _MESSAGE_CURSOR.fullmatch(cursor)):
            skip = int(match.group(2))
            if not match.group(1):
                return Position(skip=skip)
            after = await anchor(match.group(1))
        position = Position().past(after, "sent_at") if after else None
        if position is None or position.value is None:
            raise InvalidInput("cursor is not a message of this conversation")
        return Position(position.value, position.item_id, skip)

    async def mark_delivered(self, message_id: str, mid: str | None) -> str | None:
        """Record the delivery; returns the id of a duplicate echo copy removed on the way."""
        values: dict[str, Any] = {"state": DeliveryState.DELIVERED.value, "error": None}
        if mid:
            values["mid"] = mid
        # A delivery webhook may have marked it delivered already: the mid is still recorded.
        query = {"_id": message_id, "state": {"$in": [DeliveryState.PENDING.value,
                                                      DeliveryState.DELIVERED.value]}}
        # update_one, not find_one_and_update: nx-27017 answers a duplicate key in the latter
        # with "no document" instead of the error MongoDB raises.
        try:
            await self.c.update_one(query, {"$set": values})
            return None
        except DuplicateKeyError:
            # An echo of this very send was stored first as a message of its own: keep one.
            copy = await self.c.find_one_and_delete(
                {"mid": eq(mid), "_id": {"$ne": message_id}, "kind": eq("echo")}
            )
            await self.c.update_one(query, {"$set": values})
            return copy["_id"] if copy else None

    async def back_to_pending(self, message_id: str) -> Message | None:
        """A failed message, to be sent again; None if it is not in a failed state."""
        doc = await self.c.find_one_and_update(
            {"_id": message_id, "state": DeliveryState.FAILED.value},
            {"$set": {"state": DeliveryState.PENDING.value, "error": None}},
            return_document=ReturnDocument.AFTER,
        )
        return _message(doc)

    async def add_suggestions(self, message_id: str, suggestions: dict[str, Any]) -> Message | None:
        """Suggested replies, merged by id into those the message has."""
        doc = await self.c.find_one_and_update(
            {"_id": message_id},
            keeping_types({"$set": {f"suggestions.{key}": value
                                    for key, value in suggestions.items()}}),
            return_document=ReturnDocument.AFTER,
        )
        return _message(doc)

    async def mark_failed(self, message_id: str, error: dict[str, Any]) -> None:
        await self.c.update_one(
            {"_id": message_id, "state": DeliveryState.PENDING.value},
            {"$set": {"state": DeliveryState.FAILED.value, "error": error}},
        )

    async def reconcile_echo(self, message_id: str, mid: str, conversation_id: str) -> bool:
        """An echo of our own send: record its mid on our message. False if it is not ours."""
        doc = await self.c.find_one_and_update(
            {"_id": message_id, "conversation_id": eq(conversation_id),
             "sender_type": eq(SenderType.APP.value), "mid": None},
            {"$set": {"mid": mid, "state": DeliveryState.DELIVERED.value, "error": None}},
        )
        return doc is not None

    async def edit(self, mid: str, text: str | None, num_edit: int, at: int) -> bool | None:
        """The person's edit of message `mid`: its text replaced where Meta's shape has it, the
        earlier text kept. None: no such message; False: this edit, or a later, is applied."""
        for _ in range(EDIT_TRIES):  # another process may apply another edit at the same time
            doc = await self.c.find_one({"mid": eq(mid)})
            if doc is None:
                return None
            message = _message(doc)
            if message is None or message.edit_count >= num_edit:
                return False
            earlier, path = _text_of(message.content)
            # The count as stored: absent in messages stored before edits were kept.
            count_now = eq(message.edit_count) if "edit_count" in doc else {"$exists": False}
            result = await self.c.update_one(
                {"_id": doc["_id"], "edit_count": count_now},
                keeping_types({"$set": {path: text, "edit_count": num_edit},
                               "$push": {"edits": {"text": earlier, "edited_at": at}}}))
            if result.modified_count:
                return True
        return False

    async def react(self, mid: str, reaction: dict[str, Any] | None, at: int) -> bool:
        """Set (or clear) the reaction on a message, unless a later reaction is recorded."""
        result = await self.c.update_one(
            {"mid": eq(mid), "reaction_at": {"$lte": at}},
            {"$set": {"reaction": reaction, "reaction_at": at}},
        )
        return result.matched_count == 1

    async def pending_before(self, message: Message) -> bool:
        """Whether an older message of its conversation is still to be sent (pending): one
        lookup in the index on (conversation, state, time)."""
        return await self.c.find_one(
            {"conversation_id": eq(message.conversation_id),
             "state": eq(DeliveryState.PENDING.value), "sent_at": {"$lt": message.sent_at}},
            {"_id": 1}) is not None

    async def delivered_up_to(self, conversation_id: str, mids: list[str], watermark: int | None):
        """Meta says these of our messages reached the person: pending ones become delivered.
        (The mids, and the watermark, in an update each: see the module's docstring on `$or`.)"""
        pending = {"conversation_id": eq(conversation_id),
                   "state": eq(DeliveryState.PENDING.value),
                   "sender_type": {"$in": [SenderType.APP.value, SenderType.PAGE.value]}}
        delivered = {"$set": {"state": DeliveryState.DELIVERED.value}}
        if mids:
            await self.c.update_many({**pending, "mid": {"$in": mids}}, delivered)
        if watermark is not None:
            await self.c.update_many({**pending, "sent_at": {"$lte": watermark}}, delivered)

    async def read_up_to(self, conversation_id: str, watermark: int) -> None:
        """The person has read every page message sent up to `watermark` (one update per kind
        of sender, each an index range of what is still unread)."""
        for sender in (SenderType.APP.value, SenderType.PAGE.value):
            await self.c.update_many(
                {"conversation_id": eq(conversation_id), "sender_type": eq(sender),
                 "read_by_contact": eq(False), "sent_at": {"$lte": watermark}},
                {"$set": {"read_by_contact": True}},
            )


def _message_doc(message: Message) -> dict[str, Any]:
    doc = asdict(message)
    doc["_id"] = doc.pop("id")
    doc["mid"] = doc.pop("source_message_id")
    doc["sender_type"] = message.sender_type.value
    doc["state"] = message.state.value
    doc["reaction_at"] = 0
    return doc


EDIT_TRIES = 3


def _text_of(content: Mapping[str, Any]) -> tuple[Any, str]:
    """A message's text and its path: `message.text` of a Messenger event, else `text`."""
    if isinstance(content.get("message"), Mapping):
        return content["message"].get("text"), "content.message.text"
    return content.get("text"), "content.text"


_MESSAGE_CURSOR = re.compile(r"(.*)~([1-9][0-9]{0,8})", flags=re.DOTALL)


def _message_cursor(position: Position) -> str:
    if not position.skip and position.item_id is not None:
        return position.item_id
    return f"{position.item_id or ''}~{position.skip}"


def _message(doc: Doc | None) -> Message | None:
    """The message a document holds; None: none, or unreadable (skipped with a warning)."""
    return read("messages", doc, _to_message)


def _to_message(doc: Doc) -> Message:
    return validate(Message, {
        "id": doc["_id"], "conversation_id": doc.get("conversation_id"),
        "channel_id": doc.get("channel_id"), "content": doc.get("content"),
        "sender_type": doc.get("sender_type"), "state": doc.get("state"),
        "sent_at": doc.get("sent_at"), "source_message_id": doc.get("mid"),
        "error": doc.get("error"), "reaction": doc.get("reaction"),
        "read_by_contact": doc.get("read_by_contact") or False,
        "kind": doc.get("kind", "message"), "send_options": doc.get("send_options"),
        "suggestions": doc.get("suggestions") or {}, "user_data": doc.get("user_data") or {},
        "edit_count": doc.get("edit_count") or 0,
        "edits": [edit for edit in _listed(doc.get("edits"))
                  if _tolerant(MessageEdit, edit) is not None],
    })


# --- tags and user data ---------------------------------------------------------------------


class TagRepo:
    def __init__(self, collection) -> None:
        self.c = collection

    async def create(self, name: str, color: TagColor) -> Tag | None:
        """None when a tag of that name exists."""
        tag = Tag(id=new_id(), name=name, color=color)
        try:
            await self.c.insert_one({"_id": tag.id, "name": name, "color": color})
        except DuplicateKeyError:
            return None
        return tag

    async def list(self) -> list[Tag]:
        docs = await self.c.find({}).sort("name", ASCENDING).to_list()
        return read_all("tags", docs, _to_tag)

    async def get(self, tag_id: str) -> Tag | None:
        doc = await self.c.find_one({"_id": tag_id})
        return _tag(doc)

    async def many(self, ids: builtins.list[str]) -> dict[str, Tag]:
        docs = await self.c.find({"_id": {"$in": builtins.list(set(ids))}}).to_list()
        return {tag.id: tag for tag in read_all("tags", docs, _to_tag)}

    async def update(self, tag_id: str, changes: dict[str, Any]) -> bool:
        """False when there is no such tag; `Conflict` when another tag has the name."""
        try:
            result = await self.c.update_one({"_id": tag_id}, {"$set": changes})
        except DuplicateKeyError:
            raise Conflict(f"a tag named {changes.get('name')!r} exists already") from None
        return result.matched_count == 1

    async def delete(self, tag_id: str) -> bool:
        return (await self.c.delete_one({"_id": tag_id})).deleted_count == 1


def _tag(doc: Doc | None) -> Tag | None:
    """The tag a document holds; None: none, or unreadable (skipped with a warning)."""
    return read("tags", doc, _to_tag)


def _to_tag(doc: Doc) -> Tag:
    return validate(Tag, {"id": doc["_id"], "name": doc.get("name"), "color": doc.get("color")})


USER_DATA_OWNERS = {"message": "messages", "conversation": "conversations", "channel": "channels"}

# A field no document has: pulling from it changes nothing, on either server.
ABSENT_ARRAY = "_keep_types"


def keeping_types(update: dict[str, Any]) -> dict[str, Any]:
    """`update` in a shape that stores every JSON type as it is, for users' data.

    nx-27017 applies a plain update in SQL, binding each `$set` value as an SQLite parameter, so a
    bare `true`/`false` (a whole field, or a leaf at a dotted path) is stored as 1/0; objects and
    lists keep their types, as inserts and replacements do. An update that also pulls from an
    array field the document lacks is applied to the whole document instead, which keeps every
    type. On MongoDB, pulling from an absent field does nothing.
    """
    return {**update, "$pullAll": {ABSENT_ARRAY: []}}


async def merge_user_data(
    store: Store, subject: str, owner_id: str, data: dict[str, Any]
) -> dict[str, Any] | None:
    """Merge `data` deeply into the owner's `user_data` and return it; None: no such owner.

    Objects merge key by key; anything else (a string, a list, null) replaces what was there.
    Each leaf is its own `$set`, so concurrent upserts of different keys do not undo each other.
    """
    collection = store.db[USER_DATA_OWNERS[subject]]
    doc = await collection.find_one({"_id": owner_id}, {"user_data": 1})
    if doc is None:
        return None
    changes = dict(_merge_paths(doc.get("user_data") or {}, data, "user_data"))
    if changes:
        doc = await collection.find_one_and_update(
            {"_id": owner_id}, keeping_types({"$set": changes}), {"user_data": 1},
            return_document=ReturnDocument.AFTER,
        )
    return (doc or {}).get("user_data") or {}


def _merge_paths(existing: Any, data: dict[str, Any], prefix: str):
    for key, value in data.items():
        path = f"{prefix}.{key}"
        current = existing.get(key) if isinstance(existing, dict) else None
        if isinstance(value, dict) and isinstance(current, dict):
            yield from _merge_paths(current, value, path)
        else:
            yield path, value


# --- raw events -----------------------------------------------------------------------------


class EventRepo:
    """Every event a source sent, once: the durable record a webhook call is answered after.
    An opt-in's token (`secret`) is kept sealed, as page tokens are."""

    def __init__(self, collection, cipher: TokenCipher | None = None) -> None:
        self.c = collection
        self.cipher = cipher or TokenCipher()

    async def record(self, events: list[InboundEvent], at: int) -> list[InboundEvent]:
        """Store the events; return those still to be applied (new, or stored but not applied).

        An invalid event is stored with its reason (`invalid`) as processed already, so that
        nothing ever applies it, and it is never returned."""
        if not events:
            return []
        unique = {event.key: event for event in events}
        docs = [
            {**_event_doc(event), "secret": self.cipher.seal(event.secret or "") or None,
             "received_at": at, "processed": event.invalid is not None}
            for event in unique.values()
        ]
        duplicates: list[str] = []
        try:
            await self.c.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            for error in exc.details.get("writeErrors", []):
                if error.get("code") != DUPLICATE_KEY:
                    raise
                duplicates.append(docs[error["index"]]["_id"])
        if duplicates:
            done = self.c.find({"_id": {"$in": duplicates}, "processed": eq(True)}, {"_id": 1})
            applied = {doc["_id"] async for doc in done}
            return [e for key, e in unique.items() if key not in applied and e.invalid is None]
        return [e for e in unique.values() if e.invalid is None]

    async def mark_processed(self, keys: list[str]) -> None:
        if keys:
            await self.c.update_many({"_id": {"$in": keys}}, {"$set": {"processed": True}})

    async def unprocessed(self, older_than: int, limit: int = 500) -> list[InboundEvent]:
        """Events stored but not applied, oldest first. One that cannot be read is marked
        processed, with why (`invalid`), so that it is not picked up again."""
        cursor = self.c.find({"processed": eq(False), "received_at": {"$lte": older_than}})
        docs = await cursor.sort("received_at", ASCENDING).limit(limit).to_list()
        events: list[InboundEvent] = []
        for doc in docs:
            try:
                event = convert("events", doc, _to_event)
                event.secret = self.cipher.open(event.secret) if event.secret else None
                events.append(event)
            except Unreadable as exc:
                await self.c.update_one({"_id": doc["_id"]}, {"$set": {
                    "processed": True, "invalid": f"cannot be read: {exc.reason}"}})
        return events


_EVENT_FIELDS = [f.name for f in fields(InboundEvent)]


def _event_doc(event: InboundEvent) -> dict[str, Any]:
    doc = {name: getattr(event, name) for name in _EVENT_FIELDS}
    doc["_id"] = doc.pop("key")
    doc["kind"] = event.kind.value
    return doc


def _to_event(doc: Doc) -> InboundEvent:
    values = {name: doc.get(name) for name in _EVENT_FIELDS if name != "key"}
    values["mids"] = values["mids"] or []
    values["standby"] = bool(values["standby"])  # absent before handover was read
    return validate(InboundEvent, {"key": doc["_id"], **values})


# --- edits of messages not stored yet -------------------------------------------------------


class ParkedEditRepo:
    """Edits of messages not stored (yet): Meta may send an edit before its message, or for one
    sent before the page was connected. One per mid (the latest edit), until the message comes:
    at most PARKED_EDITS_MAX, each for PARKED_EDIT_MS; past either, an edit is dropped."""

    def __init__(self, collection) -> None:
        self.c = collection

    async def park(self, edit: ParkedEdit, now: int) -> bool:
        """Keep `edit` for its message; False: dropped (too many parked)."""
        await self.c.delete_many({"parked_at": {"$lt": now - PARKED_EDIT_MS}})
        doc = {"_id": edit.mid, "text": edit.text, "num_edit": edit.num_edit, "at": edit.at,
               "parked_at": now}
        try:
            if await count(self.c, {"parked_at": {"$gte": 0}}) >= PARKED_EDITS_MAX:
                return False
            await self.c.insert_one(doc)
        except DuplicateKeyError:  # an edit of the same message is parked: keep the later
            await self.c.update_one({"_id": edit.mid, "num_edit": {"$lt": edit.num_edit}},
                                    {"$set": doc})
        return True

    async def take(self, mids: list[str]) -> list[ParkedEdit]:
        """The parked edits of these messages (now stored), no longer parked."""
        if not mids:
            return []
        docs = await self.c.find({"_id": {"$in": list(dict.fromkeys(mids))}}).to_list()
        if docs:
            await self.c.delete_many({"_id": {"$in": [doc["_id"] for doc in docs]}})
        return read_all("parked_edits", docs, _to_parked_edit)


def _to_parked_edit(doc: Doc) -> ParkedEdit:
    return validate(ParkedEdit, {"mid": doc["_id"], "text": doc.get("text"),
                                 "num_edit": doc.get("num_edit"), "at": doc.get("at")})


# --- work queues ----------------------------------------------------------------------------


def _to_job(doc: Doc) -> Job:
    return validate(Job, {"id": doc["_id"], "attempts": doc.get("attempts", 0),
                          "created_at": doc.get("created_at", 0), "data": doc.get("data") or {}})


PARKED_AT = 2**62  # the `next_at` of a parked job: never due


# claim_many reads this many times its limit of due jobs, to find as many of different groups.
CLAIM_LOOK_AHEAD = 2


class JobRepo:
    """Durable work with leases: any process may take a due job, one process at a time.

    A job that cannot be read, or whose subject cannot, is parked: kept with why (`parked`),
    never due again, so that no pass meets it again and again."""

    def __init__(self, collection, subjects: tuple[Any, Callable[[Doc], Any]] | None = None
                 ) -> None:
        self.c = collection
        self.subjects = subjects  # the collection of what the jobs are about, and its converter

    async def add(self, job_id: str, at: int, data: dict[str, Any] | None = None,
                  due: int | None = None, group: str | None = None) -> None:
        """Queue a job made at `at`, due then or at `due`; jobs of one `group` (a send's
        conversation) are taken one at a time by `claim_many`."""
        doc: dict[str, Any] = {"_id": job_id, "next_at": at if due is None else due,
                               "attempts": 0, "created_at": at, "data": data or {}}
        if group is not None:
            doc["group"] = group
        try:
            await self.c.insert_one(doc)
        except DuplicateKeyError:
            pass  # queued already

    async def claim(self, now: int, lease_ms: int) -> Job | None:
        """Take the most overdue job for `lease_ms`; it comes back if the taker dies."""
        while True:
            doc = await self.c.find_one_and_update(
                {"next_at": {"$lte": now}},
                {"$set": {"next_at": now + lease_ms}},
                sort=[("next_at", ASCENDING)],
                return_document=ReturnDocument.AFTER,
            )
            if doc is None:
                return None
            try:
                return convert(self.c.name, doc, _to_job)
            except Unreadable as exc:
                await self.park(doc["_id"], exc.reason)

    async def claim_many(self, now: int, lease_ms: int, limit: int,
                         busy: Collection[str] = ()) -> list[Job]:
        """Take up to `limit` of the most overdue jobs for `lease_ms`, oldest first, at most one
        of each group and none of the `busy` groups (those are left as they are, due): two
        round trips when no other process takes the same jobs at once (three when one does)."""
        query: dict[str, Any] = {"next_at": {"$lte": now}}
        if busy:
            query["group"] = {"$nin": list(busy)}
        found = await self.c.find(query).sort("next_at", ASCENDING) \
            .limit(limit * CLAIM_LOOK_AHEAD).to_list(None)
        docs, groups = [], set()
        for doc in found:
            group = doc.get("group")
            if group is None or group not in groups:
                docs.append(doc)
                groups.add(group)
        docs = docs[:limit]
        if not docs:
            return []
        ids, token = [doc["_id"] for doc in docs], new_id()
        taken = await self.c.update_many({"_id": {"$in": ids}, "next_at": {"$lte": now}},
                                         {"$set": {"next_at": now + lease_ms, "lease": token}})
        if taken.modified_count < len(ids):  # another process took some: keep only ours
            ours = {doc["_id"] for doc in await self.c.find(
                {"_id": {"$in": ids}, "lease": token}, {"_id": 1}).to_list(None)}
            docs = [doc for doc in docs if doc["_id"] in ours]
        jobs = []
        for doc in docs:
            try:
                jobs.append(convert(self.c.name, doc, _to_job))
            except Unreadable as exc:
                await self.park(doc["_id"], exc.reason)
        return jobs

    async def park(self, job_id: Any, reason: str) -> None:
        """Never due again; kept, saying why, for someone to look at."""
        log.warning("parked a job of %s (_id %r), never to be tried again: %s", self.c.name,
                    job_id, reason)
        await self.c.update_one({"_id": job_id},
                                {"$set": {"next_at": PARKED_AT, "parked": reason}})

    async def subject_unreadable(self, job_id: str) -> bool:
        """Whether what the job is about is stored, but cannot be read."""
        if self.subjects is None:
            return False
        collection, to = self.subjects
        doc = await collection.find_one({"_id": job_id})
        return doc is not None and read(collection.name, doc, to) is None

    async def forget(self, job_id: str, key: str) -> None:
        """Remove `key` from the job's data."""
        await self.c.update_one({"_id": job_id}, {"$unset": {f"data.{key}": ""}})

    async def release(self, job_id: str, at: int, key: str) -> None:
        """Remove `key` from the job's data and make it due at `at`, in one update."""
        await self.c.update_one({"_id": job_id},
                                {"$unset": {f"data.{key}": ""}, "$set": {"next_at": at}})

    async def retry_at(self, job_id: str, at: int, attempts: int) -> None:
        await self.c.update_one({"_id": job_id}, {"$set": {"next_at": at, "attempts": attempts}})

    async def done(self, job_id: str) -> None:
        await self.c.delete_one({"_id": job_id})


# --- change streams -------------------------------------------------------------------------

# The store's converter to each domain object a change may carry; which collections are followed,
# and what each carries, is declared in `gateway.changes`.
CONVERTERS: dict[type, Callable[[Doc], Any]] = {
    Message: _to_message, Conversation: _to_conversation, Channel: _to_channel, Tag: _to_tag,
    ContactCard: to_contact, Webhook: to_webhook,
}
WATCHED: dict[str, Callable[[Doc], Any]] = {
    name: CONVERTERS[kind] for name, kind in registry.WATCHED.items()
}


@dataclass
class Change:
    """One write to a watched collection, as the domain object it left behind."""

    collection: str  # messages, conversations, channels, tags
    operation: str  # insert, update, replace; delete when asked for
    value: Any  # Message, Conversation, Channel or Tag; None: deleted, or unreadable
    resume_token: Any
    # Why the document the write left cannot be read (it was warned about); value is None.
    unreadable: str | None = None
    key: Any = None  # the document's _id: what a deletion names


async def check_change_streams(store: Store) -> None:
    """Open and close a change stream; raises what the server says when it cannot."""
    async with await store.db.messages.watch(max_await_time_ms=1):
        pass


# MongoDB holds an empty getMore on a change stream for up to maxAwaitTimeMS, waiting for a
# change; nx-27017 answers it at once. Asked back to back, an idle stream would keep a core busy on
# each side, so an empty answer that came sooner than the server could have waited is followed by
# a pause, doubling from the first figure to the second while nothing changes. A write this
# process makes to the collection cuts the pause to the first figure, so its own changes come
# through within milliseconds; another process's wait at most the pause. Against MongoDB no pause
# is ever taken.
MAX_AWAIT_MS = 1000
IDLE_PAUSE_SECONDS = (0.005, 0.05)


async def changes(
    store: Store, collection: str, resume_after: Any = None,
    on_open: Callable[[], None] | None = None, deletes: bool = False,
):
    """Follow one collection (never the whole database) from `resume_after` on. With `deletes`,
    a deleted document (or one deleted before its update could be looked up) comes as a change
    whose value is None. A document that cannot be read comes as a change whose value is None and
    that says why (`unreadable`): never as an error, which would have the stream resumed before
    it again and again. The stream ends (without an error) once the server has been lost since
    it opened: the caller opens a new one from the last change it took (see `Losses`)."""
    to = WATCHED[collection]
    operations = ["insert", "update", "replace", *(["delete"] if deletes else [])]
    pipeline = [{"$match": {"operationType": {"$in": operations}}}]
    clock = asyncio.get_running_loop().time
    written = asyncio.Event()

    def wake(name: str) -> None:
        if name == collection:
            written.set()

    store.writes.watch(wake)
    losses = store.losses.count
    try:
        async with await store.db[collection].watch(
            pipeline, full_document="updateLookup", resume_after=resume_after,
            max_await_time_ms=MAX_AWAIT_MS,
        ) as stream:
            if on_open:
                on_open()
            pause = IDLE_PAUSE_SECONDS[0]
            while stream.alive:
                written.clear()
                asked = clock()
                change = await stream.try_next()
                if store.losses.count != losses:
                    return  # resumed by the driver across a loss: not to be trusted
                if change is None:
                    if clock() - asked < MAX_AWAIT_MS / 2000:
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(written.wait(), pause)
                        # Woken: still no sooner than the shortest pause, so that a burst of
                        # writes is read in a few getMores rather than one each.
                        await asyncio.sleep(asked + IDLE_PAUSE_SECONDS[0] - clock())
                        pause = min(pause * 2, IDLE_PAUSE_SECONDS[1])
                    continue
                pause = IDLE_PAUSE_SECONDS[0]
                # A deletion carries no document (nx-27017 hands back the one deleted).
                document = None if change["operationType"] == "delete" else \
                    change.get("fullDocument")
                if document is None and not deletes:  # deleted before the lookup
                    continue
                value, unreadable = None, None
                if document is not None:
                    try:
                        value = convert(collection, document, to)
                    except Unreadable as exc:
                        unreadable = str(exc)
                yield Change(collection, change["operationType"], value, stream.resume_token,
                             unreadable, (change.get("documentKey") or {}).get("_id"))
    finally:
        store.writes.unwatch(wake)
