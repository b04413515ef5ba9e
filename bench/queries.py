"""The conversations page (20 conversations with contact and last message) through GraphQL and
through `POST /conversations.list`, against a route answering the same JSON from memory."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import (Http, baseline_server, cpu_seconds, drive, fake_graph, gateway,
                          median, percentile, store_pid, table)
from tests import payloads
from tests.conftest import connect_page, wait_for

CONCURRENCY = 8
PAGE = """query Inbox($after: String) {
  conversations(first: 20, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node {
      id unreadCount lastActivityAt
      contact { displayName avatarUrl }
      channel { name }
      lastMessage { content: rawContent state senderType sentAt }
    } }
  }
}"""
GRAPHQL_BODY = json.dumps({"query": PAGE}).encode()
REST_BODY = json.dumps({"page_size": 20}).encode()


def seed(gw: Any, graph: Any, people: int = 30) -> str:
    """`people` conversations, each with a named contact and a few messages; returns the page."""
    page = connect_page(gw, graph)["source_channel_id"]
    for i in range(people):
        psid = str(8_000_000 + i)
        graph.add_profile(psid, "Ada", f"Person {i}")
        assert gw.webhook(payloads.envelope(page, *(payloads.text(page, psid, f"hello {n}")
                                                     for n in range(3)))).status_code == 200

    def named() -> bool:
        data = gw.post("/conversations.list", {"page_size": 20}).json()["data"]
        return len(data) == 20 and all(c["contact"]["fetch_state"] == "ok" for c in data)

    wait_for(named, timeout=60, interval=0.2)
    return page


def _request(path: str, body: bytes, check: bytes):
    async def request(http: Http, n: int) -> bool:
        status, answer = await http.post(path, body)
        return status == 200 and check in answer[:200]

    return request


class _Counted:
    """`_request` that also counts the answers the query cache gave (`X-Query-Cache: hit`)."""

    def __init__(self, path: str, body: bytes, check: bytes) -> None:
        self.path, self.body, self.check = path, body, check
        self.hits = 0

    async def __call__(self, http: Http, n: int) -> bool:
        status, answer = await http.post(self.path, self.body)
        self.hits += http.last_headers.get("x-query-cache") == "hit"
        return status == 200 and self.check in answer[:200]


class Arrivals:
    """Messages from the seeded people at `rate` per second, in a thread, while a load runs: each
    one changes the page, so the query cache forgets it."""

    def __init__(self, gw: Any, page: str, rate: float) -> None:
        self.gw, self.page, self.rate = gw, page, rate
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._post, daemon=True)
        self.sent = 0

    def _post(self) -> None:
        while not self.stop.wait(1 / self.rate):
            psid = str(8_000_000 + self.sent % 30)
            self.gw.webhook(payloads.envelope(self.page, payloads.text(self.page, psid, "more")))
            self.sent += 1

    def __enter__(self) -> Arrivals:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def run(seconds: float, runs: int, arrivals: float = 10.0) -> str:
    with fake_graph() as graph, gateway(graph) as gw, gateway(graph, QUERY_CACHE_MB="0") as cold:
        page = seed(gw, graph)
        seed(cold, graph)
        rest_json = gw.http.post("/conversations.list", content=REST_BODY,
                                 headers={"Content-Type": "application/json"}).content
        graphql_json = gw.http.post("/graphql", content=GRAPHQL_BODY,
                                    headers={"Content-Type": "application/json"}).content
        assert b'"errors"' not in graphql_json, graphql_json[:500]
        with tempfile.NamedTemporaryFile(suffix=".json") as file:
            Path(file.name).write_bytes(rest_json)
            with baseline_server(BENCH_PAGE_FILE=file.name) as base:
                rest = ("/conversations.list", REST_BODY, b'"data"')
                graphql = ("/graphql", GRAPHQL_BODY, b'{"data":{"conversations"')
                targets = {  # name: (gateway or baseline url, request, messages/s arriving)
                    "baseline (JSON from memory)": (base, rest, 0.0),
                    "REST conversations.list, no cache": (cold, rest, 0.0),
                    "GraphQL conversations, no cache": (cold, graphql, 0.0),
                    "REST conversations.list, cached": (gw, rest, 0.0),
                    "GraphQL conversations, cached": (gw, graphql, 0.0),
                    f"GraphQL conversations, cached, {arrivals:g} messages/s arriving":
                        (gw, graphql, arrivals),
                }
                loads: dict[str, list] = {name: [] for name in targets}
                cpu: dict[str, list[float]] = {name: [] for name in targets}
                store_cpu: dict[str, list[float]] = {name: [] for name in targets}
                hits: dict[str, list[float]] = {name: [] for name in targets}
                for _ in range(runs):  # interleaved, so drift hits every target alike
                    for name, (target, (path, body, check), rate) in targets.items():
                        if isinstance(target, str):
                            loads[name].append(drive(target, CONCURRENCY, seconds,
                                                     _request(path, body, check)))
                            time.sleep(0.2)
                            continue
                        store = store_pid(target)
                        before, store_before = cpu_seconds(target.proc.pid), cpu_seconds(store)
                        counted = _Counted(path, body, check)
                        if rate:
                            with Arrivals(target, page, rate):
                                load = drive(target.url, CONCURRENCY, seconds, counted)
                        else:
                            load = drive(target.url, CONCURRENCY, seconds, counted)
                        requests = max(1, load.requests)
                        cpu[name].append((cpu_seconds(target.proc.pid) - before) * 1000 / requests)
                        store_cpu[name].append((cpu_seconds(store) - store_before) * 1000
                                               / requests)
                        hits[name].append(counted.hits / requests)
                        loads[name].append(load)
                        time.sleep(0.2)
    base_rate = median([load.rate for load in loads["baseline (JSON from memory)"]])
    rows = []
    for name, results in loads.items():
        rate = median([load.rate for load in results])
        latencies = [t for load in results for t in load.latencies]
        rows.append([name, rate, f"{rate / base_rate:.1%}", percentile(latencies, 0.5) * 1000,
                     percentile(latencies, 0.99) * 1000, median(cpu[name]),
                     median(store_cpu[name]),
                     f"{median(hits[name]):.0%}" if hits[name] else "",
                     sum(load.failures for load in results)])
    return table(f"Queries: the conversations page (20 with contact and last message), "
                 f"{CONCURRENCY} connections, {len(rest_json):,} bytes of JSON",
                 ["target", "requests/s", "of baseline", "p50 ms", "p99 ms",
                  "gateway CPU ms/req", "store CPU ms/req", "cache hits", "failed"], rows)
