"""`python -m bench soak`: does a request cost the same, and memory stay flat, as the store grows?

One gateway on its own embedded store, with the query cache off (`QUERY_CACHE_MB=0`) so that every
read reaches the store. The store is grown through the API, in signed webhook POSTs of `BATCH`
messages, to each of `--sizes` messages in all. Conversations grow with it (one person for every
`MESSAGES_PER_PERSON` messages), and one long conversation takes every `LONG_EVERY`-th message, so
that lists of many conversations and pages deep into a long one both grow. At each size, each
request kind runs alone as a closed loop (`CONCURRENCY` in flight for `--seconds`, at most
`MAX_REQUESTS`, and size/`WRITES_SHARE` for the kinds that add a message), `--runs` times
interleaved; then all kinds at once. CPU is each process's own time from /proc (the store is the
gateway's child), counted until the sends the phase queued are delivered, so a send is charged its
delivery too.

Not part of `python -m bench all`: filling 100,000 messages through the API takes minutes.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pymongo import MongoClient
from pymongo.database import Database

from bench.common import (Http, Load, Request, children, cpu_seconds, drive_async, fake_graph,
                          gateway, median, percentile, rss_bytes, signed, table)
from bench.queries import PAGE
from tests import payloads
from tests.conftest import connect_page, wait_for

BATCH = 200  # messaging events per fill POST
FILL_IN_FLIGHT = 4  # fill POSTs at once
MESSAGES_PER_PERSON = 10  # at each size, one conversation per this many messages
LONG_EVERY = 10  # every this many-th message goes to the one long conversation
LONG_PSID = "6000000"
CONCURRENCY = 4  # requests in flight in each measured phase
MAX_REQUESTS = 2_000  # per phase, whatever --seconds says
# A writing phase adds at most size/WRITES_SHARE messages: at --runs 3, measuring a size grows it
# by under a fifth.
WRITES_SHARE = 40
TARGETS = 200  # conversations the webhook and send phases write to, in turn
QUIET_SHARE = 0.25  # a process below this share of a core is taken as settled
MIB = 1024 * 1024
MESSAGES = """query Thread($c: ID!, $after: String) {
  messages(conversationId: $c, first: 20, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id content: rawContent state senderType sentAt fromContact } }
  }
}"""


def _psid(person: int) -> str:
    return str(6_100_000 + person)


class Soak:
    """The gateway under test, its store (read directly, to count and to wait), and the page."""

    def __init__(self, gw: Any, graph: Any) -> None:
        self.gw, self.graph = gw, graph
        self.page = connect_page(gw, graph)["source_channel_id"]
        socket = Path(gw.env["DATA_DIR"]) / "nx-27017.sock"
        self.client: MongoClient = MongoClient(
            f"mongodb://{quote(str(socket), safe='')}/?directConnection=true")
        self.db: Database = self.client["messenger_gateway"]
        self.people = 0  # persons _psid(0 … people-1) who have written, beside LONG_PSID
        graph.add_profile(LONG_PSID, "Long", "Thread")

    def pids(self) -> tuple[int, int]:
        """The gateway and its store (looked up each time: a supervised store may be new)."""
        return self.gw.proc.pid, children(self.gw.proc.pid)[0]

    def cpu(self) -> tuple[float, float]:
        gateway_pid, store_pid = self.pids()
        return cpu_seconds(gateway_pid), cpu_seconds(store_pid)

    def rss(self) -> tuple[float, float]:
        gateway_pid, store_pid = self.pids()
        return rss_bytes(gateway_pid) / MIB, rss_bytes(store_pid) / MIB

    def messages(self) -> int:
        return self.db.messages.count_documents({})

    def drained(self, timeout: float = 600) -> None:
        """Until no send waits for delivery and no contact profile waits to be fetched."""
        wait_for(lambda: self.db.outbox.count_documents({}) == 0
                 and self.db.profile_jobs.count_documents({}) == 0,
                 timeout=timeout, interval=0.1)

    def settle(self, timeout: float = 60) -> None:
        """Until queued work is done and both processes are nearly idle (change streams caught
        up), or `timeout` has passed."""
        self.drained()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before, started = self.cpu(), time.monotonic()
            time.sleep(0.5)
            spent = [(after - start) / (time.monotonic() - started)
                     for after, start in zip(self.cpu(), before)]
            if max(spent) < QUIET_SHARE:
                return

    # --- growing the store ---

    def fill(self, size: int) -> list[Any]:
        """Post messages until the store holds `size`; returns the fill's row.

        Each new person's first message comes in POSTs sent one at a time, the rest `BATCH` at a
        time with `FILL_IN_FLIGHT` in flight: two POSTs racing to create one conversation leave
        an orphan profile job that the gateway looks at every second for a minute, which would
        run beside the measured phases."""
        first = self.messages()
        people = max(1, size // MESSAGES_PER_PERSON)
        new = [LONG_PSID] * (first == 0) + [_psid(p) for p in range(self.people, people)]
        for person in range(self.people, people):
            self.graph.add_profile(_psid(person), "Person", str(person))
        self.people = max(self.people, people)
        wanted = size - first
        if wanted <= 0:
            return [size, 0, self.db.conversations.count_documents({}), float("nan"),
                    float("nan"), float("nan"), 0.0]
        new = new[:wanted]
        bulk = wanted - len(new)

        def sender(k: int) -> str:  # the k-th message after the new people's first ones
            if k % LONG_EVERY == 0:
                return LONG_PSID
            return _psid((k - k // LONG_EVERY - 1) % people)

        async def introduce(http: Http, n: int) -> bool:
            events = [payloads.text(self.page, psid, f"hello {n}")
                      for psid in new[n * BATCH:(n + 1) * BATCH]]
            return await self._post(http, events)

        async def more(http: Http, n: int) -> bool:
            events = [payloads.text(self.page, sender(first + k), f"fill {k}")
                      for k in range(n * BATCH, min(bulk, (n + 1) * BATCH))]
            return await self._post(http, events)

        cpu, started = self.cpu(), time.monotonic()
        loads = [asyncio.run(drive_async(self.gw.url, 1, float("inf"), introduce,
                                         -(-len(new) // BATCH))),
                 asyncio.run(drive_async(self.gw.url, FILL_IN_FLIGHT, float("inf"), more,
                                         -(-bulk // BATCH)))]
        seconds = time.monotonic() - started
        spent = [(after - start) * 1000 / wanted for after, start in zip(self.cpu(), cpu)]
        if any(load.failures for load in loads):
            raise RuntimeError(f"fill POSTs failed:\n{self.gw.log()[-3000:]}")
        started = time.monotonic()
        self.drained()
        profiles = time.monotonic() - started
        stored = self.messages()
        if stored < size:
            raise RuntimeError(f"{stored} messages stored, {size} posted in all")
        return [size, wanted, self.db.conversations.count_documents({}), wanted / seconds,
                *spent, profiles]

    async def _post(self, http: Http, events: list[dict[str, Any]]) -> bool:
        body, headers = signed(payloads.envelope(self.page, *events))
        status, _ = await http.post("/facebook", body, headers)
        return status == 200

    # --- the request kinds ---

    def kinds(self, size: int) -> dict[str, tuple[Request, int]]:
        """Per kind, the request and how many at most a phase sends; reads alternate a first
        page and a later one."""
        long_id = self.db.conversations.find_one({"contact_id": LONG_PSID})["_id"]
        length = self.db.messages.count_documents({"conversation_id": long_id})
        middle = next(self.db.messages.find({"conversation_id": long_id}, {"_id": 1}).sort(
            [("sent_at", -1), ("_id", -1)]).skip(length // 2).limit(1))["_id"]
        targets = [(doc["_id"], doc["contact_id"]) for doc in self.db.conversations.find(
            {"contact_id": {"$ne": LONG_PSID}}, {"_id": 1, "contact_id": 1}).limit(TARGETS)]
        listed = self.gw.post("/conversations.list", {"page_size": 20}).json()
        second = listed["pagination_data"]["next_cursor"]

        def bodies(*pair: dict[str, Any]) -> tuple[bytes, ...]:
            return tuple(json.dumps(body).encode() for body in pair)

        def alternating(path: str, pair: tuple[bytes, ...], check: bytes) -> Request:
            async def request(http: Http, n: int) -> bool:
                status, answer = await http.post(path, pair[n % 2])
                return status == 200 and check in answer[:200]

            return request

        async def webhook(http: Http, n: int) -> bool:
            psid = targets[n % len(targets)][1]
            body, headers = signed(payloads.envelope(
                self.page, payloads.text(self.page, psid, f"soak {n}")))
            status, _ = await http.post("/facebook", body, headers)
            return status == 200

        async def send(http: Http, n: int) -> bool:
            status, answer = await http.post("/messages.send", json.dumps({
                "conversation_id": targets[n % len(targets)][0],
                "message": {"text": f"reply {n}"}}).encode())
            return status == 200 and b'"id"' in answer[:200]

        writes = min(MAX_REQUESTS, max(1, size // WRITES_SHARE))
        return {
            "webhook": (webhook, writes),
            "messages.send": (send, writes),
            "conversations.list": (alternating("/conversations.list", bodies(
                {"page_size": 20}, {"page_size": 20, "cursor": second}), b'"data"'), MAX_REQUESTS),
            "messages.list": (alternating("/messages.list", bodies(
                {"conversation_id": long_id, "page_size": 20},
                {"conversation_id": long_id, "page_size": 20, "cursor": middle}), b'"data"'),
                MAX_REQUESTS),
            "GraphQL conversations": (alternating("/graphql", bodies(
                {"query": PAGE}, {"query": PAGE, "variables": {"after": second}}),
                b'{"data":{"conversations"'), MAX_REQUESTS),
            "GraphQL messages": (alternating("/graphql", bodies(
                {"query": MESSAGES, "variables": {"c": long_id}},
                {"query": MESSAGES, "variables": {"c": long_id, "after": middle}}),
                b'{"data":{"messages"'), MAX_REQUESTS),
        }

    def measure(self, request: Request, limit: int, seconds: float,
                concurrency: int = CONCURRENCY) -> tuple[Load, float, float]:
        """One closed-loop phase; the CPU per request of gateway and store, in ms, counted
        until what the phase queued is done."""
        self.settle()
        cpu = self.cpu()
        load = asyncio.run(drive_async(self.gw.url, concurrency, seconds, request, limit))
        self.drained()
        requests = max(1, load.requests)
        gateway_ms, store_ms = ((after - start) * 1000 / requests
                                for after, start in zip(self.cpu(), cpu))
        return load, gateway_ms, store_ms

    def close(self) -> None:
        self.client.close()


def _mixed(kinds: dict[str, tuple[Request, int]]) -> tuple[Request, int]:
    """Every kind in turn, `len(kinds)` in flight, each kind within its own limit."""
    order = [request for request, _ in kinds.values()]

    async def request(http: Http, n: int) -> bool:
        return await order[n % len(order)](http, n // len(order))

    return request, len(order) * min(limit for _, limit in kinds.values())


def run(sizes: list[int], seconds: float, runs: int) -> str:
    fills: list[list[Any]] = []
    rows: list[list[Any]] = []
    memory: list[list[Any]] = []
    first: dict[str, float] = {}  # kind: gateway + store CPU per request at the first size
    with fake_graph() as graph, gateway(graph, QUERY_CACHE_MB="0") as gw:
        soak = Soak(gw, graph)
        try:
            for size in sizes:
                fills.append(soak.fill(size))
                soak.settle()
                filled = soak.rss()
                kinds = soak.kinds(size)
                measured: dict[str, list[tuple[Load, float, float]]] = {k: [] for k in kinds}
                for _ in range(runs):  # interleaved, so drift hits every kind alike
                    for kind, (request, limit) in kinds.items():
                        measured[kind].append(soak.measure(request, limit, seconds))
                measured_rss = soak.rss()
                measured["mixed"] = [soak.measure(*_mixed(kinds), seconds, len(kinds))]
                mixed_rss = soak.rss()
                for kind, results in measured.items():
                    gateway_ms = median([g for _, g, _ in results])
                    store_ms = median([s for _, _, s in results])
                    first.setdefault(kind, gateway_ms + store_ms)
                    latencies = [t for load, _, _ in results for t in load.latencies]
                    rows.append([size, kind, median([load.rate for load, _, _ in results]),
                                 gateway_ms, store_ms,
                                 f"{(gateway_ms + store_ms) / first[kind]:.2f}×",
                                 percentile(latencies, 0.5) * 1000,
                                 percentile(latencies, 0.99) * 1000,
                                 sum(load.failures for load, _, _ in results)])
                memory.append([size, soak.messages(), *filled, *measured_rss, *mixed_rss])
        finally:
            soak.close()
    return "\n\n".join([
        table(f"Soak, growing the store: signed webhook POSTs of {BATCH} messages, "
              f"{FILL_IN_FLIGHT} in flight (CPU per message posted; then the wait for contact "
              f"profiles)",
              ["size", "messages posted", "conversations", "messages/s",
               "gateway CPU ms/msg", "store CPU ms/msg", "profiles wait s"], fills),
        table(f"Soak, per request kind (QUERY_CACHE_MB=0: every read reaches the store; "
              f"{CONCURRENCY} in flight, mixed: one of each kind; reads alternate a first page "
              f"and a later one; vs {sizes[0]:,}: gateway + store CPU per request)",
              ["size", "kind", "requests/s", "gateway CPU ms/req", "store CPU ms/req",
               f"vs {sizes[0]:,}", "p50 ms", "p99 ms", "failed"], rows),
        table("Soak, resident memory (MiB): after the fill, after the kinds, after the mixed "
              "phase",
              ["size", "messages at end", "gateway filled", "store filled", "gateway kinds",
               "store kinds", "gateway mixed", "store mixed"], memory),
    ])
