"""Airy's contacts API against a real gateway: a conversation's person becomes a contact with their
profile; contacts are created, imported, listed in pages, changed, deleted and merged over REST
and GraphQL alike; and a change reaches subscribers on another process."""

from __future__ import annotations

import uuid

import pytest

from tests import payloads
from tests.conftest import connect_page, wait_for
from tests.test_graphql import gql, subscribed
from tests.ws import PROTOCOLS, GraphQLSocket

FIELDS = ["id", "display_name", "avatar_url", "title", "timezone", "gender", "locale",
          "organization_name", "via", "address", "conversations", "metadata", "created_at",
          "merge_history"]
CARD = """{ id displayName avatarUrl title via address conversations metadata createdAt
            mergeHistory }"""


def info(gw, **body) -> dict:
    response = gw.post("/contacts.info", body)
    assert response.status_code == 200, response.text
    return response.json()


def create(gw, **body) -> dict:
    response = gw.post("/contacts.create", body)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_conversations_person_becomes_a_contact_with_their_profile(gateway, graph):
    graph.add_profile("7401", "Ada", "Lovelace", pic="https://img.example/ada.jpg")
    channel = connect_page(gateway, graph)
    page = channel["source_channel_id"]
    assert gateway.webhook(payloads.envelope(page, payloads.text(page, "7401", "hi"))) \
        .status_code == 200
    [conversation] = gateway.post("/conversations.list").json()["data"]

    card = wait_for(lambda: (c := info(gateway, conversation_id=conversation["id"]))
                    ["display_name"] == "Ada Lovelace" and c)
    assert list(card) == FIELDS  # Airy's fields, in order, nulls kept
    assert card["avatar_url"] == "https://img.example/ada.jpg"
    assert card["conversations"] == {conversation["id"]: "facebook"}
    assert card["metadata"] == {"facebook": {"psid": "7401", "page_id": page}}
    assert card["merge_history"] == [] and card["created_at"].endswith("Z")
    assert info(gateway, id=card["id"]) == card
    listed = gateway.post("/contacts.list").json()
    assert listed == {"data": [card], "pagination_data": {
        "previous_cursor": None, "next_cursor": None, "total": 1}}

    # Another message from the same person: still one contact.
    gateway.webhook(payloads.envelope(page, payloads.text(page, "7401", "again")))
    by_graphql = gql(gateway, f"""query ($c: ID!) {{ contact(conversationId: $c) {CARD}
        contacts(first: 5) {{ totalCount edges {{ node {{ id }} }} }} }}""",
                     {"c": conversation["id"]})["data"]
    assert by_graphql["contact"]["id"] == card["id"]
    assert by_graphql["contact"]["displayName"] == "Ada Lovelace"
    assert by_graphql["contact"]["metadata"]["facebook"]["psid"] == "7401"
    assert by_graphql["contacts"] == {"totalCount": 1, "edges": [{"node": {"id": card["id"]}}]}


def test_contacts_are_created_imported_and_listed_in_pages(gateway):
    grace = create(gateway, display_name="Grace Hopper", via={"email": "grace@navy.mil"},
                   address={"city": "Arlington"}, metadata={"crm": {"id": 7, "vip": True}})
    assert list(grace) == FIELDS
    assert grace["metadata"] == {"crm": {"id": 7, "vip": True}}  # true kept as true
    assert grace["conversations"] == {} and grace["title"] is None

    # Airy's client posts a bare array.
    imported = gateway.post("/contacts.import", [{"display_name": f"P{n}"} for n in range(4)])
    assert imported.status_code == 201, imported.text
    assert [c["display_name"] for c in imported.json()["data"]] == ["P0", "P1", "P2", "P3"]

    seen, cursor = [], None
    while True:
        page = gateway.post("/contacts.list", {"page_size": 2, "cursor": cursor}).json()
        assert page["pagination_data"]["total"] == 5
        assert len(page["data"]) <= 2
        seen += [c["id"] for c in page["data"]]
        cursor = page["pagination_data"]["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5 and seen[-1] == grace["id"]


@pytest.mark.parametrize(("route", "body", "message"), [
    ("/contacts.create", {}, "body: Value error, a contact needs at least one field"),
    ("/contacts.create", {"metadata": {"tags": ["a"]}}, "metadata: Value error, must not hold "
                                                        "arrays"),
    ("/contacts.create", {"via": {"phones": ["1"]}}, "via.phones: Input should be a valid string"),
    ("/contacts.create", {"address": {"zip": "1"}}, "address: Value error, unknown field 'zip'"),
    ("/contacts.import", [], "contacts: List should have at least 1 item"),
    ("/contacts.import", [{"title": "x"}] * 501, "contacts: List should have at most 500 items"),
    ("/contacts.import", [{"title": "x"}, {}], "contacts.1: Value error, a contact needs"),
    ("/contacts.info", {}, "body: Value error, give either id or conversation_id"),
    ("/contacts.info", {"id": "a", "conversation_id": "b"}, "body: Value error, give either"),
    ("/contacts.update", {"title": "x"}, "id is required"),
    ("/contacts.merge", {"source_id": "a"}, "destination_id is required"),
    ("/contacts.list", {"page_size": 101}, "page_size: Input should be less than or equal"),
    ("/contacts.list", {"cursor": "bm9wZQ"}, "cursor is not one this gateway handed out"),
])
def test_bad_input_is_refused_naming_the_field(shared_gateway, route, body, message):
    response = shared_gateway.post(route, body)
    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith(message), response.json()


@pytest.mark.parametrize(("route", "body"), [
    ("/contacts.info", {"id": "nope"}),
    ("/contacts.info", {"conversation_id": "nope"}),
    ("/contacts.update", {"id": "nope", "title": "x"}),
    ("/contacts.delete", {"id": "nope"}),
    ("/contacts.merge", {"source_id": "nope", "destination_id": "nada"}),
])
def test_unknown_contacts_are_not_found(shared_gateway, route, body):
    response = shared_gateway.post(route, body)
    assert response.status_code == 404 and "not found" in response.json()["message"]


def test_update_removes_fields_with_empty_strings_and_names_the_conversation(gateway, graph):
    channel = connect_page(gateway, graph)
    page = channel["source_channel_id"]
    gateway.webhook(payloads.envelope(page, payloads.text(page, "7402", "hi")))
    [conversation] = gateway.post("/conversations.list").json()["data"]
    card = info(gateway, conversation_id=conversation["id"])  # made on demand
    assert card["conversations"] == {conversation["id"]: "facebook"}

    changed = gateway.post("/contacts.update", {
        "id": card["id"], "display_name": "Jane (VIP)", "title": "Dr", "gender": "female",
        "via": {"phone": "+1 555", "email": "j@x.io"}, "metadata": {"crm": {"id": 9}}})
    assert (changed.status_code, changed.content) == (202, b"")
    removed = gateway.post("/contacts.update", {"id": card["id"], "title": "",
                                                "via": {"phone": ""}, "metadata": ""})
    assert removed.status_code == 202
    now = info(gateway, id=card["id"])
    assert (now["display_name"], now["title"], now["gender"]) == ("Jane (VIP)", None, "female")
    assert now["via"] == {"email": "j@x.io"} and now["metadata"] == {}
    # Airy's inbox shows the conversation's contact name: it is the contact's now.
    listed = gateway.post("/conversations.info", {"conversation_id": conversation["id"]}).json()
    assert listed["contact"]["display_name"] == "Jane (VIP)"

    by_graphql = gql(gateway, f"""mutation ($id: ID!) {{ updateContactCard(id: $id,
        input: {{gender: "", via: {{email: "jane@x.io"}}}}) {CARD} }}""", {"id": card["id"]})
    assert by_graphql["data"]["updateContactCard"]["via"] == {"email": "jane@x.io"}
    assert info(gateway, id=card["id"])["gender"] is None


def test_merge_joins_the_source_into_the_destination(gateway, graph):
    channel = connect_page(gateway, graph)
    page = channel["source_channel_id"]
    gateway.webhook(payloads.envelope(page, payloads.text(page, "7403", "hi")))
    [conversation] = gateway.post("/conversations.list").json()["data"]
    source = info(gateway, conversation_id=conversation["id"])
    gateway.post("/contacts.update", {"id": source["id"], "title": "Dr",
                                      "via": {"phone": "1"}})
    destination = create(gateway, display_name="Ada Lovelace", via={"email": "ada@x.io"})

    merged = gateway.post("/contacts.merge", {"source_id": source["id"],
                                              "destination_id": destination["id"]})
    assert merged.status_code == 200, merged.text
    card = merged.json()
    assert list(card) == FIELDS and card["id"] == destination["id"]
    assert (card["display_name"], card["title"]) == ("Ada Lovelace", "Dr")
    assert card["via"] == {"phone": "1", "email": "ada@x.io"}
    assert card["conversations"] == {conversation["id"]: "facebook"}
    assert card["metadata"]["facebook"] == {"psid": "7403", "page_id": page}
    assert [entry["id"] for entry in card["merge_history"]] == [source["id"]]
    assert gateway.post("/contacts.info", {"id": source["id"]}).status_code == 404
    assert info(gateway, conversation_id=conversation["id"])["id"] == destination["id"]
    assert gateway.post("/contacts.list").json()["pagination_data"]["total"] == 1

    assert gateway.post("/contacts.delete", {"id": destination["id"]}).status_code == 202
    assert gateway.post("/contacts.info", {"id": destination["id"]}).status_code == 404
    assert gateway.post("/contacts.list").json()["pagination_data"]["total"] == 0


def test_graphql_creates_imports_merges_and_deletes(gateway):
    created = gql(gateway, f"""mutation {{ createContact(input: {{displayName: "Grace",
        metadata: {{crm: 7}}}}) {CARD} }}""")["data"]["createContact"]
    assert created["displayName"] == "Grace" and created["metadata"] == {"crm": 7}
    imported = gql(gateway, """mutation { importContacts(contacts: [{displayName: "A"},
        {title: "Dr"}]) { id displayName title } }""")["data"]["importContacts"]
    assert [(c["displayName"], c["title"]) for c in imported] == [("A", None), (None, "Dr")]
    merged = gql(gateway, """mutation ($s: ID!, $d: ID!) { mergeContacts(sourceId: $s,
        destinationId: $d) { id displayName title mergeHistory } }""",
                 {"s": imported[1]["id"], "d": created["id"]})["data"]["mergeContacts"]
    assert (merged["id"], merged["title"]) == (created["id"], "Dr")
    assert [entry["id"] for entry in merged["mergeHistory"]] == [imported[1]["id"]]
    deleted = gql(gateway, "mutation ($id: ID!) { deleteContact(id: $id) }",
                  {"id": imported[0]["id"]})
    assert deleted["data"]["deleteContact"] == imported[0]["id"]
    listed = gql(gateway, "{ contacts(first: 1) { totalCount pageInfo { hasNextPage } "
                          "edges { node { id } } } }")["data"]["contacts"]
    assert listed == {"totalCount": 1, "pageInfo": {"hasNextPage": False},
                      "edges": [{"node": {"id": created["id"]}}]}

    # The same rules as REST, the field named as GraphQL calls it.
    [error] = gql(gateway, "mutation { createContact(input: {}) { id } }")["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert error["message"] == "body: Value error, a contact needs at least one field"
    [error] = gql(gateway, '{ contact(id: "nope") { id } }')["errors"]
    assert error["extensions"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_contact_change_reaches_subscribers_of_another_process(start_gateway, protocol):
    database = "t_contacts_" + uuid.uuid4().hex[:8].translate(
        str.maketrans("0123456789", "ghijklmnop"))
    listening, changing = start_gateway(database), start_gateway(database)
    card = create(changing, display_name="Grace")
    with GraphQLSocket(listening.url, protocol) as ws:
        assert ws.init()["type"] == "connection_ack"
        ws.subscribe("1", "subscription { contactUpdated { id displayName title } }")
        subscribed(listening, 1)
        assert changing.post("/contacts.update", {"id": card["id"], "title": "Rear Admiral"}) \
            .status_code == 202
        # The creation may come first (the listening process's stream may not have passed it
        # when the subscription began); then the change.
        seen = [ws.next("1")["data"]["contactUpdated"]]
        if seen[0]["title"] is None:
            seen.append(ws.next("1")["data"]["contactUpdated"])
        assert seen[-1] == {"id": card["id"], "displayName": "Grace", "title": "Rear Admiral"}, \
            seen


def test_contact_requests_cost_what_their_page_costs(start_gateway, graph, tmp_path):
    """Measured as tests/test_store_cost.py measures (the embedded store counting its work): no
    contact request reads a collection whole, and ten times as many contacts cost no more."""
    from tests.test_store_cost import Measured

    m = Measured(start_gateway, graph, tmp_path / "store")
    try:
        m.gw.webhook(payloads.envelope(m.page, payloads.text(m.page, "7404", "hi")))
        [conversation] = m.gw.post("/conversations.list").json()["data"]
        card = info(m.gw, conversation_id=conversation["id"])
        second_page = None

        def requests() -> dict:
            nonlocal second_page
            second_page = m.gw.post("/contacts.list", {"page_size": 20}).json()[
                "pagination_data"]["next_cursor"]
            return {
                "list": lambda: m.gw.post("/contacts.list", {"page_size": 20}),
                "next page": lambda: m.gw.post("/contacts.list", {"page_size": 20,
                                                                  "cursor": second_page}),
                "info": lambda: info(m.gw, id=card["id"]),
                "info by conversation": lambda: info(m.gw, conversation_id=conversation["id"]),
                "update": lambda: m.gw.post("/contacts.update", {"id": card["id"],
                                                                 "title": "Dr"}),
            }

        figures = []
        for size in (200, 2000):
            while m.gw.post("/contacts.list", {"page_size": 1}).json()[
                    "pagination_data"]["total"] < size:
                m.gw.post("/contacts.import", [{"display_name": "P"}] * 500)
            figures.append({name: m.work(request) for name, request in requests().items()})
        for name, (steps, scans) in figures[1].items():
            # A page is read in index order, stopping at its size (which SQLite's plan calls a
            # scan "using index", as for conversations.list); nothing else reads a collection.
            assert not scans.keys() & {"contact_links", "conversations"}, (name, scans)
            assert name in ("list", "next page") or "contacts" not in scans, (name, scans)
            assert steps <= figures[0][name][0] * 1.25 + 1500, (name, figures)
    finally:
        m.client.close()
