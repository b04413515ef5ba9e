"""Real parts on loopback: an nx-27017 server, the fake Graph API, and gateway processes under uvicorn."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.sources.facebook.signature import sign
from tests.fake_graph import FakeGraph, FakeGraphServer
from tests.receiver import Receiver, ReceiverServer

APP_SECRET = "test-app-secret"
APP_ID = "424242"
VERIFY_TOKEN = "test-verify-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


def start_nx(data: Path, port: int) -> subprocess.Popen:
    """An nx-27017 server on 127.0.0.1:`port` keeping its files in `data`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "nx_27017.nx_27017", "--data-dir", str(data), "-p", str(port),
         "--pid-file", str(data / "nx.pid"), "--log-file", str(data / "nx.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("nx-27017 did not start")
            time.sleep(0.05)


def nx_url_for(port: int) -> str:
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"


class OwnNx:
    """An nx-27017 server of one test's own, which the test may kill and start again."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.url = nx_url_for(self.port)
        self.proc = start_nx(data, self.port)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def restart(self) -> None:
        self.proc = start_nx(self.data, self.port)


@pytest.fixture
def own_nx(tmp_path: Path) -> Iterator[OwnNx]:
    data = tmp_path / "own-nx"
    data.mkdir()
    server = OwnNx(data)
    yield server
    server.kill()


@pytest.fixture(scope="module")
def nx_url(tmp_path_factory) -> Iterator[str]:
    """One nx-27017 server per test module; each gateway gets a database of its own.

    Per module, not per session: nx-27017 keeps at most 100 databases open, and once that many
    have had change streams it may close a database it has just opened ("Cannot operate on a
    closed database").
    """
    port = free_port()
    proc = start_nx(tmp_path_factory.mktemp("nx"), port)
    yield nx_url_for(port)
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def graph_server() -> Iterator[FakeGraph]:
    server = FakeGraphServer(timeout_sleep=3.0)
    graph = server.start()
    yield graph
    server.stop()


@pytest.fixture(scope="module")
def receiver_server() -> Iterator[Receiver]:
    """An outgoing-webhook receiver on loopback, one per test module."""
    server = ReceiverServer()
    yield server.start()
    server.stop()


@pytest.fixture
def receiver(receiver_server: Receiver) -> Receiver:
    """The receiver, emptied and answering 200 again for each test."""
    with receiver_server.lock:
        receiver_server.received.clear()
        receiver_server.fail_next = 0
        receiver_server.refused = 0
    return receiver_server


@pytest.fixture
def graph(graph_server: FakeGraph) -> FakeGraph:
    """The fake Graph API, emptied for each test."""
    graph_server.reset()
    return graph_server


class GatewayProcess:
    """`python -m gateway` as a child process, with its log captured to a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def start(self) -> GatewayProcess:
        env = {**os.environ, **self.env, "PORT": str(self.port), "HOST": "127.0.0.1"}
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway"], env=env,
                                     stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited at start-up:\n{self.log()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gateway did not start:\n{self.log()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 15) -> float:
        """SIGTERM, then SIGKILL after `timeout` s; how long it took to exit (0: not running)."""
        started = time.monotonic()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine dies."""
        assert self.proc
        self.proc.kill()
        self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- speaking to it ---

    def post(self, route: str, body: Any = None, **kwargs) -> httpx.Response:
        return self.http.post(route, json=body if body is not None else {}, **kwargs)

    def webhook(self, payload: Any, secret: str = APP_SECRET) -> httpx.Response:
        raw = json.dumps(payload).encode()
        return self.http.post("/facebook", content=raw, headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": sign(secret, raw)})


@pytest.fixture
def start_gateway(nx_url: str, graph_server: FakeGraph, tmp_path: Path):
    """Start gateways with test settings (own database each); `**env` overrides them."""
    started: list[GatewayProcess] = []

    def start(database: str | None = None, **env: str) -> GatewayProcess:
        settings = {
            "MONGODB_URL": nx_url,
            "MONGODB_DATABASE": database or "t_" + uuid.uuid4().hex[:12].translate(
                str.maketrans("0123456789", "ghijklmnop")),
            "FACEBOOK_APP_ID": APP_ID,
            "FACEBOOK_APP_SECRET": APP_SECRET,
            "FACEBOOK_WEBHOOK_SECRET": VERIFY_TOKEN,
            "FACEBOOK_GRAPH_API_URL": graph_server.url,
            "GRAPH_API_TIMEOUT_SECONDS": "1",
            "RETRY_BASE_SECONDS": "0.05",
            "RETRY_MAX_SECONDS": "0.5",
            "WORKER_POLL_SECONDS": "0.1",
            "SEND_MAX_ATTEMPTS": "4",
            "LOG_LEVEL": "INFO",
            # The tests read what they post right after: a POST answers once it is applied.
            "WEBHOOK_APPLY_WAIT_MS": "60000",
            # The tests' webhook receiver listens on 127.0.0.1.
            "WEBHOOK_ALLOW_PRIVATE": "1",
            **env,
        }
        gw = GatewayProcess(settings, tmp_path / f"gateway-{len(started)}.log").start()
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()


@pytest.fixture
def gateway(start_gateway) -> GatewayProcess:
    return start_gateway()


@pytest.fixture(scope="module")
def shared_gateway(nx_url: str, graph_server: FakeGraph,
                   tmp_path_factory) -> Iterator[GatewayProcess]:
    """One gateway for the cases of a module that change nothing it keeps (refusals of bad
    input): each would otherwise start a gateway of its own, at about a second each."""
    process = GatewayProcess({
        "MONGODB_URL": nx_url, "MONGODB_DATABASE": "t_shared_" + uuid.uuid4().hex[:8].translate(
            str.maketrans("0123456789", "ghijklmnop")),
        "FACEBOOK_APP_ID": APP_ID, "FACEBOOK_APP_SECRET": APP_SECRET,
        "FACEBOOK_WEBHOOK_SECRET": VERIFY_TOKEN, "FACEBOOK_GRAPH_API_URL": graph_server.url,
        "GRAPH_API_TIMEOUT_SECONDS": "1", "WORKER_POLL_SECONDS": "0.1", "LOG_LEVEL": "INFO",
        "WEBHOOK_ALLOW_PRIVATE": "1",
    }, tmp_path_factory.mktemp("shared") / "gateway.log").start()
    yield process
    process.stop()


def connect_page(gw: GatewayProcess, graph: FakeGraph, page_id: str | None = None,
                 token: str | None = None, **extra: Any) -> dict[str, Any]:
    """Connect a page the fake Graph API knows; returns the channel JSON."""
    page_id = page_id or str(100000 + uuid.uuid4().int % 900000)
    token = token or f"EAAtoken{uuid.uuid4().hex}"
    graph.add_page(page_id, token)
    response = gw.post("/channels.facebook.connect",
                       {"page_id": page_id, "page_token": token, **extra})
    assert response.status_code == 200, response.text
    return response.json()
