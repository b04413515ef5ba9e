"""Signed webhook events with values out of range or of the wrong shape: kept aside, never applied,
and never in the way of the good events beside them or of any read."""

from __future__ import annotations

import time

from tests import payloads
from tests.conftest import connect_page, wait_for
from tests.test_graphql import CONVERSATIONS, gql
from tests.test_ingest import conversations, database, messages

# Ids that are not Meta's: URLs, paths, encodings, letters, too long, signs and spaces.
BAD_IDS = ["http://127.0.0.1:9/stolen", "../x", "//127.0.0.1:9/x", "%2e%2e", "abc", "1" * 100,
           "-1", "12 34"]


def invalid_events(gw) -> list[dict]:
    """The events kept aside: raw, with the reason, marked processed so nothing applies them."""
    client, db = database(gw)
    kept = list(db.events.find({"invalid": {"$ne": None}}))
    client.close()
    return kept


def test_a_time_far_ahead_is_kept_aside_and_every_read_keeps_working(gateway, graph):
    page = connect_page(gateway, graph)["source_channel_id"]
    poison = payloads.text(page, "1101", "a message from the year 318857", at=10**16)
    assert gateway.webhook(payloads.envelope(page, poison)).status_code == 200
    listed = gateway.post("/conversations.list", {"page_size": 100})
    assert listed.status_code == 200 and listed.json()["data"] == []
    answer = gql(gateway, CONVERSATIONS, {"first": 10})
    assert "errors" not in answer and answer["data"]["conversations"]["edges"] == []
    [kept] = invalid_events(gateway)
    assert kept["raw"] == poison and kept["page_id"] == page and kept["processed"]
    assert kept["invalid"] == "timestamp must be a time between 2004-01-01 and a day from now"
    assert (f"kept 1 invalid event(s) of page {page} aside, not applied: timestamp must be"
            in gateway.log())
    assert "318857" not in gateway.log()  # the event's content stays out of the log
    # Meta sends it again (it was answered 200, but say it does): still kept once, not applied.
    assert gateway.webhook(payloads.envelope(page, poison)).status_code == 200
    assert len(invalid_events(gateway)) == 1
    good = payloads.text(page, "1101", "hello")
    assert gateway.webhook(payloads.envelope(page, good)).status_code == 200
    [conversation] = conversations(gateway)
    assert conversation["unread_count"] == 1
    assert [m["content"] for m in messages(gateway, conversation["id"])] == [good]


def test_a_batch_with_a_time_beyond_64_bits_stores_the_good_message_once(gateway, graph):
    page = connect_page(gateway, graph)["source_channel_id"]
    good = payloads.text(page, "1201", "the good one")
    bad = {**payloads.text(page, "1202", "the bad one"), "timestamp": 1e20}
    body = payloads.envelope(page, good, bad)
    for _ in range(2):  # the first POST, then Meta's retry of the same body
        assert gateway.webhook(body).status_code == 200
    [conversation] = conversations(gateway)
    assert conversation["contact"]["id"] == "1201" and conversation["unread_count"] == 1
    assert [m["content"] for m in messages(gateway, conversation["id"])] == [good]
    [kept] = invalid_events(gateway)
    assert kept["raw"] == bad and kept["invalid"].startswith("timestamp must be a time")


def test_bad_page_ids_and_psids_are_kept_aside_and_the_good_event_applied(gateway, graph):
    page = connect_page(gateway, graph)["source_channel_id"]
    good = payloads.text(page, "1301", "good")
    events = [good]
    entries = []
    for n, bad in enumerate(BAD_IDS):
        events.append(payloads.text(page, bad, f"from a bad psid {n}"))
        events.append(payloads.echo(page, bad, f"to a bad psid {n}"))
        entries.append({"id": bad, "time": payloads.ts(),
                        "messaging": [payloads.text(page, "1302", f"to a bad page id {n}")]})
    body = payloads.envelope(page, *events)
    body["entry"] += entries
    assert gateway.webhook(body).status_code == 200
    [conversation] = conversations(gateway)
    assert conversation["contact"]["id"] == "1301" and conversation["unread_count"] == 1
    assert [m["content"] for m in messages(gateway, conversation["id"])] == [good]
    kept = invalid_events(gateway)
    assert len(kept) == 3 * len(BAD_IDS)
    assert {k["invalid"] for k in kept} == {
        "sender.id must be a Graph API id (1 to 32 digits)",
        "recipient.id must be a Graph API id (1 to 32 digits)",
        "entry.id must be a Graph API id (1 to 32 digits)"}
    assert all(entry in [k["raw"] for k in kept] for entry in entries)  # each entry kept whole
    assert "of an entry without a page id aside" in gateway.log()
    time.sleep(0.3)  # the profile worker has had its turn
    assert {c.path for c in graph.calls_of("profile")} <= {"1301"}


def test_a_broken_entry_is_kept_aside_and_the_entries_beside_it_applied(gateway, graph):
    page = connect_page(gateway, graph)["source_channel_id"]
    good = payloads.text(page, "1351", "good")
    body = payloads.envelope(page, good)
    broken = {"id": page, "time": payloads.ts(), "messaging": {"not": "a list"}}
    body["entry"].append(broken)
    assert gateway.webhook(body).status_code == 200
    [conversation] = conversations(gateway)
    assert [m["content"] for m in messages(gateway, conversation["id"])] == [good]
    [kept] = invalid_events(gateway)
    assert (kept["raw"], kept["page_id"], kept["invalid"]) == (
        broken, page, "entry.messaging must be a list")


def test_bad_times_are_kept_aside_and_the_good_events_applied(gateway, graph):
    page = connect_page(gateway, graph)["source_channel_id"]
    # The page answers from another app (Page Inbox): a page message the person has not read.
    answer = payloads.echo(page, "1401", "answer", app_id=263902037430900)
    gateway.webhook(payloads.envelope(page, payloads.text(page, "1401", "question"), answer))
    [conversation] = conversations(gateway)

    def read_by_person() -> bool:
        [ours] = [m for m in messages(gateway, conversation["id"])
                  if m["sender_type"] == "source_user"]
        return ours["metadata"]["user_read"]

    assert read_by_person() is False
    bad_times = [-5, 1.5, "1700000000000", True, 10**16, 1_000_000_000_000, [], {"ms": 1}]
    events = [{**payloads.text(page, f"14{10 + n}", f"bad time {n}"), "timestamp": bad}
              for n, bad in enumerate(bad_times)]
    events += [payloads.read(page, "1401", 10**16), payloads.read(page, "1401", -1),
               payloads.read(page, "1401", 1.5), payloads.delivery(page, "1401", 10**16)]
    good = payloads.text(page, "1401", "good beside them")
    assert gateway.webhook(payloads.envelope(page, *events, good)).status_code == 200
    assert [c["contact"]["id"] for c in conversations(gateway)] == ["1401"]
    assert messages(gateway, conversation["id"])[0]["content"] == good
    assert read_by_person() is False
    assert len(invalid_events(gateway)) == len(events)
    # A read whose watermark is a time is applied.
    assert gateway.webhook(payloads.envelope(page, payloads.read(page, "1401", payloads.ts()))
                           ).status_code == 200
    assert read_by_person() is True


def test_a_stored_invalid_event_is_never_applied_by_the_unprocessed_events_worker(
    start_gateway, graph
):
    first = start_gateway()
    page = connect_page(first, graph)["source_channel_id"]
    later_page = "5551234"  # connected only after its event came in
    invalid = payloads.text(page, "1501", "never to be applied", at=-5)
    control = payloads.text(later_page, "1502", "applied by the worker")
    assert first.webhook(payloads.envelope(page, invalid)).status_code == 200
    assert first.webhook(payloads.envelope(later_page, control)).status_code == 200
    client, db = database(first)
    # Both now look like events a process stored a while ago and died before applying.
    db.events.update_many({}, {"$set": {"received_at": int(time.time() * 1000) - 600_000}})
    db.events.update_one({"contact_id": "1502"}, {"$set": {"processed": False}})
    connect_page(first, graph, page_id=later_page)
    second = start_gateway(database=first.env["MONGODB_DATABASE"])  # its worker runs at start
    wait_for(lambda: db.events.count_documents({"contact_id": "1502", "processed": False}) == 0)
    assert [c["contact"]["id"] for c in conversations(second)] == ["1502"]
    [kept] = invalid_events(second)
    client.close()
    assert kept["raw"] == invalid and kept["processed"]
