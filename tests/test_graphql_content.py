"""Typed content over GraphQL, against a real gateway: each kind Meta sends (webhook events in
Meta's shapes) and each kind sent through `sendMessage`'s @oneOf input comes back as its type of
the `MessageContent` union; a stored content of an odd shape is `UnknownContent`; each branch of
the input reaches the Send API (the simulator records it) as Meta's message object; two branches
or values over Meta's limits are refused with a clear error, and nothing is sent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest

from tests import payloads
from tests.conftest import GatewayProcess, connect_page, wait_for

# The Content fragment the codegen client uses (the operations after it are the client's).
CONTENT = (Path(__file__).resolve().parent / "codegen" / "operations"
           / "content.graphql").read_text().split("\n\nquery ")[0]
MESSAGES = CONTENT + """
query ($id: ID!) { messages(conversationId: $id, first: 50) {
  edges { node { id sourceMessageId senderType rawContent content { ...Content } } } } }"""
SEND = CONTENT + """
mutation ($input: SendMessageInput!) {
  sendMessage(input: $input) { id state content { ...Content } } }"""
CONVERSATIONS = "{ conversations(first: 1) { edges { node { id } } } }"


def gql(gw: GatewayProcess, query: str, variables: dict | None = None) -> dict:
    answer = gw.http.post("/graphql", json={"query": query, "variables": variables or {}})
    assert answer.status_code == 200, answer.text
    return answer.json()


def data(gw: GatewayProcess, query: str, variables: dict | None = None) -> dict:
    answer = gql(gw, query, variables)
    assert "errors" not in answer, answer
    return answer["data"]


def messages(gw: GatewayProcess, conversation: str) -> dict[str, dict]:
    """The conversation's messages by Meta's id (mid), or by ours for a message not yet sent."""
    edges = data(gw, MESSAGES, {"id": conversation})["messages"]["edges"]
    return {edge["node"]["sourceMessageId"] or edge["node"]["id"]: edge["node"] for edge in edges}


def received(gw: GatewayProcess, page: str, *events: dict[str, Any]) -> str:
    """Post Meta's events; the conversation's id."""
    assert gw.webhook(payloads.envelope(page, *events)).status_code == 200
    return data(gw, CONVERSATIONS)["conversations"]["edges"][0]["node"]["id"]


@pytest.fixture
def store_of() -> Iterator:
    clients: list[pymongo.MongoClient] = []

    def open_store(gw: GatewayProcess):
        client = pymongo.MongoClient(gw.env["MONGODB_URL"])
        clients.append(client)
        return client[gw.env["MONGODB_DATABASE"]]

    yield open_store
    for client in clients:
        client.close()


BUTTON_TEMPLATE = {"template_type": "button", "text": "What next?", "buttons": [
    {"type": "web_url", "title": "Visit", "url": "https://www.messenger.com"},
    {"type": "postback", "title": "Talk to us", "payload": "TALK"}]}
GENERIC_TEMPLATE = {"template_type": "generic", "elements": [
    {"title": "Welcome!", "subtitle": "We have the right hat", "image_url": "https://img.example/hat.png",
     "default_action": {"type": "web_url", "url": "https://shop.example/hat"},
     "buttons": [{"type": "web_url", "title": "Shop", "url": "https://shop.example"}]}]}


def test_each_kind_received_comes_back_as_its_type(gateway, graph):
    page = connect_page(gateway, graph)["source_channel_id"]
    psid = "7001"
    text = payloads.text(page, psid, "Red", quick_reply={"payload": "COLOUR_RED"})
    image = payloads.attachment(page, psid, "image", {"url": "https://cdn.example/cat.jpg"})
    like = {"url": "https://cdn.example/like.png", "sticker_id": 369239263222822}
    sticker = payloads.text(page, psid)  # as Meta sends stickers for a while: twice
    sticker["message"] = {"mid": payloads.mid(), "attachments": [
        {"type": "image", "payload": like}, {"type": "sticker", "payload": like}]}
    shared = payloads.attachment(page, psid, "fallback", {"url": "https://news.example/a"})
    shared["message"]["attachments"][0]["title"] = "A story"
    files = payloads.text(page, psid)
    files["message"] = {"mid": payloads.mid(), "attachments": [
        {"type": kind, "payload": {"url": f"https://cdn.example/x.{kind}"}}
        for kind in ("video", "audio", "file")]}
    postback = payloads.postback(page, psid, "Get Started", "GET_STARTED",
                                 message_id=payloads.mid())
    button_echo = payloads.echo(page, psid)
    button_echo["message"] = {"mid": payloads.mid(), "is_echo": True, "attachments": [
        {"type": "template", "payload": BUTTON_TEMPLATE}]}
    generic_echo = payloads.echo(page, psid)
    generic_echo["message"] = {"mid": payloads.mid(), "is_echo": True, "attachments": [
        {"type": "template", "payload": GENERIC_TEMPLATE}]}
    events = [text, image, sticker, shared, files, postback, button_echo, generic_echo]
    conversation = received(gateway, page, *events)

    found = messages(gateway, conversation)
    by_event = [found[(e.get("message") or e.get("postback"))["mid"]] for e in events]
    assert [m["content"]["__typename"] for m in by_event] == [
        "TextContent", "AttachmentContent", "AttachmentContent", "AttachmentContent",
        "AttachmentContent", "PostbackContent", "ButtonTemplateContent", "GenericTemplateContent"]
    (got_text, got_image, got_sticker, got_shared, got_files, got_postback, got_button,
     got_generic) = (m["content"] for m in by_event)
    assert got_text == {"__typename": "TextContent", "text": "Red",
                        "quickReplyPayload": "COLOUR_RED"}
    assert got_image["attachments"] == [{"type": "IMAGE", "url": "https://cdn.example/cat.jpg",
                                         "title": None, "stickerId": None, "attachmentId": None}]
    assert [(a["type"], a["stickerId"]) for a in got_sticker["attachments"]] == [
        ("STICKER", "369239263222822")]
    assert [(a["type"], a["url"], a["title"]) for a in got_shared["attachments"]] == [
        ("FALLBACK", "https://news.example/a", "A story")]
    assert [a["type"] for a in got_files["attachments"]] == ["VIDEO", "AUDIO", "FILE"]
    assert got_postback == {"__typename": "PostbackContent", "title": "Get Started",
                            "payload": "GET_STARTED"}
    assert got_button["text"] == "What next?" and got_button["buttons"] == [
        {"type": "web_url", "title": "Visit", "url": "https://www.messenger.com", "payload": None},
        {"type": "postback", "title": "Talk to us", "url": None, "payload": "TALK"}]
    [card] = got_generic["elements"]
    assert card == {"title": "Welcome!", "subtitle": "We have the right hat",
                    "imageUrl": "https://img.example/hat.png",
                    "defaultActionUrl": "https://shop.example/hat",
                    "buttons": [{"type": "web_url", "title": "Shop", "url": "https://shop.example",
                                 "payload": None}]}
    assert by_event[0]["rawContent"]["message"]["quick_reply"] == {"payload": "COLOUR_RED"}


def test_odd_stored_content_is_unknown_content(gateway, graph, store_of):
    """Written straight into the store (an older version, another tool): never an error."""
    page = connect_page(gateway, graph)["source_channel_id"]
    events = [payloads.text(page, "7002", f"message {n}") for n in range(4)]
    conversation = received(gateway, page, *events)
    odd = [{"message": {"text": 12.5}},
           {"attachment": {"type": "template", "payload": {"template_type": "receipt"}}},
           {"weird": [1, {"x": None}]},
           {"reaction": {"mid": "m_x", "action": "react", "emoji": "\u2764\ufe0f"}}]
    store = store_of(gateway)
    for event, content in zip(events, odd, strict=True):
        store.messages.update_one({"mid": event["message"]["mid"]}, {"$set": {"content": content}})
    found = messages(gateway, conversation)
    read = [found[e["message"]["mid"]]["content"] for e in events]
    assert read[:3] == [{"__typename": "UnknownContent", "raw": content} for content in odd[:3]]
    assert read[3] == {"__typename": "ReactionContent", "action": "react",
                       "emoji": "\u2764\ufe0f", "reaction": None, "messageId": "m_x"}


BRANCHES: list[tuple[dict[str, Any], dict[str, Any], str]] = [
    ({"text": "Your order has shipped"}, {"text": "Your order has shipped"}, "TextContent"),
    ({"attachment": {"type": "IMAGE", "url": "https://img.example/box.png"}},
     {"attachment": {"type": "image", "payload": {"url": "https://img.example/box.png"}}},
     "AttachmentContent"),
    ({"quickReplies": {"text": "Pick a colour", "replies": [
        {"title": "Red", "payload": "RED", "imageUrl": "https://img.example/red.png"},
        {"contentType": "USER_EMAIL"}]}},
     {"text": "Pick a colour", "quick_replies": [
         {"content_type": "text", "title": "Red", "payload": "RED",
          "image_url": "https://img.example/red.png"}, {"content_type": "user_email"}]},
     "QuickRepliesContent"),
    ({"template": {"button": {"text": "What next?", "buttons": [
        {"type": "WEB_URL", "title": "Visit", "url": "https://www.messenger.com"},
        {"type": "POSTBACK", "title": "Talk to us", "payload": "TALK"}]}}},
     {"attachment": {"type": "template", "payload": BUTTON_TEMPLATE}}, "ButtonTemplateContent"),
    ({"template": {"generic": {"elements": [
        {"title": "Welcome!", "subtitle": "We have the right hat",
         "imageUrl": "https://img.example/hat.png", "defaultActionUrl": "https://shop.example/hat",
         "buttons": [{"type": "WEB_URL", "title": "Shop", "url": "https://shop.example"}]}]}}},
     {"attachment": {"type": "template", "payload": GENERIC_TEMPLATE}}, "GenericTemplateContent"),
    ({"raw": {"text": "As before", "quick_replies": [
        {"content_type": "text", "title": "Yes", "payload": "Y"}]}},
     {"text": "As before", "quick_replies": [
         {"content_type": "text", "title": "Yes", "payload": "Y"}]}, "QuickRepliesContent"),
]


def test_each_branch_reaches_the_send_api_as_meta_message(gateway, graph):
    page = connect_page(gateway, graph)["source_channel_id"]
    conversation = received(gateway, page, payloads.text(page, "7003", "Hi"))
    sent = []
    for given, _, kind in BRANCHES:
        answer = data(gateway, SEND, {"input": {"conversationId": conversation, "message": given}})
        assert answer["sendMessage"]["state"] == "PENDING"
        assert answer["sendMessage"]["content"]["__typename"] == kind
        sent.append(answer["sendMessage"]["id"])
    calls = wait_for(lambda: len(graph.calls_of("send")) == len(BRANCHES)
                     and graph.calls_of("send"))
    by_id = {call.json["message"]["metadata"]: call.json["message"] for call in calls}
    for message_id, (_, expected, _) in zip(sent, BRANCHES, strict=True):
        assert by_id[f"mg:{message_id}"] == {**expected, "metadata": f"mg:{message_id}"}
    # Read back: stored as the Send API message (rawContent), typed again.
    def all_delivered() -> dict[str, dict] | None:
        read = messages(gateway, conversation)
        return read if all(node["sourceMessageId"] for node in read.values()) else None

    delivered = wait_for(all_delivered)
    kinds = {node["id"]: node["content"]["__typename"] for node in delivered.values()}
    assert [kinds[i] for i in sent] == [kind for _, _, kind in BRANCHES]
    raws = {node["id"]: node["rawContent"] for node in delivered.values()}
    assert [raws[i] for i in sent] == [expected for _, expected, _ in BRANCHES]


@pytest.mark.parametrize(("message", "error"), [
    ({"text": "Hi", "raw": {"text": "Hi"}}, "must specify exactly one key"),
    ({"template": {"button": {"text": "t", "buttons": []},
                   "generic": {"elements": []}}}, "must specify exactly one key"),
    ({"text": "x" * 2001}, "message.text: String should have at most 2000 characters"),
    ({"quickReplies": {"text": "t", "replies": [{"title": "a", "payload": "a"}] * 14}},
     "message.quickReplies.replies: List should have at most 13 items"),
    ({"quickReplies": {"text": "t", "replies": [{"title": "x" * 21, "payload": "a"}]}},
     "message.quickReplies.replies.0.title: String should have at most 20 characters"),
    ({"template": {"generic": {"elements": [{"title": "t"}] * 11}}},
     "message.template.generic.elements: List should have at most 10 items"),
    ({"template": {"button": {"text": "t", "buttons": [
        {"type": "POSTBACK", "title": "b", "payload": "p"}] * 4}}},
     "message.template.button.buttons: List should have at most 3 items"),
    ({"template": {"button": {"text": "t", "buttons": [{"type": "WEB_URL", "title": "b"}]}}},
     "a WEB_URL button needs a url"),
    ({"attachment": {"type": "IMAGE", "url": "ftp://img.example/a.png"}},
     "message.attachment.url: String should match pattern"),
    ({"raw": {}}, "message must be a non-empty object"),
])
def test_two_branches_or_limits_are_clear_errors(shared_gateway, graph, message, error):
    """Refused before the conversation is looked up: any id does."""
    answer = gql(shared_gateway, SEND, {"input": {"conversationId": "c-1", "message": message}})
    assert answer.get("data") is None, answer
    [problem] = answer["errors"]
    assert error in problem["message"], problem
    code = "GRAPHQL_VALIDATION_FAILED" if "exactly one key" in error else "BAD_REQUEST"
    assert problem["extensions"]["code"] == code, problem
    assert graph.calls_of("send") == []


def test_two_branches_written_in_the_document_are_refused_before_running(shared_gateway, graph):
    answer = gql(shared_gateway, """mutation { sendMessage(input: {conversationId: "c-1",
        message: {text: "Hi", raw: {text: "Hi"}}}) { id } }""")
    [problem] = answer["errors"]
    assert problem["message"] == ("OneOf Input Object 'OutgoingMessage' must specify exactly "
                                  "one key.")
    assert problem["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert graph.calls_of("send") == []
