"""The event bus: slow subscribers are cut off alone, lost change streams resume."""

from __future__ import annotations

import asyncio

import pytest

from gateway.bus import EventBus, SubscriberTooSlow
from gateway.store.mongo import Change
from tests import payloads
from tests.conftest import connect_page, wait_for
from tests.ws import TRANSPORT_WS, GraphQLSocket


def change(n: int) -> Change:
    return Change("messages", "insert", n, resume_token={"_data": str(n)})


def test_a_slow_subscriber_is_closed_with_a_reason_and_others_go_on():
    async def scenario():
        bus = EventBus(queue_size=3)
        slow = bus.subscribe(lambda c: True)
        fast = bus.subscribe(lambda c: True)
        fast_seen = []

        async def read_fast():
            async for c in fast:
                fast_seen.append(c.value)
                if len(fast_seen) == 10:
                    return

        reader = asyncio.create_task(read_fast())
        for n in range(10):
            bus.publish(change(n))
            await asyncio.sleep(0)
        await asyncio.wait_for(reader, 5)
        slow_seen = []
        with pytest.raises(SubscriberTooSlow, match="more than 3 events"):
            async for c in slow:
                slow_seen.append(c.value)
        return fast_seen, slow_seen, bus.subscriber_count

    fast_seen, slow_seen, remaining = asyncio.run(scenario())
    assert fast_seen == list(range(10))
    assert slow_seen == []  # what it had queued was let go at the cut, not kept for it
    assert remaining == 0  # both ended: neither is still registered


def test_filters_decide_what_a_subscriber_gets():
    async def scenario():
        bus = EventBus(queue_size=10)
        evens = bus.subscribe(lambda c: c.value % 2 == 0)
        for n in range(6):
            bus.publish(change(n))
        got = []
        async for c in evens:
            got.append(c.value)
            if len(got) == 3:
                break
        return got

    assert asyncio.run(scenario()) == [0, 2, 4]


def test_a_lost_change_stream_resumes_without_missing_events(start_gateway, graph, own_nx):
    gw = start_gateway(MONGODB_URL=own_nx.url)
    channel = connect_page(gw, graph)
    page = channel["source_channel_id"]
    with GraphQLSocket(gw.url, TRANSPORT_WS) as ws:
        ws.init()
        ws.subscribe("1", "subscription { messageCreated { content: rawContent } }")
        wait_for(lambda: gw.http.get("/health").json()["subscribers"] == 1)
        gw.webhook(payloads.envelope(page, payloads.text(page, "3101", "before")))
        assert ws.next("1")["data"]["messageCreated"]["content"]["message"]["text"] == "before"

        own_nx.kill()  # the store goes away under the open change streams
        own_nx.restart()
        after = payloads.envelope(page, payloads.text(page, "3101", "after"))
        wait_for(lambda: gw.webhook(after).status_code == 200, timeout=30, interval=0.5)
        got = ws.next("1", timeout=30)
        assert got["data"]["messageCreated"]["content"]["message"]["text"] == "after"
