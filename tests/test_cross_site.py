"""Browsers: pages on other sites cannot drive the gateway; the API is not opened to the network
without a token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests import payloads
from tests.conftest import connect_page, free_port
from tests.ws import PROTOCOLS, TRANSPORT_WS, GraphQLSocket

EVIL = "https://evil.example"
FRIEND = "https://inbox.example.com"
TOKEN = "csrf-Tok-Wq3Z-Hk8N"
HOOK = {"url": "https://collector.example/hook"}
QUERY = {"query": "{ webhooks { id } }"}


def hooks(gw, **headers) -> list:
    response = gw.http.post("/webhooks.list", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


@pytest.mark.parametrize("content_type, body", [
    ("text/plain", json.dumps(HOOK)),
    ("text/plain;charset=UTF-8", json.dumps(HOOK)),
    ("application/x-www-form-urlencoded", json.dumps(HOOK)),
    ("multipart/form-data; boundary=x",
     '--x\r\nContent-Disposition: form-data; name="url"\r\n\r\nhttps://c.example\r\n--x--\r\n'),
    (None, json.dumps(HOOK)),  # a body with no type at all: fetch() sends a Blob so
])
def test_bodies_that_are_not_json_get_415_and_change_nothing(gateway, graph, content_type, body):
    channel = connect_page(gateway, graph)
    page = channel["source_channel_id"]
    gateway.webhook(payloads.envelope(page, payloads.text(page, "6001", "hi")))
    [conversation] = gateway.post("/conversations.list").json()["data"]
    headers = {"Content-Type": content_type} if content_type else {}
    send = json.dumps({"conversation_id": conversation["id"], "message": {"text": "stolen"}})
    mutation = json.dumps({"query": 'mutation { subscribeWebhook(input: {url: '
                                    '"https://collector.example/hook"}) { id } }'})
    for route, content in (("/webhooks.subscribe", body), ("/messages.send", send),
                           ("/graphql", mutation)):
        response = gateway.http.post(route, content=content, headers=headers)
        assert response.status_code == 415, (route, response.text)
        assert "Content-Type: application/json" in response.json()["message"]
    assert hooks(gateway) == []
    messages = gateway.post("/messages.list", {"conversation_id": conversation["id"]}).json()
    assert [m["content"]["message"]["text"] for m in messages["data"]] == ["hi"]


def test_json_passes_with_parameters_and_an_empty_post_needs_no_type(gateway):
    subscribed = gateway.http.post("/webhooks.subscribe", content=json.dumps(HOOK),
                                   headers={"Content-Type": "Application/JSON; charset=utf-8"})
    assert subscribed.status_code == 200, subscribed.text
    # `curl -X POST $G/webhooks.list`: no body, no Content-Type.
    bare = httpx.post(gateway.url + "/webhooks.list")
    assert bare.status_code == 200 and len(bare.json()["data"]) == 1
    # Meta's webhook is authenticated by its signature, whatever the type says.
    body = json.dumps(payloads.envelope("1", payloads.text("1", "2", "x"))).encode()
    unsigned = gateway.http.post("/facebook", content=body, headers={"Content-Type": "text/plain"})
    assert unsigned.status_code == 401


@pytest.mark.parametrize("token", [None, TOKEN])
def test_a_foreign_origin_is_refused_everywhere(start_gateway, token):
    gw = start_gateway(**({"SYSTEM_TOKEN": token} if token else {}))
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    for origin in (EVIL, "null", "http://127.0.0.1", f"http://127.0.0.1:{gw.port + 1}",
                   f"http://localhost:{gw.port}"):
        foreign = {**auth, "Origin": origin}
        subscribe = gw.http.post("/webhooks.subscribe", json=HOOK, headers=foreign)
        assert subscribe.status_code == 403, (origin, subscribe.text)
        assert "ALLOWED_ORIGINS" in subscribe.json()["message"]
        mutation = gw.http.post("/graphql", headers=foreign, json={
            "query": 'mutation { subscribeWebhook(input: {url: "https://c.example/h"}) { id } }'})
        assert mutation.status_code == 403, mutation.text
        assert gw.http.get("/graphql", params=QUERY, headers=foreign).status_code == 403
        for protocol in PROTOCOLS:
            with pytest.raises(InvalidStatus) as refused:
                GraphQLSocket(gw.url, protocol, headers=foreign)
            assert refused.value.response.status_code == 403
            assert b"ALLOWED_ORIGINS" in refused.value.response.body
    assert hooks(gw, **auth) == []
    assert gw.http.get("/health").json()["subscribers"] == 0


@pytest.mark.parametrize("token", [None, TOKEN])
def test_the_own_origin_and_allowed_origins_pass(start_gateway, token):
    gw = start_gateway(ALLOWED_ORIGINS=f"{FRIEND}, http://localhost:5173",
                       **({"SYSTEM_TOKEN": token} if token else {}))
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    for origin in (gw.url, FRIEND, "http://localhost:5173", FRIEND.upper() + ":443"):
        headers = {**auth, "Origin": origin}
        subscribed = gw.http.post("/webhooks.subscribe", json=HOOK, headers=headers)
        assert subscribed.status_code == 200, (origin, subscribed.text)
        answer = gw.http.post("/graphql", json=QUERY, headers=headers)
        assert answer.status_code == 200 and "errors" not in answer.json()
        for protocol in PROTOCOLS:
            with GraphQLSocket(gw.url, protocol, headers=headers) as ws:
                assert ws.init({"Authorization": f"Bearer {token}"})["type"] == "connection_ack"
    # A browser on an allowed origin asks first (a CORS preflight) and may read the answer.
    preflight = gw.http.options("/graphql", headers={
        "Origin": FRIEND, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == FRIEND
    answer = gw.http.post("/tags.list", headers={**auth, "Origin": FRIEND})
    assert answer.headers["access-control-allow-origin"] == FRIEND
    evil = gw.http.options("/graphql", headers={"Origin": EVIL,
                                                "Access-Control-Request-Method": "POST"})
    assert evil.status_code == 403 and "access-control-allow-origin" not in evil.headers


def test_behind_a_tls_proxy_the_own_origin_is_told_by_host_and_port(gateway):
    def status(host: str, origin: str) -> int:
        return gateway.http.post("/tags.list", headers={"Host": host, "Origin": origin}).status_code

    # The browser talks https to the proxy; the gateway hears http with the browser's Host.
    assert status("inbox.example", "https://inbox.example") == 200
    assert status("inbox.example:443", "https://inbox.example") == 200
    assert status("inbox.example:8443", "https://inbox.example:8443") == 200
    assert status("[::1]:8000", "http://[::1]:8000") == 200
    assert status("inbox.example:8443", "https://inbox.example") == 403
    assert status("inbox.example", "https://inbox.example:8443") == 403
    assert status("inbox.example", "https://other.example") == 403
    assert status("inbox.example", "https://inbox.example.evil.example") == 403
    # A proxy that rewrites Host: the browser's own word that the page is same-origin counts.
    rewritten = {"Host": "10.0.0.5:8000", "Origin": "https://inbox.example"}
    same_origin = gateway.http.post("/tags.list",
                                    headers={**rewritten, "Sec-Fetch-Site": "same-origin"})
    assert same_origin.status_code == 200
    same_site = gateway.http.post("/tags.list",
                                  headers={**rewritten, "Sec-Fetch-Site": "same-site"})
    assert same_site.status_code == 403
    url = gateway.url.replace("http://", "ws://") + "/graphql"
    with connect(url, subprotocols=[TRANSPORT_WS], origin=gateway.url,
                 additional_headers={}, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"


# --- no open API on the network ------------------------------------------------------------


@pytest.mark.parametrize("args, env", [
    ([], {"HOST": "0.0.0.0"}),
    (["--host", "0.0.0.0"], {}),
    (["--host", "::"], {}),
    (["--host", "192.0.2.10"], {}),
    (["--host", "gateway.example"], {}),
    ([], {"HOST": "0.0.0.0", "ALLOW_OPEN_API": "0"}),
])
def test_a_network_address_without_a_token_stops_start_up(args, env):
    out = subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PORT": "0", **env,
                                                     "MONGODB_URL": "mongodb://127.0.0.1:9"})
    assert out.returncode != 0
    assert "without SYSTEM_TOKEN" in out.stderr and "Set SYSTEM_TOKEN" in out.stderr
    assert "ALLOW_OPEN_API=1" in out.stderr and "--allow-open-api" in out.stderr


@pytest.mark.parametrize("args, env, warned", [
    ([], {"HOST": "0.0.0.0", "ALLOW_OPEN_API": "1"}, True),
    (["--host", "0.0.0.0", "--allow-open-api"], {}, True),
    ([], {"HOST": "0.0.0.0", "SYSTEM_TOKEN": TOKEN}, False),
    (["--host", "localhost"], {}, False),
    (["--host", "127.0.0.2"], {}, False),
])
def test_a_token_or_the_flag_lets_it_start(nx_url, args, env, warned):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--port", str(port), *args],
        env={**os.environ, "MONGODB_URL": nx_url, "MONGODB_DATABASE": f"open_{port}",
             "LOG_LEVEL": "INFO", **env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    host = "127.0.0.2" if "127.0.0.2" in args else "127.0.0.1"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"http://{host}:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.1)
    finally:
        proc.terminate()
        log = proc.communicate(timeout=20)[0]
    assert ("without SYSTEM_TOKEN (ALLOW_OPEN_API)" in log) == warned, log
