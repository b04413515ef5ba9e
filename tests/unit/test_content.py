"""Typed content, in-process: the reader (gateway/graphql/content.py) on Meta's shapes and on odd
ones, and the send input (gateway.inputs.OutgoingMessage) writing the Send API message."""

from __future__ import annotations

import random
from typing import Any

import pytest

from gateway import inputs
from gateway.errors import InvalidInput
from gateway.graphql.content import (
    AttachmentContent,
    AttachmentKind,
    ButtonTemplateContent,
    GenericTemplateContent,
    PostbackContent,
    QuickRepliesContent,
    ReactionContent,
    TextContent,
    UnknownContent,
    read_content,
)
from gateway.sandbox import payloads

PAGE, PSID = "1234", "5678"


def test_received_text_and_tapped_quick_reply():
    content = read_content(payloads.text(PAGE, PSID, "Red", quick_reply={"payload": "RED"}))
    assert content == TextContent(text="Red", quick_reply_payload="RED")


def test_received_attachments_and_a_sticker_sent_twice_is_one():
    like = {"url": "https://cdn.example/s.png", "sticker_id": 369239263222822}
    content = read_content({**payloads.text(PAGE, PSID), "message": {"mid": "m_1", "attachments": [
        {"type": "image", "payload": {"url": "https://cdn.example/a.jpg"}},
        {"type": "image", "payload": like}, {"type": "sticker", "payload": like},
        {"type": "fallback", "title": "A page", "payload": {"url": "https://example.com"}},
        {"type": "ig_reel", "payload": {"url": "https://cdn.example/r.mp4"}},
        {"type": "appointment_booking", "payload": {}},
    ]}})
    assert isinstance(content, AttachmentContent)
    assert [(a.type, a.url, a.sticker_id, a.title) for a in content.attachments] == [
        (AttachmentKind.IMAGE, "https://cdn.example/a.jpg", None, None),
        (AttachmentKind.STICKER, "https://cdn.example/s.png", "369239263222822", None),
        (AttachmentKind.FALLBACK, "https://example.com", None, "A page"),
        (AttachmentKind.REEL, "https://cdn.example/r.mp4", None, None),
        (AttachmentKind.OTHER, None, None, None),
    ]


def test_echoed_templates_and_postbacks():
    button = {"template_type": "button", "text": "Pick",
              "buttons": [{"type": "postback", "title": "Yes", "payload": "Y"}]}
    echo = {**payloads.echo(PAGE, PSID), "message": {"mid": "m_2", "is_echo": True, "attachments": [
        {"type": "template", "payload": button}]}}
    content = read_content(echo)
    assert isinstance(content, ButtonTemplateContent) and content.text == "Pick"
    assert content.buttons[0].payload == "Y"
    assert read_content(payloads.postback(PAGE, PSID, "Start", "GO")) == PostbackContent(
        title="Start", payload="GO")
    reaction = read_content(payloads.reaction(PAGE, PSID, "m_3"))
    assert isinstance(reaction, ReactionContent) and reaction.message_id == "m_3"


@pytest.mark.parametrize("message", [
    {"text": "Hi"},
    {"attachment": {"type": "image", "payload": {"url": "https://x.example/a.png"}}},
    {"text": "Pick", "quick_replies": [{"content_type": "text", "title": "A", "payload": "A"}]},
    {"attachment": {"type": "template", "payload": {"template_type": "generic", "elements": [
        {"title": "Card", "buttons": [{"type": "web_url", "title": "Go",
                                       "url": "https://x.example"}]}]}}},
])
def test_what_the_send_input_writes_reads_back_as_its_kind(message: dict[str, Any]):
    """Each typed branch writes a Send API message the reader types again (not Unknown)."""
    content = read_content(message)
    assert not isinstance(content, UnknownContent)
    assert type(content) in (TextContent, AttachmentContent, QuickRepliesContent,
                             GenericTemplateContent)


@pytest.mark.parametrize("odd", [
    {}, {"message": {}}, {"message": {"text": 5.5}}, {"message": {"attachments": "x"}},
    {"message": {"attachments": [None]}}, {"attachment": {"type": "template", "payload": "x"}},
    {"attachment": {"type": "template", "payload": {"template_type": "button"}}},
    {"attachment": {"type": "template", "payload": {"template_type": "generic",
                                                    "elements": [{"subtitle": "no title"}]}}},
    {"attachment": {"type": "template", "payload": {"template_type": "receipt"}}},
    {"text": "x", "quick_replies": [{"content_type": "location"}]},
    {"reaction": {"emoji": "x"}}, {"sender": {"id": "1"}, "read": {"watermark": 1}},
    [1, 2], "text", None,
])
def test_odd_shapes_are_unknown_content_holding_them(odd: Any):
    assert read_content(odd) == UnknownContent(raw=odd)


def test_random_shapes_never_fail():
    rng = random.Random(17)
    leaves = [None, True, 0, -1, 1.5, "", "text", "image", "template", "button", "generic", [], {}]
    keys = ["message", "text", "attachment", "attachments", "type", "payload", "template_type",
            "buttons", "elements", "title", "quick_replies", "quick_reply", "postback",
            "reaction", "sticker_id", "url", "content_type", "action"]

    def shape(depth: int) -> Any:
        if depth == 0 or rng.random() < 0.3:
            return rng.choice(leaves)
        if rng.random() < 0.3:
            return [shape(depth - 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice(keys): shape(depth - 1) for _ in range(rng.randint(0, 4))}

    for _ in range(3000):
        read_content(shape(5))  # must not raise


def send_api(message: dict[str, Any]) -> dict[str, Any]:
    return inputs.parse(inputs.TypedSend, {"message": message}).message.send_api()


def test_each_branch_writes_the_send_api_message():
    assert send_api({"text": "Hi"}) == {"text": "Hi"}
    assert send_api({"attachment": {"type": "video", "url": "https://x.example/v.mp4"}}) == {
        "attachment": {"type": "video", "payload": {"url": "https://x.example/v.mp4"}}}
    assert send_api({"quickReplies": {"text": "Pick", "replies": [
        {"title": "Red", "payload": "R", "imageUrl": "https://x.example/r.png"},
        {"contentType": "user_email"}]}}) == {"text": "Pick", "quick_replies": [
            {"content_type": "text", "title": "Red", "payload": "R",
             "image_url": "https://x.example/r.png"}, {"content_type": "user_email"}]}
    assert send_api({"raw": {"sticker_id": 369239263222822}}) == {"sticker_id": 369239263222822}


@pytest.mark.parametrize(("message", "error"), [
    ({"text": "a", "raw": {"text": "a"}}, "message: Value error, give exactly one of text, "),
    ({}, "message: Value error, give exactly one of"),
    ({"text": "x" * 2001}, "message.text: String should have at most 2000 characters"),
    ({"quickReplies": {"text": "t", "replies": [{"title": "a", "payload": "a"}] * 14}},
     "message.quickReplies.replies: List should have at most 13 items"),
    ({"quickReplies": {"text": "t", "replies": [{"title": "x" * 21, "payload": "a"}]}},
     "message.quickReplies.replies.0.title: String should have at most 20 characters"),
    ({"quickReplies": {"text": "t", "replies": [{"title": "a"}]}},
     "a TEXT quick reply needs a title and a payload"),
    ({"template": {"button": {"text": "t", "buttons": [
        {"type": "web_url", "title": "b", "url": "https://x.example"}] * 4}}},
     "message.template.button.buttons: List should have at most 3 items"),
    ({"template": {"button": {"text": "t", "buttons": [{"type": "web_url", "title": "b"}]}}},
     "a WEB_URL button needs a url"),
    ({"template": {"generic": {"elements": [{"title": "t"}] * 11}}},
     "message.template.generic.elements: List should have at most 10 items"),
    ({"template": {"generic": {"elements": [{"title": "x" * 81}]}}},
     "message.template.generic.elements.0.title: String should have at most 80 characters"),
    ({"attachment": {"type": "image", "url": "file:///etc/passwd"}},
     "message.attachment.url: String should match pattern"),
])
def test_limits_are_refused_naming_the_field(message: dict[str, Any], error: str):
    with pytest.raises(InvalidInput) as refused:
        send_api(message)
    assert error in str(refused.value)
