"""Webhook ingest: signed batches of messages at rising concurrency, against a route that only
checks the signature. Also the gateway's own CPU per event (the store is another process)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from bench.common import (Http, Load, baseline_server, cpu_seconds, drive, store_pid,
                          fake_graph, gateway, median, percentile, signed, table)
from tests import payloads
from tests.conftest import connect_page

BATCH = 10  # messages per POST, from several people, as Meta batches them under load
PEOPLE = 50
LEVELS = (1, 4, 16)
NEW_SENDERS = 1_000  # events in one POST, each from a new person (Meta's largest batch)
WAITS = (500, 0)  # WEBHOOK_APPLY_WAIT_MS: the default, and answering right after the write


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
                  "gateway CPU ms/event", "store CPU ms/event", "failed"], rows) \
        + "\n\n" + new_senders(runs)


def _total(http: httpx.Client) -> int:
    answer = http.post("/conversations.list", json={"page_size": 1})
    return answer.json()["pagination_data"]["total"]


def new_senders(runs: int) -> str:
    """Meta's worst call: one POST of NEW_SENDERS events, each from a person never met before
    (a conversation, a contact and a profile fetch each). The ack, and the time until the last
    is listed, for each WEBHOOK_APPLY_WAIT_MS; a fresh gateway each run."""
    rows: list[list[Any]] = []
    with fake_graph() as graph:
        for wait in WAITS:
            acks: list[float] = []
            visible: list[float] = []
            failures = 0
            for _ in range(max(runs, 3)):
                with gateway(graph, WEBHOOK_APPLY_WAIT_MS=str(wait)) as gw:
                    page = connect_page(gw, graph)["source_channel_id"]
                    first = 30_000_000 + uuid.uuid4().int % 60_000_000
                    people = [str(first + i) for i in range(NEW_SENDERS)]
                    for psid in people:
                        graph.add_profile(psid, "Ada", f"Person {psid}")
                    body, headers = signed(payloads.envelope(
                        page, *(payloads.text(page, psid, "hello") for psid in people)))
                    with httpx.Client(base_url=gw.url, timeout=60) as http:
                        started = time.monotonic()
                        answer = http.post("/facebook", content=body, headers=headers)
                        acks.append(time.monotonic() - started)
                        failures += answer.status_code != 200
                        while _total(http) < NEW_SENDERS and time.monotonic() - started < 120:
                            time.sleep(0.05)
                        visible.append(time.monotonic() - started)
            rows.append([wait, len(acks), percentile(acks, 0.5) * 1000,
                         percentile(acks, 0.99) * 1000, median(visible), max(visible), failures])
    return table(f"Webhook ingest: one POST of {NEW_SENDERS:,} events from {NEW_SENDERS:,} new "
                 "senders (target: ack p99 ≤ 1,000 ms)",
                 ["WEBHOOK_APPLY_WAIT_MS", "runs", "ack p50 ms", "ack p99 ms",
                  "all visible, median s", "all visible, max s", "failed"], rows)
