"""Subscriptions over HTTP against a real gateway: Apollo's multipart protocol and graphql-sse.

Read with `http.client` over a socket of the test's own, so that a test can hold a reader that
reads nothing (a slow client) and see each part as the gateway writes it.
"""

from __future__ import annotations

import http.client
import json
import secrets
import socket
import time
from typing import Any

import pytest

from tests import payloads
from tests.conftest import connect_page, wait_for

MULTIPART = 'multipart/mixed;boundary="graphql";subscriptionSpec=1.0,application/json'
SSE = "text/event-stream"
TEXTS = "subscription { messageCreated { rawContent } }"
CREATED = """subscription ($channelId: ID) {
  messageCreated(channelId: $channelId) { id channelId rawContent state senderType }
}"""


class Stream:
    """One POST /graphql whose answer is read part by part (multipart) or event by event (SSE)."""

    def __init__(self, gw, body: dict[str, Any], accept: str = MULTIPART,
                 headers: dict[str, str] | None = None, rcvbuf: int | None = None) -> None:
        sock = socket.socket()
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(30)
        sock.connect(("127.0.0.1", gw.port))
        self.connection = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
        self.connection.sock = sock
        self.connection.request("POST", "/graphql", body=json.dumps(body), headers={
            "Content-Type": "application/json", "Accept": accept, **(headers or {})})
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.content_type = self.response.getheader("content-type", "")
        self._buffer = b""
        self.ended = False

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.connection.close()

    def _read_until(self, separator: bytes) -> bytes | None:
        """The bytes before the next `separator` (taken off the buffer); None at the end."""
        while separator not in self._buffer:
            chunk = self.response.read1(65536)
            if not chunk:
                return None
            self._buffer += chunk
        before, _, self._buffer = self._buffer.partition(separator)
        return before

    def part(self) -> dict[str, Any] | None:
        """The next multipart part's JSON (a heartbeat is `{}`); None once the stream ended."""
        while True:
            raw = self._read_until(b"--graphql")
            if raw is None:  # the connection ended: after the closing boundary, or cut short
                self.ended = self._buffer.startswith(b"--")
                return None
            headers, separator, body = raw.partition(b"\r\n\r\n")
            if separator:
                assert b"application/json" in headers.lower()
                return json.loads(body)

    def payload(self) -> dict[str, Any] | None:
        """The next part that is not a heartbeat: its `payload` (None once the stream ended)."""
        while (part := self.part()) == {}:
            pass
        if part is None:
            return None
        assert set(part) == {"payload"}, part
        return part["payload"]

    def event(self) -> tuple[str, str] | None:
        """The next SSE event that is not a comment: (event, data); None once the stream ended."""
        while True:
            raw = self._read_until(b"\n\n")
            if raw is None:
                return None
            fields = dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "")
                          for line in raw.decode().split("\n") if not line.startswith(":"))
            if fields:
                return fields["event"], fields["data"]


def live(gw) -> int:
    return gw.http.get("/health").json()["subscribers"]


def say(gw, page: str, psid: str, *texts: str) -> None:
    events = [payloads.text(page, psid, text) for text in texts]
    assert gw.webhook(payloads.envelope(page, *events)).status_code == 200


def text_of(payload: dict) -> str:
    return payload["data"]["messageCreated"]["rawContent"]["message"]["text"]


@pytest.mark.parametrize("multiplex", ["1", "0"], ids=["multiplexed", "per-subscriber"])
def test_events_arrive_as_parts_and_a_closed_stream_is_let_go(start_gateway, graph, multiplex):
    gw = start_gateway(SUBSCRIPTION_MULTIPLEX=multiplex)
    channel = connect_page(gw, graph)
    page = channel["source_channel_id"]
    body = {"query": CREATED, "variables": {"channelId": channel["id"]}}
    with Stream(gw, body) as a, Stream(gw, body) as b:
        for stream in (a, b):
            assert stream.status == 200
            assert stream.content_type.startswith("multipart/mixed")
            assert 'boundary="graphql"' in stream.content_type
            assert stream.part() == {}  # a heartbeat at once: the stream is open
        wait_for(lambda: live(gw) == 2)
        say(gw, page, "7101", "one", "two")
        got = [[a.payload(), a.payload()], [b.payload(), b.payload()]]
        assert got[0] == got[1]
        assert [text_of(payload) for payload in got[0]] == ["one", "two"]
        message = got[0][0]["data"]["messageCreated"]
        assert message["channelId"] == channel["id"] and message["senderType"] == "SOURCE_CONTACT"
        assert "errors" not in got[0][0]

        a.close()  # the client goes away: its subscription with it
        wait_for(lambda: live(gw) == 1)
        say(gw, page, "7101", "three")
        assert text_of(b.payload()) == "three"
    wait_for(lambda: live(gw) == 0)
    log = gw.log()
    assert "Traceback" not in log and " ERROR " not in log


def test_a_quiet_stream_gets_a_heartbeat_every_five_seconds(start_gateway):
    gw = start_gateway()
    with Stream(gw, {"query": TEXTS}) as stream:
        assert stream.part() == {}
        started = time.monotonic()
        assert stream.part() == {}
        assert 4 < time.monotonic() - started < 8


def test_the_token_is_needed_as_for_every_request(start_gateway, graph):
    gw = start_gateway(SYSTEM_TOKEN="s3cret-token")
    for headers, status in (({}, 401), ({"Authorization": "Bearer wrong"}, 403)):
        with Stream(gw, {"query": TEXTS}, headers=headers) as refused:
            assert refused.status == status
            assert "message" in json.loads(refused.response.read())
    assert live(gw) == 0
    for headers in ({"Authorization": "Bearer s3cret-token"},
                    {"Cookie": "airy_auth_token=s3cret-token"}):
        with Stream(gw, {"query": TEXTS}, headers=headers) as stream:
            assert stream.status == 200 and stream.part() == {}
            wait_for(lambda: live(gw) == 1)
        wait_for(lambda: live(gw) == 0)


def test_past_the_cap_a_stream_is_refused_until_one_closes(start_gateway):
    gw = start_gateway(HTTP_MAX_SUBSCRIPTIONS="2")
    with Stream(gw, {"query": TEXTS}) as first, Stream(gw, {"query": TEXTS}) as second:
        assert first.part() == {} and second.part() == {}
        with Stream(gw, {"query": TEXTS}) as third:
            assert third.status == 503
            answer = json.loads(third.response.read())
            assert "at most 2" in answer["message"]
            assert answer["errors"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
        first.close()
        wait_for(lambda: live(gw) == 1)
        with Stream(gw, {"query": TEXTS}) as fourth:
            assert fourth.status == 200 and fourth.part() == {}


def test_request_errors_and_limits_are_told_as_apollo_reads_them(start_gateway):
    gw = start_gateway(GRAPHQL_MAX_DEPTH="1", GRAPHQL_MAX_TOKENS="60")
    deep = "subscription { conversationUpdated { channel { name } } }"
    with Stream(gw, {"query": deep}) as stream:
        assert stream.status == 200
        payload = stream.payload()
        assert payload is not None and "data" not in payload
        assert "exceeds maximum operation depth of 1" in payload["errors"][0]["message"]
        assert stream.payload() is None and stream.ended  # and the stream ends
    unknown = "subscription { messageCreated { nope } }"
    with Stream(gw, {"query": unknown}) as stream:
        payload = stream.payload()
        assert payload is not None
        assert payload["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert stream.payload() is None
    long = "subscription { messageCreated { " + "rawContent " * 80 + "} }"
    with Stream(gw, {"query": long}) as stream:  # not even parsed: a JSON answer
        assert stream.status == 200 and stream.content_type.startswith("application/json")
        assert "more than 60 tokens" in json.loads(stream.response.read())["errors"][0]["message"]
    assert live(gw) == 0


def test_a_query_with_apollos_header_is_answered_as_json(gateway):
    with Stream(gateway, {"query": "{ tags { id } }"}) as answer:
        assert answer.status == 200 and answer.content_type.startswith("application/json")
        assert json.loads(answer.response.read()) == {"data": {"tags": []}}


@pytest.mark.parametrize("multiplex", ["1", "0"], ids=["multiplexed", "per-subscriber"])
def test_a_reader_that_falls_behind_is_cut_off_alone(start_gateway, graph, multiplex):
    gw = start_gateway(SUBSCRIPTION_MULTIPLEX=multiplex, SUBSCRIPTION_QUEUE_MB="1",
                       MAX_BODY_BYTES=str(2 * 2**20))
    page = connect_page(gw, graph)["source_channel_id"]
    with Stream(gw, {"query": TEXTS}) as fast, \
            Stream(gw, {"query": TEXTS}, rcvbuf=4096) as slow:  # reads nothing until the end
        assert fast.part() == {} and slow.status == 200
        wait_for(lambda: live(gw) == 2)
        sent = []
        for n in range(40):  # 12 MB of events, far fewer than SUBSCRIPTION_QUEUE_SIZE (1000)
            sent.append(f"{n} {secrets.token_urlsafe(225_000)}")
            say(gw, page, "7201", sent[-1])
            assert text_of(fast.payload()) == sent[-1]
        wait_for(lambda: live(gw) == 1)  # cut off, no longer counted

        received = []
        while "errors" not in (payload := slow.payload() or {"errors": ["ended"]}):
            received.append(text_of(payload))
        assert received == sent[:len(received)] and len(received) < len(sent)
        error = payload["errors"][0]
        assert error["extensions"]["code"] == "SUBSCRIBER_TOO_SLOW"
        assert slow.payload() is None and slow.ended
        say(gw, page, "7201", "still here")
        assert text_of(fast.payload()) == "still here"


def test_graphql_over_sse(start_gateway, graph):
    gw = start_gateway()
    page = connect_page(gw, graph)["source_channel_id"]
    with Stream(gw, {"query": TEXTS}, accept=SSE) as stream:
        assert stream.status == 200 and stream.content_type.startswith("text/event-stream")
        wait_for(lambda: live(gw) == 1)
        say(gw, page, "7301", "over sse")
        event = stream.event()
        assert event is not None and event[0] == "next"
        assert text_of(json.loads(event[1])) == "over sse"
    wait_for(lambda: live(gw) == 0)
    with Stream(gw, {"query": "{ tags { id } }"}, accept=SSE) as query:
        assert query.event() == ("next", '{"data":{"tags":[]}}')
        assert query.event() == ("complete", "")
        assert query.event() is None


def test_a_subscription_without_a_stream_is_still_told_where_to_go(gateway):
    answer = gateway.http.post("/graphql", json={"query": TEXTS})
    assert answer.status_code == 400
    message = answer.json()["message"]
    assert "graphql-transport-ws" in message and "multipart/mixed" in message
    assert "text/event-stream" in message


def test_a_stopping_gateway_ends_its_streams_in_time(start_gateway):
    gw = start_gateway()
    with Stream(gw, {"query": TEXTS}) as multipart, \
            Stream(gw, {"query": TEXTS}, accept=SSE) as sse:
        assert multipart.part() == {}
        wait_for(lambda: live(gw) == 2)
        assert gw.stop() < 8
        # Ended whole, saying why (Apollo reads a part with top-level errors as the stream's
        # failure), so that the client subscribes again, elsewhere or here once it is back.
        while (part := multipart.part()) == {}:
            pass
        assert part == {"payload": None, "errors": [{
            "message": "the gateway is shutting down: subscribe again",
            "extensions": {"code": "SHUTTING_DOWN"}}]}
        assert multipart.part() is None and multipart.ended
        assert sse.event() == ("next", '{"errors":[{"message":"the gateway is shutting down: '
                                       'subscribe again","extensions":{"code":"SHUTTING_DOWN"}}]}')
        assert sse.event() == ("complete", "")
        assert sse.event() is None
    log = gw.log()
    assert "Traceback" not in log
    # uvicorn's own line when it gives up waiting for open responses: the only error
    assert [line for line in log.splitlines() if " ERROR " in line] == [
        line for line in log.splitlines() if "timeout graceful shutdown exceeded" in line]
