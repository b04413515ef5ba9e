"""Page tokens go to Meta and nowhere else: no id, from a webhook or from the store, steers the
Graph API client (and the token it carries) to another host or another path."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from gateway.errors import UpstreamRefused
from gateway.sources.facebook.graph import GraphClient
from tests import payloads
from tests.conftest import connect_page, wait_for
from tests.test_ingest import conversations, database


class Listener:
    """A TCP listener on 127.0.0.1 that records whatever any connection sends it."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.received: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.received.append(conn.recv(65536))
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n"
                                 b"connection: close\r\n\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def bad_ids(port: int) -> list[str]:
    """Ids that, joined to the Graph API's base URL as they are, lead elsewhere."""
    return [f"http://127.0.0.1:{port}/stolen", f"//127.0.0.1:{port}/x", "../../x",
            "..%2f..%2fx", "%2e%2e/x", "1234/../../x"]


# --- the client on its own ----------------------------------------------------------------


def client_and_requests() -> tuple[GraphClient, list[httpx.Request]]:
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json={"id": "1", "success": True, "message_id": "m_1"})

    client = GraphClient("https://graph.example/v21.0", transport=httpx.MockTransport(answer))
    return client, requests


@pytest.mark.parametrize("bad", bad_ids(8080) + ["", "me", "12a", "1" * 33, "\u0661\u0662"])
def test_the_client_refuses_a_bad_id_before_any_request(bad):
    client, requests = client_and_requests()

    async def calls() -> list[str]:
        refusals = []
        for call in (lambda: client.get_profile(bad, "EAAtoken"),
                     lambda: client.get_page(bad, "EAAtoken"),
                     lambda: client.subscribe_app(bad, "EAAtoken"),
                     lambda: client.unsubscribe_app(bad, "EAAtoken"),
                     lambda: client.send_message("EAAtoken", bad, {"text": "hi"})):
            with pytest.raises(UpstreamRefused) as refused:
                await call()
            refusals.append(refused.value.message)
        await client.aclose()
        return refusals

    refusals = asyncio.run(calls())
    assert requests == []
    assert all("is not a Graph API id" in message for message in refusals)
    assert not any(bad and bad in message for message in refusals)


def test_the_client_calls_only_below_its_base_url():
    client, requests = client_and_requests()

    async def calls() -> None:
        await client.get_profile("1234", "EAAtoken")
        await client.get_page("5678", "EAAtoken")
        await client.subscribe_app("5678", "EAAtoken")
        await client.send_message("EAAtoken", "1234", {"text": "hi"})
        # Below the id checks, the client's last word: the URL it would send to.
        for path in ("http://elsewhere.example/x", "../x", "1/../../x", "%2e%2e/x", "a//b", ""):
            with pytest.raises(UpstreamRefused, match="outside FACEBOOK_GRAPH_API_URL"):
                await client._call("GET", path, "EAAtoken")
        await client.aclose()

    asyncio.run(calls())
    base = "https://graph.example/v21.0/"
    assert [str(r.url).split("?")[0] for r in requests] == [
        base + "1234", base + "5678", base + "5678/subscribed_apps", base + "me/messages"]


# --- a real gateway -----------------------------------------------------------------------


def test_ids_in_a_signed_webhook_never_take_the_token_elsewhere(gateway, graph, listener):
    token = f"EAAsecret{uuid.uuid4().hex}"
    page = connect_page(gateway, graph, token=token)["source_channel_id"]
    graph.add_profile("1601", "Good", "Person")
    events = [payloads.text(page, "1601", "good")]
    events += [payloads.text(page, bad, "steal the token") for bad in bad_ids(listener.port)]
    assert gateway.webhook(payloads.envelope(page, *events)).status_code == 200
    wait_for(lambda: ("1601", "ok") in [(c["contact"]["id"], c["contact"]["fetch_state"])
                                        for c in conversations(gateway)])
    time.sleep(1)  # time for any other profile fetch to be made
    assert listener.received == []
    assert [c["contact"]["id"] for c in conversations(gateway)] == ["1601"]
    assert {c.path for c in graph.calls} <= {page, f"{page}/subscribed_apps", "1601"}
    assert all(c.query["access_token"] == token for c in graph.calls)
    assert token not in gateway.log()


def test_a_contact_id_stored_before_is_refused_by_the_client_and_given_up(
    gateway, graph, listener
):
    token = f"EAAsecret{uuid.uuid4().hex}"
    channel = connect_page(gateway, graph, token=token)
    client, db = database(gateway)
    now = int(time.time() * 1000)
    ids = []
    for bad in bad_ids(listener.port):  # as an older version stored them, straight from Meta
        ids.append(str(uuid.uuid4()))
        db.conversations.insert_one({
            "_id": ids[-1], "channel_id": channel["id"], "contact_id": bad, "created_at": now,
            "last_message_at": now, "last_message_id": None, "unread_count": 0,
            "contact": {"display_name": None, "avatar_url": None, "fetch_state": "pending",
                        "fetch_error": None},
        })
    for conversation_id in ids:
        refetch = gateway.post("/conversations.refetch", {"conversation_id": conversation_id})
        assert refetch.status_code in (200, 202), refetch.text
    wait_for(lambda: gateway.log().count("refused 5 times") == len(ids), timeout=30)
    stored = list(db.conversations.find({"_id": {"$in": ids}}))
    client.close()
    assert listener.received == []
    assert {c.path for c in graph.calls} == {channel["source_channel_id"],
                                             f"{channel['source_channel_id']}/subscribed_apps"}
    assert {doc["contact"]["fetch_state"] for doc in stored} == {"failed"}
    assert {doc["contact"]["fetch_error"] for doc in stored} == {
        "the contact id is not a Graph API id (1 to 32 digits)"}
    assert token not in gateway.log()


@pytest.mark.parametrize("page_id", ["\u0661\u0662\u0663", "1" * 40, "12/../34", "-12"])
def test_connect_refuses_a_page_id_that_is_not_a_graph_id_before_calling_meta(
    shared_gateway, graph, page_id
):
    refused = shared_gateway.post("/channels.facebook.connect",
                           {"page_id": page_id, "page_token": "EAAtoken"})
    assert refused.status_code == 400 and "page_id" in refused.json()["message"]
    assert graph.calls == []
