"""The conversations page (20 conversations with contact and last message) through GraphQL and
through `POST /conversations.list`, against a route answering the same JSON from memory."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (Http, baseline_server, children, cpu_seconds, drive, fake_graph,
                          gateway, median, percentile, table)
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
      lastMessage { content state senderType sentAt }
    } }
  }
}"""
GRAPHQL_BODY = json.dumps({"query": PAGE}).encode()
REST_BODY = json.dumps({"page_size": 20}).encode()


def seed(gw: Any, graph: Any, people: int = 30) -> None:
    """`people` conversations, each with a named contact and a few messages."""
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


def _request(path: str, body: bytes, check: bytes):
    async def request(http: Http, n: int) -> bool:
        status, answer = await http.post(path, body)
        return status == 200 and check in answer[:200]

    return request


def run(seconds: float, runs: int) -> str:
    with fake_graph() as graph, gateway(graph) as gw:
        seed(gw, graph)
        rest_json = gw.http.post("/conversations.list", content=REST_BODY).content
        graphql_json = gw.http.post("/graphql", content=GRAPHQL_BODY,
                                    headers={"Content-Type": "application/json"}).content
        assert b'"errors"' not in graphql_json, graphql_json[:500]
        with tempfile.NamedTemporaryFile(suffix=".json") as file:
            Path(file.name).write_bytes(rest_json)
            with baseline_server(BENCH_PAGE_FILE=file.name) as base:
                targets = {
                    "baseline (JSON from memory)": (base, "/conversations.list", REST_BODY,
                                                    b'"data"'),
                    "REST conversations.list": (gw.url, "/conversations.list", REST_BODY,
                                                b'"data"'),
                    "GraphQL conversations": (gw.url, "/graphql", GRAPHQL_BODY,
                                              b'{"data":{"conversations"'),
                }
                loads: dict[str, list] = {name: [] for name in targets}
                cpu: dict[str, list[float]] = {name: [] for name in targets}
                store_cpu: dict[str, list[float]] = {name: [] for name in targets}
                store = children(gw.proc.pid)[0]
                for _ in range(runs):  # interleaved, so drift hits every target alike
                    for name, (url, path, body, check) in targets.items():
                        before, store_before = cpu_seconds(gw.proc.pid), cpu_seconds(store)
                        load = drive(url, CONCURRENCY, seconds, _request(path, body, check))
                        if url == gw.url:
                            requests = max(1, load.requests)
                            cpu[name].append((cpu_seconds(gw.proc.pid) - before) * 1000 / requests)
                            store_cpu[name].append((cpu_seconds(store) - store_before) * 1000
                                                   / requests)
                        loads[name].append(load)
                        time.sleep(0.2)
    base_rate = median([load.rate for load in loads["baseline (JSON from memory)"]])
    rows = []
    for name, results in loads.items():
        rate = median([load.rate for load in results])
        latencies = [t for load in results for t in load.latencies]
        rows.append([name, rate, f"{rate / base_rate:.1%}", percentile(latencies, 0.5) * 1000,
                     percentile(latencies, 0.99) * 1000, median(cpu[name]),
                     median(store_cpu[name]), sum(load.failures for load in results)])
    return table(f"Queries: the conversations page (20 with contact and last message), "
                 f"{CONCURRENCY} connections, {len(rest_json):,} bytes of JSON",
                 ["target", "requests/s", "of baseline", "p50 ms", "p99 ms",
                  "gateway CPU ms/req", "store CPU ms/req", "failed"], rows)
