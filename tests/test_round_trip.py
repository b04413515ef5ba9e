"""Users' data comes back exactly as it went in: every JSON type, through every write path
(metadata.upsert: new leaves, nested merge, a value replaced by another type; suggested replies;
message content at send and resend), read over REST and GraphQL."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import connect_page
from tests.test_airy_more import gql
from tests.test_sending import send, settled, start_conversation

# Every JSON type, with the values a store is likeliest to change: booleans beside 0 and 1,
# 1.0 beside 1, an integer past 2**53, null, empty text, objects and lists.
EVERY_TYPE: dict[str, Any] = {
    "true": True, "false": False, "zero": 0, "one": 1, "minus_one": -1, "big": 2**53 + 1,
    "half": 1.5, "one_point_oh": 1.0, "null": None, "empty_text": "",
    "unicode": "héllo wörld 漢字 עברית 🙂👍🏽",
    "nested": {"flag": True, "off": False, "deeper": {"nothing": None, "bools": [False, True]}},
    "mixed": [True, False, 0, 1, -1, 1.0, 1.5, None, "", "🙂", {"ok": True, "n": 0}, [False, {}],
              []],
    "empty_object": {}, "empty_list": [],
}


def typed(value: Any) -> Any:
    """`value` with each scalar paired with its type: True != 1 and 1.0 != 1 here."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return type(value).__name__, value


def assert_exactly(got: Any, expected: Any) -> None:
    assert typed(got) == typed(expected), f"\n got      {got!r}\n expected {expected!r}"


def upsert(gw, subject: str, owner_id: str, data: dict[str, Any]) -> None:
    response = gw.post("/metadata.upsert", {"subject": subject, "id": owner_id, "data": data})
    assert response.status_code == 204, response.text


def user_data_everywhere(gw, subject: str, owner_id: str, conversation_id: str) -> list[Any]:
    """The owner's user_data as REST and GraphQL show it."""
    if subject == "channel":
        rest = gw.post("/channels.info", {"channel_id": owner_id}).json()["metadata"]
        graphql = gql(gw, "query ($id: ID!) { channel(id: $id) { userData } }",
                      {"id": owner_id})["data"]["channel"]["userData"]
    elif subject == "conversation":
        rest = gw.post("/conversations.info",
                       {"conversation_id": owner_id}).json()["metadata"]
        graphql = gql(gw, "query ($id: ID!) { conversation(id: $id) { userData } }",
                      {"id": owner_id})["data"]["conversation"]["userData"]
    else:
        rest = message_rest(gw, conversation_id, owner_id)["metadata"]
        graphql = message_graphql(gw, conversation_id, owner_id)["metadata"].get("user_data", {})
    return [rest.get("user_data", {}), graphql]


def message_rest(gw, conversation_id: str, message_id: str) -> dict[str, Any]:
    listed = gw.post("/messages.list", {"conversation_id": conversation_id,
                                        "page_size": 100}).json()["data"]
    return next(m for m in listed if m["id"] == message_id)


def message_graphql(gw, conversation_id: str, message_id: str) -> dict[str, Any]:
    edges = gql(gw, """query ($id: ID!) { messages(conversationId: $id, first: 100) {
        edges { node { id content: rawContent metadata } } } }""",
                {"id": conversation_id})["data"]["messages"]["edges"]
    return next(e["node"] for e in edges if e["node"]["id"] == message_id)


@pytest.mark.parametrize("subject", ["message", "conversation", "channel"])
def test_metadata_keeps_every_json_type(gateway, graph, subject):
    channel = connect_page(gateway, graph)
    conversation = start_conversation(gateway, graph, channel=channel)
    owner = {"channel": channel["id"], "conversation": conversation["id"],
             "message": message_of(gateway, conversation["id"])}[subject]

    # New leaves, every type.
    upsert(gateway, subject, owner, EVERY_TYPE)
    for shown in user_data_everywhere(gateway, subject, owner, conversation["id"]):
        assert_exactly(shown, EVERY_TYPE)

    # Merged into existing objects, leaf by leaf.
    upsert(gateway, subject, owner, {"nested": {"added": False, "deeper": {"more": True,
                                                                           "count": 1.0}},
                                     "empty_object": {"now": True}})
    expected = {**EVERY_TYPE,
                "nested": {"flag": True, "off": False, "added": False,
                           "deeper": {"nothing": None, "bools": [False, True], "more": True,
                                      "count": 1.0}},
                "empty_object": {"now": True}}
    for shown in user_data_everywhere(gateway, subject, owner, conversation["id"]):
        assert_exactly(shown, expected)

    # Values replaced by values of another type.
    changes = {"true": "text now", "zero": False, "one": True, "false": 0, "half": True,
               "null": {"was": None}, "nested": [True, {"x": False}], "empty_list": 1.0,
               "big": None, "unicode": False}
    upsert(gateway, subject, owner, changes)
    expected = {**expected, **changes}
    for shown in user_data_everywhere(gateway, subject, owner, conversation["id"]):
        assert_exactly(shown, expected)

    # The mutation answers with the merged data, exactly too.
    merged = gql(gateway, """mutation ($subject: MetadataSubject!, $id: ID!, $data: JSON!) {
        upsertMetadata(subject: $subject, id: $id, data: $data) }""",
                 {"subject": subject.upper(), "id": owner, "data": {"graphql": [True, 1, 1.0]}})
    assert_exactly(merged["data"]["upsertMetadata"], {**expected, "graphql": [True, 1, 1.0]})


def message_of(gw, conversation_id: str) -> str:
    return gw.post("/messages.list", {"conversation_id": conversation_id}).json()["data"][0]["id"]


def test_suggested_replies_keep_every_json_type(gateway, graph):
    conversation = start_conversation(gateway, graph)
    message = message_of(gateway, conversation["id"])
    first = {"s1": {"content": {"text": "Yes", "quick": True, "payload": EVERY_TYPE}},
             "s2": {"content": {"text": "No"}, "primary": False, "rank": 1.0}}
    answer = gateway.post("/messages.suggest-replies",
                          {"message_id": message, "suggestions": first})
    assert answer.status_code == 200, answer.text
    assert_exactly(answer.json()["metadata"]["suggestions"], first)
    more = {"s2": {"content": {"text": "No!"}, "primary": True}, "s3": {"content": {"n": 0}}}
    gateway.post("/messages.suggest-replies", {"message_id": message, "suggestions": more})
    expected = {**first, **more}
    assert_exactly(message_rest(gateway, conversation["id"], message)["metadata"]["suggestions"],
                   expected)
    assert_exactly(message_graphql(gateway, conversation["id"], message)["metadata"]
                   ["suggestions"], expected)


def test_sent_content_keeps_every_json_type_through_send_and_resend(gateway, graph):
    conversation = start_conversation(gateway, graph)
    content = {"attachment": {"type": "template", "payload": {
        "template_type": "generic", "sharable": True, "image_aspect_ratio_square": False,
        "data": EVERY_TYPE}}}
    graph.fail("send", "bad_param")  # refused at once: failed, to be sent again
    sent = send(gateway, conversation["id"], content)
    assert sent.status_code == 200, sent.text
    assert_exactly(sent.json()["content"], content)
    assert settled(gateway, conversation["id"], sent.json()["id"])["state"] == "failed"

    resent = gateway.post("/messages.resend", {"message_id": sent.json()["id"]})
    assert resent.status_code == 200, resent.text
    final = settled(gateway, conversation["id"], sent.json()["id"])
    assert final["state"] == "delivered"
    assert_exactly(final["content"], content)
    assert_exactly(message_graphql(gateway, conversation["id"], final["id"])["content"], content)
    # Meta was asked to send exactly that, both times (with the gateway's own tag beside it).
    calls = graph.calls_of("send")
    assert len(calls) == 2
    for call in calls:
        assert_exactly({key: value for key, value in call.json["message"].items()
                        if key != "metadata"}, content)
