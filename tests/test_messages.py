"""Messages and conversations through the REST routes: sending, Graph errors, retries, restarts,
listing with cursors, reading, and the SYSTEM_TOKEN guard.

Each test looks only at what a client sees (status codes, JSON bodies) and at what the fake Graph
API received.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest

from tests import payloads
from tests.conftest import (APP_ID, APP_SECRET, VERIFY_TOKEN, GatewayProcess, connect_page,
                            wait_for)
from tests.fake_graph import FAILURES

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
MESSAGE_KEYS = {"id", "content", "state", "delivery_state", "sender_type", "from_contact",
                "sent_at", "source", "metadata", "sender"}
AUTH = {"Authorization": "Bearer s3cret"}


# --- helpers ---------------------------------------------------------------------------------


def module_gateway(nx_url: str, graph_url: str, log_dir, **env: str):
    """A gateway for a module's read-only tests (each start costs a second); fresh database."""
    settings = {
        "MONGODB_URL": nx_url, "MONGODB_DATABASE": "m_" + uuid.uuid4().hex[:12].translate(
            str.maketrans("0123456789", "ghijklmnop")),
        "FACEBOOK_APP_ID": APP_ID, "FACEBOOK_APP_SECRET": APP_SECRET,
        "FACEBOOK_WEBHOOK_SECRET": VERIFY_TOKEN, "FACEBOOK_GRAPH_API_URL": graph_url,
        "GRAPH_API_TIMEOUT_SECONDS": "1", **env,
    }
    return GatewayProcess(settings, log_dir / "gateway.log").start()


@pytest.fixture(scope="module")
def empty_gateway(nx_url, graph_server, tmp_path_factory):
    """One gateway with no channels, shared by tests that only ask for what does not exist."""
    gw = module_gateway(nx_url, graph_server.url, tmp_path_factory.mktemp("empty"))
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def guarded_empty(nx_url, graph_server, tmp_path_factory):
    """One gateway with SYSTEM_TOKEN=s3cret and no data, shared by the token checks."""
    gw = module_gateway(nx_url, graph_server.url, tmp_path_factory.mktemp("guarded"),
                        SYSTEM_TOKEN="s3cret")
    yield gw
    gw.stop()


def write_in(gw, page_id: str, psid: str, text: str = "hi") -> None:
    """The person `psid` writes `text` to the page (a signed webhook call)."""
    response = gw.webhook(payloads.envelope(page_id, payloads.text(page_id, psid, text)))
    assert response.status_code == 200, response.text


def conversation_with(gw, channel: dict, psid: str, text: str = "hi") -> dict:
    """Have `psid` write to the channel's page; returns that conversation's JSON."""
    write_in(gw, channel["source_channel_id"], psid, text)
    listed = gw.post("/conversations.list",
                     {"channel_id": channel["id"], "page_size": 100}).json()["data"]
    return next(c for c in listed if c["contact"]["id"] == psid)


def new_conversation(gw, graph, psid: str = "5550001") -> tuple[dict, dict]:
    """A freshly connected page and one conversation on it: (channel, conversation)."""
    channel = connect_page(gw, graph)
    return channel, conversation_with(gw, channel, psid)


def send(gw, conversation_id: str, message=None, **extra):
    body = {"conversation_id": conversation_id,
            "message": {"text": "Hello"} if message is None else message, **extra}
    return gw.post("/messages.send", body)


def messages(gw, conversation_id: str) -> list[dict]:
    response = gw.post("/messages.list", {"conversation_id": conversation_id, "page_size": 100})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def message(gw, conversation_id: str, message_id: str) -> dict:
    return next(m for m in messages(gw, conversation_id) if m["id"] == message_id)


def settled(gw, conversation_id: str, message_id: str, timeout: float = 20) -> dict:
    """The message as listed once it is no longer pending."""
    return wait_for(
        lambda: (m := message(gw, conversation_id, message_id))["state"] != "pending" and m,
        timeout=timeout,
    )


def sends_for(graph, message_id: str) -> list:
    """The Send API calls the fake received for our message `message_id`."""
    return [c for c in graph.calls_of("send")
            if (c.json or {}).get("message", {}).get("metadata") == f"mg:{message_id}"]


def info(gw, conversation_id: str) -> dict:
    response = gw.post("/conversations.info", {"conversation_id": conversation_id})
    assert response.status_code == 200, response.text
    return response.json()


def walk(gw, route: str, body: dict) -> list[dict]:
    """Every page of a list route, following next_cursor from the first page on."""
    pages, cursor = [], None
    while True:
        response = gw.post(route, {**body, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["pagination_data"]["previous_cursor"] == cursor
        pages.append(page)
        cursor = page["pagination_data"]["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "next_cursor never ends"


# --- 1, 2: sending ---------------------------------------------------------------------------


def test_send_answers_pending_in_airys_shape_then_delivers(gateway, graph):
    """messages.send answers the pending message; it then turns delivered with Meta's mid."""
    channel, conversation = new_conversation(gateway, graph)
    content = {"text": "Your order has shipped"}
    expected_mid = f"m_fake_{next(graph.next_mid) + 1}"  # the mid the fake hands out next

    response = send(gateway, conversation["id"], content)

    assert response.status_code == 200, response.text
    sent = response.json()
    assert set(sent) == MESSAGE_KEYS
    assert sent["content"] == content
    assert sent["state"] == "pending"
    assert sent["delivery_state"] == "pending"
    assert sent["sender_type"] == "app_user"
    assert sent["from_contact"] is False
    assert ISO_MS.match(sent["sent_at"]), sent["sent_at"]
    assert sent["source"] == "facebook"
    assert "source" not in sent["metadata"] and "error" not in sent["metadata"]

    final = settled(gateway, conversation["id"], sent["id"])
    assert final["state"] == "delivered"
    assert final["delivery_state"] == "delivered"
    assert final["metadata"]["source"]["id"] == expected_mid
    assert "error" not in final["metadata"]
    assert final["content"] == content
    assert final["sent_at"] == sent["sent_at"]


def test_send_api_receives_recipient_token_type_and_our_metadata(gateway, graph):
    """POST me/messages with the page token, the PSID, RESPONSE and the message + mg:<id>."""
    channel = connect_page(gateway, graph, token="EAApagetoken123")
    conversation = conversation_with(gateway, channel, "24681357")
    content = {"text": "Pick a colour", "quick_replies": [
        {"content_type": "text", "title": "Red", "payload": "RED"}]}

    sent = send(gateway, conversation["id"], content).json()

    [call] = wait_for(lambda: graph.calls_of("send"))
    assert call.method == "POST"
    assert call.path == "me/messages"
    assert call.query["access_token"] == "EAApagetoken123"
    assert call.json == {
        "recipient": {"id": "24681357"},
        "messaging_type": "RESPONSE",
        "message": {**content, "metadata": f"mg:{sent['id']}"},
    }


def test_messaging_type_and_tag_are_forwarded(gateway, graph):
    """A MESSAGE_TAG send with its tag reaches the Send API with both."""
    _, conversation = new_conversation(gateway, graph, psid="7001")

    response = send(gateway, conversation["id"], {"text": "An agent replies"},
                    messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")

    assert response.status_code == 200, response.text
    [call] = wait_for(lambda: graph.calls_of("send"))
    assert call.json == {
        "recipient": {"id": "7001"},
        "messaging_type": "MESSAGE_TAG",
        "tag": "HUMAN_AGENT",
        "message": {"text": "An agent replies", "metadata": f"mg:{response.json()['id']}"},
    }


def test_update_messaging_type_is_forwarded(gateway, graph):
    """messaging_type UPDATE reaches the Send API as given, with no tag."""
    _, conversation = new_conversation(gateway, graph)

    assert send(gateway, conversation["id"], messaging_type="UPDATE").status_code == 200

    [call] = wait_for(lambda: graph.calls_of("send"))
    assert call.json["messaging_type"] == "UPDATE"
    assert "tag" not in call.json


@pytest.mark.parametrize("extra, field", [
    ({"messaging_type": "MESSAGE_TAG"}, "tag"),
    ({"messaging_type": "PROMOTION"}, "messaging_type"),
])
def test_bad_messaging_type_is_refused_and_nothing_is_sent(gateway, graph, extra, field):
    """MESSAGE_TAG without a tag, or an unknown messaging_type: 400 naming the field, no send."""
    _, conversation = new_conversation(gateway, graph)

    response = send(gateway, conversation["id"], **extra)

    assert response.status_code == 400, response.text
    assert field in response.json()["message"]
    assert len(messages(gateway, conversation["id"])) == 1  # only the person's "hi"
    time.sleep(0.3)
    assert graph.calls_of("send") == []


# --- 3, 4, 5: Graph errors and retries -------------------------------------------------------


@pytest.mark.parametrize("mode, code", [
    ("bad_token", 190), ("outside_window", 10), ("bad_param", 100),
])
def test_permanent_graph_error_fails_at_once_with_metas_message(gateway, graph, mode, code):
    """A refusal Meta will repeat fails the message after one call, keeping Meta's words."""
    _, conversation = new_conversation(gateway, graph)
    graph.fail("send", mode, times=3)

    sent = send(gateway, conversation["id"]).json()

    final = settled(gateway, conversation["id"], sent["id"])
    assert final["state"] == "failed"
    assert final["delivery_state"] == "failed"
    assert final["metadata"]["error"] == FAILURES[mode][1]["error"]["message"]
    assert final["metadata"]["source"]["error"]["code"] == code
    time.sleep(0.5)  # several backoff periods: a retry would have happened by now
    assert len(graph.calls_of("send")) == 1


def test_outside_window_keeps_metas_subcode(gateway, graph):
    """The 24-hour-window refusal keeps its subcode 2018278."""
    _, conversation = new_conversation(gateway, graph)
    graph.fail("send", "outside_window")

    sent = send(gateway, conversation["id"]).json()

    final = settled(gateway, conversation["id"], sent["id"])
    assert final["metadata"]["source"]["error"]["error_subcode"] == 2018278


@pytest.mark.parametrize("mode, failures", [
    ("server_error", 2), ("http_500_plain", 2), ("rate_limit", 3), ("http_429", 2),
    ("timeout", 1),
])
def test_transient_graph_error_is_retried_until_delivered(gateway, graph, mode, failures):
    """Outages, rate limits and timeouts are retried; the message is delivered in the end."""
    _, conversation = new_conversation(gateway, graph)
    graph.fail("send", mode, times=failures)

    sent = send(gateway, conversation["id"]).json()

    final = settled(gateway, conversation["id"], sent["id"])
    assert final["state"] == "delivered"
    assert "error" not in final["metadata"]
    assert final["metadata"]["source"]["id"].startswith("m_fake_")
    assert len(graph.calls_of("send")) == failures + 1
    assert len(sends_for(graph, sent["id"])) == failures + 1


def test_retries_give_up_after_send_max_attempts(gateway, graph):
    """With SEND_MAX_ATTEMPTS=4, four server errors fail the message after exactly four calls."""
    assert gateway.env["SEND_MAX_ATTEMPTS"] == "4"
    _, conversation = new_conversation(gateway, graph)
    graph.fail("send", "server_error", times=4)

    sent = send(gateway, conversation["id"]).json()

    final = settled(gateway, conversation["id"], sent["id"])
    assert final["state"] == "failed"
    assert final["metadata"]["error"] == FAILURES["server_error"][1]["error"]["message"]
    assert final["metadata"]["source"]["error"]["code"] == 2
    time.sleep(0.8)  # longer than RETRY_MAX_SECONDS: no fifth attempt comes
    assert len(graph.calls_of("send")) == 4


# --- 6: refusals -----------------------------------------------------------------------------


def test_send_to_a_disconnected_channel_is_forbidden(gateway, graph):
    """After channels.facebook.disconnect, sending in its conversation answers 403."""
    channel, conversation = new_conversation(gateway, graph)
    disconnect = gateway.post("/channels.facebook.disconnect", {"channel_id": channel["id"]})
    assert disconnect.status_code == 204, disconnect.text

    response = send(gateway, conversation["id"])

    assert response.status_code == 403, response.text
    assert "disconnected" in response.json()["message"]
    assert graph.calls_of("send") == []


def test_send_to_an_unknown_conversation_is_not_found(empty_gateway):
    """An unknown conversation id answers 404 with a message."""
    response = send(empty_gateway, "no-such-conversation")

    assert response.status_code == 404
    assert response.json() == {"message": "conversation no-such-conversation not found"}


def test_bad_send_bodies_are_refused_naming_the_field(gateway, graph):
    """Each malformed body answers 400 whose message names the field; nothing is stored or sent."""
    _, conversation = new_conversation(gateway, graph)
    cid = conversation["id"]
    cases = [
        ({"message": {"text": "x"}}, "conversation_id is required"),
        ({"conversation_id": cid}, "message is required"),
        ({"conversation_id": cid, "message": "hello"}, "message"),
        ({"conversation_id": cid, "message": ["hello"]}, "message"),
        ({"conversation_id": cid, "message": None}, "message"),
        ({"conversation_id": cid, "message": {}}, "message"),
    ]
    for body, field in cases:
        response = gateway.post("/messages.send", body)
        assert response.status_code == 400, (body, response.text)
        assert set(response.json()) == {"message"}, (body, response.text)
        assert re.search(rf"\b{field}\b", response.json()["message"]), (body, response.text)
    assert len(messages(gateway, cid)) == 1  # only the person's "hi"
    assert graph.calls_of("send") == []


def test_send_body_that_is_not_a_json_object_is_refused(empty_gateway):
    """Invalid JSON, or a JSON array, answers 400 saying so."""
    cases = [
        (b'{"conversation_id": "x", "message": {"text": ', "request body is not valid JSON"),
        (b'[{"conversation_id": "x", "message": {"text": "hi"}}]',
         "request body must be a JSON object"),
    ]
    for raw, expected in cases:
        response = empty_gateway.http.post("/messages.send", content=raw,
                                     headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (raw, response.text)
        assert response.json() == {"message": expected}


# --- 7: restarts -----------------------------------------------------------------------------


def test_killed_gateway_loses_no_send_and_sends_once(start_gateway, graph):
    """SIGKILL after a failed attempt: the next process on the same data delivers, once."""
    first = start_gateway(RETRY_BASE_SECONDS="2")
    _, conversation = new_conversation(first, graph)
    graph.fail("send", "server_error", times=1)
    sent = send(first, conversation["id"]).json()
    wait_for(lambda: graph.calls_of("send"))

    first.kill()
    assert len(graph.calls_of("send")) == 1
    second = start_gateway(database=first.env["MONGODB_DATABASE"])

    final = settled(second, conversation["id"], sent["id"], timeout=30)
    assert final["state"] == "delivered"
    assert final["metadata"]["source"]["id"].startswith("m_fake_")
    time.sleep(0.5)
    assert len(sends_for(graph, sent["id"])) == 2  # the failed one and the delivered one
    assert len(graph.calls_of("send")) == 2


def test_pending_send_survives_a_graceful_stop(start_gateway, graph):
    """A message pending (waiting for its retry) at SIGTERM is delivered by the next process."""
    first = start_gateway(RETRY_BASE_SECONDS="3", RETRY_MAX_SECONDS="3")
    _, conversation = new_conversation(first, graph)
    graph.fail("send", "server_error", times=1)
    sent = send(first, conversation["id"]).json()
    wait_for(lambda: (calls := graph.calls_of("send")) and calls[0].answered)
    time.sleep(0.2)  # let the gateway record the failed attempt

    first.stop()
    assert first.proc.returncode is not None
    assert len(graph.calls_of("send")) == 1  # it stopped with the message still pending
    second = start_gateway(database=first.env["MONGODB_DATABASE"])

    final = settled(second, conversation["id"], sent["id"], timeout=30)
    assert final["state"] == "delivered"
    assert len(sends_for(graph, sent["id"])) == 2


# --- 8: conversations.list -------------------------------------------------------------------


def test_conversations_list_uses_airys_envelope_and_shape(gateway, graph):
    """Envelope with pagination_data; each conversation carries channel, contact and counts."""
    graph.add_profile("31415", "Ada", "Lovelace", pic="https://img.example/ada.jpg")
    channel = connect_page(gateway, graph, token="EAAsecretpagetoken")
    write_in(gateway, channel["source_channel_id"], "31415", "first")
    write_in(gateway, channel["source_channel_id"], "31415", "second")

    def listed():
        body = gateway.post("/conversations.list").json()
        contact = body["data"][0]["contact"] if body["data"] else {}
        return body if contact.get("display_name") == "Ada Lovelace" else None

    body = wait_for(listed)
    assert set(body) == {"data", "pagination_data"}
    assert body["pagination_data"] == {"previous_cursor": None, "next_cursor": None, "total": 1}
    [conversation] = body["data"]
    assert isinstance(conversation["id"], str) and conversation["id"]
    assert ISO_MS.match(conversation["created_at"]), conversation["created_at"]
    assert conversation["channel"]["id"] == channel["id"]
    assert conversation["channel"]["source"] == "facebook"
    assert conversation["channel"]["source_channel_id"] == channel["source_channel_id"]
    assert conversation["channel"]["connected"] is True
    assert conversation["channel"]["metadata"]["name"] == "Test Page"
    assert conversation["channel"]["metadata"]["image_url"] == "https://img.example/page.png"
    assert conversation["contact"]["display_name"] == "Ada Lovelace"
    assert conversation["contact"]["avatar_url"] == "https://img.example/ada.jpg"
    assert conversation["metadata"]["unread_count"] == 2
    assert conversation["last_message"]["content"]["message"]["text"] == "second"
    assert conversation["last_message"]["from_contact"] is True
    text = gateway.post("/conversations.list").text
    assert "page_token" not in text
    assert "EAAsecretpagetoken" not in text


def test_conversations_are_listed_newest_activity_first(gateway, graph):
    """The newest conversation comes first; a new message in an older one moves it to the top."""
    channel = connect_page(gateway, graph)
    page = channel["source_channel_id"]
    for psid in ("1", "2", "3"):
        write_in(gateway, page, psid)

    def order():
        return [c["contact"]["id"] for c in gateway.post("/conversations.list").json()["data"]]

    assert order() == ["3", "2", "1"]
    write_in(gateway, page, "1", "back again")
    assert order() == ["1", "3", "2"]
    newest = gateway.post("/conversations.list").json()["data"][0]
    assert newest["last_message"]["content"]["message"]["text"] == "back again"


def test_sending_moves_a_conversation_to_the_top(gateway, graph):
    """Our own message is activity too: the conversation it went to is listed first."""
    channel = connect_page(gateway, graph)
    older = conversation_with(gateway, channel, "11")
    conversation_with(gateway, channel, "12")

    sent = send(gateway, older["id"], {"text": "following up"}).json()

    first = gateway.post("/conversations.list").json()["data"][0]
    assert first["id"] == older["id"]
    assert first["last_message"]["id"] == sent["id"]


def test_conversations_page_size_defaults_to_20(gateway, graph):
    """Without page_size a page holds 20 conversations and points at the rest."""
    channel = connect_page(gateway, graph)
    page = channel["source_channel_id"]
    events = [payloads.text(page, f"9{n:03d}", "hi") for n in range(21)]
    assert gateway.webhook(payloads.envelope(page, *events)).status_code == 200

    body = gateway.post("/conversations.list").json()

    assert len(body["data"]) == 20
    assert body["pagination_data"]["total"] == 21
    assert body["pagination_data"]["next_cursor"] is not None
    assert [c["contact"]["id"] for c in body["data"]] == [f"9{n:03d}" for n in range(20, 0, -1)]


def test_conversation_pages_visit_every_conversation_once(gateway, graph):
    """7 conversations, page_size 3: pages of 3, 3, 1; total 7 each time; next_cursor ends null."""
    channel = connect_page(gateway, graph)
    page = channel["source_channel_id"]
    psids = [f"70{n}" for n in range(7)]
    for psid in psids:
        write_in(gateway, page, psid)

    pages = walk(gateway, "/conversations.list", {"page_size": 3})

    assert [len(p["data"]) for p in pages] == [3, 3, 1]
    assert [p["pagination_data"]["total"] for p in pages] == [7, 7, 7]
    assert pages[-1]["pagination_data"]["next_cursor"] is None
    seen = [c["contact"]["id"] for p in pages for c in p["data"]]
    assert seen == list(reversed(psids))
    assert len({c["id"] for p in pages for c in p["data"]}) == 7


def test_conversations_are_filtered_by_channel(gateway, graph):
    """channel_id lists only that channel's conversations, with their own total."""
    a = connect_page(gateway, graph)
    b = connect_page(gateway, graph)
    for psid in ("a1", "a2"):
        write_in(gateway, a["source_channel_id"], psid)
    for psid in ("b1", "b2", "b3"):
        write_in(gateway, b["source_channel_id"], psid)

    only_a = gateway.post("/conversations.list", {"channel_id": a["id"]}).json()
    only_b = gateway.post("/conversations.list", {"channel_id": b["id"]}).json()
    both = gateway.post("/conversations.list").json()

    assert [c["contact"]["id"] for c in only_a["data"]] == ["a2", "a1"]
    assert {c["channel"]["id"] for c in only_a["data"]} == {a["id"]}
    assert only_a["pagination_data"]["total"] == 2
    assert [c["contact"]["id"] for c in only_b["data"]] == ["b3", "b2", "b1"]
    assert only_b["pagination_data"]["total"] == 3
    assert both["pagination_data"]["total"] == 5


def test_bad_conversation_list_parameters_are_refused(gateway, graph):
    """Out-of-range or non-numeric page_size, and a cursor we never handed out: 400."""
    channel = connect_page(gateway, graph)
    write_in(gateway, channel["source_channel_id"], "1")
    cases = [
        ({"page_size": 0}, "page_size"),
        ({"page_size": 101}, "page_size"),
        ({"page_size": "abc"}, "page_size"),
        ({"cursor": "this-is-not-a-cursor"}, "cursor"),
        ({"cursor": "!!!"}, "cursor"),
    ]
    for body, field in cases:
        response = gateway.post("/conversations.list", body)
        assert response.status_code == 400, (body, response.text)
        assert field in response.json()["message"], (body, response.text)


# --- 9: messages.list ------------------------------------------------------------------------


def test_message_pages_are_newest_first_with_id_cursors(gateway, graph):
    """page_size 2 over 5 messages: 2, 2, 1; the cursor is the last message id of the page."""
    channel = connect_page(gateway, graph)
    for n in range(5):
        write_in(gateway, channel["source_channel_id"], "4242", f"m{n}")
    conversation = gateway.post("/conversations.list").json()["data"][0]

    pages = walk(gateway, "/messages.list",
                 {"conversation_id": conversation["id"], "page_size": 2})

    assert [len(p["data"]) for p in pages] == [2, 2, 1]
    assert [p["pagination_data"]["total"] for p in pages] == [5, 5, 5]
    for page in pages[:-1]:
        assert page["pagination_data"]["next_cursor"] == page["data"][-1]["id"]
    texts = [m["content"]["message"]["text"] for p in pages for m in p["data"]]
    assert texts == ["m4", "m3", "m2", "m1", "m0"]
    assert len({m["id"] for p in pages for m in p["data"]}) == 5
    assert all(m["from_contact"] is True for p in pages for m in p["data"])


def test_messages_list_includes_sent_messages_newest_first(gateway, graph):
    """A message we send is listed before the person's earlier one."""
    _, conversation = new_conversation(gateway, graph)

    sent = send(gateway, conversation["id"], {"text": "reply"}).json()

    listed = messages(gateway, conversation["id"])
    assert [m["id"] for m in listed][0] == sent["id"]
    assert [m["from_contact"] for m in listed] == [False, True]


def test_messages_list_of_unknown_conversation_is_not_found(empty_gateway):
    """An unknown conversation answers 404 with a message."""
    response = empty_gateway.post("/messages.list", {"conversation_id": "nope"})

    assert response.status_code == 404
    assert response.json() == {"message": "conversation nope not found"}


def test_messages_list_without_conversation_id_is_refused(empty_gateway):
    """No conversation_id: 400 naming it."""
    response = empty_gateway.post("/messages.list", {"page_size": 5})

    assert response.status_code == 400
    assert response.json() == {"message": "conversation_id is required"}


# --- 10: info and read -----------------------------------------------------------------------


def test_conversations_info_of_unknown_conversation_is_not_found(empty_gateway):
    response = empty_gateway.post("/conversations.info", {"conversation_id": "nope"})

    assert response.status_code == 404
    assert response.json() == {"message": "conversation nope not found"}


@pytest.mark.parametrize("route", ["/conversations.read", "/conversations.mark-read"])
def test_reading_a_conversation_clears_its_unread_count(gateway, graph, route):
    """Three messages from the person count 3 unread; read answers 204 and the count is 0."""
    channel = connect_page(gateway, graph)
    for text in ("one", "two", "three"):
        write_in(gateway, channel["source_channel_id"], "777", text)
    conversation = gateway.post("/conversations.list").json()["data"][0]
    assert info(gateway, conversation["id"])["metadata"]["unread_count"] == 3

    response = gateway.post(route, {"conversation_id": conversation["id"]})

    assert response.status_code == 204
    assert response.content == b""
    assert info(gateway, conversation["id"])["metadata"]["unread_count"] == 0
    listed = gateway.post("/conversations.list").json()["data"][0]
    assert listed["metadata"]["unread_count"] == 0


def test_reading_an_unknown_conversation_is_not_found(empty_gateway):
    for route in ("/conversations.read", "/conversations.mark-read"):
        response = empty_gateway.post(route, {"conversation_id": "nope"})
        assert response.status_code == 404, route
        assert response.json() == {"message": "conversation nope not found"}


# --- 11: SYSTEM_TOKEN ------------------------------------------------------------------------


API_ROUTES = ["/conversations.list", "/messages.list", "/messages.send", "/channels.list",
              "/conversations.info"]


@pytest.fixture
def guarded(start_gateway):
    """A gateway started with SYSTEM_TOKEN=s3cret."""
    return start_gateway(SYSTEM_TOKEN="s3cret")


def test_api_routes_without_token_are_unauthorized(guarded_empty):
    """No Authorization header: 401 with a message, on every API route."""
    for route in API_ROUTES:
        response = guarded_empty.post(route, {})
        assert response.status_code == 401, route
        assert response.json()["message"], route


def test_api_route_with_wrong_token_is_forbidden(guarded_empty):
    """A token that is not SYSTEM_TOKEN, bearer or raw: 403 with a message."""
    for header in ("Bearer wrong", "wrong", "Bearer s3cret-not", "Bearer s3cre"):
        response = guarded_empty.post("/conversations.list", {},
                                      headers={"Authorization": header})
        assert response.status_code == 403, header
        assert response.json()["message"], header


def test_api_route_with_the_token_is_served(guarded_empty):
    """Both `Bearer <token>` and the raw token (as Airy allows) are accepted."""
    for header in ("Bearer s3cret", "s3cret"):
        response = guarded_empty.post("/conversations.list", {},
                                      headers={"Authorization": header})
        assert response.status_code == 200, (header, response.text)
        assert response.json() == {"data": [], "pagination_data": {
            "previous_cursor": None, "next_cursor": None, "total": 0}}


def test_health_and_signed_webhook_need_no_token(guarded, graph):
    """GET /health and the signed POST /facebook are public; the webhook's effect is visible."""
    assert guarded.http.get("/health").status_code == 200
    graph.add_page("606060", "EAAguarded")
    connected = guarded.post("/channels.facebook.connect",
                             {"page_id": "606060", "page_token": "EAAguarded"}, headers=AUTH)
    assert connected.status_code == 200, connected.text

    response = guarded.webhook(payloads.envelope("606060", payloads.text("606060", "99", "hi")))

    assert response.status_code == 200, response.text
    listed = guarded.post("/conversations.list", {}, headers=AUTH).json()
    assert [c["contact"]["id"] for c in listed["data"]] == ["99"]


def test_send_with_the_token_goes_through(guarded, graph):
    """With the token, messages.send works end to end on a guarded gateway."""
    graph.add_page("707070", "EAAguarded2")
    guarded.post("/channels.facebook.connect",
                 {"page_id": "707070", "page_token": "EAAguarded2"}, headers=AUTH)
    write_in(guarded, "707070", "55")
    conversation = guarded.post("/conversations.list", {}, headers=AUTH).json()["data"][0]

    response = guarded.post("/messages.send", {"conversation_id": conversation["id"],
                                               "message": {"text": "ok"}}, headers=AUTH)

    assert response.status_code == 200, response.text
    [call] = wait_for(lambda: graph.calls_of("send"))
    assert call.query["access_token"] == "EAAguarded2"
