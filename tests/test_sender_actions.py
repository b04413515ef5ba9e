"""Sender actions against a real gateway: REST `messages.sender-action` and GraphQL
`sendSenderAction` reach the Graph API stand-in with the Send API's body, typing on and off and
mark_seen; a read sends mark_seen when MARK_SEEN_ON_READ is on (and only then); a burst is paced
at the page's rate; a disconnected channel is refused with 403; Meta's errors are answered."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import connect_page, wait_for
from tests.test_graphql import gql, inbound

ACTION = """mutation ($c: ID!, $a: SenderAction!) {
  sendSenderAction(conversationId: $c, action: $a) }"""


def conversation_id(gw) -> str:
    return gw.post("/conversations.list", {"page_size": 1}).json()["data"][0]["id"]


def bodies(graph) -> list[dict]:
    return [call.json for call in graph.calls_of("sender_action")]


def test_typing_and_seen_reach_the_send_api_from_rest_and_graphql(gateway, graph):
    inbound(gateway, graph, psid="6101")
    conversation = conversation_id(gateway)
    response = gateway.post("/messages.sender-action",
                            {"conversation_id": conversation, "action": "typing_on"})
    assert response.status_code == 204, response.text
    answer = gql(gateway, ACTION, {"c": conversation, "a": "TYPING_OFF"})
    assert answer == {"data": {"sendSenderAction": True}}
    assert gateway.post("/messages.sender-action", {"conversation_id": conversation,
                                                    "action": "MARK_SEEN"}).status_code == 204
    assert bodies(graph) == [{"recipient": {"id": "6101"}, "sender_action": action}
                             for action in ("typing_on", "typing_off", "mark_seen")]
    assert graph.calls_of("send") == []  # not a message: nothing sent, nothing stored
    messages = gateway.post("/messages.list", {"conversation_id": conversation}).json()["data"]
    assert len(messages) == 1

    # Refused at the edge, naming the field, before Meta is called.
    bad = gateway.post("/messages.sender-action", {"conversation_id": conversation,
                                                   "action": "typing"})
    assert bad.status_code == 400 and "action" in bad.json()["message"], bad.text
    [error] = gql(gateway, ACTION, {"c": conversation, "a": "TYPING"})["errors"]
    assert "SenderAction" in error["message"]
    assert gateway.post("/messages.sender-action", {"conversation_id": "nope",
                                                    "action": "typing_on"}).status_code == 404
    assert len(bodies(graph)) == 3


def test_metas_errors_and_a_disconnected_channel_are_answered_clearly(gateway, graph):
    channel, _ = inbound(gateway, graph, psid="6102")
    conversation = conversation_id(gateway)
    graph.fail("sender_action", "unavailable_user")
    refused = gateway.post("/messages.sender-action",
                           {"conversation_id": conversation, "action": "typing_on"})
    assert refused.status_code == 400, refused.text
    assert "isn't available" in refused.json()["message"]
    graph.fail("sender_action", "server_error", times=5)
    failed = gql(gateway, ACTION, {"c": conversation, "a": "TYPING_ON"})
    assert failed["errors"][0]["extensions"]["code"] != "INTERNAL_SERVER_ERROR", failed
    assert failed["data"] is None

    graph.failures.clear()
    assert gateway.post("/channels.facebook.disconnect",
                        {"channel_id": channel["id"]}).status_code == 204
    before = len(bodies(graph))
    forbidden = gateway.post("/messages.sender-action",
                             {"conversation_id": conversation, "action": "typing_on"})
    assert forbidden.status_code == 403
    assert forbidden.json() == {"message": "the conversation's channel is disconnected"}
    [error] = gql(gateway, ACTION, {"c": conversation, "a": "MARK_SEEN"})["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN", error
    assert len(bodies(graph)) == before  # Meta never asked


def test_a_read_sends_mark_seen_only_with_the_setting(start_gateway, graph):
    on = start_gateway(MARK_SEEN_ON_READ="1")
    off = start_gateway()
    inbound(on, graph, psid="6103")
    inbound(off, graph, psid="6104")
    assert off.post("/conversations.read",
                    {"conversation_id": conversation_id(off)}).status_code == 204
    gql(off, "mutation ($id: ID!) { markConversationRead(id: $id) { unreadCount } }",
        {"id": conversation_id(off)})
    assert on.post("/conversations.read",
                   {"conversation_id": conversation_id(on)}).status_code == 204
    wait_for(lambda: bodies(graph))
    read = gql(on, "mutation ($id: ID!) { markConversationRead(id: $id) { unreadCount } }",
               {"id": conversation_id(on)})
    assert read == {"data": {"markConversationRead": {"unreadCount": 0}}}
    wait_for(lambda: len(bodies(graph)) == 2)
    time.sleep(0.5)  # what the other gateway would have sent by now
    assert bodies(graph) == [{"recipient": {"id": "6103"}, "sender_action": "mark_seen"}] * 2

    # Meta failing never fails the read.
    graph.fail("sender_action", "bad_param", times=5)
    assert on.post("/conversations.read",
                   {"conversation_id": conversation_id(on)}).status_code == 204
    wait_for(lambda: len(bodies(graph)) == 3)
    assert "mark_seen was not sent" in wait_for(
        lambda: next((line for line in on.log().splitlines() if "mark_seen" in line), None))


def test_a_burst_is_paced_at_the_pages_rate(start_gateway, graph):
    gw = start_gateway(SEND_RATE_PER_PAGE="5")
    inbound(gw, graph, psid="6105")
    conversation = conversation_id(gw)
    graph.send_rate_limit = 6  # Meta answers 613 past this many in any second: pacing avoids it

    def one(_: int) -> int:
        with httpx.Client(base_url=gw.url, timeout=30) as client:
            return client.post("/messages.sender-action", json={
                "conversation_id": conversation, "action": "typing_on"}).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(one, range(8)))
    assert statuses == [204] * 8
    times = sorted(call.at for call in graph.calls_of("sender_action"))
    assert len(times) == 8
    # Eight calls at five a second: seven gaps of 0.2 s (a little less for the clocks).
    assert times[-1] - times[0] >= 1.2, times
    assert all(call.status == 200 for call in graph.calls_of("sender_action"))


def test_sends_and_sender_actions_share_the_pace(start_gateway, graph):
    gw = start_gateway(SEND_RATE_PER_PAGE="4")
    channel = connect_page(gw, graph)
    inbound(gw, graph, psid="6106", channel=channel)
    conversation = conversation_id(gw)
    started = time.monotonic()

    def one(i: int) -> int:
        with httpx.Client(base_url=gw.url, timeout=30) as client:
            if i % 2:
                return client.post("/messages.send", json={
                    "conversation_id": conversation, "message": {"text": f"m{i}"}}).status_code
            return client.post("/messages.sender-action", json={
                "conversation_id": conversation, "action": "typing_on"}).status_code

    with ThreadPoolExecutor(6) as pool:
        assert sorted(pool.map(one, range(6))) == [200] * 3 + [204] * 3
    wait_for(lambda: len(graph.calls_of("send")) == 3)
    calls = sorted(graph.calls_of("send") + graph.calls_of("sender_action"), key=lambda c: c.at)
    assert len(calls) == 6
    # One pace for both: six calls at four a second take at least five gaps of 0.25 s.
    assert calls[-1].at - calls[0].at >= 1.1, [c.at - calls[0].at for c in calls]
    assert time.monotonic() - started >= 1.1
