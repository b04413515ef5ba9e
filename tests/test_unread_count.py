"""The unread count agrees with the messages after a failure between storing them and counting
them: the store cut off (by a proxy in between) on the conversation's update, then Meta's retry."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests import payloads
from tests.conftest import connect_page, wait_for
from tests.faultproxy import FaultProxy, update_of
from tests.test_ingest import conversations, database, messages


@pytest.fixture
def proxy(nx_url: str) -> Iterator[FaultProxy]:
    server = FaultProxy(urlsplit(nx_url).port or 27017)
    yield server
    server.close()


def fail_between_storing_and_counting(gw, graph, proxy, write_happens: bool) -> dict:
    """A person writes once; then a POST of 4 more fails on the conversation's update (503).
    Returns that POST's body, once the store answers again."""
    page = connect_page(gw, graph)["source_channel_id"]
    graph.add_profile("1701", "Ada", "Lovelace")
    first = payloads.envelope(page, payloads.text(page, "1701", "first"))
    assert gw.webhook(first).status_code == 200
    # The profile fetch updates the conversation too: let it be done before arming.
    wait_for(lambda: [c["contact"]["fetch_state"] for c in conversations(gw)] == ["ok"])
    body = payloads.envelope(page, *(payloads.text(page, "1701", f"then {n}") for n in range(3)),
                             payloads.postback(page, "1701"))  # a postback has no mid
    proxy.arm(update_of("conversations"), forward=write_happens)
    failed = gw.webhook(body)
    assert proxy.cut.is_set()
    assert failed.status_code == 503, failed.text  # Meta keeps the events and retries
    proxy.disarm()
    wait_for(lambda: gw.http.get("/health").status_code == 200, timeout=30, interval=0.2)
    return body


def unread_and_stored(gw) -> tuple[int, int]:
    [conversation] = conversations(gw)
    stored = messages(gw, conversation["id"])
    assert all(m["from_contact"] for m in stored)
    return conversation["unread_count"], len(stored)


@pytest.mark.parametrize("write_happens", [False, True], ids=["before-the-count",
                                                              "answer-lost"])
def test_a_failure_between_storing_and_counting_is_counted_on_metas_retry(
    start_gateway, graph, proxy, write_happens
):
    gw = start_gateway(MONGODB_URL=proxy.url, STORE_TIMEOUT_SECONDS="1")
    body = fail_between_storing_and_counting(gw, graph, proxy, write_happens)
    assert gw.webhook(body).status_code == 200  # Meta's retry
    assert unread_and_stored(gw) == (5, 5)
    assert gw.webhook(body).status_code == 200  # and again: nothing changes
    assert unread_and_stored(gw) == (5, 5)
    [conversation] = conversations(gw)
    assert gw.post("/conversations.read", {"conversation_id": conversation["id"]}).status_code \
        < 300
    page = conversation["channel"]["source_channel_id"]
    assert gw.webhook(payloads.envelope(page, payloads.text(page, "1701", "new"))).status_code \
        == 200
    assert conversations(gw)[0]["unread_count"] == 1


def test_a_failure_between_storing_and_counting_is_counted_by_the_events_worker(
    start_gateway, graph, proxy, nx_url
):
    gw = start_gateway(MONGODB_URL=proxy.url, STORE_TIMEOUT_SECONDS="1")
    fail_between_storing_and_counting(gw, graph, proxy, write_happens=False)
    client, db = database(gw)
    db.events.update_many({}, {"$set": {"received_at": int(time.time() * 1000) - 600_000}})
    # Another process starts: its worker applies what was stored a while ago and not applied.
    start_gateway(database=gw.env["MONGODB_DATABASE"], MONGODB_URL=nx_url)
    wait_for(lambda: db.events.count_documents({"processed": False}) == 0)
    client.close()
    assert unread_and_stored(gw) == (5, 5)


def test_counting_a_message_unread_changes_nothing_else_about_it(start_gateway, graph):
    """Counting is the conversation's business alone: a new message from the person is created,
    never updated on the way (no `messageUpdated`, no `message.updated` to a webhook)."""
    from tests.test_outgoing_webhooks import subscribe
    from tests.ws import TRANSPORT_WS, GraphQLSocket

    gw = start_gateway()
    page = connect_page(gw, graph)["source_channel_id"]
    hook = subscribe(gw, url="http://127.0.0.1:9/hook", events=["message.updated"])
    with GraphQLSocket(gw.url, TRANSPORT_WS) as ws:
        ws.init()
        ws.subscribe("1", "subscription { messageUpdated { id } }")
        ws.subscribe("2", "subscription { messageCreated { id } }")
        wait_for(lambda: gw.http.get("/health").json()["subscribers"] == 2)
        body = payloads.envelope(page, *(payloads.text(page, "1801", f"m{n}") for n in range(3)))
        assert gw.webhook(body).status_code == 200
        created = [ws.next("2")["data"]["messageCreated"]["id"] for _ in range(3)]
        assert len(set(created)) == 3
        assert ws.nothing_within(1.5)  # no messageUpdated for any of them
    [conversation] = conversations(gw)
    assert conversation["unread_count"] == 3
    info = gw.post("/webhooks.info", {"id": hook["id"]}).json()
    assert info["queued"] == 0 and info["last_error"] is None
