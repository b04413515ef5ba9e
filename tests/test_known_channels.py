"""Channels read lately are kept in memory (KnownChannels): nearly every request reads one. Kept
only while every change is seen, and forgotten on each: never a stale channel after a change."""

from __future__ import annotations

from dataclasses import replace

from gateway.domain import Channel
from gateway.store.mongo import KnownChannels
from tests import payloads
from tests.conftest import connect_page, wait_for


def channel(name: str = "Shop") -> Channel:
    return Channel(id="c1", source="facebook", source_channel_id="1234", name=name,
                   image_url=None, page_token="t", connected=True, created_at=1, updated_at=1)


def test_kept_while_live_and_forgotten_on_every_change():
    live = True
    known = KnownChannels(live=lambda: live)
    known.keep([channel()], known.generation)
    assert known.get("c1") == channel() and known.of_page("1234") == channel()
    mine = known.get("c1")
    assert mine is not None
    mine.name = "changed by a caller"  # a copy: what is kept stays as read
    assert known.get("c1") == channel()

    known.changed("conversations")  # another collection: kept
    assert known.get("c1") is not None
    known.changed("channels")
    assert known.get("c1") is None and known.of_page("1234") is None

    known.keep([channel()], known.generation)
    known.changed(None)  # a stream reopened: changes may have gone by unseen
    assert known.get("c1") is None


def test_a_read_across_a_change_or_while_a_stream_is_shut_is_not_kept():
    live = True
    known = KnownChannels(live=lambda: live)
    before = known.generation
    known.changed("channels")  # written while the read was under way
    known.keep([channel("old")], before)
    assert known.get("c1") is None

    live = False
    known.keep([channel()], known.generation)
    assert known.get("c1") is None
    live = True
    known.keep([channel()], known.generation)
    live = False  # the stream shut after: what is kept is not served
    assert known.get("c1") is None


def test_bounded():
    known = KnownChannels(live=lambda: True)
    known.keep([replace(channel(), id=f"c{n}", source_channel_id=str(n))
                for n in range(KnownChannels.LIMIT + 5)], known.generation)
    assert sum(known.get(f"c{n}") is not None for n in range(KnownChannels.LIMIT + 5)) \
        <= KnownChannels.LIMIT


def test_another_process_s_change_to_a_channel_reaches_this_one(start_gateway, graph):
    """Two processes on one store, the query cache off: a channel this process has read is
    renamed, then disconnected, by the other; this one lists and refuses accordingly."""
    first = start_gateway(QUERY_CACHE_MB="0")
    second = start_gateway(database=first.env["MONGODB_DATABASE"], QUERY_CACHE_MB="0")
    page = connect_page(first, graph)
    page_id = page["source_channel_id"]
    assert first.webhook(payloads.envelope(page_id, payloads.text(page_id, "7001", "hi"))) \
        .status_code == 200
    [conversation] = wait_for(lambda: first.post("/conversations.list").json()["data"])
    assert conversation["channel"]["metadata"]["name"] == page["metadata"]["name"]

    renamed = second.post("/channels.update", {"channel_id": page["id"], "name": "Renamed"})
    assert renamed.status_code == 200, renamed.text
    wait_for(lambda: first.post("/conversations.list").json()["data"][0]["channel"]["metadata"]
             ["name"] == "Renamed", timeout=5)

    assert second.post("/channels.facebook.disconnect",
                       {"channel_id": page["id"]}).status_code in (200, 202, 204)
    wait_for(lambda: first.post("/messages.send", {
        "conversation_id": conversation["id"], "message": {"text": "hello?"}}).status_code == 403,
        timeout=5)


def test_this_process_s_own_change_is_read_back_at_once(gateway, graph):
    page = connect_page(gateway, graph)
    page_id = page["source_channel_id"]
    gateway.webhook(payloads.envelope(page_id, payloads.text(page_id, "7002", "hi")))
    [conversation] = wait_for(lambda: gateway.post("/conversations.list").json()["data"])
    for name in ("One", "Two", "Three"):
        assert gateway.post("/channels.update", {"channel_id": page["id"], "name": name}) \
            .status_code == 200
        listed = gateway.post("/conversations.info", {"conversation_id": conversation["id"]})
        assert listed.json()["channel"]["metadata"]["name"] == name
    assert gateway.post("/channels.facebook.disconnect",
                        {"channel_id": page["id"]}).status_code in (200, 202, 204)
    refused = gateway.post("/messages.send", {"conversation_id": conversation["id"],
                                              "message": {"text": "gone"}})
    assert refused.status_code == 403

