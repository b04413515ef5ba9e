"""Fan-out and memory: many websocket subscribers of one document on one gateway process.

The publisher posts signed webhooks; every message they carry reaches each subscriber through
the store's change stream. Measured with multiplexing off (one GraphQL execution per subscriber
per event: the baseline) and on, in the same run.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from bench.common import (Http, cpu_seconds, fake_graph, gateway, median, percentile, rss_bytes,
                          signed)
from bench.wsclients import Clients
from tests import payloads
from tests.conftest import connect_page, wait_for

QUERY = ("subscription { messageCreated { id conversationId content: rawContent state senderType "
         "sentAt } }")
MODES = {"per subscriber": "0", "multiplexed": "1"}
POSTS = 8


class Publisher:
    """Posts signed webhooks of messages from one person to one connected page."""

    def __init__(self, gw: Any, graph: Any) -> None:
        self.gw = gw
        self.page = connect_page(gw, graph)["source_channel_id"]
        self.psid = str(uuid.uuid4().int % 10**15)
        graph.add_profile(self.psid, "Ada", "Lovelace")

    def publish(self, n: int) -> float:
        """Post `n` messages, over up to POSTS concurrent webhooks so that storing them is not
        what limits the fan-out; returns when the first post started."""
        chunks = [range(i, n, POSTS) for i in range(min(n, POSTS))]

        async def post(chunk: range) -> None:
            http = Http(self.gw.url)
            body, headers = signed(payloads.envelope(self.page, *(
                payloads.text(self.page, self.psid, f"hello {i}") for i in chunk)))
            try:
                status, answer = await http.post("/facebook", body, headers)
            finally:
                http.close()
            assert status == 200, answer

        async def publish_all() -> None:
            await asyncio.gather(*(post(chunk) for chunk in chunks))

        started = time.monotonic()
        asyncio.run(publish_all())
        return started


def subscribed(gw: Any, count: int) -> None:
    wait_for(lambda: gw.http.get("/health").json()["subscribers"] >= count, timeout=120,
             interval=0.2)


def _round(clients: Clients, publisher: Publisher, events: int, timeout: float
           ) -> tuple[float, list[float], dict[str, Any]]:
    clients.start_wait(events, timeout)
    started = publisher.publish(events)
    result = clients.results()
    return started, result["last"], result


def measure(gw: Any, graph: Any, clients: Clients, count: int, seconds: float, runs: int
            ) -> dict[str, float]:
    """Latency of single events, then deliveries/s of bursts sized to last about `seconds`."""
    publisher = Publisher(gw, graph)
    latencies: list[float] = []
    one_event = []
    for _ in range(max(3, runs)):
        started, last, result = _round(clients, publisher, 1, 60)
        assert result["complete"] == count, f"{result['complete']} of {count} got the event"
        latencies += [t - started for t in last]
        one_event.append(max(last) - started)
    burst = int(max(2, min(500, seconds / max(median(one_event), 1e-3))))
    rates, cpu = [], []
    errors = 0
    for _ in range(runs):
        before = cpu_seconds(gw.proc.pid)
        started, last, result = _round(clients, publisher, burst, 10 * seconds + 60)
        cpu.append((cpu_seconds(gw.proc.pid) - before) / (count * burst) * 1e6)
        errors += result["errors"]
        rates.append(count * burst / (max(last) - started))
    return {"rate": median(rates), "p50": percentile(latencies, 0.5) * 1000,
            "p99": percentile(latencies, 0.99) * 1000, "burst": burst, "errors": errors,
            "cpu": median(cpu)}


def run(sizes: list[int], seconds: float, runs: int, processes: int) -> list[list[Any]]:
    rows = []
    with fake_graph() as graph:
        results: dict[tuple[int, str], dict[str, float]] = {}
        for mode, flag in MODES.items():
            # Room for the next size's sockets while the last size's are still closing.
            with gateway(graph, SUBSCRIPTION_MULTIPLEX=flag, SUBSCRIPTION_QUEUE_SIZE="1000000",
                         WS_MAX_CONNECTIONS=str(2 * max(sizes))) as gw:
                for count in sizes:
                    clients = Clients(processes)
                    try:
                        assert clients.connect(gw.url, count, QUERY) == count
                        subscribed(gw, count)
                        results[count, mode] = measure(gw, graph, clients, count, seconds, runs)
                    finally:
                        clients.close()
                    wait_for(lambda: gw.http.get("/health").json()["subscribers"] == 0, 60)
        for count in sizes:
            base = results[count, "per subscriber"]["rate"]
            for mode in MODES:
                r = results[count, mode]
                rows.append([count, mode, r["rate"], f"{r['rate'] / base:.1f}×", r["cpu"],
                             r["p50"], r["p99"], int(r["burst"]), int(r["errors"])])
    return rows


def memory(sizes: list[int], processes: int) -> list[list[Any]]:
    """Resident memory of the gateway per idle subscribed websocket (a fresh process each)."""
    rows = []
    with fake_graph() as graph:
        for count in sizes:
            for mode, flag in MODES.items():
                with gateway(graph, SUBSCRIPTION_MULTIPLEX=flag) as gw:
                    Publisher(gw, graph)  # a connected page: the process has done some work
                    time.sleep(1)
                    before = rss_bytes(gw.proc.pid)
                    clients = Clients(processes)
                    try:
                        assert clients.connect(gw.url, count, QUERY) == count
                        subscribed(gw, count)
                        time.sleep(1)
                        after = rss_bytes(gw.proc.pid)
                    finally:
                        clients.close()
                rows.append([count, mode, before / 2**20, after / 2**20,
                             (after - before) / count / 1024])
    return rows
