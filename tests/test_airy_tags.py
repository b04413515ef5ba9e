"""Tags, tagging conversations, and the filters of conversations.list (REST and GraphQL)."""

from __future__ import annotations

from tests import payloads
from tests.conftest import connect_page, wait_for
from tests.test_airy_more import gql, info
from tests.test_sending import start_conversation


def create_tag(gw, name: str, color: str | None = None) -> dict:
    response = gw.post("/tags.create", {"name": name, **({"color": color} if color else {})})
    assert response.status_code == 201, response.text
    return response.json()


def names(listed: dict) -> list[str]:
    return [c["contact"]["display_name"] for c in listed["data"]]


def test_tags_are_created_listed_updated_and_deleted(gateway):
    urgent = create_tag(gateway, "urgent", "tag-red")
    assert set(urgent) == {"id", "name", "color"}
    assert urgent["name"] == "urgent" and urgent["color"] == "tag-red"
    assert create_tag(gateway, "  billing ")["color"] == "tag-blue"  # Airy's default, name trimmed
    assert gateway.post("/tags.list").json() == {"data": [
        {"id": gateway.post("/tags.list").json()["data"][0]["id"], "name": "billing",
         "color": "tag-blue"},
        urgent,
    ]}

    taken = gateway.post("/tags.create", {"name": "urgent"})
    assert taken.status_code == 409 and "urgent" in taken.json()["message"]
    bad_color = gateway.post("/tags.create", {"name": "x", "color": "tag-pink"})
    assert bad_color.status_code == 400 and bad_color.json()["message"].startswith("color")
    assert gateway.post("/tags.create", {"color": "tag-red"}).json() == \
        {"message": "name is required"}

    assert gateway.post("/tags.update", {"id": urgent["id"], "name": "on fire",
                                         "color": "tag-purple"}).status_code == 204
    assert gateway.post("/tags.update", {"id": urgent["id"], "name": "billing"}).status_code == 409
    assert gateway.post("/tags.update", {"id": "nope", "name": "y"}).status_code == 404
    listed = gateway.post("/tags.list").json()["data"]
    assert {"id": urgent["id"], "name": "on fire", "color": "tag-purple"} in listed

    assert gateway.post("/tags.delete", {"id": urgent["id"]}).status_code == 204
    assert gateway.post("/tags.delete", {"id": urgent["id"]}).status_code == 404
    assert [t["name"] for t in gateway.post("/tags.list").json()["data"]] == ["billing"]


def test_conversations_are_tagged_and_untagged(gateway, graph):
    conversation = start_conversation(gateway, graph)
    vip = create_tag(gateway, "vip", "tag-green")
    body = {"conversation_id": conversation["id"], "tag_id": vip["id"]}
    assert gateway.post("/conversations.tag", body).status_code == 204
    assert gateway.post("/conversations.tag", body).status_code == 204  # twice: still one tag
    assert info(gateway, conversation["id"])["metadata"]["tags"] == {vip["id"]: ""}

    assert gateway.post("/conversations.tag", {**body, "tag_id": "nope"}).status_code == 404
    assert gateway.post("/conversations.tag", {**body, "conversation_id": "nope"}).status_code == 404
    assert gateway.post("/conversations.tag", {"conversation_id": conversation["id"]}).json() == \
        {"message": "tag_id is required"}

    tagged = gql(gateway, "query ($id: ID!) { conversation(id: $id) { tags { id name color } } }",
                 {"id": conversation["id"]})
    assert tagged["data"]["conversation"]["tags"] == [
        {"id": vip["id"], "name": "vip", "color": "GREEN"}]

    assert gateway.post("/conversations.untag", body).status_code == 204
    assert info(gateway, conversation["id"])["metadata"]["tags"] == {}

    again = gql(gateway, """mutation ($c: ID!, $t: ID!) { tagConversation(conversationId: $c,
        tagId: $t) { tags { name } } }""", {"c": conversation["id"], "t": vip["id"]})
    assert again["data"]["tagConversation"] == {"tags": [{"name": "vip"}]}
    # Deleting a tag takes it off every conversation.
    gateway.post("/tags.delete", {"id": vip["id"]})
    assert info(gateway, conversation["id"])["metadata"]["tags"] == {}


def test_tags_through_graphql(gateway):
    created = gql(gateway, 'mutation { createTag(input: {name: "later", color: RED}) '
                  '{ id name color } }')["data"]["createTag"]
    assert created["name"] == "later" and created["color"] == "RED"
    updated = gql(gateway, 'mutation ($id: ID!) { updateTag(input: {id: $id, name: "soon"}) '
                  '{ name color } }', {"id": created["id"]})
    assert updated["data"]["updateTag"] == {"name": "soon", "color": "RED"}
    duplicate = gql(gateway, 'mutation { createTag(input: {name: "soon"}) { id } }')
    assert duplicate["errors"][0]["extensions"]["code"] == "CONFLICT"
    assert gql(gateway, "{ tags { name } }")["data"]["tags"] == [{"name": "soon"}]
    deleted = gql(gateway, "mutation ($id: ID!) { deleteTag(id: $id) }", {"id": created["id"]})
    assert deleted["data"]["deleteTag"] == created["id"]
    assert gql(gateway, "{ tags { name } }")["data"]["tags"] == []


def test_conversations_list_filters(gateway, graph):
    shop = connect_page(gateway, graph)
    other = connect_page(gateway, graph)
    people = {"2001": ("Ada", "Lovelace"), "2002": ("Grace", "Hopper"), "2003": ("Alan", "Turing")}
    for psid, (first, last) in people.items():
        graph.add_profile(psid, first, last)
    for psid, channel in (("2001", shop), ("2002", shop), ("2003", other)):
        page = channel["source_channel_id"]
        gateway.webhook(payloads.envelope(page, payloads.text(page, psid, f"hi from {psid}")))
    everyone = {"filters": {}, "page_size": 100}

    def listed(filters: dict, **extra) -> list[str]:
        response = gateway.post("/conversations.list", {"filters": filters, **extra})
        assert response.status_code == 200, response.text
        return sorted(names(response.json()))

    wait_for(lambda: "Facebook" not in " ".join(names(gateway.post("/conversations.list",
                                                                   everyone).json())))
    by_name = {c["contact"]["display_name"]: c for c in
               gateway.post("/conversations.list", everyone).json()["data"]}
    ada, grace, alan = (by_name[n] for n in ("Ada Lovelace", "Grace Hopper", "Alan Turing"))

    assert listed({"channel_ids": [shop["id"]]}) == ["Ada Lovelace", "Grace Hopper"]
    assert listed({}, channel_id=other["id"]) == ["Alan Turing"]
    assert listed({"source": "facebook"}) == ["Ada Lovelace", "Alan Turing", "Grace Hopper"]
    assert listed({"source": "google"}) == []
    assert listed({"display_name": "hOP"}) == ["Grace Hopper"]
    assert listed({"display_name": "a"}) == ["Ada Lovelace", "Alan Turing", "Grace Hopper"]
    assert listed({"display_name": ".*"}) == []  # a plain text search, never a pattern

    gateway.post("/conversations.set-state", {"conversation_id": ada["id"], "state": "CLOSED"})
    gateway.post("/conversations.read", {"conversation_id": grace["id"]})
    vip = create_tag(gateway, "vip")
    late = create_tag(gateway, "late")
    for conversation in (ada, alan):
        gateway.post("/conversations.tag", {"conversation_id": conversation["id"],
                                            "tag_id": vip["id"]})
    gateway.post("/conversations.tag", {"conversation_id": alan["id"], "tag_id": late["id"]})

    assert listed({"state": "CLOSED"}) == ["Ada Lovelace"]
    assert listed({"unread": True}) == ["Ada Lovelace", "Alan Turing"]
    assert listed({"unread": False}) == ["Grace Hopper"]
    assert listed({"tag_ids": [vip["id"]]}) == ["Ada Lovelace", "Alan Turing"]
    assert listed({"tag_ids": [vip["id"], late["id"]]}) == ["Alan Turing"]
    assert listed({"tag_ids": [vip["id"]], "channel_ids": [shop["id"]], "unread": True}) == \
        ["Ada Lovelace"]

    # Filters combine with cursor pagination; the newest last message comes first.
    first = gateway.post("/conversations.list", {"filters": {"display_name": "a"},
                                                 "page_size": 2}).json()
    assert names(first) == ["Alan Turing", "Grace Hopper"]
    assert first["pagination_data"]["total"] == 3
    rest = gateway.post("/conversations.list", {"filters": {"display_name": "a"}, "page_size": 2,
                                                "cursor": first["pagination_data"]["next_cursor"]})
    assert names(rest.json()) == ["Ada Lovelace"]
    assert rest.json()["pagination_data"]["next_cursor"] is None

    # Airy's Lucene query strings are read too (the grammar: tests/test_lucene.py)
    lucene = gateway.post("/conversations.list",
                          {"filters": f"tag_ids:{vip['id']} AND unread_count:[1 TO *]"})
    assert sorted(names(lucene.json())) == ["Ada Lovelace", "Alan Turing"]
    unknown = gateway.post("/conversations.list", {"filters": "tags:x"})
    assert unknown.status_code == 400
    assert unknown.json()["message"].startswith("Failed to parse Lucene query: unknown field")
    typo = gateway.post("/conversations.list", {"filters": {"tags": [vip["id"]]}})
    assert typo.status_code == 400 and "filters.tags" in typo.json()["message"]
    wrong_type = gateway.post("/conversations.list", {"filters": {"unread": "yes"}})
    assert wrong_type.status_code == 400 and "filters.unread" in wrong_type.json()["message"]
    assert gateway.post("/conversations.list", {"filters": {"tag_ids": ["a.b"]}}).status_code == 400

    via_graphql = gql(gateway, """query ($f: ConversationFilterInput) { conversations(filter: $f)
        { totalCount edges { node { contact { displayName } } } } }""",
                      {"f": {"tagIds": [vip["id"]], "unread": True}})
    connection = via_graphql["data"]["conversations"]
    assert connection["totalCount"] == 2
    assert [e["node"]["contact"]["displayName"] for e in connection["edges"]] == \
        ["Alan Turing", "Ada Lovelace"]
