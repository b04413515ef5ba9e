"""Each command's input is defined once (gateway/inputs.py): a REST route and its GraphQL twin refuse
the same bad input, by the same rule, with the same words — each naming the field as its client
knows it (`page_size` over REST is `first` in GraphQL, `tag_id` is `tagId`)."""

from __future__ import annotations

import pytest

from tests import payloads
from tests.conftest import connect_page
from tests.test_graphql import gql
from tests.test_ingest import conversations

LONG = "x" * 5000

# (REST route, body, REST field) and (GraphQL document, variables, GraphQL field); "{c}" in a body
# or variables stands for an existing conversation's id.
CASES = [
    ("/tags.create", {"name": LONG}, "name",
     "mutation($v: String!) { createTag(input: {name: $v}) { id } }", {"v": LONG}, "name"),
    ("/channels.facebook.connect", {"page_id": "123", "page_token": "t", "name": LONG}, "name",
     """mutation($v: String) { connectFacebookChannel(input: {pageId: "123", pageToken: "t",
        name: $v}) { id } }""", {"v": LONG}, "name"),
    ("/channels.update", {"channel_id": "c", "name": LONG}, "name",
     'mutation($v: String) { updateChannel(input: {id: "c", name: $v}) { id } }', {"v": LONG},
     "name"),
    ("/conversations.list", {"page_size": 0}, "page_size",
     "query($v: Int!) { conversations(first: $v) { totalCount } }", {"v": 0}, "first"),
    ("/conversations.list", {"cursor": LONG}, "cursor",
     "query($v: String) { conversations(after: $v) { totalCount } }", {"v": LONG}, "after"),
    ("/conversations.list", {"filters": {"display_name": LONG}}, "filters.display_name",
     "query($v: String) { conversations(filter: {displayName: $v}) { totalCount } }",
     {"v": LONG}, "filter.display_name"),
    ("/conversations.list", {"filters": {"tag_ids": []}}, "filters.tag_ids",
     "query { conversations(filter: {tagIds: []}) { totalCount } }", {}, "filter.tag_ids"),
    ("/conversations.info", {"conversation_id": LONG}, "conversation_id",
     "query($v: ID!) { conversation(id: $v) { id } }", {"v": LONG}, "id"),
    ("/messages.list", {"conversation_id": "{c}", "page_size": 101}, "page_size",
     "query($c: ID!) { messages(conversationId: $c, first: 101) { totalCount } }", {"c": "{c}"},
     "first"),
    ("/messages.send", {"conversation_id": LONG, "message": {"text": "hi"}}, "conversation_id",
     "mutation($v: ID!) { sendMessage(input: {conversationId: $v, message: {text: \"hi\"}}) "
     "{ id } }", {"v": LONG}, "conversationId"),
    ("/conversations.setState", {"conversation_id": "{c}", "state": LONG}, "state",
     "mutation($c: ID!, $v: String) { setConversationState(id: $c, state: $v) { id } }",
     {"c": "{c}", "v": LONG}, "state"),
    ("/conversations.update-contact", {"conversation_id": "{c}", "display_name": LONG},
     "display_name",
     "mutation($c: ID!, $v: String!) { updateContact(conversationId: $c, displayName: $v) "
     "{ id } }", {"c": "{c}", "v": LONG}, "displayName"),
    ("/conversations.tag", {"conversation_id": "{c}", "tag_id": LONG}, "tag_id",
     "mutation($c: ID!, $v: ID!) { tagConversation(conversationId: $c, tagId: $v) { id } }",
     {"c": "{c}", "v": LONG}, "tagId"),
    ("/tags.delete", {"id": ""}, "id",
     'mutation { deleteTag(id: "") }', {}, "id"),
    ("/metadata.upsert", {"subject": "conversation", "id": "{c}", "data": "x"}, "data",
     "mutation($c: ID!) { upsertMetadata(subject: CONVERSATION, id: $c, data: \"x\") }",
     {"c": "{c}"}, "data"),
    ("/webhooks.subscribe", {"url": ""}, "url",
     'mutation { subscribeWebhook(input: {url: ""}) { id } }', {}, "url"),
    ("/webhooks.subscribe", {"url": "https://example.com/h", "events": ["message.created"] * 11},
     "events",
     """mutation($v: [String!]) { subscribeWebhook(input: {url: "https://example.com/h",
        events: $v}) { id } }""", {"v": ["message.created"] * 11}, "events"),
    ("/webhooks.update", {"id": "w", "signature_key": LONG}, "signature_key",
     'mutation($v: String) { updateWebhook(input: {id: "w", signatureKey: $v}) { id } }',
     {"v": LONG}, "signatureKey"),
    ("/channels.facebook.explore", {"auth_token": " "}, "auth_token",
     'query { facebookPages(authToken: " ") { pageId } }', {}, "authToken"),
    ("/contacts.create", {"display_name": LONG}, "display_name",
     "mutation($v: String) { createContact(input: {displayName: $v}) { id } }", {"v": LONG},
     "displayName"),
    ("/contacts.create", {"metadata": {"a": {"b": [1]}}}, "metadata",
     "mutation { createContact(input: {metadata: {a: {b: [1]}}}) { id } }", {}, "metadata"),
    ("/contacts.create", {}, "body",
     "mutation { createContact(input: {}) { id } }", {}, "body"),
    ("/contacts.import", [{"title": LONG}], "contacts.0.title",
     "mutation($v: String) { importContacts(contacts: [{title: $v}]) { id } }", {"v": LONG},
     "contacts.0.title"),
    ("/contacts.list", {"page_size": 0}, "page_size",
     "query { contacts(first: 0) { totalCount } }", {}, "first"),
    ("/contacts.info", {"conversation_id": LONG}, "conversation_id",
     "query($v: ID) { contact(conversationId: $v) { id } }", {"v": LONG}, "conversationId"),
    ("/contacts.update", {"id": "", "title": "x"}, "id",
     'mutation { updateContactCard(id: "", input: {title: "x"}) { id } }', {}, "id"),
    ("/contacts.merge", {"source_id": "s", "destination_id": LONG}, "destination_id",
     'mutation($v: ID!) { mergeContacts(sourceId: "s", destinationId: $v) { id } }',
     {"v": LONG}, "destinationId"),
]


def _with(value, conversation_id: str):
    if isinstance(value, dict):
        return {k: _with(v, conversation_id) for k, v in value.items()}
    return conversation_id if value == "{c}" else value


@pytest.fixture(scope="module")
def gw(nx_url, graph_server, tmp_path_factory):
    """One gateway for every case, with a conversation to name."""
    from tests.conftest import APP_ID, APP_SECRET, VERIFY_TOKEN, GatewayProcess
    process = GatewayProcess({
        "MONGODB_URL": nx_url, "MONGODB_DATABASE": "inputs_agree", "FACEBOOK_APP_ID": APP_ID,
        "FACEBOOK_APP_SECRET": APP_SECRET, "FACEBOOK_WEBHOOK_SECRET": VERIFY_TOKEN,
        "FACEBOOK_GRAPH_API_URL": graph_server.url,
    }, tmp_path_factory.mktemp("inputs") / "gateway.log").start()
    page = connect_page(process, graph_server)["source_channel_id"]
    assert process.webhook(payloads.envelope(page, payloads.text(page, "7601", "hi"))) \
        .status_code == 200
    yield process
    process.stop()


@pytest.mark.parametrize(("route", "body", "rest_field", "document", "variables",
                          "graphql_field"), CASES, ids=[f"{c[0]} {c[2]}" for c in CASES])
def test_rest_and_graphql_refuse_the_same_input_alike(gw, route, body, rest_field, document,
                                                      variables, graphql_field):
    conversation_id = conversations(gw)[0]["id"]
    rest = gw.post(route, _with(body, conversation_id))
    assert rest.status_code == 400, rest.text
    rest_message = rest.json()["message"]
    assert rest_message.startswith(f"{rest_field}: "), rest_message
    answer = gql(gw, document, _with(variables, conversation_id))
    [error] = answer["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST", error
    assert error["message"].startswith(f"{graphql_field}: "), error
    # The same rule, in the same words, after the field's name
    assert error["message"].partition(": ")[2] == rest_message.partition(": ")[2]
