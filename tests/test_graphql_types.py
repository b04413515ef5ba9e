"""GraphQL writes times as REST does (ISO-8601 UTC, milliseconds, `Z`): one format for clients
that read both, over HTTP and over a websocket. Its enums are documented value by value."""

from __future__ import annotations

import re
from pathlib import Path

from graphql import GraphQLEnumType

from gateway.graphql import build_schema
from tests import payloads
from tests.conftest import connect_page, wait_for
from tests.ws import TRANSPORT_WS, GraphQLSocket

TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")

CONVERSATION = """query ($id: ID!) {
  conversation(id: $id) { createdAt lastActivityAt }
  messages(conversationId: $id) { edges { node { id sentAt } } }
  contact(conversationId: $id) { id createdAt updatedAt }
}"""
WEBHOOK = "query ($id: ID!) { webhook(id: $id) { lastSuccessAt lastErrorAt } }"


def gql(gw, query: str, variables: dict) -> dict:
    answer = gw.http.post("/graphql", json={"query": query, "variables": variables}).json()
    assert "errors" not in answer, answer
    return answer["data"]


def test_graphql_times_are_the_rest_times(gateway, graph):
    channel = connect_page(gateway, graph)
    page = channel["source_channel_id"]
    with GraphQLSocket(gateway.url, TRANSPORT_WS) as ws:
        ws.init()
        ws.subscribe("1", "subscription { messageCreated { id sentAt } }")
        wait_for(lambda: gateway.http.get("/health").json()["subscribers"] >= 1)
        event = payloads.text(page, "7001", "what time is it?")
        assert gateway.webhook(payloads.envelope(page, event)).status_code == 200
        live = ws.next("1")["data"]["messageCreated"]

    [conversation] = gateway.post("/conversations.list").json()["data"]
    sent = gateway.post("/messages.send", {"conversation_id": conversation["id"],
                                           "message": {"text": "noon"}})
    assert sent.status_code == 200, sent.text
    rest_messages = {m["id"]: m["sent_at"]
                     for m in gateway.post("/messages.list", {
                         "conversation_id": conversation["id"]}).json()["data"]}
    contact = gateway.post("/contacts.info", {"conversation_id": conversation["id"]}).json()

    data = gql(gateway, CONVERSATION, {"id": conversation["id"]})
    assert data["conversation"]["createdAt"] == conversation["created_at"]
    assert TIME.fullmatch(data["conversation"]["lastActivityAt"])
    assert {edge["node"]["id"]: edge["node"]["sentAt"]
            for edge in data["messages"]["edges"]} == rest_messages
    assert live == {"id": live["id"], "sentAt": rest_messages[live["id"]]}
    assert data["contact"]["createdAt"] == contact["created_at"]
    assert TIME.fullmatch(data["contact"]["updatedAt"])
    assert all(TIME.fullmatch(when) for when in rest_messages.values())


def test_a_webhook_s_times_are_the_rest_times(gateway, graph):
    # Nothing listens on port 9 of loopback: the first delivery fails and records when.
    hook = gateway.post("/webhooks.subscribe", {"url": "http://127.0.0.1:9/hook"}).json()
    connect_page(gateway, graph)  # channel.updated
    info = wait_for(lambda: (answer := gateway.post("/webhooks.info", {"id": hook["id"]}).json())
                    ["last_error_at"] and answer)
    data = gql(gateway, WEBHOOK, {"id": hook["id"]})
    assert data["webhook"] == {"lastSuccessAt": None, "lastErrorAt": info["last_error_at"]}
    assert TIME.fullmatch(info["last_error_at"])


def test_every_enum_and_value_is_documented():
    docs = (Path(__file__).resolve().parent.parent / "docs" / "graphql.md").read_text()
    table = {line.split("|")[1].split("`")[1]: line for line in docs.splitlines()
             if line.startswith("| `")}
    enums = [t for t in build_schema()._schema.type_map.values()
             if isinstance(t, GraphQLEnumType) and not t.name.startswith("__")]
    assert {enum.name for enum in enums} == set(table)
    for enum in enums:
        for name, value in enum.values.items():
            assert f"`{name}`" in table[enum.name], (enum.name, name)
            rest = getattr(value.value, "value", value.value)
            assert f"`{rest}`" in table[enum.name], (enum.name, rest)
