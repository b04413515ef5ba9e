"""Webhook ingest: signed batches of messages at rising concurrency, against a route that only
checks the signature. Also the gateway's own CPU per event (the store is another process)."""

from __future__ import annotations

import uuid
from typing import Any

from bench.common import (Http, Load, baseline_server, cpu_seconds, drive, store_pid,
                          fake_graph, gateway, median, percentile, signed, table)
from tests import payloads
from tests.conftest import connect_page

BATCH = 10  # messages per POST, from several people, as Meta batches them under load
PEOPLE = 50
LEVELS = (1, 4, 16)


def _poster(page: str, people: list[str]):
    run = uuid.uuid4().hex[:8]

    async def post(http: Http, n: int) -> bool:
        events = [payloads.text(page, people[(n * BATCH + i) % len(people)], f"message {n}.{i}",
                                message_id=f"m_{run}_{n}_{i}") for i in range(BATCH)]
        body, headers = signed(payloads.envelope(page, *events))
        status, _ = await http.post("/facebook", body, headers)
        return status == 200

    return post


def run(seconds: float, runs: int) -> str:
    rows: list[list[Any]] = []
    with fake_graph() as graph, gateway(graph) as gw, baseline_server() as base:
        page = connect_page(gw, graph)["source_channel_id"]
        people = [str(7_000_000 + i) for i in range(PEOPLE)]
        for psid in people:
            graph.add_profile(psid, "Ada", f"Person {psid}")
        drive(gw.url, 4, min(seconds, 1.0), _poster(page, people))  # warm up: contacts exist
        store = store_pid(gw)
        for level in LEVELS:
            measured: dict[str, list[tuple[Load, float, float]]] = {"baseline": [],
                                                                    "gateway": []}
            for _ in range(runs):
                load = drive(base, level, seconds, _poster(page, people))
                measured["baseline"].append((load, float("nan"), float("nan")))
                cpu, store_cpu = cpu_seconds(gw.proc.pid), cpu_seconds(store)
                load = drive(gw.url, level, seconds, _poster(page, people))
                events = max(1, load.requests * BATCH)
                measured["gateway"].append((load, (cpu_seconds(gw.proc.pid) - cpu) / events,
                                            (cpu_seconds(store) - store_cpu) / events))
            base_rate = median([load.rate * BATCH for load, _, _ in measured["baseline"]])
            for target, results in measured.items():
                rate = median([load.rate * BATCH for load, _, _ in results])
                latencies = [t for load, _, _ in results for t in load.latencies]
                failures = sum(load.failures for load, _, _ in results)
                rows.append([level, target, rate, f"{rate / base_rate:.1%}",
                             percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000,
                             median([cpu * 1000 for _, cpu, _ in results]),
                             median([cpu * 1000 for _, _, cpu in results]), failures])
    return table(f"Webhook ingest: signed POSTs of {BATCH} messages each",
                 ["concurrency", "target", "events/s", "of baseline", "ack p50 ms", "ack p99 ms",
                  "gateway CPU ms/event", "store CPU ms/event", "failed"], rows)
