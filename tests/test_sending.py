"""Sending through the Send API, retries, restarts; listing conversations and messages; tokens."""

from __future__ import annotations

import base64
import re

import pytest

from tests import payloads
from tests.conftest import connect_page, wait_for

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def start_conversation(gw, graph, psid: str = "1001", channel: dict | None = None) -> dict:
    """A page and a person who wrote to it; returns the conversation JSON."""
    channel = channel or connect_page(gw, graph)
    page = channel["source_channel_id"]
    gw.webhook(payloads.envelope(page, payloads.text(page, psid, "hello")))
    listed = gw.post("/conversations.list", {"channel_id": channel["id"]}).json()["data"]
    return next(c for c in listed if c["contact"]["id"] == psid)


def send(gw, conversation_id: str, message=None, **extra):
    body = {"conversation_id": conversation_id, "message": message or {"text": "Hi!"}, **extra}
    return gw.post("/messages.send", body)


def message_state(gw, conversation_id: str, message_id: str) -> dict:
    listed = gw.post("/messages.list", {"conversation_id": conversation_id,
                                        "page_size": 100}).json()["data"]
    return next(m for m in listed if m["id"] == message_id)


def settled(gw, conversation_id: str, message_id: str, timeout: float = 20) -> dict:
    """The message once it is no longer pending."""
    return wait_for(lambda: (m := message_state(gw, conversation_id, message_id))["state"]
                    != "pending" and m, timeout=timeout)


# --- sending ---------------------------------------------------------------------------------


def test_send_answers_pending_then_delivers(gateway, graph):
    conversation = start_conversation(gateway, graph)
    response = send(gateway, conversation["id"], {"text": "Your order has shipped"})
    assert response.status_code == 200
    message = response.json()
    assert set(message) == {"id", "content", "state", "delivery_state", "sender_type",
                            "from_contact", "sent_at", "source", "metadata", "sender"}
    assert message["content"] == {"text": "Your order has shipped"}
    assert message["state"] == message["delivery_state"] == "pending"
    assert message["sender_type"] == "app_user" and message["from_contact"] is False
    assert message["source"] == "facebook" and ISO.match(message["sent_at"])
    final = settled(gateway, conversation["id"], message["id"])
    assert final["state"] == "delivered"
    assert final["metadata"]["source"]["id"].startswith("m_fake_")
    assert final["content"] == {"text": "Your order has shipped"}


def test_the_send_api_receives_the_message_as_given(gateway, graph):
    channel = connect_page(gateway, graph, token="EAAsendtoken")
    conversation = start_conversation(gateway, graph, psid="24680", channel=channel)
    message = {"text": "Pick one", "quick_replies": [
        {"content_type": "text", "title": "Red", "payload": "RED"}]}
    sent = send(gateway, conversation["id"], message).json()
    [call] = wait_for(lambda: graph.calls_of("send"))
    assert call.method == "POST" and call.path == "me/messages"
    assert call.query["access_token"] == "EAAsendtoken"
    assert call.json == {"recipient": {"id": "24680"}, "messaging_type": "RESPONSE",
                         "message": {**message, "metadata": f"mg:{sent['id']}"}}


def test_messaging_type_and_tag_are_forwarded_and_checked(gateway, graph):
    conversation = start_conversation(gateway, graph)
    ok = send(gateway, conversation["id"], messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")
    assert ok.status_code == 200
    [call] = wait_for(lambda: graph.calls_of("send"))
    assert call.json["messaging_type"] == "MESSAGE_TAG" and call.json["tag"] == "HUMAN_AGENT"
    no_tag = send(gateway, conversation["id"], messaging_type="MESSAGE_TAG")
    assert no_tag.status_code == 400 and "tag is required" in no_tag.json()["message"]
    unknown = send(gateway, conversation["id"], messaging_type="SPAM")
    assert unknown.status_code == 400 and "messaging_type must be one of" in unknown.json()["message"]
    stray = send(gateway, conversation["id"], messaging_type="RESPONSE", tag="HUMAN_AGENT")
    assert stray.status_code == 400 and "tag goes with messaging_type MESSAGE_TAG" in stray.text
    assert len(graph.calls_of("send")) == 1


@pytest.mark.parametrize("mode, code", [("bad_token", 190), ("outside_window", 10),
                                        ("bad_param", 100)])
def test_permanent_errors_fail_at_once_with_metas_reason(gateway, graph, mode, code):
    from tests.fake_graph import FAILURES

    conversation = start_conversation(gateway, graph)
    graph.fail("send", mode)
    sent = send(gateway, conversation["id"]).json()
    final = settled(gateway, conversation["id"], sent["id"])
    assert final["state"] == "failed"
    assert final["metadata"]["error"] == FAILURES[mode][1]["error"]["message"]
    assert final["metadata"]["source"]["error"]["code"] == code
    assert len(graph.calls_of("send")) == 1


@pytest.mark.parametrize("mode", ["server_error", "http_500_plain", "rate_limit", "http_429",
                                  "timeout"])
def test_transient_errors_are_retried_until_delivered(gateway, graph, mode):
    conversation = start_conversation(gateway, graph)
    graph.fail("send", mode, times=2)
    sent = send(gateway, conversation["id"]).json()
    final = settled(gateway, conversation["id"], sent["id"])
    assert final["state"] == "delivered"
    assert len(graph.calls_of("send")) == 3
    assert "error" not in final["metadata"]


def test_retries_give_up_after_the_configured_attempts(gateway, graph):
    conversation = start_conversation(gateway, graph)
    graph.fail("send", "server_error", times=10)
    sent = send(gateway, conversation["id"]).json()
    final = settled(gateway, conversation["id"], sent["id"])
    assert final["state"] == "failed"
    assert final["metadata"]["error"].startswith("An unexpected error has occurred")
    assert len(graph.calls_of("send")) == 4  # SEND_MAX_ATTEMPTS in the tests


def test_send_refuses_what_it_cannot_send(gateway, graph):
    channel = connect_page(gateway, graph)
    conversation = start_conversation(gateway, graph, channel=channel)
    cases = [
        ({"message": {"text": "x"}}, "conversation_id is required"),
        ({"conversation_id": conversation["id"]}, "message is required"),
        ({"conversation_id": conversation["id"], "message": "hello"}, "message"),
        ({"conversation_id": conversation["id"], "message": ["hello"]}, "message"),
        ({"conversation_id": conversation["id"], "message": {}}, "message must be a non-empty object"),
        ({"conversation_id": conversation["id"], "message": {"n": 2**70}}, "64-bit"),
    ]
    for body, expected in cases:
        response = gateway.post("/messages.send", body)
        assert response.status_code == 400, (body, response.text)
        assert expected in response.json()["message"], (body, response.text)
    raw = gateway.http.post("/messages.send", content=b"{oops",
                            headers={"Content-Type": "application/json"})
    assert raw.status_code == 400 and raw.json() == {"message": "request body is not valid JSON"}
    array = gateway.http.post("/messages.send", json=[1, 2])
    assert array.status_code == 400 and "JSON object" in array.json()["message"]
    unknown = send(gateway, "no-such-conversation")
    assert unknown.status_code == 404
    assert unknown.json() == {"message": "conversation no-such-conversation not found"}

    gateway.post("/channels.facebook.disconnect", {"channel_id": channel["id"]})
    closed = send(gateway, conversation["id"])
    assert closed.status_code == 403 and "disconnected" in closed.json()["message"]
    assert graph.calls_of("send") == []


def test_a_killed_gateway_loses_no_send(start_gateway, graph):
    first = start_gateway(RETRY_BASE_SECONDS="2", RETRY_MAX_SECONDS="2")
    conversation = start_conversation(first, graph)
    graph.fail("send", "server_error")
    sent = send(first, conversation["id"]).json()
    wait_for(lambda: graph.calls_of("send"))
    first.kill()  # while the message waits for its retry
    second = start_gateway(database=first.env["MONGODB_DATABASE"])
    final = settled(second, conversation["id"], sent["id"])
    assert final["state"] == "delivered"
    calls = [c for c in graph.calls_of("send") if c.json["message"]["metadata"] == f"mg:{sent['id']}"]
    assert len(calls) == 2  # the failed attempt and the one that went through: not sent twice


def test_a_stopped_gateway_hands_its_pending_sends_to_the_next(start_gateway, graph):
    first = start_gateway(RETRY_BASE_SECONDS="6", RETRY_MAX_SECONDS="6")
    conversation = start_conversation(first, graph)
    graph.fail("send", "server_error")
    sent = send(first, conversation["id"]).json()
    wait_for(lambda: graph.calls_of("send"))
    first.stop()
    # The next process starts with a short backoff, but the job keeps its due time: patience.
    second = start_gateway(database=first.env["MONGODB_DATABASE"])
    assert message_state(second, conversation["id"], sent["id"])["state"] == "pending"
    final = settled(second, conversation["id"], sent["id"], timeout=20)
    assert final["state"] == "delivered"
    assert len(graph.calls_of("send")) == 2


def test_a_send_under_way_at_a_graceful_stop_finishes_and_is_not_sent_again(start_gateway, graph):
    first = start_gateway()
    conversation = start_conversation(first, graph)
    graph.delays["send"] = 0.8  # under the 1 s Graph API timeout
    sent = send(first, conversation["id"]).json()
    [call] = wait_for(lambda: graph.calls_of("send"))
    assert not call.answered
    first.stop()  # SIGTERM while Meta is still answering
    second = start_gateway(database=first.env["MONGODB_DATABASE"])
    final = settled(second, conversation["id"], sent["id"])
    assert final["state"] == "delivered"
    assert len(graph.calls_of("send")) == 1


# --- listing ---------------------------------------------------------------------------------


def test_conversations_are_listed_newest_activity_first_in_airys_envelope(gateway, graph):
    channel = connect_page(gateway, graph, token="EAAlisttoken")
    page = channel["source_channel_id"]
    for n in range(7):
        gateway.webhook(payloads.envelope(page, payloads.text(page, f"70{n}", f"msg {n}")))
    seen, cursor, pages = [], None, 0
    while True:
        body = gateway.post("/conversations.list", {"page_size": 3, "cursor": cursor}).json()
        pages += 1
        assert set(body) == {"data", "pagination_data"}
        assert body["pagination_data"]["total"] == 7
        assert body["pagination_data"]["previous_cursor"] == cursor
        seen += [c["contact"]["id"] for c in body["data"]]
        cursor = body["pagination_data"]["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == [f"70{n}" for n in reversed(range(7))]

    # A new message in the oldest conversation moves it to the top.
    gateway.webhook(payloads.envelope(page, payloads.text(page, "700", "back again")))
    listed = gateway.post("/conversations.list").json()
    assert listed["data"][0]["contact"]["id"] == "700"
    assert len(listed["data"]) == 7  # page_size 20 by default
    first = listed["data"][0]
    assert set(first) >= {"id", "created_at", "channel", "contact", "metadata", "last_message"}
    assert first["channel"]["id"] == channel["id"] and ISO.match(first["created_at"])
    assert first["metadata"]["unread_count"] == 2
    assert first["last_message"]["content"]["message"]["text"] == "back again"
    assert "EAAlisttoken" not in str(listed) and "page_token" not in str(listed)


def test_conversations_can_be_filtered_by_channel(gateway, graph):
    a = connect_page(gateway, graph)
    b = connect_page(gateway, graph)
    start_conversation(gateway, graph, psid="801", channel=a)
    start_conversation(gateway, graph, psid="802", channel=b)
    only_b = gateway.post("/conversations.list", {"channel_id": b["id"]}).json()
    assert [c["contact"]["id"] for c in only_b["data"]] == ["802"]
    assert only_b["pagination_data"]["total"] == 1


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("body, expected", [
    ({"page_size": 0}, "page_size"), ({"page_size": 101}, "page_size"),
    ({"page_size": "abc"}, "page_size"), ({"page_size": True}, "page_size"),
    ({"cursor": "garbage!"}, "cursor"),
    ({"cursor": _cursor("99999999999999999999999:x")}, "cursor"),  # beyond 64 bits
    ({"cursor": _cursor("1:")}, "cursor"), ({"cursor": _cursor("1_000:x")}, "cursor"),
])
def test_bad_list_parameters_are_refused(shared_gateway, body, expected):
    response = shared_gateway.post("/conversations.list", body)
    assert response.status_code == 400 and expected in response.json()["message"]


def test_messages_are_listed_newest_first_with_id_cursors(gateway, graph):
    channel = connect_page(gateway, graph)
    page = channel["source_channel_id"]
    for n in range(5):
        gateway.webhook(payloads.envelope(page, payloads.text(page, "900", f"m{n}")))
    conversation = gateway.post("/conversations.list").json()["data"][0]
    texts, cursor = [], None
    while True:
        body = gateway.post("/messages.list", {"conversation_id": conversation["id"],
                                               "page_size": 2, "cursor": cursor}).json()
        assert body["pagination_data"]["total"] == 5
        texts += [m["content"]["message"]["text"] for m in body["data"]]
        cursor = body["pagination_data"]["next_cursor"]
        if cursor is None:
            break
        assert cursor == body["data"][-1]["id"]
    assert texts == ["m4", "m3", "m2", "m1", "m0"]
    assert gateway.post("/messages.list", {"conversation_id": "nope"}).status_code == 404
    missing = gateway.post("/messages.list", {})
    assert missing.status_code == 400 and missing.json()["message"] == "conversation_id is required"


def test_info_and_read(gateway, graph):
    conversation = start_conversation(gateway, graph)
    info = gateway.post("/conversations.info", {"conversation_id": conversation["id"]}).json()
    assert info["id"] == conversation["id"] and info["metadata"]["unread_count"] == 1
    assert gateway.post("/conversations.info", {"conversation_id": "nope"}).status_code == 404
    for route in ("/conversations.read", "/conversations.mark-read"):
        response = gateway.post(route, {"conversation_id": conversation["id"]})
        assert response.status_code == 204
        after = gateway.post("/conversations.info", {"conversation_id": conversation["id"]}).json()
        assert after["metadata"]["unread_count"] == 0 and after["unread_count"] == 0
    assert gateway.post("/conversations.read", {"conversation_id": "nope"}).status_code == 404


# --- the API token ---------------------------------------------------------------------------


def test_system_token_guards_every_api_route(start_gateway, graph):
    gw = start_gateway(SYSTEM_TOKEN="s3cret")
    missing = gw.post("/channels.list")
    assert missing.status_code == 401 and "Bearer" in missing.json()["message"]
    assert gw.post("/channels.list", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert gw.post("/channels.list", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert gw.post("/channels.list", headers={"Authorization": "s3cret"}).status_code == 200
    assert gw.post("/messages.send", {}).status_code == 401  # before the body is even read
    assert gw.http.get("/openapi.json").status_code == 401
    assert gw.http.get("/graphql", params={"query": "{ channels { id } }"}).status_code == 401
    assert gw.http.get("/health").status_code == 200
    # The webhook needs no token: its signature guards it.
    graph.add_page("555000", "EAAx")
    gw.post("/channels.facebook.connect", {"page_id": "555000", "page_token": "EAAx"},
            headers={"Authorization": "Bearer s3cret"})
    assert gw.webhook(payloads.envelope("555000", payloads.text("555000", "1"))).status_code == 200
