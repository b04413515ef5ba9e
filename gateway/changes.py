"""What changes, and what follows each change: one declaration, read by everything that follows.

A write to the store reaches live subscriptions (through the bus's change streams), empties the
query cache, and is posted to outgoing webhooks; the cache may only keep the answers of reads
whose collections it follows, or it serves stale answers. So each collection says here what
follows it and which cached reads read it, and everything that follows changes takes its list
from this declaration:

- `STREAMS`: the collections the bus follows (for subscriptions and the cache);
- `CACHE_FOLLOWS`: the collections whose changes forget every cached answer;
- `FEEDS`: the collections whose changes are posted to outgoing webhooks;
- `WATCHED`: every collection a change stream follows, with the domain object its changes carry
  (the store converts each document to it);
- `GRAPHQL_READS`, `REST_READS`: the GraphQL root fields and REST routes whose answers the cache
  keeps: those every one of whose collections the cache follows.

Adding a collection, or a cached read of one, is one entry here (`tests/test_changes_registry.py`
checks the entries against what each read asks the store for).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.domain import Channel, ContactCard, Conversation, Message, Tag, Webhook


@dataclass(frozen=True)
class Collection:
    """A collection whose changes something follows, or that a cached read reads."""

    name: str
    kind: type | None = None  # the domain object its changes carry; None: no stream follows it
    subscriptions: bool = False  # live subscriptions follow its changes
    cache: bool = False  # a change to it forgets every cached answer
    webhooks: bool = False  # its changes are posted to outgoing webhooks
    graphql: frozenset[str] = frozenset()  # GraphQL root fields that read it
    rest: frozenset[str] = frozenset()  # REST routes that read it
    # Never written without a write to this collection after it, which the cache follows: a read
    # of this one is then forgotten in time, though no stream follows it.
    changes_with: str | None = None

    def __post_init__(self) -> None:
        if self.streamed and self.kind is None:
            raise ValueError(f"{self.name}: a change stream follows it, so its changes must "
                             "carry a domain object (kind)")

    @property
    def streamed(self) -> bool:
        """Followed by a change stream, in the bus or in the webhook feed."""
        return self.subscriptions or self.cache or self.webhooks


CONVERSATION_READS = frozenset({"conversations", "conversation"})
CONVERSATION_ROUTES = frozenset({"/conversations.list", "/conversations.info"})

COLLECTIONS: tuple[Collection, ...] = (
    Collection("messages", Message, subscriptions=True, cache=True, webhooks=True,
               graphql=CONVERSATION_READS | {"messages"},  # a conversation's last message
               rest=CONVERSATION_ROUTES | {"/messages.list"}),
    Collection("conversations", Conversation, subscriptions=True, cache=True, webhooks=True,
               graphql=CONVERSATION_READS | {"messages"},  # messages: of a conversation
               rest=CONVERSATION_ROUTES | {"/messages.list"}),
    Collection("channels", Channel, subscriptions=True, cache=True, webhooks=True,
               graphql=CONVERSATION_READS | {"channels", "channel"},
               rest=CONVERSATION_ROUTES | {"/channels.list", "/channels.info", "/messages.list"}),
    # REST shows a conversation's tags by id; GraphQL reads each tag. Realtime: tag.updated.
    Collection("tags", Tag, subscriptions=True, cache=True,
               graphql=CONVERSATION_READS | {"tags"}, rest=frozenset({"/tags.list"})),
    # The channels' counts of conversations and a list's `total`: never written without a write
    # to the counted conversation after it (the message it came with, its profile), which forgets
    # what was read in between.
    Collection("counters", changes_with="conversations",
               graphql=frozenset({"conversations"}), rest=frozenset({"/conversations.list"})),
    # Contacts: followed for the contactUpdated subscription. Their reads are not cached
    # (`contacts.info` by conversation id may make the contact; a list's total is a count in
    # `counters` written after the contacts), but every collection here is one the cache
    # follows, so that a cached read may be declared later without a stale answer.
    Collection("contacts", ContactCard, subscriptions=True, cache=True),
    # Webhooks: followed for the webhookUpdated subscription (delivery status: each try of a
    # delivery writes its outcome here). No cached read reads them, and the cache must not
    # forget everything on every delivery.
    Collection("webhooks", Webhook, subscriptions=True),
)


def _cache_hears_of(collection: Collection, by_name: dict[str, Collection]) -> bool:
    """The cache forgets what was read from `collection` in time after it changes."""
    if collection.cache:
        return True
    covering = by_name.get(collection.changes_with or "")
    return covering is not None and covering.cache


def cached(collections: tuple[Collection, ...],
           reads_of: Callable[[Collection], frozenset[str]]) -> frozenset[str]:
    """The reads (GraphQL root fields, or REST routes) every one of whose collections the cache
    hears of in time: those whose answers it may keep."""
    by_name = {collection.name: collection for collection in collections}
    reads: dict[str, list[Collection]] = {}
    for collection in collections:
        for read in reads_of(collection):
            reads.setdefault(read, []).append(collection)
    return frozenset(read for read, readers in reads.items()
                     if all(_cache_hears_of(collection, by_name) for collection in readers))


STREAMS = tuple(c.name for c in COLLECTIONS if c.subscriptions or c.cache)
CACHE_FOLLOWS = frozenset(c.name for c in COLLECTIONS if c.cache)
FEEDS = tuple(c.name for c in COLLECTIONS if c.webhooks)
WATCHED = {c.name: c.kind for c in COLLECTIONS if c.streamed and c.kind is not None}
GRAPHQL_READS = cached(COLLECTIONS, lambda collection: collection.graphql)
REST_READS = cached(COLLECTIONS, lambda collection: collection.rest)
