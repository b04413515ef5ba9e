"""Websockets that try to hold, flood or crash the gateway, against real gateways on loopback.

A socket that never says `connection_init` is closed (4408) on both protocols; past
WS_MAX_CONNECTIONS (or what the descriptor limit leaves) a socket is refused with 1013 while HTTP
still answers; a malformed frame closes its socket with 4400 and one log line, never a traceback;
and subscribers that stop reading hold a bounded number of bytes, not everything published since.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import secrets
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from tests import payloads
from tests.conftest import connect_page, wait_for
from tests.ws import LEGACY_WS, PROTOCOLS, TRANSPORT_WS, GraphQLSocket

TEXTS = "subscription { messageCreated { content: rawContent } }"


def live(gw) -> int:
    return gw.http.get("/health").json()["subscribers"]


def refused_code(gw, protocol: str = TRANSPORT_WS) -> tuple[int | None, str]:
    """Open a websocket that is accepted and then closed at once: the close code and reason."""
    with GraphQLSocket(gw.url, protocol) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.init()
    received = closed.value.rcvd
    return (received.code, received.reason) if received else (None, "")


def http_answers(gw) -> None:
    assert gw.http.get("/health").status_code == 200
    assert gw.post("/channels.list").status_code == 200


# --- A: uninitialised sockets, and a cap ---

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_socket_that_never_initialises_is_closed(start_gateway, protocol):
    gw = start_gateway(WS_INIT_TIMEOUT_SECONDS="1")
    with GraphQLSocket(gw.url, protocol) as silent:
        opened = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            silent.receive(timeout=5)  # legacy keep-alives are skipped: they come after init only
        waited = time.monotonic() - opened
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == \
        (4408, "Connection initialisation timeout")
    assert 0.8 < waited < 2.5
    with GraphQLSocket(gw.url, protocol) as prompt:  # one that initialises in time stays
        assert prompt.init()["type"] == "connection_ack"
        time.sleep(1.5)
        prompt.subscribe("1", TEXTS)
        wait_for(lambda: live(gw) == 1)


def test_websockets_past_the_cap_are_refused_with_1013_while_http_answers(start_gateway):
    gw = start_gateway(WS_MAX_CONNECTIONS="5")
    held = [GraphQLSocket(gw.url, PROTOCOLS[n % 2]) for n in range(5)]
    try:
        for ws in held[:3]:
            assert ws.init()["type"] == "connection_ack"  # initialised or not, each counts
        code, reason = refused_code(gw)
        assert code == 1013 and "too many open websockets (at most 5)" in reason
        http_answers(gw)
        assert refused_code(gw, LEGACY_WS)[0] == 1013

        held.pop().__exit__(None, None, None)  # one closes: a new one gets in
        held.append(wait_for(lambda: accepted(gw)))
        assert refused_code(gw)[0] == 1013  # and the cap holds again
    finally:
        for ws in held:
            ws.__exit__(None, None, None)
    assert gw.log().count("refusing more with 1013") == 1  # not one line per refusal


def accepted(gw) -> GraphQLSocket | None:
    """A new socket, if it is let in and serves (kept open)."""
    ws = GraphQLSocket(gw.url, TRANSPORT_WS)
    try:
        if ws.init()["type"] == "connection_ack":
            return ws
    except ConnectionClosed:
        pass
    ws.__exit__(None, None, None)
    return None


def test_the_cap_stays_within_the_descriptor_limit(start_gateway, monkeypatch):
    """With 300 descriptors at most (soft and hard), the default cap of 10,000 would let
    websockets take every descriptor: the gateway keeps 256 for the rest and says so."""
    real_popen = subprocess.Popen

    def limited(*args, **kwargs):
        return real_popen(*args, **kwargs, preexec_fn=lambda: resource.setrlimit(
            resource.RLIMIT_NOFILE, (300, 300)))

    monkeypatch.setattr(subprocess, "Popen", limited)
    gw = start_gateway()
    monkeypatch.undo()
    held = [GraphQLSocket(gw.url, TRANSPORT_WS) for _ in range(44)]
    try:
        assert refused_code(gw)[0] == 1013
        http_answers(gw)
    finally:
        for ws in held:
            ws.__exit__(None, None, None)
    assert "at most 44 websockets open at once: WS_MAX_CONNECTIONS is 10000" in gw.log()


def test_the_soft_descriptor_limit_is_raised_to_the_hard_one(start_gateway, monkeypatch):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip(f"the hard descriptor limit here is {hard}")
    real_popen = subprocess.Popen

    def low_soft(*args, **kwargs):
        return real_popen(*args, **kwargs, preexec_fn=lambda: resource.setrlimit(
            resource.RLIMIT_NOFILE, (300, hard)))

    monkeypatch.setattr(subprocess, "Popen", low_soft)
    gw = start_gateway()
    monkeypatch.undo()
    limits = Path(f"/proc/{gw.proc.pid}/limits").read_text()
    line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    assert line.split()[3] != "300"  # the soft limit, raised
    assert "websockets open at once" not in gw.log()  # nothing cut down


# --- B: malformed frames ---

COMMON_FRAMES = ['{"id":"1"}', "[]", "null", "5", '"x"', '{"type": 5}', "not json", b"\x00\x01",
                 "[" * 5000 + "]" * 5000, '{"type": "connection_init", "payload": {"a": NaN}}']
FRAMES = {
    TRANSPORT_WS: [*COMMON_FRAMES, '{"type": "subscribe", "id": "1", "payload": null}',
                   '{"type": "subscribe", "id": 1, "payload": {"query": "{ tags { id } }"}}',
                   '{"type": "subscribe", "id": "1", "payload": {"query": 5}}',
                   '{"type": "complete"}', '{"type": "ping", "payload": 5}'],
    LEGACY_WS: [*COMMON_FRAMES, '{"type": "start", "id": "1", "payload": null}',
                '{"type": "start", "id": "1"}',
                '{"type": "start", "id": "1", "payload": {"query": "{ tags { id } }", '
                '"variables": []}}',
                '{"type": "stop"}', '{"type": "ping"}'],
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_malformed_frame_closes_its_socket_with_4400_and_one_log_line(start_gateway,
                                                                         protocol):
    gw = start_gateway()
    refused = 0
    for initialised in (False, True):
        for frame in FRAMES[protocol]:
            with GraphQLSocket(gw.url, protocol) as ws:
                if initialised:
                    assert ws.init()["type"] == "connection_ack"
                ws.ws.send(frame)
                with pytest.raises(ConnectionClosed) as closed:
                    ws.receive(timeout=5)
            received = closed.value.rcvd
            assert received is not None, (frame, "dropped without a close code")
            assert received.code == 4400, (frame, received)
            assert received.reason and len(received.reason.encode()) <= 123
            refused += 1
    with GraphQLSocket(gw.url, protocol) as ws:  # and the gateway serves on
        assert ws.init()["type"] == "connection_ack"
        ws.subscribe("1", TEXTS)
        wait_for(lambda: live(gw) == 1)
    time.sleep(0.3)
    log = gw.log()
    assert "Traceback" not in log and " ERROR " not in log
    lines = [line for line in log.splitlines() if "closed with 4400" in line]
    assert len(lines) == refused
    assert all(len(line) < 300 and "not json" not in line and "NaN" not in line
               for line in lines)


def test_a_second_connection_init_on_legacy_graphql_ws_is_refused(start_gateway):
    """Each connection_init started one more keep-alive task on the socket, without end."""
    gw = start_gateway()
    with GraphQLSocket(gw.url, LEGACY_WS) as ws:
        assert ws.init()["type"] == "connection_ack"
        ws.send({"type": "connection_init", "payload": {}})
        assert ws.closed_code(timeout=5) == 4429


# --- C: subscribers that stop reading ---

class StalledSocket:
    """A websocket client that subscribes and then never reads again, with a small receive
    buffer: once the buffers between it and the gateway are full, the gateway's sends wait."""

    def __init__(self, gw, protocol: str, op_id: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", gw.port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /graphql HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Sec-WebSocket-Protocol: {protocol}\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += self.sock.recv(1)  # byte by byte: nothing after the headers is read
        assert answer.startswith(b"HTTP/1.1 101"), answer
        self.send({"type": "connection_init", "payload": {}})
        kind = "subscribe" if protocol == TRANSPORT_WS else "start"
        self.send({"type": kind, "id": op_id, "payload": {"query": TEXTS}})

    def send(self, message: dict) -> None:
        data = json.dumps(message).encode()
        mask = os.urandom(4)
        head = bytes([0x81]) + (bytes([0x80 | len(data)]) if len(data) < 126
                                else bytes([0x80 | 126]) + struct.pack("!H", len(data)))
        self.sock.sendall(head + mask + bytes(b ^ mask[n % 4] for n, b in enumerate(data)))

    def close(self) -> None:
        self.sock.close()


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("VmRSS:"))) / 1024


@pytest.mark.parametrize("multiplex", ["1", "0"], ids=["multiplexed", "per-subscriber"])
def test_stalled_subscribers_hold_a_bounded_number_of_bytes(start_gateway, graph, multiplex):
    gw = start_gateway(SUBSCRIPTION_MULTIPLEX=multiplex, MAX_BODY_BYTES=str(2 * 2**20))
    page = connect_page(gw, graph)["source_channel_id"]
    stalled = [StalledSocket(gw, PROTOCOLS[n % 2], f"s{n}") for n in range(6)]
    try:
        with GraphQLSocket(gw.url, TRANSPORT_WS) as reader:
            reader.init()
            reader.subscribe("r", TEXTS)
            wait_for(lambda: live(gw) == 7)
            say(gw, page, "warm-up")
            assert text_of(reader.next("r")) == "warm-up"
            before = rss_mib(gw.proc.pid)
            for n in range(80):
                text = f"{n} {secrets.token_urlsafe(375_000)}"  # 500 KB that do not compress
                say(gw, page, text)
                assert text_of(reader.next("r")) == text  # every one, never held back
            time.sleep(0.5)
            grown = rss_mib(gw.proc.pid) - before
            # Each stalled subscriber holds at most SUBSCRIPTION_QUEUE_MB (4) of what was published
            # (40 MB in all) and the frame it was being sent; all of it, when bound by count only.
            assert grown < 25, f"the gateway grew by {grown:.0f} MiB"
            wait_for(lambda: live(gw) == 1)  # the six were cut off as too slow
            say(gw, page, "still here")
            assert text_of(reader.next("r")) == "still here"
    finally:
        for sock in stalled:
            sock.close()


def say(gw, page: str, text: str) -> None:
    body = payloads.envelope(page, payloads.text(page, "6501", text))
    assert gw.webhook(body).status_code == 200


def text_of(result: dict) -> str:
    return result["data"]["messageCreated"]["content"]["message"]["text"]


@pytest.mark.parametrize("multiplex", ["1", "0"], ids=["multiplexed", "per-subscriber"])
def test_a_slow_reader_is_cut_off_by_bytes_and_told_why(start_gateway, graph, multiplex):
    gw = start_gateway(SUBSCRIPTION_MULTIPLEX=multiplex, SUBSCRIPTION_QUEUE_MB="1",
                       MAX_BODY_BYTES=str(2 * 2**20))
    page = connect_page(gw, graph)["source_channel_id"]
    raw = socket.socket()  # reads nothing until the end (see test_multiplex's slow subscriber)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", gw.port))
    with GraphQLSocket(gw.url, TRANSPORT_WS) as fast, \
            GraphQLSocket(gw.url, LEGACY_WS, sock=raw, max_queue=1, compression=None) as slow:
        fast.init()
        slow.init()
        fast.subscribe("f", TEXTS)
        slow.subscribe("s", TEXTS)
        wait_for(lambda: live(gw) == 2)
        sent = []
        for n in range(40):  # 12 MB: far fewer events than SUBSCRIPTION_QUEUE_SIZE (1000)
            sent.append(f"{n} {secrets.token_urlsafe(225_000)}")
            say(gw, page, sent[-1])
            assert text_of(fast.next("f")) == sent[-1]
        wait_for(lambda: live(gw) == 1)  # cut off, no longer counted

        received = []
        while "errors" not in (payload := slow.next("s", timeout=30)):
            received.append(text_of(payload))
        assert received == sent[:len(received)] and len(received) < len(sent)
        error = payload["errors"][0]
        assert error["extensions"]["code"] == "SUBSCRIBER_TOO_SLOW"
        assert "more than 1 MiB of events were waiting" in error["message"]
        assert slow.receive() == {"type": "complete", "id": "s"}
