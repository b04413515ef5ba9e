"""POST /facebook answers once its events are stored, and they are applied right after: in order
per conversation, each once, and after a crash by the events worker. Real gateways on nx-27017."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from pymongo import MongoClient

from tests import payloads
from tests.conftest import GatewayProcess, connect_page, wait_for


@pytest.fixture
def mongo(nx_url: str) -> Iterator[MongoClient]:
    client: MongoClient = MongoClient(nx_url)
    yield client
    client.close()


def database() -> str:
    return "t_ack_" + uuid.uuid4().hex[:10].translate(str.maketrans("0123456789", "ghijklmnop"))


def new_senders(page: str, count: int) -> dict:
    """One message from each of `count` people the gateway has never met (Meta's worst batch)."""
    first = 10_000_000 + uuid.uuid4().int % 80_000_000
    return payloads.envelope(page, *(payloads.text(page, str(first + i), f"hello {i}")
                                     for i in range(count)))


def total(gw: GatewayProcess) -> int:
    """Conversations applied so far (the channel's exact count)."""
    return gw.post("/conversations.list", {"page_size": 1}).json()["pagination_data"]["total"]


def unprocessed(mongo: MongoClient, db: str) -> int:
    return mongo[db].events.count_documents({"processed": False})


def test_a_big_post_is_answered_before_it_is_applied_then_all_are_visible(
        start_gateway, graph, mongo):
    db = database()
    gw = start_gateway(db, WEBHOOK_APPLY_WAIT_MS="0")
    page = connect_page(gw, graph)["source_channel_id"]
    body = new_senders(page, 400)

    started = time.monotonic()
    response = gw.webhook(body)
    acked = time.monotonic() - started
    seen_at_ack = total(gw)

    assert response.status_code == 200, response.text
    assert mongo[db].events.count_documents({}) == 400  # all stored before the answer
    assert seen_at_ack < 400, "the answer waited for every event to be applied"
    wait_for(lambda: total(gw) == 400, timeout=60)
    applied = time.monotonic() - started
    assert acked < applied / 2, (acked, applied)
    wait_for(lambda: unprocessed(mongo, db) == 0)
    listed = gw.post("/conversations.list", {"page_size": 5}).json()["data"]
    assert {c["unread_count"] for c in listed} == {1}


def test_the_wait_setting_decides_how_long_a_post_waits(start_gateway, graph):
    slow = start_gateway(WEBHOOK_APPLY_WAIT_MS="300")
    page = connect_page(slow, graph)["source_channel_id"]
    started = time.monotonic()
    assert slow.webhook(new_senders(page, 400)).status_code == 200
    acked = time.monotonic() - started
    assert 0.3 <= acked < 3, acked  # waited its 300 ms, then answered with work left
    assert total(slow) < 400
    wait_for(lambda: total(slow) == 400, timeout=60)

    patient = start_gateway(WEBHOOK_APPLY_WAIT_MS="60000")
    page = connect_page(patient, graph)["source_channel_id"]
    assert patient.webhook(new_senders(page, 150)).status_code == 200
    assert total(patient) == 150  # read-your-writes: answered once all were applied


def test_order_per_conversation_is_kept_under_concurrent_posts(start_gateway, graph, mongo):
    """Each person's message, then a reaction to it, in POSTs of their own from 6 clients at
    once: a reaction applied before its message would find nothing to mark and be lost."""
    db = database()
    gw = start_gateway(db, WEBHOOK_APPLY_WAIT_MS="0")
    page = connect_page(gw, graph)["source_channel_id"]
    first = 20_000_000 + uuid.uuid4().int % 70_000_000
    errors: list[str] = []
    rounds, people = 5, 6

    def person(psid: str) -> None:
        for n in range(rounds):
            mid = f"m_{psid}_{n}"
            for event in (payloads.text(page, psid, f"message {n}", message_id=mid),
                          payloads.reaction(page, psid, mid, emoji=str(n))):
                response = gw.webhook(payloads.envelope(page, event))
                if response.status_code != 200:
                    errors.append(response.text)

    threads = [threading.Thread(target=person, args=(str(first + i),)) for i in range(people)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not errors
    wait_for(lambda: unprocessed(mongo, db) == 0, timeout=60)
    conversations = gw.post("/conversations.list", {"page_size": 20}).json()["data"]
    assert len(conversations) == people
    for conversation in conversations:
        messages = gw.post("/messages.list", {"conversation_id": conversation["id"],
                                              "page_size": 20}).json()["data"]
        reactions = sorted(m["metadata"].get("reaction", {}).get("emoji", "-") for m in messages)
        assert reactions == [str(n) for n in range(rounds)], conversation["contact"]


def test_a_replayed_post_is_stored_once_and_applied_once(start_gateway, graph, mongo):
    db = database()
    gw = start_gateway(db, WEBHOOK_APPLY_WAIT_MS="0")
    page = connect_page(gw, graph)["source_channel_id"]
    body = new_senders(page, 100)

    threads = [threading.Thread(target=gw.webhook, args=(body,)) for _ in range(3)]
    for thread in threads:  # the same call three times at once, while the first is applied
        thread.start()
    for thread in threads:
        thread.join(30)
    assert gw.webhook(body).status_code == 200  # and once more, later

    wait_for(lambda: unprocessed(mongo, db) == 0 and total(gw) == 100, timeout=60)
    assert mongo[db].events.count_documents({}) == 100
    assert mongo[db].messages.count_documents({}) == 100
    listed = gw.post("/conversations.list", {"page_size": 100}).json()["data"]
    assert sorted({c["unread_count"] for c in listed}) == [1]


def test_events_acked_then_killed_are_applied_after_a_restart(start_gateway, graph, mongo):
    db = database()
    gw = start_gateway(db, WEBHOOK_APPLY_WAIT_MS="0")
    page = connect_page(gw, graph)["source_channel_id"]

    assert gw.webhook(new_senders(page, 400)).status_code == 200
    gw.kill()  # SIGKILL right after the ack: applying stops half-way
    left = unprocessed(mongo, db)
    assert left > 0
    assert mongo[db].events.count_documents({}) == 400
    # The events worker applies what has waited a minute (a live process's batch is not met);
    # the kill is made a minute old here instead of waiting for it.
    mongo[db].events.update_many({}, {"$inc": {"received_at": -120_000}})

    again = start_gateway(db)
    wait_for(lambda: unprocessed(mongo, db) == 0, timeout=60)
    assert total(again) == 400
    assert mongo[db].messages.count_documents({}) == 400
    listed = again.post("/conversations.list", {"page_size": 100}).json()["data"]
    assert sorted({c["unread_count"] for c in listed}) == [1]


def test_sigterm_lets_applying_finish_within_the_shutdown_bound(start_gateway, graph, mongo):
    db = database()
    gw = start_gateway(db, WEBHOOK_APPLY_WAIT_MS="0")
    page = connect_page(gw, graph)["source_channel_id"]

    assert gw.webhook(new_senders(page, 200)).status_code == 200
    before = unprocessed(mongo, db)
    took = gw.stop()

    assert took < 10, took
    assert before > 0
    if unprocessed(mongo, db):  # cut off at the bound: said so, and left to the events worker
        assert "not applied yet; the events worker applies them" in gw.log()
    mongo[db].events.update_many({}, {"$inc": {"received_at": -120_000}})
    again = start_gateway(db)
    wait_for(lambda: unprocessed(mongo, db) == 0 and total(again) == 200, timeout=60)


def test_a_full_queue_makes_the_next_post_wait_for_room(start_gateway, graph):
    gw = start_gateway(WEBHOOK_APPLY_WAIT_MS="0", WEBHOOK_APPLY_QUEUE_EVENTS="10")
    page = connect_page(gw, graph)["source_channel_id"]

    started = time.monotonic()
    assert gw.webhook(new_senders(page, 200)).status_code == 200  # alone: it gets in
    first = time.monotonic() - started
    assert gw.webhook(new_senders(page, 1)).status_code == 200  # waits for the 200
    second = time.monotonic() - started

    assert total(gw) >= 200  # it was let in once the first batch was applied
    assert second > 2 * first, (first, second)
    wait_for(lambda: total(gw) == 201)
