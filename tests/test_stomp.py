"""Airy's realtime endpoint, `/ws.communication` (STOMP over a websocket), against real gateways:
Airy's own client library (@stomp/stompjs under Node), stomp.py, and a raw websocket for what no
polite client sends (bad frames, silence, flooding)."""

from __future__ import annotations

import json
import queue
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import stomp
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from gateway.stomp.frames import Frame, Parser, encode
from tests import payloads
from tests.conftest import GatewayProcess, connect_page, wait_for
from tests.node import Lines

STOMP_JS = Path(__file__).parent / "stomp-js"
TOKEN = "stomp-s3cret"


def subscribers(gw: GatewayProcess) -> int:
    return gw.http.get("/health").json()["subscribers"]


def say(gw: GatewayProcess, page: str, text: str, psid: str = "7001") -> None:
    response = gw.webhook(payloads.envelope(page, payloads.text(page, psid, text)))
    assert response.status_code == 200, response.text


class RawStomp:
    """A websocket speaking STOMP frame by frame, reading with the gateway's own codec."""

    def __init__(self, gw: GatewayProcess, subprotocols: list[str] | None = None,
                 headers: dict[str, str] | None = None, version: str = "1.2",
                 **options: Any) -> None:
        url = gw.url.replace("http://", "ws://") + "/ws.communication"
        self._connection = connect(
            url, subprotocols=["v12.stomp", "v11.stomp", "v10.stomp"] if subprotocols is None
            else subprotocols, additional_headers=headers or {}, open_timeout=10, **options)
        self.ws = self._connection.__enter__()
        self.parser = Parser(10**8, version)
        self.pending: list[Frame | None] = []

    def __enter__(self) -> RawStomp:
        return self

    def __exit__(self, *exc: object) -> None:
        self._connection.__exit__(None, None, None)

    def send(self, frame: Frame | bytes | str) -> None:
        self.ws.send(encode(frame, self.parser.version) if isinstance(frame, Frame) else frame)

    def receive(self, timeout: float = 10, beats: bool = False) -> Frame | None:
        """The next frame (and, with `beats`, heart-beats as None)."""
        deadline = time.monotonic() + timeout
        while True:
            while self.pending:
                item = self.pending.pop(0)
                if item is not None or beats:
                    return item
            data = self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01))
            self.pending += self.parser.feed(data.encode() if isinstance(data, str) else data)

    def connect(self, **headers: str) -> Frame:
        self.send(Frame("CONNECT", tuple({"accept-version": "1.0,1.1,1.2", "host": "gw",
                                          **headers}.items())))
        frame = self.receive()
        assert frame is not None
        if frame.command == "CONNECTED":
            self.parser.version = frame.get("version") or "1.0"
        return frame

    def subscribe(self, sub_id: str = "0", **headers: str) -> None:
        self.send(Frame("SUBSCRIBE", (("id", sub_id), ("destination", "/events"),
                                      ("receipt", f"r-{sub_id}"), *headers.items())))
        receipt = self.receive()
        assert receipt == Frame("RECEIPT", (("receipt-id", f"r-{sub_id}"),)), receipt

    def event(self, kind: str, timeout: float = 10) -> tuple[Frame, dict[str, Any]]:
        """The next MESSAGE whose event is of `kind` (others are passed over)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.receive(max(deadline - time.monotonic(), 0.01))
            assert frame is not None and frame.command == "MESSAGE", frame
            event = json.loads(frame.body)
            if event["type"] == kind:
                return frame, event["payload"]

    def closed(self, timeout: float = 10) -> tuple[int | None, list[Frame]]:
        """Read to the close: its code, and the frames before it."""
        frames: list[Frame] = []
        try:
            while True:
                frame = self.receive(timeout)
                if frame is not None:
                    frames.append(frame)
        except ConnectionClosed as exc:
            return (exc.rcvd.code if exc.rcvd else None), frames

    def refused(self, timeout: float = 10) -> tuple[int | None, Frame]:
        """The ERROR frame the gateway ends with, and its close code."""
        code, frames = self.closed(timeout)
        assert frames and frames[-1].command == "ERROR", frames
        return code, frames[-1]


# --- Airy's client library -------------------------------------------------------------------

def stomp_js(options: dict[str, Any]) -> subprocess.Popen:
    if shutil.which("node") is None or not (STOMP_JS / "node_modules" / "@stomp").is_dir():
        pytest.skip("Node or tests/stomp-js/node_modules missing (npm ci in tests/stomp-js)")
    return subprocess.Popen(["node", str(STOMP_JS / "client.mjs"), json.dumps(options)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize("processes", [1, 2], ids=["one process", "two processes"])
def test_airys_client_library_gets_events_with_the_cookie_and_disconnects_with_a_receipt(
        start_gateway, graph, processes):
    gw = start_gateway(SYSTEM_TOKEN=TOKEN)
    reader = gw if processes == 1 else \
        start_gateway(database=gw.env["MONGODB_DATABASE"], SYSTEM_TOKEN=TOKEN)
    gw.http.headers["Authorization"] = f"Bearer {TOKEN}"
    channel = connect_page(gw, graph)
    page_id = channel["source_channel_id"]
    url = reader.url.replace("http://", "ws://") + "/ws.communication"
    # As in a browser: no CONNECT headers, the airy_auth_token cookie on the upgrade.
    client = stomp_js({"url": url, "wsHeaders": {"Cookie": f"airy_auth_token={TOKEN}"},
                       "until": "message.created", "heartbeat": [2000, 2000]})
    lines = Lines(client, "stompjs")
    try:
        connected = lines.until("connected")
        assert connected["headers"]["version"] == "1.2"
        assert connected["headers"]["heart-beat"] == "1000,1000"
        lines.until("subscribed")
        response = gw.webhook(payloads.envelope(page_id, payloads.text(page_id, "7100", "Hi!")))
        assert response.status_code == 200
        # Events come in the order the store wrote them (the new conversation's first);
        # the client stops at the message's.
        while (created := lines.until("message"))["body"]["type"] != "message.created":
            pass
        assert created["headers"]["destination"] == "/events"
        assert created["headers"]["subscription"] == "sub-0"
        assert created["headers"]["content-type"] == "application/json"
        assert created["headers"]["message-id"]
        payload = created["body"]["payload"]
        assert payload["channel_id"] == channel["id"]
        assert payload["message"]["content"]["message"]["text"] == "Hi!"
        assert payload["message"]["from_contact"] is True
        assert payload["message"]["sender"]["id"] == "7100"
        # stompjs deactivates after it: DISCONNECT with a receipt, answered before the close.
        closed = lines.until("closed")
        assert closed["code"] == 1000
        assert any(item["event"] == "debug" and "<<< RECEIPT" in item["line"]
                   for item in lines.seen), lines.seen
    finally:
        client.kill()
        client.wait()


def test_airys_client_library_is_told_401_when_the_token_is_refused(start_gateway):
    gw = start_gateway(SYSTEM_TOKEN=TOKEN)
    url = gw.url.replace("http://", "ws://") + "/ws.communication"
    client = stomp_js({"url": url, "wsHeaders": {"Cookie": "airy_auth_token=wrong"}})
    lines = Lines(client, "stompjs")
    try:
        error = lines.until("error")
        assert "401" in error["headers"]["message"]
        assert lines.until("closed")["code"] == 4401
    finally:
        client.kill()
        client.wait()


# --- stomp.py, on one process and on two sharing one store -----------------------------------

class Collect(stomp.ConnectionListener):
    def __init__(self) -> None:
        self.events: queue.Queue[tuple[dict[str, str], dict[str, Any]]] = queue.Queue()

    def on_message(self, frame) -> None:
        self.events.put((frame.headers, json.loads(frame.body)))

    def next(self, kind: str, timeout: float = 10) -> tuple[dict[str, str], dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            headers, event = self.events.get(timeout=max(deadline - time.monotonic(), 0.01))
            if event["type"] == kind:
                return headers, event["payload"]


def stomp_py(gw: GatewayProcess, **connect: Any) -> tuple[stomp.WSStompConnection, Collect]:
    connection = stomp.WSStompConnection([("127.0.0.1", gw.port)], ws_path="/ws.communication",
                                         heartbeats=(0, 0), timeout=10)
    collect = Collect()
    connection.set_listener("collect", collect)
    connection.connect(wait=True, **connect)
    connection.subscribe("/events", id="py", ack="client-individual")
    return connection, collect


@pytest.mark.parametrize("processes", [1, 2], ids=["one process", "two processes"])
def test_stomp_py_gets_every_kind_of_event_from_any_process(start_gateway, graph, processes):
    writer = start_gateway(SYSTEM_TOKEN=TOKEN)
    reader = writer if processes == 1 else \
        start_gateway(database=writer.env["MONGODB_DATABASE"], SYSTEM_TOKEN=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    writer.http.headers.update(auth)
    connection, collect = stomp_py(reader, passcode=TOKEN)
    try:
        wait_for(lambda: subscribers(reader) == 1)

        channel = connect_page(writer, graph)
        _, payload = collect.next("channel.updated")
        assert payload["id"] == channel["id"] and payload["connected"] is True
        assert payload["source_channel_id"] == channel["source_channel_id"]
        _, meta = collect.next("metadata.updated")
        assert meta == {"subject": "channel", "identifier": channel["id"],
                        "metadata": channel["metadata"]}

        page = channel["source_channel_id"]
        say(writer, page, "hello over STOMP", psid="7200")
        headers, payload = collect.next("message.created")
        assert headers["destination"] == "/events" and headers["subscription"] == "py"
        assert headers["ack"] == headers["message-id"]  # 1.2, an ack mode other than auto
        message = payload["message"]
        assert message["content"]["message"]["text"] == "hello over STOMP"
        conversation = payload["conversation_id"]
        assert payload["channel_id"] == channel["id"]
        for field in ("id", "content", "delivery_state", "from_contact", "sent_at", "source",
                      "sender"):
            assert field in message

        tag = writer.post("/tags.create", {"name": "vip", "color": "tag-red"}).json()
        _, payload = collect.next("tag.updated")
        assert payload == tag

        assert writer.post("/conversations.tag", {"conversation_id": conversation,
                                                  "tag_id": tag["id"]}).status_code == 204
        while True:
            _, meta = collect.next("metadata.updated")
            if meta["subject"] == "conversation" and meta["metadata"]["tags"]:
                break
        info = writer.post("/conversations.info", {"conversation_id": conversation}).json()
        assert meta == {"subject": "conversation", "identifier": conversation,
                        "metadata": info["metadata"]}

        sent = writer.post("/messages.send", {"conversation_id": conversation,
                                              "message": {"text": "answer"}}).json()
        while True:
            _, payload = collect.next("message.updated")
            if payload["message"]["delivery_state"] == "delivered":
                break
        assert payload["message"]["id"] == sent["id"]
        _, meta = collect.next("metadata.updated")
        assert meta["subject"] == "message" and meta["identifier"] == sent["id"]
        assert meta["metadata"]["source"]["id"]
    finally:
        connection.disconnect()  # DISCONNECT with a receipt, which stomp.py waits for
    wait_for(lambda: subscribers(reader) == 0)


# --- auth --------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["header", "cookie", "connect-authorization", "passcode"])
def test_each_way_of_presenting_the_token_is_accepted(shared_token_gateway, how):
    upgrade = {"header": {"Authorization": f"Bearer {TOKEN}"},
               "cookie": {"Cookie": f"airy_auth_token={TOKEN}; other=1"}}.get(how, {})
    connect_headers = {"connect-authorization": {"Authorization": f"Bearer {TOKEN}"},
                       "passcode": {"login": "any", "passcode": TOKEN}}.get(how, {})
    with RawStomp(shared_token_gateway, headers=upgrade) as client:
        connected = client.connect(**connect_headers)
        assert connected.command == "CONNECTED", connected
        client.subscribe()


@pytest.mark.parametrize("upgrade, connect_headers", [
    ({}, {}),
    ({"Cookie": "airy_auth_token=wrong"}, {}),
    ({}, {"passcode": "wrong"}),
    ({"Authorization": "Bearer wrong"}, {"Authorization": "wrong"}),
])
def test_a_refused_token_is_an_error_with_401_then_a_close(shared_token_gateway, upgrade,
                                                           connect_headers):
    with RawStomp(shared_token_gateway, headers=upgrade) as client:
        client.send(Frame("CONNECT", (("accept-version", "1.2"), *connect_headers.items())))
        code, error = client.refused()
        assert code == 4401
        assert "401" in (error.get("message") or "")


@pytest.fixture(scope="module")
def shared_token_gateway(nx_url, graph_server, tmp_path_factory):
    process = GatewayProcess({
        "MONGODB_URL": nx_url, "MONGODB_DATABASE": "t_stomp_" + secrets.token_hex(4).translate(
            str.maketrans("0123456789", "ghijklmnop")),
        "FACEBOOK_GRAPH_API_URL": graph_server.url, "SYSTEM_TOKEN": TOKEN,
        "WS_INIT_TIMEOUT_SECONDS": "1", "WS_MAX_MESSAGE_BYTES": "4096",
        "WS_MAX_SUBSCRIPTIONS": "2", "LOG_LEVEL": "INFO",
    }, tmp_path_factory.mktemp("stomp") / "gateway.log").start()
    yield process
    process.stop()


# --- the protocol ------------------------------------------------------------------------------

@pytest.mark.parametrize("subprotocol, accept, version", [
    ("v12.stomp", "1.0,1.1,1.2", "1.2"),
    ("v11.stomp", "1.0,1.1", "1.1"),
    ("v10.stomp", None, "1.0"),
])
def test_versions_are_agreed_as_the_client_offers(shared_token_gateway, subprotocol, accept,
                                                  version):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with RawStomp(shared_token_gateway, subprotocols=[subprotocol], headers=auth) as client:
        assert client.ws.subprotocol == subprotocol
        headers = (("accept-version", accept),) if accept else ()
        client.send(Frame("CONNECT", headers))
        connected = client.receive()
        assert connected is not None and connected.command == "CONNECTED"
        assert connected.get("version") == version
        client.parser.version = version
        if version == "1.0":  # a SUBSCRIBE without an id is 1.0's
            client.send(Frame("SUBSCRIBE", (("destination", "/events"), ("receipt", "x"))))
        else:  # escaped in 1.1 and 1.2: the id comes back as it was
            client.send(Frame("SUBSCRIBE", (("destination", "/events"), ("id", "a:b\nc"),
                                            ("receipt", "x"))))
        assert client.receive() == Frame("RECEIPT", (("receipt-id", "x"),))
        client.send(Frame("DISCONNECT", (("receipt", "bye"),)))
        code, frames = client.closed()
        assert frames == [Frame("RECEIPT", (("receipt-id", "bye"),))] and code == 1000


def test_a_version_the_gateway_does_not_speak_is_refused(shared_token_gateway):
    with RawStomp(shared_token_gateway, headers={"Authorization": TOKEN}) as client:
        client.send(Frame("CONNECT", (("accept-version", "2.0"),)))
        code, error = client.refused()
        assert code == 4400 and error.get("version") == "1.0,1.1,1.2"


@pytest.mark.parametrize("frames, why", [
    ([b"\x00\xff garbage\0"], "empty line"),
    ([b"hello there\n\n\0"], "command"),
    ([Frame("SUBSCRIBE", (("id", "1"), ("destination", "/events")))], "first frame"),
    (["CONNECT\naccept-version:1.2\n\n\0", "SUBSCRIBE\ndestination:/events\n\n\0"], "id"),
    (["CONNECT\naccept-version:1.2\n\n\0", "SUBSCRIBE\nid:1\ndestination:/topic/x\n\n\0"],
     "destination"),
    (["CONNECT\naccept-version:1.2\n\n\0", "SUBSCRIBE\nid:1\ndestination:/events\nack:never\n\n\0"],
     "ack"),
    (["CONNECT\naccept-version:1.2\n\n\0", "SEND\ndestination:/events\nreceipt:77\n\nhi\0"],
     "only delivers events"),
    (["CONNECT\naccept-version:1.2\n\n\0", "SUBSCRIBE\nid:\\t\ndestination:/events\n\n\0"],
     "escape"),
    (["CONNECT\naccept-version:1.2\nheart-beat:soon\n\n\0"], "heart-beat"),
    (["CONNECT\naccept-version:1.2\n\n\0", "CONNECT\naccept-version:1.2\n\n\0"], "already"),
    (["CONNECT\naccept-version:1.2\n\n\0", "FROB\n\n\0"], "unknown command"),
    (["CONNECT\naccept-version:1.2\n\n\0"] + [f"SUBSCRIBE\nid:{n}\ndestination:/events\n\n\0"
                                              for n in range(3)], "at most 2 subscriptions"),
    (["CONNECT\naccept-version:1.2\n\n\0", "SUBSCRIBE\nid:1\ndestination:/events\n\n\0",
      "SUBSCRIBE\nid:1\ndestination:/events\n\n\0"], "already open"),
])
def test_bad_frames_are_an_error_with_a_message_then_a_close(shared_token_gateway, frames, why):
    with RawStomp(shared_token_gateway, headers={"Authorization": TOKEN}) as client:
        for frame in frames:
            client.send(frame)
        code, received = client.closed()
        error = received[-1]
        assert error.command == "ERROR" and code == 4400, received
        assert why in (error.get("message") or ""), error
        if any("receipt:77" in str(frame) for frame in frames):
            assert error.get("receipt-id") == "77"


def test_frames_may_come_split_or_joined_and_ack_is_taken(shared_token_gateway):
    with RawStomp(shared_token_gateway, headers={"Authorization": TOKEN}) as client:
        client.send(b"CONNECT\naccept-")
        client.send(b"version:1.2\n\n\0\nSUBSCRIBE\nid:1\ndestination:/events\n")
        client.send(b"receipt:r\n\n\0ACK\nid:x\nreceipt:a\n\n\0")
        assert client.receive().command == "CONNECTED"
        assert client.receive() == Frame("RECEIPT", (("receipt-id", "r"),))
        assert client.receive() == Frame("RECEIPT", (("receipt-id", "a"),))


# --- heart-beats, time-outs and limits -----------------------------------------------------------

def test_heart_beats_go_both_ways_and_a_silent_client_is_closed(shared_token_gateway):
    with RawStomp(shared_token_gateway, headers={"Authorization": TOKEN}) as client:
        connected = client.connect(**{"heart-beat": "0,500"})
        assert connected.get("heart-beat") == "1000,1000"
        started = time.monotonic()
        assert client.receive(timeout=5, beats=True) is None  # a heart-beat, at max(500, 1000)
        assert client.receive(timeout=5, beats=True) is None
        assert 1.5 < time.monotonic() - started < 4
    with RawStomp(shared_token_gateway, headers={"Authorization": TOKEN}) as client:
        client.connect(**{"heart-beat": "1000,0"})  # sends every second, from now on: never
        for _ in range(3):
            time.sleep(0.8)
            client.send("\n")  # heart-beats keep it open
        started = time.monotonic()
        code, error = client.refused(timeout=10)
        assert code == 4408 and "no frame nor heart-beat for 2 s" in error.get("message")
        assert 1.5 < time.monotonic() - started < 4


def test_a_socket_without_connect_is_closed_in_time(shared_token_gateway):
    with RawStomp(shared_token_gateway) as client:
        code, error = client.refused(timeout=10)
        assert code == 4408 and "no CONNECT frame within 1 s" in error.get("message")


def test_frames_past_the_size_limit_are_refused(shared_token_gateway):
    with RawStomp(shared_token_gateway, headers={"Authorization": TOKEN}) as client:
        client.connect()
        client.send(b"SEND\ndestination:/events\n\n" + b"x" * 5000 + b"\0")  # one message
        code, _ = client.closed()
        assert code == 1009  # too big for the server to take
    with RawStomp(shared_token_gateway, headers={"Authorization": TOKEN}) as client:
        client.connect()
        for _ in range(3):  # a frame in parts, each small
            client.send(b"SEND\ndestination:/events\n" + b"k:" + b"v" * 2000 + b"\n")
        code, error = client.refused()
        assert code == 4400 and "larger than 4096 bytes" in error.get("message")


def test_the_websocket_cap_counts_stomp_sockets(start_gateway):
    gw = start_gateway(WS_MAX_CONNECTIONS="1")
    with RawStomp(gw) as first:
        assert first.connect().command == "CONNECTED"
        with RawStomp(gw) as second:
            code, frames = second.closed()
            assert code == 1013 and frames == []
        first.subscribe()


def test_a_slow_reader_is_cut_off_and_told_why_and_the_rest_go_on(start_gateway, graph):
    gw = start_gateway(SUBSCRIPTION_QUEUE_MB="1", MAX_BODY_BYTES=str(2 * 2**20))
    page = connect_page(gw, graph)["source_channel_id"]
    raw = socket.socket()  # reads nothing until the end
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", gw.port))
    with RawStomp(gw) as fast, RawStomp(gw, sock=raw, max_queue=1, compression=None) as slow:
        fast.connect()
        slow.connect()
        fast.subscribe()
        slow.subscribe()
        wait_for(lambda: subscribers(gw) == 2)
        sent = []
        for n in range(40):  # 9 MB: far fewer events than SUBSCRIPTION_QUEUE_SIZE (1000)
            sent.append(f"{n} {secrets.token_urlsafe(225_000)}")
            say(gw, page, sent[-1])
            _, payload = fast.event("message.created", timeout=30)
            assert payload["message"]["content"]["message"]["text"] == sent[-1]
        wait_for(lambda: subscribers(gw) == 1)  # cut off, no longer counted

        code, frames = slow.closed(timeout=30)
        texts = [json.loads(f.body)["payload"]["message"]["content"]["message"]["text"]
                 for f in frames if f.command == "MESSAGE"
                 and json.loads(f.body)["type"] == "message.created"]
        assert texts == sent[:len(texts)] and len(texts) < len(sent)
        assert frames[-1].command == "ERROR", frames[-1]
        assert "more than 1 MiB of events were waiting" in frames[-1].get("message")
        assert code == 1013
        say(gw, page, "after the cut")  # the fast one is served still
        _, payload = fast.event("message.created")
        assert payload["message"]["content"]["message"]["text"] == "after the cut"
