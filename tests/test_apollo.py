"""Apollo Client (npm @apollo/client 3) against a real gateway: a query, a mutation, a subscription
over graphql-ws and one over multipart HTTP, its normalised cache updated by a subscription, and
persisted queries through Apollo's link. tests/apollo-js/client.mjs does the client's part; this
test plays Meta's (webhooks) and checks what the client printed.

Skipped without Node or without `npm ci` in tests/apollo-js.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests import payloads
from tests.conftest import connect_page, wait_for
from tests.node import Lines

APOLLO_JS = Path(__file__).parent / "apollo-js"
TOKEN = "apollo-test-token"


def apollo(options: dict[str, Any]) -> subprocess.Popen:
    if shutil.which("node") is None or \
            not (APOLLO_JS / "node_modules" / "@apollo" / "client").is_dir():
        pytest.skip("Node or tests/apollo-js/node_modules missing (npm ci in tests/apollo-js)")
    return subprocess.Popen(["node", str(APOLLO_JS / "client.mjs"), json.dumps(options)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def say(gw, page: str, psid: str, text: str) -> None:
    assert gw.webhook(payloads.envelope(page, payloads.text(page, psid, text))).status_code == 200


def live(gw) -> int:
    return gw.http.get("/health").json()["subscribers"]


def test_apollo_client_queries_mutates_subscribes_both_ways_and_persists(start_gateway, graph):
    gw = start_gateway(SYSTEM_TOKEN=TOKEN)
    gw.http.headers["Authorization"] = f"Bearer {TOKEN}"
    page = connect_page(gw, graph)["source_channel_id"]
    say(gw, page, "8101", "hello before")
    client = apollo({"http": f"{gw.url}/graphql", "ws": gw.url.replace("http", "ws") + "/graphql",
                     "token": TOKEN, "timeoutMs": 45000})
    try:
        lines = Lines(client, "Apollo", timeout=30, failures=("error", "timeout"))
        query = lines.until("query")["conversation"]
        assert query["lastMessage"]["rawContent"]["message"]["text"] == "hello before"
        assert query["unreadCount"] == 1
        lines.until("subscribing")
        wait_for(lambda: live(gw) == 3)  # ws messageCreated, HTTP messageCreated, messageUpdated
        say(gw, page, "8101", "hello live")

        created = {}
        while len(created) < 2:
            item = lines.until("created")
            created[item["transport"]] = item
        assert {item["text"] for item in created.values()} == {"hello live"}
        assert created["ws"]["id"] == created["http"]["id"]

        mutation = lines.until("mutation")
        assert mutation["message"]["state"] == "PENDING"
        assert mutation["cached"] == {"__typename": "Message", "id": mutation["message"]["id"],
                                      "state": "PENDING"}
        while (updated := lines.until("updated"))["cached"]["state"] != "DELIVERED":
            pass
        assert updated["cached"]["id"] == mutation["message"]["id"]
        lines.until("done")

        persisted = lines.until("persisted")
        assert persisted["first"] == persisted["second"] == {"tags": []}
        # The hash alone by GET, refused as unknown; the hash with the document by POST; then
        # the hash alone by GET, answered.
        assert persisted["requests"] == [
            {"method": "GET", "document": False, "hash": True},
            {"method": "POST", "document": True, "hash": True},
            {"method": "GET", "document": False, "hash": True}]
        assert client.wait(10) == 0
    finally:
        if client.poll() is None:
            client.kill()
        client.wait()
    wait_for(lambda: live(gw) == 0)
    log = gw.log()
    assert "Traceback" not in log and " ERROR " not in log
