"""One declaration of what changes (`gateway.changes`): every cached read follows what it reads, and
every consumer takes its list from the declaration rather than keeping its own."""

from __future__ import annotations

import asyncio
import contextvars
import json
import typing
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLUnionType,
    build_schema,
)
from pymongo.monitoring import CommandListener, CommandStartedEvent

from gateway import bus, changes, outgoing
from gateway.app import create_app
from gateway.cache import QueryCache
from gateway.graphql import reads
from gateway.sources.facebook.signature import sign
from gateway.store import Store, mongo
from tests import payloads
from tests.conftest import APP_ID, APP_SECRET, VERIFY_TOKEN

SCHEMA = Path(__file__).parent.parent / "schema" / "schema.graphql"
# Collections of the store no cached read reads: changes to them must leave the cache be.
UNREAD = ("events", "outbox", "profile_jobs", "webhooks", "webhook_deliveries", "webhook_feed")


# --- the declaration agrees with itself -------------------------------------------------------

def test_every_collection_a_cached_read_reads_is_followed_by_the_cache():
    by_name = {collection.name: collection for collection in changes.COLLECTIONS}
    for collection in changes.COLLECTIONS:
        if not (collection.graphql or collection.rest):
            continue  # no cached read reads it (webhooks: followed for webhookUpdated alone)
        covering = by_name.get(collection.changes_with or "")
        assert collection.cache or (covering and covering.cache), (
            f"{collection.name} is read by {sorted(collection.graphql | collection.rest)}, "
            "but no change to it reaches the query cache")
    # So every read declared is cached: none is left out for reading what the cache misses.
    assert set().union(*(c.graphql for c in changes.COLLECTIONS)) == changes.GRAPHQL_READS
    assert set().union(*(c.rest for c in changes.COLLECTIONS)) == changes.REST_READS


def test_a_read_of_a_collection_the_cache_does_not_follow_is_not_cached():
    unfollowed = changes.Collection("webhooks", graphql=frozenset({"webhooks", "tags"}),
                                    rest=frozenset({"/tags.list"}))
    collections = (*changes.COLLECTIONS, unfollowed)
    assert changes.cached(collections, lambda c: c.graphql) == changes.GRAPHQL_READS - {"tags"}
    assert changes.cached(collections, lambda c: c.rest) == changes.REST_READS - {"/tags.list"}


def test_every_followed_collection_has_a_converter_to_its_domain_object():
    streamed = [c for c in changes.COLLECTIONS if c.streamed]
    assert set(mongo.WATCHED) == {c.name for c in streamed}
    for collection in streamed:
        converter = mongo.WATCHED[collection.name]
        assert typing.get_type_hints(converter)["return"] is collection.kind, collection.name
    with pytest.raises(ValueError, match="domain object"):
        changes.Collection("somewhere", cache=True)


def test_every_feed_of_outgoing_webhooks_and_of_subscriptions_is_watched():
    assert set(changes.FEEDS) <= set(mongo.WATCHED)
    assert set(changes.STREAMS) <= set(mongo.WATCHED)
    assert {c.name for c in changes.COLLECTIONS if c.subscriptions} <= set(changes.STREAMS)
    assert changes.CACHE_FOLLOWS <= set(changes.STREAMS)  # other processes' changes come by it


# --- the declaration drives each consumer -----------------------------------------------------

def test_the_query_cache_forgets_on_exactly_the_collections_declared():
    cache = QueryCache(max_bytes=4000, live=lambda: True)
    forgotten = set()
    for name in [*(c.name for c in changes.COLLECTIONS), *UNREAD]:
        before = cache.generation
        cache.changed(name)
        if cache.generation != before:
            forgotten.add(name)
    assert forgotten == changes.CACHE_FOLLOWS


def test_the_bus_follows_the_declared_streams(monkeypatch):
    opened: list[str] = []

    async def follow(store, collection, token, on_open, deletes=False):
        opened.append(collection)
        on_open()
        await asyncio.Event().wait()
        yield

    async def scenario() -> bool:
        events = bus.EventBus()
        await events.start(typing.cast(Store, object()))  # its streams are faked
        try:
            return events.live
        finally:
            await events.stop()

    monkeypatch.setattr(bus, "changes", follow)
    assert asyncio.run(scenario())
    assert tuple(opened) == changes.STREAMS


def test_outgoing_webhooks_and_graphql_reads_take_the_declared_lists():
    assert outgoing.FEEDS is changes.FEEDS
    assert reads.STORE_FIELDS == changes.GRAPHQL_READS | {"__typename"}
    for field in changes.GRAPHQL_READS:
        body = json.dumps({"query": f"{{ {field} {{ __typename }} }}"}).encode()
        assert reads.store_reads(max_tokens=2000, cache_size=16)(body), field
    # What app.py hands the query cache today: the routes marked as reading the store alone.


# --- what each cached read asks the store for ---------------------------------------------------

reading: contextvars.ContextVar[str | None] = contextvars.ContextVar("reading", default=None)


class CollectionsRead(CommandListener):
    """The collections each request read, by the request's label (`reading`)."""

    # Each reading command, and the field of it that names the collection.
    COMMANDS: typing.ClassVar = {"find": "find", "aggregate": "aggregate", "count": "count",
                                 "distinct": "distinct", "getMore": "collection"}

    def __init__(self) -> None:
        self.by_read: dict[str, set[str]] = {}

    def started(self, event: CommandStartedEvent) -> None:
        label = reading.get()
        field = self.COMMANDS.get(event.command_name)
        if label is not None and field is not None:
            self.by_read.setdefault(label, set()).add(event.command[field])

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


def full_selection(kind: Any, depth: int = 4) -> str:
    """Every field of `kind` that takes no argument it must be given, to `depth` levels."""
    while isinstance(kind, GraphQLNonNull | GraphQLList):
        kind = kind.of_type
    if not isinstance(kind, GraphQLObjectType):
        return ""
    fields = []
    for name, field in kind.fields.items():
        if any(isinstance(arg.type, GraphQLNonNull) for arg in field.args.values()):
            continue
        inner = field.type
        while isinstance(inner, GraphQLNonNull | GraphQLList):
            inner = inner.of_type
        if isinstance(inner, GraphQLObjectType):
            if depth > 1:
                fields.append(f"{name} {full_selection(inner, depth - 1)}")
        elif isinstance(inner, GraphQLUnionType | GraphQLInterfaceType):
            fields.append(f"{name} {{ __typename }}")  # typed content: read from the message
        else:
            fields.append(name)
    return "{ " + " ".join(fields) + " }"


def settings_env(monkeypatch, nx_url: str, graph_url: str) -> None:
    for name, value in {
        "MONGODB_URL": nx_url, "MONGODB_DATABASE": "t_registry_" + uuid.uuid4().hex[:8],
        "FACEBOOK_APP_ID": APP_ID, "FACEBOOK_APP_SECRET": APP_SECRET,
        "FACEBOOK_WEBHOOK_SECRET": VERIFY_TOKEN, "FACEBOOK_GRAPH_API_URL": graph_url,
        "WORKER_POLL_SECONDS": "0.1", "QUERY_CACHE_MB": "0",  # every read goes to the store
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SYSTEM_TOKEN", raising=False)


def test_each_cached_read_reads_exactly_the_collections_declared(nx_url, graph, monkeypatch):
    """The app in this process, against the store, each read's commands recorded: a cached read
    that starts reading a collection not declared for it (which the cache may not follow) fails
    here, and so does a declaration of more than a read reads."""
    listener = CollectionsRead()
    connect = mongo.AsyncMongoClient

    def listened(*args, event_listeners=(), **kwargs):
        return connect(*args, event_listeners=[*event_listeners, listener], **kwargs)

    monkeypatch.setattr(mongo, "AsyncMongoClient", listened)
    settings_env(monkeypatch, nx_url, graph.url)
    page_id, page_token = "610301", "EAAtoken-registry"
    graph.add_page(page_id, page_token)
    graph.add_profile("7301", "Ada", "Lovelace")
    graph.add_profile("7302", "Grace", "Hopper")
    schema = build_schema(SCHEMA.read_text())
    query_type = schema.query_type
    assert query_type is not None and changes.GRAPHQL_READS <= set(query_type.fields)

    async def scenario() -> None:
        app = create_app()
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=transport, base_url="http://127.0.0.1") as http:

            async def post(route: str, body: Any, label: str | None = None) -> httpx.Response:
                mark = reading.set(label)
                try:
                    return await http.post(route, json=body)
                finally:
                    reading.reset(mark)

            channel = (await post("/channels.facebook.connect",
                                  {"page_id": page_id, "page_token": page_token})).json()
            # Two people: a page of one is not the whole list, so the list reads its count.
            for psid in ("7301", "7302"):
                raw = json.dumps(payloads.envelope(page_id, payloads.text(page_id, psid))).encode()
                assert (await http.post("/facebook", content=raw, headers={
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": sign(APP_SECRET, raw)})).status_code == 200
            for _ in range(300):  # profiles fetched: no more background writes to them
                listed = (await post("/conversations.list", {})).json()["data"]
                if len(listed) == 2 and all(c["contact"]["fetch_state"] == "ok" for c in listed):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the contact's profile was not fetched")
            conversation = listed[0]["id"]
            tag = (await post("/tags.create", {"name": "vip"})).json()
            assert (await post("/conversations.tag", {"conversation_id": conversation,
                                                      "tag_id": tag["id"]})).status_code == 204

            bodies = {
                "/channels.list": {}, "/channels.info": {"channel_id": channel["id"]},
                "/conversations.list": {"page_size": 1},
                "/conversations.info": {"conversation_id": conversation},
                "/messages.list": {"conversation_id": conversation}, "/tags.list": {},
            }
            assert set(bodies) == changes.REST_READS  # a read declared needs a body here
            # Channels read before are kept in memory (KnownChannels): forgotten before each
            # read, so that each reads every collection it depends on.
            known = app.state.store.channels.known
            for route, body in bodies.items():
                known.changed(None)
                answer = await post(route, body, label=route)
                assert answer.status_code == 200, answer.text

            arguments = {"channel": f'(id: "{channel["id"]}")', "conversations": "(first: 1)",
                         "conversation": f'(id: "{conversation}")',
                         "messages": f'(conversationId: "{conversation}")'}
            for name in sorted(changes.GRAPHQL_READS):
                selection = full_selection(query_type.fields[name].type)
                query = f"{{ {name}{arguments.get(name, '')} {selection} }}"
                known.changed(None)
                answer = await post("/graphql", {"query": query}, label=name)
                assert answer.status_code == 200 and "errors" not in answer.json(), answer.text

    asyncio.run(scenario())
    declared = {read: {c.name for c in changes.COLLECTIONS if read in c.graphql | c.rest}
                for read in changes.GRAPHQL_READS | changes.REST_READS}
    assert listener.by_read == declared
