"""No secret reaches the log, at DEBUG, from the gateway or from the libraries under it."""

from __future__ import annotations

import contextlib
import io
import json
import logging

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from gateway.sources.facebook.signature import sign
from tests import payloads
from tests.conftest import connect_page, wait_for
from tests.ws import PROTOCOLS, GraphQLSocket

# None of these is hex or a uuid, so no id in the log can contain one by chance.
SYSTEM_TOKEN = "sys-Tok-QxZv-7Hw2-Lm9p-Ppq"
APP_SECRET = "app-Sec-Kw8R-Zt3N-Vq4s"
VERIFY_TOKEN = "verify-Sec-Jm2R-Tt9Q"
ENCRYPTION_KEY = "l-HsTqR8ZUo7p9JXqzR8ZUo7p9JXqzR8ZUo7p9JXqzQ="  # a valid Fernet key
PAGE_TOKEN = "EAApage-Tok-Rr7W-Nq2K-Zx5v"
COOKIE = "session-Cki-Uy6T-Pw3M"
QUERY_TOKEN = "qs-Tok-Bn4V-Hs8K"
WS_QUERY_TOKEN = "wsqs-Tok-Gm5C-Jd2X"
INIT_SECRET = "init-Sec-Fq7Y-Wk3L"
WRONG_TOKEN = "wrong-Tok-Dx9S-Mv6B"
SECRETS = (SYSTEM_TOKEN, APP_SECRET, VERIFY_TOKEN, ENCRYPTION_KEY, PAGE_TOKEN, COOKIE,
           QUERY_TOKEN, WS_QUERY_TOKEN, INIT_SECRET, WRONG_TOKEN)
AUTH = {"Authorization": f"Bearer {SYSTEM_TOKEN}"}
CREATED = "subscription { messageCreated { id } }"


def test_a_debug_run_logs_no_token_cookie_or_connection_init(start_gateway, graph):
    gw = start_gateway(LOG_LEVEL="DEBUG", SYSTEM_TOKEN=SYSTEM_TOKEN,
                       FACEBOOK_APP_SECRET=APP_SECRET, FACEBOOK_WEBHOOK_SECRET=VERIFY_TOKEN,
                       TOKEN_ENCRYPTION_KEY=ENCRYPTION_KEY)
    gw.http.headers.update({**AUTH, "Cookie": f"session={COOKIE}; theme=dark"})
    challenge = gw.http.get("/facebook", params={"hub.mode": "subscribe", "hub.challenge": "42",
                                                 "hub.verify_token": VERIFY_TOKEN})
    assert challenge.text == "42"

    channel = connect_page(gw, graph, token=PAGE_TOKEN)
    page = channel["source_channel_id"]
    graph.add_profile("7001", "Ada", "Lovelace")
    body = json.dumps(payloads.envelope(page, payloads.text(page, "7001", "hello"))).encode()
    assert gw.http.post("/facebook", content=body, headers={
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign(APP_SECRET, body)}).status_code == 200
    [conversation] = gw.post("/conversations.list").json()["data"]
    sent = gw.post("/messages.send", {"conversation_id": conversation["id"],
                                      "message": {"text": "hi"}})
    assert sent.status_code == 200, sent.text
    wait_for(lambda: gw.post("/messages.list", {"conversation_id": conversation["id"]})
             .json()["data"][0]["state"] == "delivered")
    wait_for(lambda: graph.calls_of("profile"))

    # A token in a query string, a wrong token, an unknown route.
    assert gw.http.get("/graphql", params={"query": "{ tags { id } }",
                                           "access_token": QUERY_TOKEN}).status_code == 200
    wrong = httpx.post(gw.url + "/tags.list", headers={"Authorization": f"Bearer {WRONG_TOKEN}"})
    assert wrong.status_code == 403

    # Websockets of both protocols: the token in the upgrade header, in the URL and in
    # connection_init (along with something else secret the client put there).
    init = {"Authorization": f"Bearer {SYSTEM_TOKEN}", "session": INIT_SECRET}
    for protocol in PROTOCOLS:
        with GraphQLSocket(gw.url, protocol, headers=AUTH) as ws:
            assert ws.init(init)["type"] == "connection_ack"
            ws.subscribe("1", CREATED)
        url = gw.url.replace("http://", "ws://") + f"/graphql?token={WS_QUERY_TOKEN}"
        with connect(url, subprotocols=[protocol], open_timeout=10) as ws:
            ws.send(json.dumps({"type": "connection_init", "payload": init}))
            assert "connection_ack" in ws.recv(timeout=10)
        with GraphQLSocket(gw.url, protocol) as ws:  # refused: 4403, or connection_error
            ws.send({"type": "connection_init", "payload": {"Authorization": WRONG_TOKEN}})
            with contextlib.suppress(ConnectionClosed):
                assert ws.receive()["type"] == "connection_error"
    gw.post("/channels.facebook.disconnect", {"channel_id": channel["id"]})
    gw.stop()

    log = gw.log()
    # The scenario ran and was logged, websockets included.
    for line in ("connected (page", '"WebSocket /graphql?token=', "disconnected"):
        assert line in log, line
    leaks = [(secret, line) for line in log.splitlines() for secret in SECRETS if secret in line]
    assert not leaks, leaks[:5]
    assert "bearer " not in log.lower()
    assert "connection_init" not in log or '"payload"' not in log
    assert '"WebSocket /graphql?token=[redacted]" [accepted]' in log


@pytest.fixture
def scrubbed():
    """The gateway's log set-up, writing to a buffer this test reads."""
    from gateway import logs

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer = io.StringIO()

    def configure(fmt: str) -> None:
        logs.configure("DEBUG", fmt, secrets=(SYSTEM_TOKEN, APP_SECRET, "ab"))
        root.handlers[0].setStream(buffer)

    yield configure, buffer
    root.handlers[:], root.level = saved


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_log_handler_scrubs_messages_arguments_and_tracebacks(scrubbed, fmt):
    configure, buffer = scrubbed
    configure(fmt)
    log = logging.getLogger("gateway.test")
    log.info("token %s and %r", SYSTEM_TOKEN, {"Authorization": f"Bearer {WRONG_TOKEN}"})
    log.info("GET /graphql?query=x&access_token=%s&page_token=%s HTTP/1.1", QUERY_TOKEN, PAGE_TOKEN)
    log.debug("> Authorization: Basic %s", WRONG_TOKEN)
    log.debug("> Cookie: session=%s; theme=dark", COOKIE)
    log.debug("< Set-Cookie: session=%s; HttpOnly", COOKIE)
    log.debug("headers %r", [(b"authorization", WRONG_TOKEN.encode()),
                             (b"cookie", COOKIE.encode())])
    log.debug("< TEXT '%s' [98 bytes]", json.dumps(
        {"type": "connection_init", "payload": {"x-api-key": INIT_SECRET}}))
    log.debug('{"payload": {"token": "%s"}, "type": "connection_init"}', INIT_SECRET)
    log.info("body %s", json.dumps({"page_token": PAGE_TOKEN, "signature_key": APP_SECRET}))
    try:
        raise ValueError(f"refused {SYSTEM_TOKEN} / Bearer {WRONG_TOKEN}")
    except ValueError:
        log.exception("failed with %s", APP_SECRET, stack_info=True)
    log.info("about 'ab' short values are not scrubbed: table")
    text = buffer.getvalue()
    for secret in SECRETS:
        assert secret not in text, (secret, text)
    assert "Bearer" not in text
    assert "ValueError: refused [redacted]" in text  # the traceback is still there
    assert "Stack (most recent call last)" in text
    assert "short values are not scrubbed: table" in text
    if fmt == "json":
        for line in text.splitlines():
            json.loads(line)
