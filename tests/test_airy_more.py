"""More of Airy's routes an inbox uses: contact names, profile refetch, conversation state, resend."""

from __future__ import annotations

import pytest

from tests.conftest import connect_page, wait_for
from tests.test_sending import message_state as message_state_of
from tests.test_sending import send, settled, start_conversation


def info(gw, conversation_id: str) -> dict:
    return gw.post("/conversations.info", {"conversation_id": conversation_id}).json()


def gql(gw, query: str, variables: dict | None = None) -> dict:
    return gw.http.post("/graphql", json={"query": query, "variables": variables or {}}).json()


def test_update_contact_names_the_person(gateway, graph):
    conversation = start_conversation(gateway, graph)
    response = gateway.post("/conversations.update-contact",
                            {"conversation_id": conversation["id"], "display_name": "Jane (VIP)"})
    assert response.status_code == 204
    assert info(gateway, conversation["id"])["contact"]["display_name"] == "Jane (VIP)"
    assert gateway.post("/conversations.update-contact",
                        {"conversation_id": "nope", "display_name": "x"}).status_code == 404
    blank = gateway.post("/conversations.update-contact",
                         {"conversation_id": conversation["id"], "display_name": " "})
    assert blank.status_code == 400 and "display_name" in blank.json()["message"]
    missing = gateway.post("/conversations.update-contact", {"conversation_id": conversation["id"]})
    assert missing.json() == {"message": "display_name is required"}
    via_graphql = gql(gateway, """mutation ($id: ID!) { updateContact(conversationId: $id,
        displayName: "Jane D.") { contact { displayName } } }""", {"id": conversation["id"]})
    assert via_graphql["data"]["updateContact"] == {"contact": {"displayName": "Jane D."}}


def test_refetch_takes_the_profile_from_meta_again(gateway, graph):
    graph.add_profile("1001", "Old", "Name")
    conversation = start_conversation(gateway, graph)
    wait_for(lambda: info(gateway, conversation["id"])["contact"]["display_name"] == "Old Name")
    graph.add_profile("1001", "New", "Name")
    response = gateway.post("/conversations.refetch", {"conversation_id": conversation["id"]})
    assert response.status_code == 202
    wait_for(lambda: info(gateway, conversation["id"])["contact"]["display_name"] == "New Name")
    assert len(graph.calls_of("profile")) == 2
    assert gateway.post("/conversations.refetch", {"conversation_id": "nope"}).status_code == 404


@pytest.mark.parametrize("set_route, remove_route", [
    ("/conversations.set-state", "/conversations.remove-state"),
    ("/conversations.setState", "/conversations.removeState"),
])
def test_conversation_state_is_set_and_removed(gateway, graph, set_route, remove_route):
    conversation = start_conversation(gateway, graph)
    assert info(gateway, conversation["id"])["metadata"]["state"] is None
    assert gateway.post(set_route, {"conversation_id": conversation["id"],
                                    "state": "CLOSED"}).status_code == 204
    assert info(gateway, conversation["id"])["metadata"]["state"] == "CLOSED"
    assert gateway.post(remove_route, {"conversation_id": conversation["id"]}).status_code == 204
    assert info(gateway, conversation["id"])["metadata"]["state"] is None
    assert gateway.post(set_route, {"conversation_id": "nope", "state": "OPEN"}).status_code == 404
    assert gateway.post(set_route, {"conversation_id": conversation["id"]}).json() == \
        {"message": "state is required"}
    via_graphql = gql(gateway, 'mutation ($id: ID!) { setConversationState(id: $id, state: "OPEN") '
                      '{ state } }', {"id": conversation["id"]})
    assert via_graphql["data"]["setConversationState"] == {"state": "OPEN"}


def test_resend_sends_a_failed_message_again(gateway, graph):
    conversation = start_conversation(gateway, graph)
    graph.fail("send", "outside_window")
    sent = send(gateway, conversation["id"]).json()
    assert settled(gateway, conversation["id"], sent["id"])["state"] == "failed"
    again = gateway.post("/messages.resend", {"message_id": sent["id"]})
    assert again.status_code == 200
    assert again.json()["id"] == sent["id"] and again.json()["state"] == "pending"
    assert "error" not in again.json()["metadata"]
    final = settled(gateway, conversation["id"], sent["id"])
    assert final["state"] == "delivered"
    assert len(graph.calls_of("send")) == 2

    not_failed = gateway.post("/messages.resend", {"message_id": sent["id"]})
    assert not_failed.status_code == 409
    assert not_failed.json() == {"message": "Message is not in a failed state"}
    assert gateway.post("/messages.resend", {"message_id": "nope"}).status_code == 404
    assert gateway.post("/messages.resend", {}).json() == {"message": "message_id is required"}
    assert len(graph.calls_of("send")) == 2


def test_resend_through_graphql_and_its_conflict_code(gateway, graph):
    conversation = start_conversation(gateway, graph)
    graph.fail("send", "bad_param")
    sent = send(gateway, conversation["id"]).json()
    settled(gateway, conversation["id"], sent["id"])
    resent = gql(gateway, 'mutation ($id: ID!) { resendMessage(id: $id) { id state } }',
                 {"id": sent["id"]})
    assert resent["data"]["resendMessage"] == {"id": sent["id"], "state": "PENDING"}
    settled(gateway, conversation["id"], sent["id"])
    conflict = gql(gateway, 'mutation ($id: ID!) { resendMessage(id: $id) { id } }',
                   {"id": sent["id"]})
    assert conflict["errors"][0]["message"] == "Message is not in a failed state"
    assert conflict["errors"][0]["extensions"]["code"] == "CONFLICT"


def test_resend_into_a_disconnected_channel_is_forbidden(gateway, graph):
    channel = connect_page(gateway, graph)
    conversation = start_conversation(gateway, graph, channel=channel)
    graph.fail("send", "bad_param")
    sent = send(gateway, conversation["id"]).json()
    settled(gateway, conversation["id"], sent["id"])
    gateway.post("/channels.facebook.disconnect", {"channel_id": channel["id"]})
    refused = gateway.post("/messages.resend", {"message_id": sent["id"]})
    assert refused.status_code == 403
    assert message_state_of(gateway, conversation["id"], sent["id"])["state"] == "failed"


def test_resend_keeps_the_messaging_type_and_tag(gateway, graph):
    conversation = start_conversation(gateway, graph)
    graph.fail("send", "bad_param")
    sent = send(gateway, conversation["id"], messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT").json()
    assert settled(gateway, conversation["id"], sent["id"])["state"] == "failed"
    gateway.post("/messages.resend", {"message_id": sent["id"]})
    assert settled(gateway, conversation["id"], sent["id"])["state"] == "delivered"
    last = graph.calls_of("send")[-1]
    assert last.json["messaging_type"] == "MESSAGE_TAG" and last.json["tag"] == "HUMAN_AGENT"


def test_every_route_names_a_missing_field_and_answers_404_for_unknown_ids(gateway):
    from gateway.rest.routes import SPECS

    checked_404 = []
    for spec in SPECS:
        required = [name for name, field in spec.model.model_fields.items()
                    if field.is_required()]
        if not required:
            continue
        missing = gateway.post(spec.path, {})
        assert missing.status_code == 400, spec.path
        message = missing.json()["message"]  # may say more: where the field goes
        assert any(message == f"{name} is required" or message.startswith(f"{name} is required:")
                   for name in required), (spec.path, message)
        if all(name == "id" or name.endswith("_id") for name in required) and \
                spec.path != "/channels.facebook.connect":
            unknown = gateway.post(spec.path, {name: "no-such-id" for name in required})
            assert unknown.status_code == 404, (spec.path, unknown.text)
            assert "not found" in unknown.json()["message"]
            checked_404.append(spec.path)
    assert {"/tags.update", "/tags.delete", "/conversations.tag", "/webhooks.info",
            "/messages.resend", "/conversations.refetch"} <= set(checked_404)
