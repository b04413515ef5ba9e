"""Live events against real gateways sharing a store: `tagUpdated` (created, changed, deleted) and
`webhookUpdated` (how deliveries fare) reach subscribers of the process that made the change and
of another, over both websocket protocols, multiplexed or not; and webhookUpdated never carries a
webhook's URL, headers or signing key. (contactUpdated across processes: tests/test_contacts.py.)"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests import payloads
from tests.conftest import connect_page
from tests.receiver import Receiver
from tests.test_graphql import subscribed
from tests.ws import LEGACY_WS, TRANSPORT_WS, GraphQLSocket

TAGS = "subscription { tagUpdated { id deleted tag { id name color } } }"
WEBHOOKS = """subscription ($id: ID) { webhookUpdated(id: $id) {
  id name status lastSuccessAt lastError lastErrorAt queued } }"""
# Not hex, so no id in a payload can contain them by chance.
HEADER_VALUE = "tok-Zq9-live-header"
SIGNATURE_KEY = "key-Zq9-live-signing"


def database() -> str:
    return "t_live_" + uuid.uuid4().hex[:8].translate(str.maketrans("0123456789", "ghijklmnop"))


class Listener:
    """A subscription on a socket, keeping every frame it received as text."""

    def __init__(self, ws: GraphQLSocket, op_id: str, field: str) -> None:
        self.ws, self.op_id, self.field = ws, op_id, field
        self.frames: list[str] = []
        self.events: list[dict[str, Any]] = []

    def next(self, timeout: float = 10) -> dict[str, Any]:
        payload = self.ws.next(self.op_id, timeout)
        self.frames.append(json.dumps(payload))
        assert "errors" not in payload, payload
        self.events.append(payload["data"][self.field])
        return self.events[-1]

    def until(self, check: Callable[[dict[str, Any]], bool], timeout: float = 15) -> dict:
        """The first event from now on that `check` accepts."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(0.1, deadline - time.monotonic()))
            if check(event):
                return event


@pytest.mark.parametrize("multiplex", ["1", "0"])
def test_tag_changes_reach_subscribers_of_both_processes(start_gateway, multiplex):
    shared = database()
    changing = start_gateway(shared, SUBSCRIPTION_MULTIPLEX=multiplex)
    listening = start_gateway(shared, SUBSCRIPTION_MULTIPLEX=multiplex)
    with GraphQLSocket(changing.url, TRANSPORT_WS) as here, \
            GraphQLSocket(listening.url, LEGACY_WS) as there:
        assert here.init()["type"] == there.init()["type"] == "connection_ack"
        here.subscribe("1", TAGS)
        there.subscribe("1", TAGS)
        subscribed(changing, 1)
        subscribed(listening, 1)
        tag = changing.post("/tags.create", {"name": "urgent", "color": "tag-red"}).json()
        assert changing.post("/tags.update", {"id": tag["id"], "name": "on fire",
                                              "color": "tag-green"}).status_code == 204
        assert changing.post("/tags.delete", {"id": tag["id"]}).status_code == 204
        for ws in (here, there):
            listener = Listener(ws, "1", "tagUpdated")
            assert [listener.next() for _ in range(3)] == [
                {"id": tag["id"], "deleted": False,
                 "tag": {"id": tag["id"], "name": "urgent", "color": "RED"}},
                {"id": tag["id"], "deleted": False,
                 "tag": {"id": tag["id"], "name": "on fire", "color": "GREEN"}},
                {"id": tag["id"], "deleted": True, "tag": None},
            ]
            assert ws.nothing_within(0.3)
    # Other subscriptions are not offered deletions: a deleted contact is not a contactUpdated.


def test_a_deleted_contact_is_no_contact_updated_event(gateway):
    with GraphQLSocket(gateway.url, TRANSPORT_WS) as ws:
        assert ws.init()["type"] == "connection_ack"
        ws.subscribe("1", "subscription { contactUpdated { id displayName } }")
        subscribed(gateway, 1)
        card = gateway.post("/contacts.create", {"display_name": "Grace"}).json()
        assert gateway.post("/contacts.delete", {"id": card["id"]}).status_code == 202
        assert ws.next("1")["data"]["contactUpdated"] == {"id": card["id"],
                                                          "displayName": "Grace"}
        assert ws.nothing_within(0.5)
        assert gateway.http.get("/health").json()["status"] == "ok"


def test_webhook_delivery_status_reaches_subscribers_without_secrets(start_gateway, graph,
                                                                      receiver: Receiver):
    shared = database()
    changing = start_gateway(shared, WEBHOOK_TIMEOUT_SECONDS="2")
    listening = start_gateway(shared)
    page = connect_page(changing, graph)["source_channel_id"]
    hook = changing.post("/webhooks.subscribe", {
        "url": f"{receiver.url}/live", "name": "CRM", "events": ["message.created"],
        "headers": {"X-Token": HEADER_VALUE}, "signature_key": SIGNATURE_KEY}).json()
    with GraphQLSocket(listening.url, TRANSPORT_WS) as there, \
            GraphQLSocket(changing.url, LEGACY_WS) as here:
        assert there.init()["type"] == here.init()["type"] == "connection_ack"
        there.subscribe("1", WEBHOOKS)
        here.subscribe("1", WEBHOOKS, {"id": hook["id"]})
        subscribed(listening, 1)
        subscribed(changing, 1)
        remote, local = Listener(there, "1", "webhookUpdated"), \
            Listener(here, "1", "webhookUpdated")

        # A delivery taken by the receiver: its success.
        changing.webhook(payloads.envelope(page, payloads.text(page, "6201", "first")))
        for listener in (remote, local):
            done = listener.until(lambda e: e["lastSuccessAt"] is not None)
            assert done["id"] == hook["id"] and done["name"] == "CRM"
            assert done["status"] == "Subscribed" and done["lastError"] is None

        # Refused by the receiver: the error, with what waits for it.
        receiver.fail_next = 1000
        changing.webhook(payloads.envelope(page, payloads.text(page, "6201", "second")))
        for listener in (remote, local):
            failed = listener.until(lambda e: e["lastError"] is not None)
            assert failed["lastError"] == "the receiver answered 500"
            assert failed["lastErrorAt"] is not None and failed["queued"] >= 1, failed
        receiver.fail_next = 0
        for listener in (remote, local):
            listener.until(lambda e: e["lastSuccessAt"] > e["lastErrorAt"])
        assert [e["text"] for e in (r["payload"]["message"]["content"]["message"]
                                    for r in receiver.events("/live"))] == ["first", "second"]

        # Unsubscribed: its status.
        assert changing.post("/webhooks.unsubscribe", {"id": hook["id"]}).status_code == 200
        for listener in (remote, local):
            listener.until(lambda e: e["status"] == "Unsubscribed")

        frames = remote.frames + local.frames
        assert frames
        for secret in (HEADER_VALUE, SIGNATURE_KEY, "X-Token", receiver.url):
            assert not any(secret in frame for frame in frames), secret

        # Nothing secret can be asked for: the type has no such fields.
        there.subscribe("2", "subscription { webhookUpdated { id headers url signatureKey } }")
        errors = there.next("2")["errors"]
        assert {error["message"] for error in errors} >= {
            "Cannot query field 'headers' on type 'WebhookStatus'."}, errors
