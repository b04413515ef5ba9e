"""Handover (Meta's handover protocol) against a real gateway and the Graph API simulator: events
in (pass, take, request, standby) set the conversation's thread owner in REST and GraphQL and
reach outgoing webhooks; pass, take and request go out through the Graph API; a send into a
thread another app owns answers 409 unless forced."""

from __future__ import annotations

from typing import Any

from tests import payloads
from tests.conftest import APP_ID, connect_page, wait_for
from tests.test_airy_more import gql
from tests.test_sending import settled, start_conversation

PAGE_INBOX = "263902037430900"
OTHER_APP = "777000111"


def handover(page: str, psid: str, kind: str, at: int | None = None, **body: Any) -> dict:
    """A `messaging_handovers` event as Meta documents it."""
    return {"sender": {"id": psid}, "recipient": {"id": page}, "timestamp": at or payloads.ts(),
            kind: body}


def thread_control(gw, conversation_id: str) -> dict | None:
    info = gw.post("/conversations.info", {"conversation_id": conversation_id})
    assert info.status_code == 200, info.text
    return info.json()["metadata"]["thread_control"]


def owner_becomes(gw, conversation_id: str, owner: str | None) -> dict:
    return wait_for(lambda: (tc := thread_control(gw, conversation_id)) and
                    tc["owner"] == owner and tc)


def test_events_in_set_the_owner_and_a_send_into_another_apps_thread_is_refused(gateway, graph):
    channel = connect_page(gateway, graph)
    page = channel["source_channel_id"]
    conversation = start_conversation(gateway, graph, psid="3001", channel=channel)
    cid = conversation["id"]
    assert conversation["metadata"]["thread_control"] is None

    # Page Inbox takes the thread from this app.
    at = payloads.ts()
    assert gateway.webhook(payloads.envelope(page, handover(
        page, "3001", "take_thread_control", at=at, previous_owner_app_id=APP_ID,
        new_owner_app_id=PAGE_INBOX, metadata="an agent answers"))).status_code == 200
    owner = owner_becomes(gateway, cid, "page_inbox")
    assert owner["app_id"] == PAGE_INBOX and owner["updated_at"].endswith("Z")

    refused = gateway.post("/messages.send", {"conversation_id": cid, "message": {"text": "x"}})
    assert refused.status_code == 409
    assert "owned by Page Inbox" in refused.json()["message"]
    assert "conversations.take-thread-control" in refused.json()["message"]
    assert graph.calls_of("send") == []
    forced = gateway.post("/messages.send", {"conversation_id": cid, "message": {"text": "y"},
                                             "force": True})
    assert forced.status_code == 200
    assert settled(gateway, cid, forced.json()["id"])["state"] == "delivered"
    assert gateway.post("/messages.send", {"conversation_id": cid, "message": {"text": "z"},
                                           "force": "yes"}).status_code == 400

    # Another app asks for control: kept for clients to see; the owner stays.
    assert gateway.webhook(payloads.envelope(page, handover(
        page, "3001", "request_thread_control", at=at + 1,
        requested_owner_app_id=int(OTHER_APP), metadata="let me"))).status_code == 200
    requested = wait_for(lambda: (tc := thread_control(gateway, cid))
                         and tc["requested_by"] == OTHER_APP and tc)
    assert requested["owner"] == "page_inbox" and requested["requested_at"]

    # Page Inbox passes it back: this app's sends go through again, unforced.
    assert gateway.webhook(payloads.envelope(page, handover(
        page, "3001", "pass_thread_control", at=at + 2, previous_owner_app_id=PAGE_INBOX,
        new_owner_app_id=APP_ID, metadata="done"))).status_code == 200
    assert owner_becomes(gateway, cid, "app")["app_id"] == APP_ID
    sent = gateway.post("/messages.send", {"conversation_id": cid, "message": {"text": "ok"}})
    assert sent.status_code == 200

    # GraphQL shows the same, and refuses an unforced send into another app's thread.
    query = "query($id: ID!) { conversation(id: $id) { threadControl { owner appId } } }"
    data = gql(gateway, query, {"id": cid})["data"]
    assert data["conversation"]["threadControl"] == {"owner": "APP", "appId": APP_ID}


def test_a_standby_message_is_kept_and_says_another_app_owns_the_thread(gateway, graph):
    channel = connect_page(gateway, graph)
    page = channel["source_channel_id"]
    cid = start_conversation(gateway, graph, psid="3002", channel=channel)["id"]
    standby = payloads.text(page, "3002", "written while another app answers")
    assert gateway.webhook(payloads.envelope(page, standby=[standby])).status_code == 200
    owner_becomes(gateway, cid, "other_app")
    texts = [m["content"].get("message", {}).get("text") for m in gateway.post(
        "/messages.list", {"conversation_id": cid}).json()["data"]]
    assert "written while another app answers" in texts
    mutation = """mutation($id: ID!) { sendMessage(input: {conversationId: $id,
                  message: {text: "hi"}}) { id } }"""
    errors = gql(gateway, mutation, {"id": cid})["errors"]
    assert errors[0]["extensions"]["code"] == "CONFLICT"
    forced = """mutation($id: ID!) { sendMessage(input: {conversationId: $id,
                message: {text: "hi"}, force: true}) { id state } }"""
    assert gql(gateway, forced, {"id": cid})["data"]["sendMessage"]["state"] == "PENDING"


def test_pass_take_and_request_go_out_through_the_graph_api(gateway, graph, receiver):
    channel = connect_page(gateway, graph)
    cid = start_conversation(gateway, graph, psid="3003", channel=channel)["id"]
    hook = gateway.post("/webhooks.subscribe", {"url": f"{receiver.url}/hook",
                                                "events": ["conversation.updated"]})
    assert hook.status_code == 200, hook.text

    passed = gateway.post("/conversations.pass-thread-control",
                          {"conversation_id": cid, "metadata": "needs a person"})
    assert passed.status_code == 200, passed.text
    assert passed.json()["metadata"]["thread_control"]["owner"] == "page_inbox"
    refused = gateway.post("/messages.send", {"conversation_id": cid, "message": {"text": "x"}})
    assert refused.status_code == 409

    to_app = gateway.post("/conversations.pass-thread-control",
                          {"conversation_id": cid, "target_app_id": OTHER_APP})
    assert to_app.json()["metadata"]["thread_control"] == {
        "owner": "other_app", "app_id": OTHER_APP, "requested_by": None, "requested_at": None,
        "updated_at": to_app.json()["metadata"]["thread_control"]["updated_at"]}

    asked = gql(gateway, """mutation($id: ID!) { requestThreadControl(conversationId: $id,
                metadata: "please") { threadControl { owner } } }""", {"id": cid})
    assert asked["data"]["requestThreadControl"]["threadControl"]["owner"] == "OTHER_APP"
    taken = gql(gateway, """mutation($id: ID!) { takeThreadControl(conversationId: $id) {
                threadControl { owner appId } } }""", {"id": cid})
    assert taken["data"]["takeThreadControl"]["threadControl"] == {"owner": "APP",
                                                                   "appId": APP_ID}
    assert gateway.post("/messages.send", {"conversation_id": cid,
                                           "message": {"text": "ok"}}).status_code == 200

    calls = [(c.kind, c.json) for c in graph.calls if c.kind.endswith("_thread_control")]
    assert calls == [
        ("pass_thread_control", {"recipient": {"id": "3003"}, "target_app_id": PAGE_INBOX,
                                 "metadata": "needs a person"}),
        ("pass_thread_control", {"recipient": {"id": "3003"}, "target_app_id": OTHER_APP}),
        ("request_thread_control", {"recipient": {"id": "3003"}, "metadata": "please"}),
        ("take_thread_control", {"recipient": {"id": "3003"}}),
    ]
    token = graph.pages[channel["source_channel_id"]]["token"]
    assert all(c.query["access_token"] == token for c in graph.calls
               if c.kind.endswith("_thread_control"))
    assert token not in gateway.log()

    # Each change reached the outgoing webhook as conversation.updated, with its owner.
    owners = lambda: [(e["payload"]["metadata"]["thread_control"] or {}).get("owner")  # noqa: E731
                      for e in receiver.events("/hook") if e["type"] == "conversation.updated"]
    wait_for(lambda: "app" in owners())
    assert {"page_inbox", "other_app", "app"} <= set(owners())

    bad = gateway.post("/conversations.pass-thread-control",
                       {"conversation_id": cid, "target_app_id": "../x"})
    assert bad.status_code == 400 and "target_app_id" in bad.text
    graph.fail("take_thread_control", "bad_param")
    failed = gateway.post("/conversations.take-thread-control", {"conversation_id": cid})
    assert failed.status_code == 400 and "Invalid parameter" in failed.text
    missing = gateway.post("/conversations.take-thread-control", {"conversation_id": "nope"})
    assert missing.status_code == 404
