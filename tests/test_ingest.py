"""The webhook: Meta's challenge, signatures, and every kind of messaging event, stored once."""

from __future__ import annotations

import json
import threading

import pymongo
import pytest

from gateway.sources.facebook.signature import sign
from tests import payloads
from tests.conftest import APP_ID, VERIFY_TOKEN, connect_page, wait_for


def conversations(gw) -> list[dict]:
    return gw.post("/conversations.list", {"page_size": 100}).json()["data"]


def messages(gw, conversation_id: str) -> list[dict]:
    return gw.post("/messages.list", {"conversation_id": conversation_id,
                                      "page_size": 100}).json()["data"]


def database(gw):
    client = pymongo.MongoClient(gw.env["MONGODB_URL"])
    return client, client[gw.env["MONGODB_DATABASE"]]


def only_conversation(gw) -> dict:
    [conversation] = conversations(gw)
    return conversation


@pytest.fixture
def page(gateway, graph) -> str:
    return connect_page(gateway, graph)["source_channel_id"]


# --- the challenge ------------------------------------------------------------------------


def test_challenge_is_answered_with_the_verify_token(gateway):
    ok = gateway.http.get("/facebook", params={"hub.mode": "subscribe", "hub.challenge": "1158201444",
                                               "hub.verify_token": VERIFY_TOKEN})
    assert ok.status_code == 200 and ok.text == "1158201444"
    for params in ({"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "nope"},
                   {"hub.mode": "unsubscribe", "hub.challenge": "1", "hub.verify_token": VERIFY_TOKEN}):
        refused = gateway.http.get("/facebook", params=params)
        assert refused.status_code == 403 and "1" != refused.text


def test_challenge_fails_when_no_verify_token_is_configured(start_gateway):
    gw = start_gateway(FACEBOOK_WEBHOOK_SECRET="")
    refused = gw.http.get("/facebook", params={"hub.mode": "subscribe", "hub.challenge": "1",
                                               "hub.verify_token": "anything"})
    assert refused.status_code == 403


# --- signatures and bad bodies -----------------------------------------------------------------


def test_unsigned_or_badly_signed_calls_store_nothing(gateway, page):
    body = json.dumps(payloads.envelope(page, payloads.text(page, "1001", "forged"))).encode()
    missing = gateway.http.post("/facebook", content=body)
    assert missing.status_code == 401 and "X-Hub-Signature-256" in missing.json()["message"]
    wrong_key = gateway.http.post("/facebook", content=body,
                                  headers={"X-Hub-Signature-256": sign("another-secret", body)})
    assert wrong_key.status_code == 403
    altered = gateway.http.post("/facebook", content=body.replace(b"forged", b"FORGED"),
                                headers={"X-Hub-Signature-256": sign("test-app-secret", body)})
    assert altered.status_code == 403
    assert conversations(gateway) == []
    client, db = database(gateway)
    assert db.events.count_documents({}) == 0
    client.close()


def test_without_an_app_secret_every_post_is_refused(start_gateway, graph):
    gw = start_gateway(FACEBOOK_APP_SECRET="")
    page = connect_page(gw, graph)["source_channel_id"]
    response = gw.webhook(payloads.envelope(page, payloads.text(page, "1002")), secret="")
    assert response.status_code == 503
    assert "FACEBOOK_APP_SECRET" in response.json()["message"]
    assert conversations(gw) == []


@pytest.mark.parametrize("body, message", [
    (b"{not json", "not valid JSON"),
    (b'{"object": "instagram", "entry": []}', '"object": "page"'),
    (b'{"object": "page", "entry": "x"}', "entry must be a list"),
    # A broken entry is kept aside as invalid, not refused: see test_hostile_webhook.py.
])
def test_malformed_bodies_get_400_and_store_nothing(shared_gateway, body, message):
    gateway = shared_gateway
    response = gateway.http.post("/facebook", content=body,
                                 headers={"X-Hub-Signature-256": sign("test-app-secret", body)})
    assert response.status_code == 400
    assert message in response.json()["message"]
    client, db = database(gateway)
    assert db.events.count_documents({}) == 0
    client.close()


# --- messages --------------------------------------------------------------------------------


def test_a_text_message_becomes_a_conversation_and_a_message(gateway, page):
    event = payloads.text(page, "1003", "Hi, are you open?", at=1700000000123)
    assert gateway.webhook(payloads.envelope(page, event)).status_code == 200
    conversation = only_conversation(gateway)
    assert conversation["contact"]["id"] == "1003"
    assert conversation["metadata"]["unread_count"] == 1
    [message] = messages(gateway, conversation["id"])
    assert message["content"] == event
    assert message["sender_type"] == "source_contact" and message["from_contact"] is True
    assert message["state"] == "delivered" == message["delivery_state"]
    assert message["metadata"]["source"]["id"] == event["message"]["mid"]
    assert message["sent_at"] == "2023-11-14T22:13:20.123Z"
    assert message["sender"]["id"] == "1003"
    assert conversation["last_message"]["id"] == message["id"]


def test_messages_are_grouped_by_person_newest_first(gateway, page):
    for psid, text in (("2001", "one"), ("2002", "other person"), ("2001", "two")):
        gateway.webhook(payloads.envelope(page, payloads.text(page, psid, text)))
    listed = conversations(gateway)
    assert [c["contact"]["id"] for c in listed] == ["2001", "2002"]
    assert listed[0]["metadata"]["unread_count"] == 2
    texts = [m["content"]["message"]["text"] for m in messages(gateway, listed[0]["id"])]
    assert texts == ["two", "one"]


@pytest.mark.parametrize("kind, payload", [
    ("image", {"url": "https://cdn.example/cat.jpg"}),
    ("video", {"url": "https://cdn.example/clip.mp4"}),
    ("audio", {"url": "https://cdn.example/voice.mp4"}),
    ("file", {"url": "https://cdn.example/menu.pdf"}),
    ("location", {"coordinates": {"lat": 52.52, "long": 13.405}}),
    ("fallback", {"url": "https://example.com/article", "title": "An article"}),
    ("template", {"template_type": "generic", "elements": [{"title": "Shirt"}]}),
    ("image", {"url": "https://cdn.example/thumbs-up.png", "sticker_id": 369239263222822}),
])
def test_attachments_are_kept_as_sent(gateway, page, kind, payload):
    event = payloads.attachment(page, "3001", kind, payload)
    gateway.webhook(payloads.envelope(page, event))
    [message] = messages(gateway, only_conversation(gateway)["id"])
    assert message["content"] == event


def test_quick_replies_and_replies_to_a_message_are_kept(gateway, page):
    quick = payloads.text(page, "3002", "Red", quick_reply={"payload": "COLOR_RED"})
    reply = payloads.text(page, "3002", "this one", reply_to={"mid": quick["message"]["mid"]})
    gateway.webhook(payloads.envelope(page, quick, reply))
    stored = messages(gateway, only_conversation(gateway)["id"])
    assert [m["content"] for m in stored] == [reply, quick]


def test_the_same_delivery_twice_changes_nothing(gateway, page):
    body = payloads.envelope(page, payloads.text(page, "4001", "once"))
    assert gateway.webhook(body).status_code == 200
    assert gateway.webhook(body).status_code == 200
    conversation = only_conversation(gateway)
    assert conversation["metadata"]["unread_count"] == 1
    assert len(messages(gateway, conversation["id"])) == 1


def test_five_concurrent_deliveries_store_one_message(gateway, page):
    body = payloads.envelope(page, payloads.text(page, "4002", "racing"))
    statuses = []
    threads = [threading.Thread(target=lambda: statuses.append(gateway.webhook(body).status_code))
               for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 5
    conversation = only_conversation(gateway)
    assert len(messages(gateway, conversation["id"])) == 1
    assert conversation["metadata"]["unread_count"] == 1


def test_every_entry_and_event_of_a_call_is_stored_standby_too(gateway, graph, page):
    second_page = connect_page(gateway, graph)["source_channel_id"]
    body = payloads.envelope(page, payloads.text(page, "5001", "a1"), payloads.text(page, "5002", "a2"),
                             standby=[payloads.text(page, "5003", "while another app owns the thread")])
    body["entry"].append(payloads.envelope(second_page, payloads.text(second_page, "5004", "b1"))["entry"][0])
    assert gateway.webhook(body).status_code == 200
    contacts = sorted(c["contact"]["id"] for c in conversations(gateway))
    assert contacts == ["5001", "5002", "5003", "5004"]


# --- echoes ------------------------------------------------------------------------------


def test_an_echo_from_another_app_is_the_page_speaking(gateway, page):
    gateway.webhook(payloads.envelope(page, payloads.text(page, "6001", "question")))
    gateway.webhook(payloads.envelope(page, payloads.echo(page, "6001", "answer from Page Inbox",
                                                          app_id=263902037430900)))
    gateway.webhook(payloads.envelope(page, payloads.echo(page, "6001", "no app id")))
    conversation = only_conversation(gateway)
    stored = messages(gateway, conversation["id"])
    assert [m["sender_type"] for m in stored] == ["source_user", "source_user", "source_contact"]
    assert [m["from_contact"] for m in stored] == [False, False, True]
    assert conversation["metadata"]["unread_count"] == 1
    assert conversation["last_message"]["content"]["message"]["text"] == "no app id"


def test_the_echo_of_our_own_send_is_not_a_second_message(gateway, graph, page):
    gateway.webhook(payloads.envelope(page, payloads.text(page, "6002", "hi")))
    conversation = only_conversation(gateway)
    sent = gateway.post("/messages.send", {"conversation_id": conversation["id"],
                                           "message": {"text": "hello back"}}).json()
    mid = wait_for(lambda: messages(gateway, conversation["id"])[0]["metadata"]
                   .get("source", {}).get("id"))
    gateway.webhook(payloads.envelope(page, payloads.echo(page, "6002", "hello back", message_id=mid,
                                                          app_id=int(APP_ID),
                                                          metadata=f"mg:{sent['id']}")))
    stored = messages(gateway, conversation["id"])
    assert [m["id"] for m in stored] == [sent["id"], stored[1]["id"]]
    assert len(stored) == 2 and stored[0]["sender_type"] == "app_user"


def test_an_echo_that_overtakes_the_send_answer_is_reconciled(gateway, graph, page):
    gateway.webhook(payloads.envelope(page, payloads.text(page, "6003", "hi")))
    conversation = only_conversation(gateway)
    graph.delays["send"] = 0.7  # under the gateway's 1 s Graph API timeout
    graph.mids.append("m_echo_first")
    sent = gateway.post("/messages.send", {"conversation_id": conversation["id"],
                                           "message": {"text": "slow answer"}}).json()
    [call] = wait_for(lambda: graph.calls_of("send"))
    # Meta's echo, naming our message in `metadata`, arrives while the Send API call is open.
    gateway.webhook(payloads.envelope(page, payloads.echo(
        page, "6003", "slow answer", message_id="m_echo_first", app_id=int(APP_ID),
        metadata=call.json["message"]["metadata"])))
    assert call.json["message"]["metadata"] == f"mg:{sent['id']}"
    assert not call.answered
    stored = messages(gateway, conversation["id"])
    assert len(stored) == 2 and stored[0]["id"] == sent["id"]
    assert stored[0]["state"] == "delivered"
    assert stored[0]["metadata"]["source"]["id"] == "m_echo_first"
    # Then the Send API answers with the same mid: still one message, delivered.
    wait_for(lambda: call.answered)
    client, db = database(gateway)
    wait_for(lambda: db.outbox.count_documents({}) == 0)
    client.close()
    stored = messages(gateway, conversation["id"])
    assert [m["id"] for m in stored][:1] == [sent["id"]] and len(stored) == 2
    assert stored[0]["metadata"]["source"]["id"] == "m_echo_first"


def test_an_echo_without_our_metadata_that_overtakes_the_send_is_merged(gateway, graph, page):
    gateway.webhook(payloads.envelope(page, payloads.text(page, "6004", "hi")))
    conversation = only_conversation(gateway)
    graph.delays["send"] = 0.7  # under the gateway's 1 s Graph API timeout
    graph.mids.append("m_echo_plain")
    sent = gateway.post("/messages.send", {"conversation_id": conversation["id"],
                                           "message": {"text": "mine", "metadata": "client-own"}})
    [call] = wait_for(lambda: graph.calls_of("send"))
    assert call.json["message"] == {"text": "mine", "metadata": "client-own"}
    gateway.webhook(payloads.envelope(page, payloads.echo(
        page, "6004", "mine", message_id="m_echo_plain", app_id=int(APP_ID),
        metadata="client-own")))
    assert len(messages(gateway, conversation["id"])) == 3  # for now: the echo stands alone
    wait_for(lambda: call.answered)
    stored = wait_for(lambda: len(m := messages(gateway, conversation["id"])) == 2 and m)
    assert stored[0]["id"] == sent.json()["id"]
    assert stored[0]["metadata"]["source"]["id"] == "m_echo_plain"
    assert stored[0]["state"] == "delivered"
    assert only_conversation(gateway)["last_message"]["id"] == sent.json()["id"]


# --- postbacks, reactions, deliveries, reads, the rest --------------------------------------


def test_a_postback_is_a_message_from_the_person(gateway, page):
    event = payloads.postback(page, "7001", title="Get Started", payload="GET_STARTED")
    gateway.webhook(payloads.envelope(page, event))
    conversation = only_conversation(gateway)
    [message] = messages(gateway, conversation["id"])
    assert message["content"] == event and message["sender_type"] == "source_contact"
    assert conversation["metadata"]["unread_count"] == 1


def test_reactions_mark_their_message_and_are_not_messages(gateway, page):
    text = payloads.text(page, "7002", "great news")
    mid = text["message"]["mid"]
    gateway.webhook(payloads.envelope(page, text))
    conversation = only_conversation(gateway)
    react_at = payloads.ts()
    gateway.webhook(payloads.envelope(page, payloads.reaction(page, "7002", mid, emoji="\U0001F44D",
                                                              at=react_at)))
    [message] = messages(gateway, conversation["id"])
    assert message["metadata"]["reaction"]["emoji"] == "\U0001F44D"

    unreact_at = payloads.ts()
    gateway.webhook(payloads.envelope(page, payloads.reaction(page, "7002", mid, "unreact",
                                                              at=unreact_at)))
    [message] = messages(gateway, conversation["id"])
    assert "reaction" not in message["metadata"]
    # A reaction older than the unreact, delivered late, does not bring it back.
    gateway.webhook(payloads.envelope(page, payloads.reaction(page, "7002", mid, emoji="\U0001F602",
                                                              at=react_at + 1)))
    [message] = messages(gateway, conversation["id"])
    assert "reaction" not in message["metadata"]
    assert only_conversation(gateway)["metadata"]["unread_count"] == 1


def test_read_watermarks_mark_our_messages_read(gateway, graph, page):
    gateway.webhook(payloads.envelope(page, payloads.text(page, "7003", "hi")))
    conversation = only_conversation(gateway)
    gateway.post("/messages.send", {"conversation_id": conversation["id"], "message": {"text": "yo"}})
    sent = wait_for(lambda: (m := messages(gateway, conversation["id"])[0])["state"] == "delivered" and m)
    assert sent["metadata"]["user_read"] is False
    gateway.webhook(payloads.envelope(page, payloads.read(page, "7003", payloads.ts() + 10**6)))
    assert messages(gateway, conversation["id"])[0]["metadata"]["user_read"] is True


def test_delivery_watermarks_move_pending_messages_to_delivered(start_gateway, graph):
    gw = start_gateway(RETRY_BASE_SECONDS="30")
    page = connect_page(gw, graph)["source_channel_id"]
    gw.webhook(payloads.envelope(page, payloads.text(page, "7004", "hi")))
    conversation = only_conversation(gw)
    graph.fail("send", "server_error", 5)  # the Send API answer is lost; retry is far away
    gw.post("/messages.send", {"conversation_id": conversation["id"], "message": {"text": "?"}})
    wait_for(lambda: graph.calls_of("send"))
    assert messages(gw, conversation["id"])[0]["state"] == "pending"
    gw.webhook(payloads.envelope(page, payloads.delivery(page, "7004", payloads.ts() + 10**6)))
    assert messages(gw, conversation["id"])[0]["state"] == "delivered"


def test_unknown_event_kinds_are_kept_raw(gateway, page):
    linking = {"sender": {"id": "7005"}, "recipient": {"id": page}, "timestamp": payloads.ts(),
               "account_linking": {"status": "unlinked"}}
    brand_new = {"sender": {"id": "7005"}, "recipient": {"id": page}, "timestamp": payloads.ts(),
                 "something_meta_adds_next_year": {"x": 1}}
    assert gateway.webhook(payloads.envelope(page, linking, brand_new)).status_code == 200
    assert conversations(gateway) == []
    client, db = database(gateway)
    kept = [doc["raw"] for doc in db.events.find({"kind": "unknown"})]
    client.close()
    assert linking in kept and brand_new in kept


def test_events_of_pages_not_connected_are_acknowledged_and_logged(gateway, graph, page):
    response = gateway.webhook(payloads.envelope("999000111", payloads.text("999000111", "8001")))
    assert response.status_code == 200
    assert conversations(gateway) == []
    assert "page 999000111: no connected channel" in gateway.log()


# --- contact profiles ----------------------------------------------------------------------


def test_the_profile_is_fetched_once_after_the_first_message(gateway, graph, page):
    graph.add_profile("9001", "Ada", "Lovelace", pic="https://img.example/ada.jpg")
    gateway.webhook(payloads.envelope(page, payloads.text(page, "9001", "first")))
    conversation = wait_for(lambda: (c := only_conversation(gateway))["contact"]["fetch_state"] == "ok"
                            and c)
    assert conversation["contact"]["display_name"] == "Ada Lovelace"
    assert conversation["contact"]["avatar_url"] == "https://img.example/ada.jpg"
    assert conversation["metadata"]["contact"]["display_name"] == "Ada Lovelace"
    gateway.webhook(payloads.envelope(page, payloads.text(page, "9001", "second")))
    [call] = graph.calls_of("profile")
    assert call.path == "9001" and call.query["fields"] == "first_name,last_name,profile_pic"


def test_a_failed_profile_fetch_is_retried(gateway, graph, page):
    graph.add_profile("9002", "Grace", "Hopper")
    graph.fail("profile", "server_error", 2)
    gateway.webhook(payloads.envelope(page, payloads.text(page, "9002", "hi")))
    conversation = wait_for(lambda: (c := only_conversation(gateway))["contact"]["fetch_state"] == "ok"
                            and c)
    assert conversation["contact"]["display_name"] == "Grace Hopper"
    assert len(graph.calls_of("profile")) == 3


def test_the_webhook_does_not_wait_for_the_profile(gateway, graph, page):
    graph.add_profile("9003", "Alan", "Turing")
    graph.delays["profile"] = 3
    assert gateway.webhook(payloads.envelope(page, payloads.text(page, "9003", "quick"))).status_code == 200
    conversation = only_conversation(gateway)
    assert conversation["contact"]["fetch_state"] == "pending"
    assert conversation["contact"]["display_name"] == "Facebook " + conversation["id"][-5:]
    assert messages(gateway, conversation["id"])[0]["content"]["message"]["text"] == "quick"


def test_a_refused_profile_is_given_up_after_five_attempts(gateway, graph, page):
    # The fake knows no profile for this person: Meta's "(#100) Invalid parameter".
    gateway.webhook(payloads.envelope(page, payloads.text(page, "9004", "hi")))
    wait_for(lambda: "refused 5 times" in gateway.log(), timeout=20)
    conversation = only_conversation(gateway)
    assert conversation["contact"]["fetch_state"] == "failed"
    assert conversation["contact"]["display_name"] == "Facebook " + conversation["id"][-5:]
    assert len(graph.calls_of("profile")) == 5


def test_a_batch_from_several_people_is_stored_as_it_would_be_one_by_one(gateway, graph):
    channel = connect_page(gateway, graph)
    page = channel["source_channel_id"]
    seen_before = payloads.text(page, "5001", "already here", at=1_700_000_000_000)
    gateway.webhook(payloads.envelope(page, seen_before))
    batch = [
        payloads.text(page, "5001", "a1", at=1_700_000_001_000),
        payloads.text(page, "5002", "b1", at=1_700_000_001_500),
        payloads.text(page, "5001", "a3", at=1_700_000_003_000),
        payloads.text(page, "5001", "a2", at=1_700_000_002_000),  # out of order in the batch
        {**payloads.echo(page, "5002", "page answers b"), "timestamp": 1_700_000_004_000},
        # Meta sending a stored message again, changed (same mid): it is not stored twice.
        {**seen_before, "timestamp": seen_before["timestamp"] + 1},
        payloads.text(page, "5002", "b2", at=1_700_000_005_000),
    ]
    assert gateway.webhook(payloads.envelope(page, *batch)).status_code == 200
    listed = gateway.post("/conversations.list").json()["data"]
    by_contact = {c["contact"]["id"]: c for c in listed}
    a, b = by_contact["5001"], by_contact["5002"]
    assert a["unread_count"] == 4  # already here, a1, a2, a3
    assert b["unread_count"] == 2  # b1, b2; the page's own answer is not unread
    assert a["last_message"]["content"]["message"]["text"] == "a3"
    assert b["last_message"]["content"]["message"]["text"] == "b2"
    texts = [m["content"]["message"]["text"] for m in gateway.post(
        "/messages.list", {"conversation_id": a["id"]}).json()["data"]]
    assert texts == ["a3", "a2", "a1", "already here"]
    b_messages = gateway.post("/messages.list", {"conversation_id": b["id"]}).json()["data"]
    assert [m["sender_type"] for m in b_messages] == ["source_contact", "source_user",
                                                      "source_contact"]
