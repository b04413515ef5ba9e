"""Sends to many conversations at once: each conversation's messages in queue order, each sent
once (across a kill too), and each page held under its Send API rate."""

from __future__ import annotations

from collections import defaultdict

import pytest

from gateway.ratelimit import PageLimiter, is_media
from tests import payloads
from tests.conftest import APP_ID, APP_SECRET, connect_page, wait_for
from tests.test_sending import send

SEND_TIME = 0.05  # the fake's fixed Send API latency: two calls closer than this overlapped


def conversations(gw, graph, count: int) -> dict[str, str]:
    """`count` people writing to one page; their conversation ids by person."""
    channel = connect_page(gw, graph)
    page = channel["source_channel_id"]
    people = [str(7000 + n) for n in range(count)]
    for person in people:
        gw.webhook(payloads.envelope(page, payloads.text(page, person, "hello")))
    listed = wait_for(lambda: len(found := gw.post("/conversations.list", {
        "channel_id": channel["id"], "page_size": 100}).json()["data"]) == count and found)
    return {c["contact"]["id"]: c["id"] for c in listed}


def burst(gw, ids: dict[str, str], per_conversation: int) -> dict[str, list[str]]:
    """Messages sent round-robin over the conversations; their ids by person, in order."""
    sent: dict[str, list[str]] = defaultdict(list)
    for n in range(per_conversation):
        for person, conversation in ids.items():
            answer = send(gw, conversation, {"text": f"{person} {n}"})
            assert answer.status_code == 200, answer.text
            sent[person].append(answer.json()["id"])
    return sent


def delivered(gw, ids: dict[str, str], sent: dict[str, list[str]], timeout: float = 60) -> None:
    def states():
        result = {}
        for person, conversation in ids.items():
            listed = gw.post("/messages.list", {"conversation_id": conversation,
                                                "page_size": 100}).json()["data"]
            result.update({m["id"]: m["state"] for m in listed if m["id"] in sent[person]})
        return result

    total = sum(len(s) for s in sent.values())
    final = wait_for(lambda: len(s := states()) == total and "pending" not in s.values() and s,
                     timeout=timeout)
    assert set(final.values()) == {"delivered"}


def check_each_sent_once_in_order(graph, sent: dict[str, list[str]]) -> list:
    calls = [c for c in graph.calls_of("send") if c.status == 200]
    metadata = [c.json["message"]["metadata"] for c in calls]
    assert len(metadata) == len(set(metadata)), "a message was sent twice"
    for person, ids in sent.items():
        mine = [c.json["message"]["metadata"] for c in calls if c.json["recipient"]["id"] == person]
        assert mine == [f"mg:{i}" for i in ids], f"{person}'s messages out of order"
    return calls


def test_many_conversations_are_sent_at_once_each_in_queue_order(start_gateway, graph):
    gw = start_gateway(SEND_CONCURRENCY="8")
    ids = conversations(gw, graph, 10)
    graph.delays["send"], graph.jitter["send"] = SEND_TIME, 0.05
    sent = burst(gw, ids, 8)
    delivered(gw, ids, sent)

    calls = check_each_sent_once_in_order(graph, sent)
    # Calls to different people overlapped; to one person, each began after the last ended.
    starts = sorted(c.at for c in calls)
    assert any(b - a < SEND_TIME / 2 for a, b in zip(starts, starts[1:], strict=False))
    by_person = defaultdict(list)
    for call in calls:
        by_person[call.json["recipient"]["id"]].append(call.at)
    for times in by_person.values():
        assert all(b - a >= SEND_TIME * 0.9 for a, b in zip(times, times[1:], strict=False))


def test_a_gateway_killed_mid_burst_loses_nothing_and_sends_nothing_twice(start_gateway, graph):
    first = start_gateway(SEND_CONCURRENCY="8")
    ids = conversations(first, graph, 8)
    graph.echo_to, graph.echo_secret = first.url + "/facebook", APP_SECRET
    graph.echo_app_id = APP_ID
    graph.delays["send"], graph.jitter["send"] = 0.2, 0.1
    sent = burst(first, ids, 5)
    wait_for(lambda: len(graph.calls_of("send")) >= 12)
    first.kill()  # several sends in flight: accepted by Meta, unrecorded until their echoes
    second = start_gateway(database=first.env["MONGODB_DATABASE"], SEND_CONCURRENCY="8")
    graph.echo_to = second.url + "/facebook"

    delivered(second, ids, sent)
    check_each_sent_once_in_order(graph, sent)


def test_the_limiter_holds_a_page_under_its_rate_and_slows_after_613(start_gateway, graph):
    gw = start_gateway(SEND_CONCURRENCY="16", SEND_RATE_PER_PAGE="20")
    ids = conversations(gw, graph, 8)
    graph.send_rate_limit = 25  # the fake answers 613 beyond this many a second
    sent = burst(gw, ids, 8)
    delivered(gw, ids, sent)
    calls = graph.calls_of("send")
    assert all(c.status == 200 for c in calls), "a burst earned a rate error"
    starts = sorted(c.at for c in calls)
    assert max(sum(1 for t in starts[i:] if t < s + 1) for i, s in enumerate(starts)) <= 25

    graph.calls.clear()
    graph.fail("send", "rate_limit")
    more = burst(gw, ids, 2)
    delivered(gw, ids, more)
    calls = graph.calls_of("send")
    assert calls[0].status == 400 and calls[0].answer["error"]["code"] == 613
    # After the 613 the page paused, then went on at half its pace or less.
    assert calls[1].at - calls[0].at >= 0.9
    gaps = [b.at - a.at for a, b in zip(calls[1:], calls[2:8], strict=False)]
    assert sum(gaps) / len(gaps) >= 1 / 20 * 1.3
    check_each_sent_once_in_order(graph, more)


# --- the limiter alone (a clock of its own) -----------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_calls_are_spaced_by_page_and_class():
    clock = Clock()
    limiter = PageLimiter(rate=10, media_rate=2, clock=clock)
    assert [limiter.reserve("p", False) for _ in range(3)] == pytest.approx([0, 0.1, 0.2])
    assert limiter.reserve("other", False) == 0  # each page on its own
    assert [limiter.reserve("p", True) for _ in range(2)] == pytest.approx([0, 0.5])  # each class
    assert is_media({"attachment": {"type": "video", "payload": {}}})
    assert not is_media({"attachment": {"type": "image", "payload": {}}})
    assert not is_media({"text": "hi"})


def test_a_rate_error_halves_the_pace_which_then_recovers():
    clock = Clock()
    limiter = PageLimiter(rate=100, media_rate=10, recover_seconds=2, clock=clock)
    limiter.slow_down("p", False)
    assert limiter.rate("p", False) == pytest.approx(50)
    assert limiter.reserve("p", False) == pytest.approx(1.0)  # paused first
    limiter.slow_down("p", False)
    assert limiter.rate("p", False) == 25
    clock.now += 1 + 2  # the pause, then a doubling
    assert limiter.rate("p", False) == pytest.approx(50)
    clock.now += 10
    assert limiter.rate("p", False) == 100
    for _ in range(20):
        limiter.slow_down("p", False)
    assert limiter.rate("p", False) > 0
    assert limiter.rate("p", True) == 10  # audio and video are paced apart


def test_a_quiet_page_gets_no_credit():
    clock = Clock()
    limiter = PageLimiter(rate=10, media_rate=1, clock=clock)
    limiter.reserve("p", False)
    clock.now += 60  # an idle minute earns no burst
    assert [limiter.reserve("p", False) for _ in range(2)] == pytest.approx([0, 0.1])
