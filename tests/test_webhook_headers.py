"""Outgoing webhooks' own headers: only what HTTP can carry is taken, and a delivery that fails in
any way says why in `last_error`, then is given up as usual."""

from __future__ import annotations

import pymongo

from tests import payloads
from tests.conftest import connect_page, wait_for

# Not hex, so no uuid in the log can contain it by chance.
SECRET = "Zq9-s\u00e9cret"

# (headers, the header named in the refusal)
REFUSED = [
    ({"X-Name": "\u00e9"}, "X-Name"),
    ({"X-Token": SECRET}, "X-Token"),
    ({"X-A": "1\r\nX-B: 2"}, "X-A"),
    ({"X-A": "tab\tand\nnewline"}, "X-A"),
    ({"X-A": " padded"}, "X-A"),
    ({"X-A": "padded\t"}, "X-A"),
    ({"X-A": "\x00"}, "X-A"),
    ({"X A": "v"}, "X A"),
    ({"X-\u00e9": "v"}, "X-\u00e9"),
    ({"": "v"}, ""),
    ({"X-A": "a" * 4001}, "X-A"),
    ({"Content-Length": "1"}, "Content-Length"),
    ({"host": "example.com"}, "host"),
    ({"TRANSFER-ENCODING": "chunked"}, "TRANSFER-ENCODING"),
    ({"Connection": "close"}, "Connection"),
    ({"content-type": "text/plain"}, "content-type"),
    ({"X-Airy-Content-Signature": "abc"}, "X-Airy-Content-Signature"),
    ({"x-airy-content-signature": "abc"}, "x-airy-content-signature"),
    ({"X-Token": "a", "x-token": "b"}, "x-token"),
]


def gql(gw, query: str, variables: dict) -> dict:
    response = gw.http.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    return response.json()


SUBSCRIBE = """mutation ($url: String!, $headers: JSON) {
  subscribeWebhook(input: {url: $url, headers: $headers}) { id headers } }"""
UPDATE = """mutation ($id: ID!, $headers: JSON) {
  updateWebhook(input: {id: $id, headers: $headers}) { id headers } }"""


def test_headers_http_cannot_carry_are_refused_with_the_header_named(start_gateway, receiver):
    gw = start_gateway()
    url = f"{receiver.url}/hook"
    hook = gw.post("/webhooks.subscribe", {"url": url, "headers": {"X-Token": "ok"}}).json()
    graphql_hook = gql(gw, SUBSCRIBE, {"url": url, "headers": {"X-Ok": "1"}})
    graphql_id = graphql_hook["data"]["subscribeWebhook"]["id"]
    for headers, name in REFUSED:
        for refusal in (gw.post("/webhooks.subscribe", {"url": url, "headers": headers}),
                        gw.post("/webhooks.update", {"id": hook["id"], "headers": headers})):
            assert refusal.status_code == 400, (headers, refusal.text)
            message = refusal.json()["message"]
            assert message.startswith("headers") and name[:40] in message, message
            assert all(value not in message for value in headers.values() if len(value) > 1)
        for query, variables in ((SUBSCRIBE, {"url": url}), (UPDATE, {"id": graphql_id})):
            errors = gql(gw, query, {**variables, "headers": headers})["errors"]
            assert errors[0]["extensions"]["code"] == "BAD_REQUEST", errors
            assert name[:40] in errors[0]["message"], errors
    # Nothing refused was stored; every webhook still has its headers.
    listed = {w["id"]: w["headers"] for w in gw.post("/webhooks.list").json()["data"]}
    assert listed == {hook["id"]: {"X-Token": "ok"}, graphql_id: {"X-Ok": "1"}}
    assert SECRET not in gw.log()


def test_spaces_and_tabs_inside_a_value_are_sent_as_given(start_gateway, graph, receiver):
    gw = start_gateway()
    headers = {"X-Token": "a b\tc", "X-Empty": "", "X-Visible": "!#$%&'*+-.^_`|~\"(),/:;<=>?@[\\]{}"}
    assert gw.post("/webhooks.subscribe", {"url": f"{receiver.url}/hook", "headers": headers,
                                           "events": ["message.created"]}).status_code == 200
    page = connect_page(gw, graph)["source_channel_id"]
    gw.webhook(payloads.envelope(page, payloads.text(page, "6101", "hi")))
    wait_for(lambda: receiver.events())
    [received] = receiver.received
    assert {name: received.headers[name.lower()] for name in headers} == headers


def test_a_webhook_stored_with_headers_http_cannot_carry_fails_visibly_then_is_given_up(
        start_gateway, graph, receiver):
    """Stored before headers were checked (written straight into the store here): each delivery
    fails, says why without the value, and is given up after WEBHOOK_RETRY_SECONDS."""
    gw = start_gateway(WEBHOOK_RETRY_SECONDS="2", WEBHOOK_TIMEOUT_SECONDS="2")
    hooks = {}
    for path in ("/unicode", "/length", "/fine"):
        hooks[path] = gw.post("/webhooks.subscribe", {
            "url": f"{receiver.url}{path}", "events": ["message.created"]}).json()["id"]
    with pymongo.MongoClient(gw.env["MONGODB_URL"]) as client:
        webhooks = client[gw.env["MONGODB_DATABASE"]].webhooks
        webhooks.update_one({"_id": hooks["/unicode"]}, {"$set": {"headers": {"X-Name": SECRET}}})
        webhooks.update_one({"_id": hooks["/length"]},
                            {"$set": {"headers": {"Content-Length": "1"}}})
    page = connect_page(gw, graph)["source_channel_id"]
    gw.webhook(payloads.envelope(page, payloads.text(page, "6201", "one")))

    def info(path: str) -> dict:
        return gw.post("/webhooks.info", {"id": hooks[path]}).json()

    wait_for(lambda: receiver.events("/fine"))
    wait_for(lambda: info("/unicode")["last_error"] and info("/length")["last_error"])
    assert info("/unicode")["last_error"].startswith("the webhook's headers: the value of "
                                                     "'X-Name' must be")
    assert info("/length")["last_error"].startswith("the webhook's headers: 'Content-Length' "
                                                    "cannot be given")
    # Given up once WEBHOOK_RETRY_SECONDS have gone by, like any delivery that keeps failing.
    wait_for(lambda: info("/unicode")["queued"] == 0 and info("/length")["queued"] == 0)
    assert receiver.events("/unicode") == [] and receiver.events("/length") == []
    assert info("/fine")["last_error"] is None and info("/fine")["queued"] == 0
    log = gw.log()
    assert log.count("gave up on a message.created") == 2
    assert SECRET not in log and " ERROR " not in log and "pass failed" not in log
