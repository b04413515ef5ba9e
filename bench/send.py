"""The send path: `messages.send` until the message is delivered (the fake Graph API answers at
once), against the fake Graph API's own Send API rate: the ceiling the gateway can reach."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from websockets.asyncio.client import connect

from bench.common import Http, Load, drive_async, fake_graph, gateway, median, percentile, table
from tests import payloads
from tests.conftest import connect_page, wait_for

CONCURRENCY = 8
CONVERSATIONS = 16  # the multi-conversation row: sends spread over this many conversations
# ... on this many pages: each page's Send API calls are paced (SEND_RATE_PER_PAGE, below Meta's
# 300 a second), so one page alone caps the rate whatever the gateway could do.
PAGES = 4
UPDATED = "subscription ($c: ID) { messageUpdated(conversationId: $c) { id state } }"


async def _sends(gw: Any, conversations: list[str], seconds: float) -> tuple[Load, float]:
    """Send for `seconds`, then wait for every sent message to be delivered; returns the load
    and the messages delivered per second from the first send to the last delivery."""
    url = gw.url.replace("http://", "ws://") + "/graphql"
    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        await ws.recv()
        await ws.send(json.dumps({"type": "subscribe", "id": "1", "payload": {
            "query": UPDATED,
            "variables": {"c": conversations[0] if len(conversations) == 1 else None}}}))
        await asyncio.sleep(0.5)  # subscribing has no acknowledgement
        sent: set[str] = set()
        delivered: set[str] = set()
        done = asyncio.Event()
        last = 0.0

        async def watch() -> None:
            nonlocal last
            async for raw in ws:
                message = json.loads(raw)
                if message.get("type") != "next":
                    continue
                node = message["payload"]["data"]["messageUpdated"]
                if node["state"] == "DELIVERED":
                    delivered.add(node["id"])
                    last = time.monotonic()
                    if done_sending and sent <= delivered:
                        done.set()

        async def send(http: Http, n: int) -> bool:
            status, answer = await http.post("/messages.send", json.dumps({
                "conversation_id": conversations[n % len(conversations)],
                "message": {"text": f"reply {n}"}}).encode())
            if status == 200:
                sent.add(json.loads(answer)["id"])
            return status == 200

        done_sending = False
        watcher = asyncio.create_task(watch())
        started = time.monotonic()
        load = await drive_async(gw.url, CONCURRENCY, seconds, send)
        done_sending = True
        if not sent <= delivered:
            await asyncio.wait_for(done.wait(), 60 + 10 * seconds)
        watcher.cancel()
        return load, len(sent) / (last - started)


async def _graph_ceiling(graph: Any, seconds: float) -> Load:
    page, token = "9100001", "EAAceiling" + uuid.uuid4().hex
    graph.add_page(page, token)
    body = json.dumps({"recipient": {"id": "1"}, "message": {"text": "hi"},
                       "messaging_type": "RESPONSE"}).encode()

    async def post(http: Http, n: int) -> bool:
        status, _ = await http.post(f"/v21.0/me/messages?access_token={token}", body)
        return status == 200

    return await drive_async(graph.url.rsplit("/", 1)[0], CONCURRENCY, seconds, post)


def run(seconds: float, runs: int) -> str:
    with fake_graph() as graph, gateway(graph, WORKER_POLL_SECONDS="1") as gw:
        pages = [connect_page(gw, graph)["source_channel_id"] for _ in range(PAGES)]
        people = [str(5550001 + n) for n in range(CONVERSATIONS)]
        for n, person in enumerate(people):
            page = pages[n % PAGES]
            graph.add_profile(person, "Ada", "Lovelace")
            gw.webhook(payloads.envelope(page, payloads.text(page, person, "hi")))
        listed = wait_for(lambda: len(found := gw.post("/conversations.list", {
            "page_size": 100}).json()["data"]) == CONVERSATIONS and found)
        ids = [c["id"] for c in listed]
        ceiling, one, many = [], [], []
        for _ in range(runs):
            ceiling.append(asyncio.run(_graph_ceiling(graph, seconds)))
            one.append(asyncio.run(_sends(gw, ids[:1], seconds)))
            many.append(asyncio.run(_sends(gw, ids, seconds)))
    ceiling_rate = median([load.rate for load in ceiling])
    rows = [["fake Send API alone (ceiling)", ceiling_rate, "100%", float("nan")]]
    for name, measured in (("messages.send → delivered, 1 conversation", one),
                           (f"messages.send → delivered, {CONVERSATIONS} conversations, "
                            f"{PAGES} pages", many)):
        rate = median([delivered for _, delivered in measured])
        latencies = [t for load, _ in measured for t in load.latencies]
        rows.append([name, rate, f"{rate / ceiling_rate:.1%}", percentile(latencies, 0.5) * 1000])
    return table(f"Send path: {CONCURRENCY} connections sending, into one conversation or "
                 f"round-robin into {CONVERSATIONS} (on {PAGES} pages)",
                 ["target", "messages/s", "of ceiling", "send answer p50 ms"], rows)
