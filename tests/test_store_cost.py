"""What a request costs the store does not depend on how much it holds, and the counts behind
`total` stay exact: under concurrent writes, after a failure between two writes, across versions.

Work is measured, not time: the embedded store, started with STORE_MEASURE_WORK=1, counts the
SQLite virtual-machine steps of every statement and the tables read without an index
(gateway/store/nxserve.py), and answers the totals to the `gatewayWork` command.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pymongo
import pytest

from gateway.store.nxserve import PRUNE_SECONDS
from tests import payloads
from tests.conftest import connect_page, wait_for
from tests.faultproxy import FaultProxy, update_of
from tests.test_ingest import conversations, database

SMALL, LARGE = 400, 4000  # messages stored before each measurement
PER_PERSON = 10  # half the messages come from one person, the others from one person per 10
LONG = "7100000"  # the one person's id
REPEAT = 16


class Measured:
    """A gateway on its own embedded store that counts its work."""

    def __init__(self, start_gateway, graph, data: Path) -> None:
        self.gw = start_gateway(MONGODB_URL="", DATA_DIR=str(data), STORE_MEASURE_WORK="1",
                                QUERY_CACHE_MB="0", WORKER_POLL_SECONDS="5")
        socket = quote(str(data / "nx-27017.sock"), safe="")
        self.client = pymongo.MongoClient(f"mongodb://{socket}/?directConnection=true")
        self.page = connect_page(self.gw, graph)["source_channel_id"]
        self.graph = graph
        self.db = self.client[self.gw.env["MONGODB_DATABASE"]]
        self.stored = 0

    def fill(self, size: int) -> None:
        """Until `size` messages are stored, 200 to a POST: every other one from the same person
        (a conversation that grows long), the others from more and more people (conversations
        that grow in number)."""
        while self.stored < size:
            batch = [payloads.text(self.page, self.sender(self.stored + i), "filler")
                     for i in range(min(200, size - self.stored))]
            for event in batch:
                self.graph.add_profile(event["sender"]["id"], "Ada", "Lovelace")
            assert self.gw.webhook(payloads.envelope(self.page, *batch)).status_code == 200
            self.stored += len(batch)
        # Measured once the profiles of the new people are fetched, and once the store has
        # deleted the change-stream rows every stream has read (at most once a second): nothing
        # else runs then, whose work would be counted as the next request's.
        wait_for(lambda: self.db.profile_jobs.count_documents({}) == 0, timeout=60)
        time.sleep(PRUNE_SECONDS * 2)

    @staticmethod
    def sender(n: int) -> str:
        return LONG if n % 2 == 0 else str(7_200_000 + n // (2 * PER_PERSON))

    def work(self, request: Callable[[], object]) -> tuple[float, dict[str, int]]:
        """SQLite steps per request, and the tables read whole, over REPEAT requests: the lower
        of two such windows, since work the store does beside the requests (a change stream's
        read, the deletion of rows every stream has read) only ever adds to a window's count."""
        windows = [self._window(request) for _ in range(2)]
        steps = min(steps for steps, _ in windows)
        scans: dict[str, int] = {}
        for _, seen in windows:
            for table, n in seen.items():
                scans[table] = max(scans.get(table, 0), n)
        return steps, scans

    def _window(self, request: Callable[[], object]) -> tuple[float, dict[str, int]]:
        time.sleep(0.2)  # what earlier requests started (change streams, workers) is done
        before = self.client.admin.command("gatewayWork")
        for _ in range(REPEAT):
            request()
        after = self.client.admin.command("gatewayWork")
        scans = {table: n - before["scans"].get(table, 0) for table, n in after["scans"].items()}
        return (after["steps"] - before["steps"]) / REPEAT, {t: n for t, n in scans.items() if n}


@pytest.fixture
def measured(start_gateway, graph, tmp_path) -> Iterator[Measured]:
    m = Measured(start_gateway, graph, tmp_path / "store")
    yield m
    m.client.close()


def requests(m: Measured) -> dict[str, Callable[[], object]]:
    """One of each kind of request a client makes, on the long conversation."""
    gw = m.gw
    listed = gw.post("/conversations.list", {"page_size": 3}).json()
    [conversation] = [c for c in conversations(gw) if c["contact"]["id"] == LONG]
    psid = LONG
    for other in listed["data"]:  # three conversations closed, at any size
        gw.post("/conversations.setState", {"conversation_id": other["id"], "state": "CLOSED"})
    first = gw.post("/messages.list", {"conversation_id": conversation["id"],
                                       "page_size": 20}).json()
    later = first["pagination_data"]["next_cursor"]
    graphql = {"query": """query($id: ID!) {
        conversations(first: 20) { totalCount edges { node { id unreadCount
          lastMessage { content: rawContent } contact { displayName } } } }
        messages(conversationId: $id, first: 20) { totalCount edges { node { id content: rawContent } } }
    }""", "variables": {"id": conversation["id"]}}

    def send() -> None:
        sent = gw.post("/messages.send", {"conversation_id": conversation["id"],
                                          "message": {"text": "hi"}}).json()
        wait_for(lambda: m.client[gw.env["MONGODB_DATABASE"]].messages.find_one(
            {"_id": sent["id"], "state": "delivered"}), interval=0.01)

    return {
        "webhook, one message": lambda: gw.webhook(payloads.envelope(m.page, payloads.text(
            m.page, psid, "measured"))),
        "webhook, delivery and read": lambda: gw.webhook(payloads.envelope(
            m.page, payloads.delivery(m.page, psid, payloads.ts()),
            payloads.read(m.page, psid, payloads.ts()))),
        "conversations.list": lambda: gw.post("/conversations.list", {"page_size": 20}),
        "conversations.list, next page": lambda: gw.post("/conversations.list", {
            "page_size": 3, "cursor": listed["pagination_data"]["next_cursor"]}),
        "conversations.list, by state": lambda: gw.post("/conversations.list", {
            "page_size": 20, "filters": {"state": "CLOSED"}}),
        "messages.list": lambda: gw.post("/messages.list", {
            "conversation_id": conversation["id"], "page_size": 20}),
        "messages.list, later page": lambda: gw.post("/messages.list", {
            "conversation_id": conversation["id"], "page_size": 20, "cursor": later}),
        "conversations.read": lambda: gw.post("/conversations.read", {
            "conversation_id": conversation["id"]}),
        "graphql": lambda: gw.http.post("/graphql", json=graphql),
        "messages.send, delivered": send,
    }


def test_the_work_of_each_request_does_not_grow_with_the_stored_messages(measured):
    measured.fill(SMALL)
    small = {name: measured.work(request) for name, request in requests(measured).items()}
    measured.fill(LARGE)
    large = {name: measured.work(request) for name, request in requests(measured).items()}
    report = "\n".join(f"{name}: {small[name][0]:.0f} -> {large[name][0]:.0f} steps, "
                       f"tables read whole: {small[name][1]} -> {large[name][1]}"
                       for name in small)
    print(report)  # shown with `pytest -s`
    for name in small:
        # Ten times the messages: the same work, give or take what runs beside the request
        # (the change streams' reads, a few hundred steps a request).
        assert large[name][0] <= 1.25 * small[name][0] + 1500, report
        assert "messages" not in large[name][1], report
        assert "_neosqlite_changestream" not in large[name][1], report


# --- counts --------------------------------------------------------------------------------


def totals(gw, conversation_id: str) -> tuple[int, int, int]:
    """(messages.list total, messages listed, unread count) of a conversation."""
    listed, cursor, total = [], None, None
    while True:
        body = gw.post("/messages.list", {"conversation_id": conversation_id, "page_size": 100,
                                          **({"cursor": cursor} if cursor else {})}).json()
        listed += body["data"]
        total = body["pagination_data"]["total"]
        cursor = body["pagination_data"]["next_cursor"]
        if not cursor:
            break
    [conversation] = [c for c in conversations(gw) if c["id"] == conversation_id]
    assert len({m["id"] for m in listed}) == len(listed)
    return total, len(listed), conversation["unread_count"]


def test_counts_stay_exact_under_concurrent_posts_of_the_same_events_and_sends(start_gateway,
                                                                              graph):
    gateway = start_gateway()
    other = start_gateway(database=gateway.env["MONGODB_DATABASE"])  # a second process
    page = connect_page(gateway, graph)["source_channel_id"]
    assert gateway.webhook(payloads.envelope(page, payloads.text(page, "7201", "first"))) \
        .status_code == 200
    [conversation] = conversations(gateway)
    # Six POSTs, each of five messages from the person and one from each of three new people.
    bodies = [payloads.envelope(page, *(payloads.text(page, "7201", f"{n}.{i}") for i in range(5)),
                                *(payloads.text(page, f"72{n}{i}0", "new") for i in range(3)))
              for n in range(6)]
    errors: list[object] = []
    start = threading.Barrier(len(bodies) * 4 + 8)

    def post(gw, body) -> None:
        start.wait()
        if gw.webhook(body).status_code != 200:
            errors.append(body)

    def send(gw, n: int) -> None:
        start.wait()
        answer = gw.post("/messages.send", {"conversation_id": conversation["id"],
                                            "message": {"text": f"reply {n}"}})
        if answer.status_code != 200:
            errors.append(answer.text)

    # Each POST four times at once, twice to each process (Meta's retries, two replicas), and
    # replies sent through both processes meanwhile.
    threads = [threading.Thread(target=post, args=(gw, body))
               for body in bodies for gw in (gateway, other, gateway, other)]
    threads += [threading.Thread(target=send, args=((gateway, other)[n % 2], n))
                for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # 1 + 30 from the person (each counted once, however often it came), 8 replies
    assert totals(gateway, conversation["id"]) == (39, 39, 31)
    listed = gateway.post("/conversations.list", {"page_size": 100}).json()
    assert len(listed["data"]) == 19
    assert listed["pagination_data"]["total"] == 19
    assert other.post("/conversations.list", {"page_size": 1, "filters": {
        "channel_ids": [conversation["channel"]["id"]]}}).json()["pagination_data"]["total"] == 19


@pytest.fixture
def proxy(nx_url: str) -> Iterator[FaultProxy]:
    server = FaultProxy(urlsplit(nx_url).port or 27017)
    yield server
    server.close()


@pytest.mark.parametrize("write_happens", [False, True], ids=["before-the-count",
                                                              "answer-lost"])
def test_a_send_that_stops_between_storing_and_counting_is_counted_once(
    start_gateway, graph, proxy, nx_url, write_happens
):
    gw = start_gateway(MONGODB_URL=proxy.url, STORE_TIMEOUT_SECONDS="1")
    page = connect_page(gw, graph)["source_channel_id"]
    graph.add_profile("7301", "Ada", "Lovelace")
    assert gw.webhook(payloads.envelope(page, payloads.text(page, "7301", "hi"))).status_code \
        == 200
    [conversation] = conversations(gw)
    # The profile fetch updates the conversation too: let it be done before arming.
    wait_for(lambda: conversations(gw)[0]["contact"]["fetch_state"] == "ok")
    proxy.arm(update_of("conversations"), forward=write_happens)
    failed = gw.post("/messages.send", {"conversation_id": conversation["id"],
                                        "message": {"text": "half-way"}})
    assert proxy.cut.is_set()
    assert failed.status_code == 503, failed.text
    gw.kill()  # and the process dies
    proxy.disarm()
    # Another process takes the send over: it is delivered, and counted once.
    other = start_gateway(database=gw.env["MONGODB_DATABASE"], MONGODB_URL=nx_url)
    wait_for(lambda: any(c.json["message"].get("text") == "half-way"
                         for c in graph.calls_of("send")), timeout=30)
    wait_for(lambda: totals(other, conversation["id"])[:2] == (2, 2), timeout=15)
    other.stop()
    again = start_gateway(database=gw.env["MONGODB_DATABASE"], MONGODB_URL=nx_url)
    assert totals(again, conversation["id"]) == (2, 2, 1)


@pytest.mark.parametrize("write_happens", [False, True], ids=["before-the-count",
                                                              "answer-lost"])
def test_a_conversation_stored_before_its_channel_counted_it_is_counted_once(
    start_gateway, graph, proxy, nx_url, write_happens
):
    gw = start_gateway(MONGODB_URL=proxy.url, STORE_TIMEOUT_SECONDS="1")
    channel = connect_page(gw, graph)
    page = channel["source_channel_id"]
    # A first person's conversation, counted, its profile fetched: the path is warm, and the
    # workers are idle when the store is cut off.
    graph.add_profile("7350", "Grace", "Hopper")
    assert gw.webhook(payloads.envelope(page, payloads.text(page, "7350", "first"))) \
        .status_code == 200
    wait_for(lambda: conversations(gw)[0]["contact"]["fetch_state"] == "ok")
    proxy.arm(update_of("counters"), forward=write_happens)
    failed = gw.webhook(payloads.envelope(page, payloads.text(page, "7351", "hello")))
    assert failed.status_code == 503, failed.text  # Meta keeps the event and retries
    assert proxy.cut.is_set()
    gw.kill()
    proxy.disarm()
    graph.add_profile("7351", "Ada", "Lovelace")
    other = start_gateway(database=gw.env["MONGODB_DATABASE"], MONGODB_URL=nx_url)
    assert other.webhook(payloads.envelope(page, payloads.text(page, "7351", "hello"))) \
        .status_code == 200  # Meta's retry
    wait_for(lambda: all(c["contact"]["fetch_state"] == "ok" for c in conversations(other)))
    for filters in ({}, {"channel_ids": [channel["id"]]}):
        listed = other.post("/conversations.list", {"filters": filters}).json()
        assert (len(listed["data"]), listed["pagination_data"]["total"]) == (2, 2)


def test_conversations_stored_before_counts_were_kept_get_theirs_at_start(start_gateway, graph):
    first = start_gateway()
    page = connect_page(first, graph)["source_channel_id"]
    for n in range(3):
        assert first.webhook(payloads.envelope(page, payloads.text(page, "7401", f"m{n}"))) \
            .status_code == 200
    [conversation] = conversations(first)
    first.stop()
    client, db = database(first)
    db.conversations.update_one({"_id": conversation["id"]}, {"$unset": {"message_count": ""}})
    db.counters.delete_many({})
    client.close()
    gw = start_gateway(database=first.env["MONGODB_DATABASE"])
    assert "counted the messages of 1 conversation(s)" in gw.log()
    assert "counted the conversations of 1 channel(s)" in gw.log()
    assert gw.post("/conversations.list").json()["pagination_data"]["total"] == 1
    assert totals(gw, conversation["id"]) == (3, 3, 3)
    assert gw.webhook(payloads.envelope(page, payloads.text(page, "7401", "m3"))).status_code \
        == 200
    assert totals(gw, conversation["id"]) == (4, 4, 4)


def test_messages_of_the_same_millisecond_are_each_listed_once_across_pages(gateway, graph):
    page = connect_page(gateway, graph)["source_channel_id"]
    at = payloads.ts()
    events = [payloads.text(page, "7501", f"same {n}", at=at) for n in range(7)]
    events += [payloads.text(page, "7501", f"before {n}", at=at - 10 + n) for n in range(3)]
    assert gateway.webhook(payloads.envelope(page, *events)).status_code == 200
    [conversation] = conversations(gateway)
    seen: list[dict] = []
    cursor = None
    while True:
        body = gateway.post("/messages.list", {"conversation_id": conversation["id"],
                                               "page_size": 3,
                                               **({"cursor": cursor} if cursor else {})}).json()
        seen += body["data"]
        assert body["pagination_data"]["total"] == 10
        cursor = body["pagination_data"]["next_cursor"]
        if not cursor:
            break
    texts = [m["content"]["message"]["text"] for m in seen]
    assert sorted(texts) == sorted(e["message"]["text"] for e in events)
    assert texts[7:] == ["before 2", "before 1", "before 0"]
    ids = [m["id"] for m in seen[:7]]
    assert ids == sorted(ids, reverse=True)
