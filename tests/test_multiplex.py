"""Multiplexed subscriptions, as clients see them, with SUBSCRIPTION_MULTIPLEX on and off.

Whether one execution serves many subscribers or each runs its own, every client must get the
same answers: its own events, in order, with its own operation id; and a client that leaves or
falls behind changes nothing for the others.
"""

from __future__ import annotations

import secrets
import socket

import pytest

from gateway.config import ConfigError, Settings
from tests import payloads
from tests.conftest import connect_page, wait_for
from tests.ws import LEGACY_WS, TRANSPORT_WS, GraphQLSocket

CREATED = """subscription ($conversationId: ID, $channelId: ID) {
  messageCreated(conversationId: $conversationId, channelId: $channelId) {
    id conversationId channelId content: rawContent state senderType fromContact sentAt metadata
  }
}"""
TEXTS_ONLY = "subscription { messageCreated { content: rawContent } }"


@pytest.fixture(params=["1", "0"], ids=["multiplexed", "per-subscriber"])
def multiplex(request) -> str:
    return request.param


def live(gw) -> int:
    return gw.http.get("/health").json()["subscribers"]


def text_of(result: dict) -> str:
    return result["data"]["messageCreated"]["content"]["message"]["text"]


def say(gw, page: str, psid: str, *texts: str) -> None:
    events = [payloads.text(page, psid, text) for text in texts]
    assert gw.webhook(payloads.envelope(page, *events)).status_code == 200


def test_subscribers_of_one_document_all_get_the_same_payloads(start_gateway, graph, multiplex):
    gw = start_gateway(SUBSCRIPTION_MULTIPLEX=multiplex)
    channel = connect_page(gw, graph)
    page = channel["source_channel_id"]
    variables = {"channelId": channel["id"]}
    with GraphQLSocket(gw.url, TRANSPORT_WS) as a, GraphQLSocket(gw.url, TRANSPORT_WS) as b, \
            GraphQLSocket(gw.url, LEGACY_WS) as legacy:
        for ws in (a, b, legacy):
            assert ws.init()["type"] == "connection_ack"
        a.subscribe("first", CREATED, variables)
        a.subscribe("second", CREATED, variables)  # twice on one socket, two ids
        b.subscribe("b", CREATED, variables)
        legacy.subscribe("old", CREATED, variables)
        wait_for(lambda: live(gw) == 4)
        say(gw, page, "6101", "one", "two")

        got: dict[str, list[dict]] = {}
        for _ in range(4):
            message = a.receive()
            assert message["type"] == "next"
            got.setdefault(message["id"], []).append(message["payload"])
        got["b"] = [b.next("b"), b.next("b")]
        got["old"] = [legacy.next("old"), legacy.next("old")]

    assert set(got) == {"first", "second", "b", "old"}
    assert all(results == got["b"] for results in got.values())  # identical, field for field
    assert [text_of(result) for result in got["b"]] == ["one", "two"]
    message = got["b"][0]["data"]["messageCreated"]
    assert message["channelId"] == channel["id"] and message["senderType"] == "SOURCE_CONTACT"
    assert "errors" not in got["b"][0]


def test_different_variables_and_documents_stay_separate(start_gateway, graph, multiplex):
    gw = start_gateway(SUBSCRIPTION_MULTIPLEX=multiplex)
    channel = connect_page(gw, graph)
    page = channel["source_channel_id"]
    other = connect_page(gw, graph)
    say(gw, page, "6201", "opening a")
    say(gw, page, "6202", "opening b")
    conversations = {c["contact"]["id"]: c["id"]
                     for c in gw.post("/conversations.list").json()["data"]}
    with GraphQLSocket(gw.url, TRANSPORT_WS) as ws:
        ws.init()
        ws.subscribe("a", CREATED, {"conversationId": conversations["6201"]})
        ws.subscribe("b", CREATED, {"conversationId": conversations["6202"]})
        ws.subscribe("other-page", CREATED, {"channelId": other["id"]})
        ws.subscribe("all", CREATED)
        ws.subscribe("texts", TEXTS_ONLY)
        wait_for(lambda: live(gw) == 5)
        say(gw, page, "6201", "to a")
        say(gw, page, "6202", "to b")

        got: dict[str, list[dict]] = {}
        while sum(len(results) for results in got.values()) < 6:
            message = ws.receive()
            got.setdefault(message["id"], []).append(message["payload"]["data"])
        assert ws.nothing_within(0.5)

    assert [text_of({"data": d}) for d in got["a"]] == ["to a"]
    assert [text_of({"data": d}) for d in got["b"]] == ["to b"]
    assert [text_of({"data": d}) for d in got["all"]] == ["to a", "to b"]
    assert got["a"][0]["messageCreated"]["conversationId"] == conversations["6201"]
    assert [d["messageCreated"] for d in got["texts"]] == [  # its own selection, nothing more
        {"content": d["messageCreated"]["content"]} for d in got["all"]]
    assert "other-page" not in got


def test_a_subscriber_leaving_changes_nothing_for_the_others(start_gateway, graph, multiplex):
    gw = start_gateway(SUBSCRIPTION_MULTIPLEX=multiplex)
    channel = connect_page(gw, graph)
    page = channel["source_channel_id"]
    with GraphQLSocket(gw.url, TRANSPORT_WS) as stays, \
            GraphQLSocket(gw.url, LEGACY_WS) as legacy:
        stays.init()
        legacy.init()
        stays.subscribe("1", TEXTS_ONLY)
        stays.subscribe("done", TEXTS_ONLY)
        legacy.subscribe("old", TEXTS_ONLY)
        with GraphQLSocket(gw.url, TRANSPORT_WS) as goes:
            goes.init()
            goes.subscribe("1", TEXTS_ONLY)
            wait_for(lambda: live(gw) == 4)
            say(gw, page, "6301", "all four")
            assert text_of(goes.next("1")) == "all four"
        # one socket closed, one operation completed, one legacy operation stopped
        stays.send({"type": "complete", "id": "done"})
        legacy.send({"type": "stop", "id": "old"})
        seen = [stays.receive(), stays.receive()]
        assert sorted(m["id"] for m in seen) == ["1", "done"]  # "all four" twice; no complete
        assert all(text_of(m["payload"]) == "all four" for m in seen)
        assert text_of(legacy.next("old")) == "all four"
        assert legacy.receive() == {"type": "complete", "id": "old"}
        wait_for(lambda: live(gw) == 1)

        say(gw, page, "6301", "one left")
        assert text_of(stays.next("1")) == "one left"
        assert stays.nothing_within(0.3) and legacy.nothing_within(0.3)

        stays.subscribe("again", TEXTS_ONLY)  # the same document once more: a fresh start
        wait_for(lambda: live(gw) == 2)
        say(gw, page, "6301", "welcome back")
        seen = [stays.receive(), stays.receive()]
        assert sorted(m["id"] for m in seen) == ["1", "again"]
        assert all(text_of(m["payload"]) == "welcome back" for m in seen)


def test_a_slow_subscriber_is_cut_off_alone(start_gateway, graph, multiplex):
    gw = start_gateway(SUBSCRIPTION_MULTIPLEX=multiplex, SUBSCRIPTION_QUEUE_SIZE="10",
                       MAX_BODY_BYTES=str(4 * 2**20))
    channel = connect_page(gw, graph)
    page = channel["source_channel_id"]
    # A client that stops reading: a small receive buffer, no compression, and a client library
    # that buffers one message at most. Once the socket buffers (a few megabytes on loopback)
    # are full, the gateway's sends to it wait, and its queue fills.
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", gw.port))
    with GraphQLSocket(gw.url, TRANSPORT_WS) as fast, \
            GraphQLSocket(gw.url, TRANSPORT_WS, sock=raw, max_queue=1,
                          compression=None) as slow:
        fast.init()
        slow.init()
        fast.subscribe("f", TEXTS_ONLY)
        slow.subscribe("s", TEXTS_ONLY)
        wait_for(lambda: live(gw) == 2)
        sent: list[str] = []
        for batch in range(20):  # 16 MB of big messages, random so as not to compress
            texts = [f"{batch}.{n} {secrets.token_urlsafe(75_000)}" for n in range(8)]
            say(gw, page, "6401", *texts)
            sent += texts
            assert [text_of(fast.next("f")) for _ in texts] == texts  # never held back

        received: list[str] = []
        while True:
            message = slow.receive()
            if message["type"] != "next" or "errors" in message["payload"]:
                break
            received.append(text_of(message["payload"]))
        assert message["type"] == "next"
        error = message["payload"]["errors"][0]
        assert error["extensions"]["code"] == "SUBSCRIBER_TOO_SLOW"
        assert "more than 10 events" in error["message"]
        assert slow.receive() == {"type": "complete", "id": "s"}
        assert received == sent[:len(received)] and len(received) < len(sent)

        wait_for(lambda: live(gw) == 1)
        say(gw, page, "6401", "still here")
        assert text_of(fast.next("f")) == "still here"


def test_the_setting_switches_multiplexing_and_refuses_nonsense():
    assert Settings.from_env({}).subscription_multiplex is True
    assert Settings.from_env({"SUBSCRIPTION_MULTIPLEX": "0"}).subscription_multiplex is False
    with pytest.raises(ConfigError, match="SUBSCRIPTION_MULTIPLEX"):
        Settings.from_env({"SUBSCRIPTION_MULTIPLEX": "maybe"})
