"""metadata.upsert, suggested replies, exploring a user's pages, and live events of mutations."""

from __future__ import annotations

import pytest

from tests.conftest import connect_page, wait_for
from tests.test_airy_more import gql, info
from tests.test_graphql import subscribed
from tests.test_sending import start_conversation
from tests.ws import PROTOCOLS, GraphQLSocket


def first_message(gw, conversation_id: str) -> dict:
    return gw.post("/messages.list", {"conversation_id": conversation_id}).json()["data"][0]


def upsert(gw, subject: str, owner_id: str, data) -> int:
    return gw.post("/metadata.upsert", {"subject": subject, "id": owner_id, "data": data})


def test_metadata_is_merged_deeply_into_user_data(gateway, graph):
    channel = connect_page(gateway, graph)
    conversation = start_conversation(gateway, graph, channel=channel)
    assert info(gateway, conversation["id"])["metadata"]["user_data"] == {}

    assert upsert(gateway, "conversation", conversation["id"],
                  {"crm": {"id": 42, "owner": "ann"}, "priority": "high"}).status_code == 204
    assert upsert(gateway, "conversation", conversation["id"],
                  {"crm": {"owner": "bob", "stage": {"name": "lead"}}, "list": [1, 2]}
                  ).status_code == 204
    assert info(gateway, conversation["id"])["metadata"]["user_data"] == {
        "crm": {"id": 42, "owner": "bob", "stage": {"name": "lead"}}, "priority": "high",
        "list": [1, 2]}
    # A value that is not an object replaces what was there, and an object replaces a value.
    upsert(gateway, "conversation", conversation["id"], {"crm": "gone", "priority": {"level": 1}})
    assert info(gateway, conversation["id"])["metadata"]["user_data"] == {
        "crm": "gone", "priority": {"level": 1}, "list": [1, 2]}

    message = first_message(gateway, conversation["id"])
    assert "user_data" not in message["metadata"]
    assert upsert(gateway, "message", message["id"], {"sentiment": "happy"}).status_code == 204
    assert first_message(gateway, conversation["id"])["metadata"]["user_data"] == \
        {"sentiment": "happy"}

    assert upsert(gateway, "channel", channel["id"], {"team": "support"}).status_code == 204
    shown = gateway.post("/channels.info", {"channel_id": channel["id"]}).json()
    assert shown["metadata"]["user_data"] == {"team": "support"}

    assert upsert(gateway, "conversation", "nope", {"a": 1}).status_code == 404
    bad_subject = upsert(gateway, "contact", conversation["id"], {"a": 1})
    assert bad_subject.status_code == 400 and bad_subject.json()["message"].startswith("subject")
    assert upsert(gateway, "message", message["id"], "text").status_code == 400
    dotted = upsert(gateway, "message", message["id"], {"a": {"b.c": 1}})
    assert dotted.status_code == 400 and "'b.c'" in dotted.json()["message"]
    assert upsert(gateway, "message", message["id"], {"$set": 1}).status_code == 400
    assert gateway.post("/metadata.upsert", {"subject": "message", "id": message["id"]}).json() \
        == {"message": "data is required"}

    merged = gql(gateway, """mutation ($id: ID!) { upsertMetadata(subject: CHANNEL, id: $id,
        data: {team: "sales", region: "eu"}) }""", {"id": channel["id"]})
    assert merged["data"]["upsertMetadata"] == {"team": "sales", "region": "eu"}
    user_data = gql(gateway, "query ($id: ID!) { channel(id: $id) { userData } }",
                    {"id": channel["id"]})
    assert user_data["data"]["channel"]["userData"] == {"team": "sales", "region": "eu"}


def test_suggested_replies_are_kept_on_the_message(gateway, graph):
    conversation = start_conversation(gateway, graph)
    message = first_message(gateway, conversation["id"])
    suggestions = {"s1": {"content": {"text": "Happy to help!"}},
                   "s2": {"content": {"text": "Could you tell me more?"}}}
    response = gateway.post("/messages.suggest-replies",
                            {"message_id": message["id"], "suggestions": suggestions})
    assert response.status_code == 200
    assert response.json()["id"] == message["id"]
    assert response.json()["metadata"]["suggestions"] == suggestions
    gateway.post("/messages.suggest-replies", {"message_id": message["id"], "suggestions": {
        "s2": {"content": {"text": "Tell me more."}}}})
    assert first_message(gateway, conversation["id"])["metadata"]["suggestions"] == {
        "s1": {"content": {"text": "Happy to help!"}}, "s2": {"content": {"text": "Tell me more."}}}

    assert gateway.post("/messages.suggest-replies", {"message_id": "nope", "suggestions":
                                                      suggestions}).status_code == 404
    no_content = gateway.post("/messages.suggest-replies",
                              {"message_id": message["id"], "suggestions": {"s3": {"text": "x"}}})
    assert no_content.status_code == 400 and "suggestions.s3" in no_content.json()["message"]
    assert gateway.post("/messages.suggest-replies", {"message_id": message["id"]}).json() == \
        {"message": "suggestions is required"}

    via_graphql = gql(gateway, """mutation ($id: ID!) { suggestReplies(messageId: $id,
        suggestions: {s9: {content: {text: "Bye"}}}) { metadata } }""", {"id": message["id"]})
    assert via_graphql["data"]["suggestReplies"]["metadata"]["suggestions"]["s9"] == \
        {"content": {"text": "Bye"}}


def test_explore_lists_every_page_of_a_user_with_connected_flags(gateway, graph):
    page_ids = [str(700001 + i) for i in range(5)]
    for page_id in page_ids:
        graph.add_page(page_id, f"EAApage{page_id}")
    graph.add_user("EAAuser", page_ids)
    connected = connect_page(gateway, graph, page_id=page_ids[3], token=f"EAApage{page_ids[3]}")
    graph.calls.clear()

    response = gateway.post("/channels.facebook.explore", {"auth_token": "EAAuser"})
    assert response.status_code == 200, response.text
    pages = response.json()["data"]
    assert [p["page_id"] for p in pages] == page_ids  # 5 pages, answered 2 at a time by Meta
    assert [p["connected"] for p in pages] == [False, False, False, True, False]
    assert pages[0] == {"page_id": page_ids[0], "name": "Test Page",
                        "image_url": "https://img.example/page.png", "connected": False}
    calls = graph.calls_of("accounts")
    assert [c.query.get("after") for c in calls] == [None, "2", "4"]
    assert all(c.query["access_token"] == "EAAuser" for c in calls)

    refused = gateway.post("/channels.facebook.explore", {"auth_token": "EAAwrong"})
    assert refused.status_code == 400
    assert refused.json()["message"].startswith("Error validating access token")
    assert gateway.post("/channels.facebook.explore", {}).json() == \
        {"message": "auth_token is required"}
    graph.fail("accounts", "server_error")
    assert gateway.post("/channels.facebook.explore", {"auth_token": "EAAuser"}).status_code == 502

    via_graphql = gql(gateway, '{ facebookPages(authToken: "EAAuser") { pageId connected } }')
    assert {"pageId": connected["source_channel_id"], "connected": True} in \
        via_graphql["data"]["facebookPages"]
    assert "EAApage" not in response.text  # page tokens Meta sends along stay out of the answer


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_mutations_reach_subscribers(gateway, graph, protocol):
    channel = connect_page(gateway, graph)
    graph.add_profile("1001", "Jane", "Doe")
    conversation = start_conversation(gateway, graph, channel=channel)
    wait_for(lambda: info(gateway, conversation["id"])["contact"]["fetch_state"] == "ok")
    tag = gateway.post("/tags.create", {"name": "vip"}).json()
    with GraphQLSocket(gateway.url, protocol) as ws:
        ws.init()
        ws.subscribe("conv", "subscription { conversationUpdated { id state tags { name } "
                             "userData contact { displayName } } }")
        ws.subscribe("chan", "subscription { channelUpdated { id name userData } }")
        subscribed(gateway, 2)

        def arrives(op_id: str, field: str, expected) -> dict:
            """Read `op_id`'s events until one whose `field` is `expected` (others may come first,
            e.g. the contact's profile arriving)."""
            for _ in range(10):
                value = ws.next(op_id)["data"]
                value = next(iter(value.values()))
                if value[field] == expected:
                    return value
            raise AssertionError(f"no event with {field} = {expected!r}")

        gateway.post("/conversations.tag", {"conversation_id": conversation["id"],
                                            "tag_id": tag["id"]})
        arrives("conv", "tags", [{"name": "vip"}])
        gateway.post("/conversations.set-state", {"conversation_id": conversation["id"],
                                                  "state": "OPEN"})
        arrives("conv", "state", "OPEN")
        gateway.post("/conversations.update-contact", {"conversation_id": conversation["id"],
                                                       "display_name": "Jo"})
        arrives("conv", "contact", {"displayName": "Jo"})
        upsert(gateway, "conversation", conversation["id"], {"a": 1})
        arrives("conv", "userData", {"a": 1})

        upsert(gateway, "channel", channel["id"], {"team": "support"})
        assert arrives("chan", "userData", {"team": "support"}) == {
            "id": channel["id"], "name": "Test Page", "userData": {"team": "support"}}
        gateway.post("/channels.update", {"channel_id": channel["id"], "name": "Shop"})
        arrives("chan", "name", "Shop")
