"""The query cache: a repeated read is answered from memory, and never after a change it missed."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from gateway.cache import Answer, QueryCache
from gateway.graphql.reads import store_reads
from gateway.store import Store
from tests import payloads
from tests.conftest import connect_page, wait_for

INBOX = """query Inbox($first: Int!) {
  conversations(first: $first) {
    totalCount
    edges { node { id contact { displayName } lastMessage { content: rawContent } } }
  }
}"""


def graphql(gw, query: str, variables: dict | None = None):
    return gw.http.post("/graphql", json={"query": query, "variables": variables or {}})


def cached(response) -> str | None:
    return response.headers.get("x-query-cache")


def quiet() -> None:
    """Let the change streams bring back the writes made so far: each empties the cache again
    when it arrives, a few milliseconds after the write."""
    time.sleep(0.5)


def one_conversation(gw, graph, psid: str = "7001") -> tuple[str, str]:
    """A page with one person writing to it, profile fetched (no more background writes);
    returns (page id, conversation id)."""
    page = connect_page(gw, graph)["source_channel_id"]
    graph.add_profile(psid, "Ada", "Lovelace")
    assert gw.webhook(payloads.envelope(page, payloads.text(page, psid, "first"))).status_code == 200
    data = wait_for(lambda: [c for c in gw.post("/conversations.list").json()["data"]
                             if c["contact"]["fetch_state"] == "ok"])
    return page, data[0]["id"]


def test_a_repeated_read_is_a_hit_until_something_changes(gateway, graph):
    page, conversation = one_conversation(gateway, graph)
    body = {"conversation_id": conversation}
    quiet()
    first = gateway.post("/messages.list", body)
    again = gateway.post("/messages.list", body)
    assert (cached(first), cached(again)) == ("miss", "hit")
    assert again.json() == first.json() and again.headers["content-type"] == "application/json"
    assert again.headers["x-request-id"] != first.headers["x-request-id"]

    page_query = graphql(gateway, INBOX, {"first": 5})
    assert cached(page_query) == "miss"
    assert cached(graphql(gateway, INBOX, {"first": 5})) == "hit"
    other = graphql(gateway, INBOX, {"first": 1})  # other variables: another answer
    assert cached(other) == "miss"

    gateway.webhook(payloads.envelope(page, payloads.text(page, "7001", "second")))
    texts = wait_for(lambda: [m["content"]["message"]["text"] for m in
                              gateway.post("/messages.list", body).json()["data"]][:2]
                     == ["second", "first"])
    assert texts
    fresh = graphql(gateway, INBOX, {"first": 5})
    node = fresh.json()["data"]["conversations"]["edges"][0]["node"]
    assert node["lastMessage"]["content"]["message"]["text"] == "second"


def test_clients_asking_at_once_share_one_reading(gateway, graph):
    one_conversation(gateway, graph)

    async def ask_together(n: int) -> list[str | None]:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
            answers = await asyncio.gather(*(
                http.post("/graphql", json={"query": INBOX, "variables": {"first": 20}})
                for _ in range(n)))
        assert all(a.status_code == 200 and a.json() == answers[0].json() for a in answers)
        return sorted(cached(a) or "" for a in answers)

    for round in range(3):
        gateway.post("/tags.create", {"name": f"round {round}"})  # a change: the page is forgotten
        quiet()
        assert asyncio.run(ask_together(12)) == ["hit"] * 11 + ["miss"]


def test_whoever_writes_reads_the_change_back_at_once(gateway, graph):
    page, conversation = one_conversation(gateway, graph)
    info = {"conversation_id": conversation}
    quiet()
    for _ in range(2):
        gateway.post("/conversations.info", info)
        graphql(gateway, INBOX, {"first": 5})
    assert cached(gateway.post("/conversations.info", info)) == "hit"
    for n in range(5):  # each read straight after the write that changed it
        name = f"Named {n}"
        assert gateway.post("/conversations.update-contact",
                            {**info, "display_name": name}).status_code == 204
        assert gateway.post("/conversations.info", info).json()["contact"]["display_name"] == name
        answer = graphql(gateway, INBOX, {"first": 5}).json()
        assert answer["data"]["conversations"]["edges"][0]["node"]["contact"]["displayName"] == name
        sent = gateway.post("/messages.send", {"conversation_id": conversation,
                                               "message": {"text": f"reply {n}"}}).json()
        listed = gateway.post("/messages.list", info).json()["data"]
        assert sent["id"] in [m["id"] for m in listed]


def test_another_process_s_writes_reach_this_process_s_cache(start_gateway, graph):
    first = start_gateway()
    second = start_gateway(database=first.env["MONGODB_DATABASE"])
    page, conversation = one_conversation(first, graph)
    info = {"conversation_id": conversation}
    tag = first.post("/tags.create", {"name": "vip"}).json()
    quiet()
    for _ in range(2):
        second.post("/conversations.info", info)
        second.post("/tags.list")
    assert cached(second.post("/conversations.info", info)) == "hit"
    assert [t["name"] for t in second.post("/tags.list").json()["data"]] == ["vip"]

    first.post("/conversations.update-contact", {**info, "display_name": "Grace"})
    wait_for(lambda: second.post("/conversations.info", info).json()["contact"]["display_name"]
             == "Grace")
    quiet()
    second.post("/tags.list")
    assert cached(second.post("/tags.list")) == "hit"
    assert first.post("/tags.delete", {"id": tag["id"]}).status_code == 204  # a deletion
    wait_for(lambda: second.post("/tags.list").json()["data"] == [])


def test_only_reads_of_the_store_are_kept(gateway, graph):
    page, conversation = one_conversation(gateway, graph)
    missing = 'query { conversation(id: "no-such-id") { id } }'
    for _ in range(2):  # an answer with errors is not kept
        answer = graphql(gateway, missing)
        assert cached(answer) == "miss" and answer.json()["errors"]
        assert cached(gateway.post("/conversations.info", {"conversation_id": "nope"})) == "miss"
    webhooks = "query { webhooks { id } }"  # delivery counts move on their own: not cached
    for _ in range(2):
        assert cached(graphql(gateway, webhooks)) is None
        assert cached(gateway.post("/webhooks.list")) is None
    mark_read = 'mutation($id: ID!) { markConversationRead(id: $id) { id } }'
    assert cached(graphql(gateway, mark_read, {"id": conversation})) is None
    bad = gateway.post("/messages.list", {"conversation_id": conversation, "page_size": "x"})
    assert bad.status_code == 400 and cached(bad) == "miss"


def test_the_cache_can_be_turned_off(start_gateway, graph):
    gw = start_gateway(QUERY_CACHE_MB="0")
    one_conversation(gw, graph)
    for _ in range(2):
        assert cached(gw.post("/conversations.list")) is None


@pytest.mark.parametrize("query, operation, reads", [
    ("{ conversations { totalCount } }", None, True),
    ("query A { tags { id } } query B { channels { id } }", "B", True),
    ("query A { tags { id } } query B { channels { id } }", None, False),  # which one?
    ("{ facebookPages(authToken: \"t\") { pageId } }", None, False),  # asks the Graph API
    ("{ tags { id } webhooks { id } }", None, False),
    ("mutation { deleteTag(id: \"1\") }", None, False),
    ("subscription { channelUpdated { id } }", None, False),
    ("{ ...F } fragment F on Query { tags { id } }", None, False),
    ("{ tags { id ", None, False),
])
def test_which_graphql_requests_read_only_the_store(query, operation, reads):
    body = json.dumps({"query": query, "operationName": operation}).encode()
    assert store_reads(max_tokens=2000, cache_size=16)(body) is reads


def test_a_write_is_heard_of_before_its_await_returns(nx_url):
    async def scenario():
        store = await Store.connect(nx_url, "t_writes_heard")
        heard: list[str] = []
        store.writes.watch(heard.append)
        try:
            tag = await store.tags.create("first", "tag-blue")
            after_create = list(heard)
            await store.tags.list()  # reads are not writes
            await store.tags.delete(tag.id)
            await store.events.mark_processed(["nothing"])
            return after_create, heard
        finally:
            await store.client.drop_database("t_writes_heard")
            await store.close()

    after_create, heard = asyncio.run(scenario())
    assert after_create == ["tags"]
    assert heard == ["tags", "tags", "events"]


def test_nothing_is_kept_or_served_while_a_stream_is_shut_and_memory_stays_bounded():
    live = True
    cache = QueryCache(max_bytes=4000, live=lambda: live)

    def key(n: int):
        return ("/tags.list", b"", b"application/json", b"", str(n).encode())

    def answer(size: int = 900) -> Answer:
        return Answer([], b"x" * size, size)

    cache.put(key(1), answer(), cache.generation)
    assert cache.get(key(1)) is not None
    live = False  # a stream broke: changes may go by unseen
    assert cache.get(key(1)) is None
    cache.put(key(2), answer(), cache.generation)
    live = True
    assert cache.get(key(2)) is None
    cache.changed(None)  # the stream reopened
    assert cache.get(key(1)) is None

    read_at = cache.generation
    cache.changed("messages")  # changed while that answer was being read: not kept
    cache.put(key(3), answer(), read_at)
    assert cache.get(key(3)) is None
    cache.changed("events")  # raw events are not read by cached answers
    for n in range(10):
        cache.put(key(n), answer(), cache.generation)
    assert len(cache) == 4  # 4,000 bytes: the oldest went first
    assert [cache.get(key(n)) is not None for n in range(10)] == [False] * 6 + [True] * 4
    cache.put(key(99), answer(1001), cache.generation)  # more than a quarter: never kept
    assert cache.get(key(99)) is None
