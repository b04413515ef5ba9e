"""Outgoing webhooks: subscriptions, signed deliveries to a receiver on loopback, retries, restarts."""

from __future__ import annotations

import hashlib
import hmac

from tests import payloads
from tests.conftest import connect_page, wait_for
from tests.receiver import Receiver
from tests.test_airy_more import gql

# Not hex, so no uuid in the log can contain it by chance.
HEADER_VALUE = "tok-Zq9-receiver-secret"
FAST = {"WEBHOOK_TIMEOUT_SECONDS": "2", "WEBHOOK_RETRY_SECONDS": "60"}


def subscribe(gw, **body) -> dict:
    response = gw.post("/webhooks.subscribe", body)
    assert response.status_code == 200, response.text
    return response.json()


def write(gw, page: str, psid: str, text: str) -> None:
    assert gw.webhook(payloads.envelope(page, payloads.text(page, psid, text))).status_code == 200


def texts(receiver: Receiver, path: str = "/hook") -> list[str]:
    return [e["payload"]["message"]["content"]["message"]["text"]
            for e in receiver.events(path) if e["type"] == "message.created"]


def test_webhooks_are_subscribed_updated_listed_and_unsubscribed(start_gateway, receiver):
    gw = start_gateway(**FAST)
    hook = subscribe(gw, url=f"{receiver.url}/hook", name="CRM", events=["message.created"],
                     headers={"X-Token": HEADER_VALUE}, signature_key="s3cret")
    assert set(hook) == {"id", "name", "url", "headers", "events", "status"}
    assert hook["status"] == "Subscribed" and hook["events"] == ["message.created"]
    assert hook["headers"] == {"X-Token": HEADER_VALUE}
    everything = subscribe(gw, url=f"{receiver.url}/all")
    assert everything["events"] == ["message.created", "message.updated",
                                    "conversation.updated", "channel.updated"]
    assert everything["name"] is None

    info = gw.post("/webhooks.info", {"id": hook["id"]}).json()
    assert info == {**hook, "last_success_at": None, "last_error": None,
                    "last_error_at": None, "queued": 0}
    listed = gw.post("/webhooks.list").json()["data"]
    assert [w["id"] for w in listed] == [hook["id"], everything["id"]]
    assert "s3cret" not in gw.post("/webhooks.list").text

    updated = gw.post("/webhooks.update", {"id": hook["id"], "name": "CRM 2",
                                           "events": ["channel.updated"]})
    assert updated.status_code == 200
    assert updated.json()["name"] == "CRM 2" and updated.json()["events"] == ["channel.updated"]
    assert updated.json()["url"] == f"{receiver.url}/hook"
    # subscribe with the id of a webhook updates it (Airy's way), and subscribes it again.
    gone = gw.post("/webhooks.unsubscribe", {"id": hook["id"]})
    assert gone.status_code == 200 and gone.json()["status"] == "Unsubscribed"
    again = subscribe(gw, id=hook["id"], url=f"{receiver.url}/hook2")
    assert again["id"] == hook["id"] and again["status"] == "Subscribed"
    assert again["url"] == f"{receiver.url}/hook2" and again["name"] == "CRM 2"

    for route in ("/webhooks.info", "/webhooks.update", "/webhooks.unsubscribe"):
        assert gw.post(route, {"id": "nope"}).status_code == 404
    bad_url = gw.post("/webhooks.subscribe", {"url": "ftp://example.com/x"})
    assert bad_url.status_code == 400 and "url" in bad_url.json()["message"]
    bad_event = gw.post("/webhooks.subscribe", {"url": f"{receiver.url}/x",
                                                "events": ["message.deleted"]})
    assert bad_event.status_code == 400 and "message.deleted" in bad_event.json()["message"]
    assert gw.post("/webhooks.subscribe", {}).json() == {"message": "url is required"}
    bad_header = gw.post("/webhooks.subscribe", {"url": f"{receiver.url}/x",
                                                 "headers": {"X-A": "1\r\nX-B: 2"}})
    assert bad_header.status_code == 400 and "headers" in bad_header.json()["message"]


def test_events_are_delivered_signed_with_the_subscribers_headers(start_gateway, graph,
                                                                  receiver):
    gw = start_gateway(**FAST)
    channel = connect_page(gw, graph)
    page = channel["source_channel_id"]
    hook = subscribe(gw, url=f"{receiver.url}/hook", headers={"X-Token": HEADER_VALUE},
                     signature_key="s3cret")
    subscribe(gw, url=f"{receiver.url}/only-created", events=["message.created"])
    write(gw, page, "3001", "hello hook")

    wait_for(lambda: texts(receiver) == ["hello hook"])
    wait_for(lambda: any(e["type"] == "conversation.updated" for e in receiver.events()))
    [created] = [r for r in receiver.received
                 if r.path == "/hook" and r.json["type"] == "message.created"]
    assert created.headers["x-token"] == HEADER_VALUE
    assert created.headers["content-type"] == "application/json"
    expected = hmac.new(b"s3cret", created.body, hashlib.sha256).hexdigest()
    assert created.headers["x-airy-content-signature"] == expected
    event = created.json
    assert set(event) == {"type", "payload", "timestamp"}
    assert event["timestamp"].endswith("Z")
    [conversation] = gw.post("/conversations.list").json()["data"]
    assert event["payload"]["conversation_id"] == conversation["id"]
    assert event["payload"]["channel_id"] == channel["id"]
    assert event["payload"]["message"]["from_contact"] is True
    updated = next(e for e in receiver.events() if e["type"] == "conversation.updated")
    assert updated["payload"]["id"] == conversation["id"]
    assert updated["payload"]["channel_id"] == channel["id"]

    gw.post("/channels.update", {"channel_id": channel["id"], "name": "Renamed"})
    wait_for(lambda: any(e["type"] == "channel.updated" and e["payload"]["metadata"]["name"]
                         == "Renamed" for e in receiver.events()))
    # The hook that asked for message.created only got that.
    wait_for(lambda: texts(receiver, "/only-created") == ["hello hook"])
    assert {e["type"] for e in receiver.events("/only-created")} == {"message.created"}
    info = gw.post("/webhooks.info", {"id": hook["id"]}).json()
    assert info["last_success_at"] is not None and info["last_error"] is None
    assert "s3cret" not in gw.log() and HEADER_VALUE not in gw.log()


def test_a_failing_receiver_gets_every_event_again_in_order(start_gateway, graph, receiver):
    gw = start_gateway(**FAST)
    page = connect_page(gw, graph)["source_channel_id"]
    hook = subscribe(gw, url=f"{receiver.url}/hook", events=["message.created"])
    receiver.fail_next = 3
    for n in range(4):
        write(gw, page, "3002", f"m{n}")
    wait_for(lambda: texts(receiver) == ["m0", "m1", "m2", "m3"], timeout=30)
    assert receiver.refused == 3
    info = gw.post("/webhooks.info", {"id": hook["id"]}).json()
    assert info["last_error"] == "the receiver answered 500"
    assert info["last_success_at"] >= info["last_error_at"]
    assert info["queued"] == 0


def test_nothing_queued_is_lost_across_a_restart(start_gateway, graph, receiver):
    first = start_gateway(**FAST)
    page = connect_page(first, graph)["source_channel_id"]
    hook = subscribe(first, url=f"{receiver.url}/hook", events=["message.created"])
    receiver.fail_next = 10_000
    write(first, page, "3003", "kept for later")
    wait_for(lambda: first.post("/webhooks.info", {"id": hook["id"]}).json()["queued"] == 1)
    wait_for(lambda: receiver.refused >= 1)
    first.kill()

    receiver.fail_next = 0
    second = start_gateway(database=first.env["MONGODB_DATABASE"], **FAST)
    wait_for(lambda: texts(receiver) == ["kept for later"], timeout=30)
    write(second, page, "3003", "after the restart")
    wait_for(lambda: texts(receiver) == ["kept for later", "after the restart"])
    assert second.post("/webhooks.info", {"id": hook["id"]}).json()["queued"] == 0


def test_an_unsubscribed_webhook_receives_nothing_more(start_gateway, graph, receiver):
    gw = start_gateway(**FAST)
    page = connect_page(gw, graph)["source_channel_id"]
    leaving = subscribe(gw, url=f"{receiver.url}/leaving", events=["message.created"])
    subscribe(gw, url=f"{receiver.url}/staying", events=["message.created"])
    write(gw, page, "3004", "first")
    wait_for(lambda: texts(receiver, "/leaving") == ["first"])
    receiver.fail_next = 0
    assert gw.post("/webhooks.unsubscribe", {"id": leaving["id"]}).status_code == 200
    write(gw, page, "3004", "second")
    wait_for(lambda: texts(receiver, "/staying") == ["first", "second"])
    assert texts(receiver, "/leaving") == ["first"]


def test_webhooks_through_graphql(start_gateway, receiver):
    gw = start_gateway(**FAST)
    created = gql(gw, """mutation ($url: String!) { subscribeWebhook(input: {url: $url,
        events: ["message.created"], signatureKey: "k"}) { id url events status } }""",
                  {"url": f"{receiver.url}/hook"})["data"]["subscribeWebhook"]
    assert created["status"] == "Subscribed" and created["events"] == ["message.created"]
    listed = gql(gw, "{ webhooks { id queued lastError } }")["data"]["webhooks"]
    assert listed == [{"id": created["id"], "queued": 0, "lastError": None}]
    gone = gql(gw, "mutation ($id: ID!) { unsubscribeWebhook(id: $id) { status } }",
               {"id": created["id"]})
    assert gone["data"]["unsubscribeWebhook"] == {"status": "Unsubscribed"}
    missing = gql(gw, 'mutation { unsubscribeWebhook(id: "nope") { status } }')
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"


def test_two_processes_deliver_each_event_once(start_gateway, graph, receiver):
    first = start_gateway(**FAST)
    second = start_gateway(database=first.env["MONGODB_DATABASE"], **FAST)
    # Subscribed before any change, so both processes' feeds know the webhook from the start:
    # both follow the change streams and queue each change, and it is one delivery.
    hook = subscribe(first, url=f"{receiver.url}/hook", events=["message.created"])
    page = connect_page(first, graph)["source_channel_id"]
    write(first, page, "3005", "one")
    write(second, page, "3005", "two")
    wait_for(lambda: texts(receiver) == ["one", "two"])
    wait_for(lambda: second.post("/webhooks.info", {"id": hook["id"]}).json()["queued"] == 0)
    assert texts(receiver) == ["one", "two"]
    ids = [e["payload"]["message"]["id"] for e in receiver.events()]
    assert len(ids) == len(set(ids)) == 2
