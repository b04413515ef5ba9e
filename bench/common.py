"""What every benchmark needs: a gateway of its own, a load generator, and statistics.

Everything runs on 127.0.0.1. The load generator speaks raw HTTP/1.1 over asyncio streams,
because a full client library would spend more of the machine's two cores than the server it
measures.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pymongo

from gateway.sources.facebook.signature import sign
from tests.conftest import APP_ID, APP_SECRET, VERIFY_TOKEN, GatewayProcess, free_port
from tests.fake_graph import FakeGraph, FakeGraphServer

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# An external MongoDB replica set (`--mongodb-url`) the gateways use instead of each its own
# embedded nx-27017: each gateway then has a database of its own there, dropped once it stops.
MONGODB_URL = ""


def raise_open_files() -> None:
    """Thousands of websockets need thousands of descriptors; children inherit the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextmanager
def fake_graph() -> Iterator[FakeGraph]:
    server = FakeGraphServer(timeout_sleep=1.0)
    graph = server.start()
    try:
        yield graph
    finally:
        server.stop()


@contextmanager
def gateway(graph: FakeGraph, **env: str) -> Iterator[GatewayProcess]:
    """A gateway on its own embedded nx-27017 (as `messenger-gateway` runs by default), or on a
    database of its own in MONGODB_URL's replica set."""
    database = "bench_" + uuid.uuid4().hex[:12]
    with tempfile.TemporaryDirectory(prefix="bench-") as data:
        settings = {
            "MONGODB_URL": MONGODB_URL, "MONGODB_DATABASE": database, "DATA_DIR": data,
            "FACEBOOK_APP_ID": APP_ID,
            "FACEBOOK_APP_SECRET": APP_SECRET, "FACEBOOK_WEBHOOK_SECRET": VERIFY_TOKEN,
            "FACEBOOK_GRAPH_API_URL": graph.url, "LOG_LEVEL": "WARNING",
            "WORKER_POLL_SECONDS": "0.2", "SYSTEM_TOKEN": "",
            **env,
        }
        process = GatewayProcess(settings, Path(data) / "gateway.log")
        try:
            yield process.start()
        finally:
            process.stop()
            if MONGODB_URL:
                with pymongo.MongoClient(MONGODB_URL) as client:
                    client.drop_database(database)


@contextmanager
def baseline_server(**env: str) -> Iterator[str]:
    """bench/baseline.py under uvicorn, as the gateway runs: the ceiling of the stack itself."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.baseline:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env={**os.environ, "BENCH_APP_SECRET": APP_SECRET, **env},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url + "/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the baseline server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def signed(payload: Any) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(payload).encode()
    return raw, {"X-Hub-Signature-256": sign(APP_SECRET, raw)}


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of one process so far (not its children: not the store); NaN for
    none (an external store's)."""
    if pid is None:
        return float("nan")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children(pid: int) -> list[int]:
    """The direct children of a process: the gateway's embedded store."""
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()]


def store_pid(gw: GatewayProcess) -> int | None:
    """The process of a gateway's embedded store; None on an external store (not measured)."""
    assert gw.proc
    return None if MONGODB_URL else children(gw.proc.pid)[0]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class Http:
    """One keep-alive HTTP/1.1 connection that posts bodies and reads the answers."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_headers: dict[str, str] = {}  # of the last answer, names in lower case

    async def post(self, path: str, body: bytes, headers: dict[str, str] | None = None
                   ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n".encode() + body)
        status = int((await self.reader.readline()).split()[1])
        headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            headers[name.decode("latin-1").lower()] = value.strip().decode("latin-1")
        self.last_headers = headers
        return status, await self.reader.readexactly(int(headers.get("content-length", 0)))

    def close(self) -> None:
        if self.writer:
            self.writer.close()


@dataclass
class Load:
    requests: int = 0
    failures: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


Request = Callable[[Http, int], Awaitable[bool]]


async def drive_async(url: str, concurrency: int, seconds: float, request: Request,
                      limit: int = 1 << 62) -> Load:
    """`concurrency` connections sending `request` back to back, until `seconds` have passed or
    `limit` requests have been sent, whichever comes first."""
    load = Load()
    deadline = time.monotonic() + seconds
    numbers = iter(range(limit))

    async def worker() -> None:
        http = Http(url)
        try:
            while time.monotonic() < deadline and (n := next(numbers, None)) is not None:
                started = time.monotonic()
                ok = await request(http, n)
                load.latencies.append(time.monotonic() - started)
                load.requests += ok
                load.failures += not ok
        finally:
            http.close()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    load.seconds = time.monotonic() - started
    return load


def drive(url: str, concurrency: int, seconds: float, request: Request) -> Load:
    """`concurrency` connections, each sending `request` back to back for `seconds`."""
    return asyncio.run(drive_async(url, concurrency, seconds, request))


def table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    cells = [header] + [[_cell(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [title, "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.rjust(w) for c, w in zip(row, widths)) + " |"
              for row in cells[1:]]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "–"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
