"""Typed message content: `Message.content` reads the stored Meta shape (a received message's
whole webhook event, or the Send API `message` this gateway sent) into one type of the
`MessageContent` union, so that clients and code generators need not know Messenger's formats.
Reading never fails: a shape it does not know, or a stored value that is odd, is
`UnknownContent` holding the JSON as stored. `OutgoingMessage` is `sendMessage`'s typed input;
`gateway.inputs.OutgoingMessage` checks it and writes the Send API message."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

# --- what a message carries -------------------------------------------------------------------


@strawberry.enum(description="An attachment's kind, from Meta's `type` (and `sticker_id`).")
class AttachmentKind(Enum):
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    FILE = "file"
    STICKER = "sticker"
    FALLBACK = strawberry.enum_value("fallback", description="A shared link, or a share Meta "
                                     "does not model (then without a URL).")
    REEL = "reel"
    LOCATION = "location"
    OTHER = strawberry.enum_value("other", description="Any other type Meta sends.")


@strawberry.type(description="One attachment: a file by URL, a sticker, or a shared link.")
class Attachment:
    type: AttachmentKind
    url: str | None = strawberry.field(description="Meta's URL (received), or the URL sent.")
    title: str | None = strawberry.field(description="A fallback's (shared link's) title.")
    sticker_id: str | None
    attachment_id: str | None = strawberry.field(
        description="A reusable attachment's id, when one was sent.")


@strawberry.type(description="A text message; `quickReplyPayload` when the person tapped a "
                 "quick reply.")
class TextContent:
    text: str
    quick_reply_payload: str | None


@strawberry.type(description="Files, stickers or shared links.")
class AttachmentContent:
    attachments: list[Attachment]


@strawberry.enum(description="What a quick reply asks for.")
class QuickReplyType(Enum):
    TEXT = "text"
    USER_PHONE_NUMBER = "user_phone_number"
    USER_EMAIL = "user_email"


@strawberry.type(description="One quick reply button.")
class QuickReply:
    content_type: QuickReplyType
    title: str | None
    payload: str | None
    image_url: str | None


@strawberry.type(description="A text with quick reply buttons under it.")
class QuickRepliesContent:
    text: str
    replies: list[QuickReply]


@strawberry.type(description="A template's button.")
class Button:
    type: str = strawberry.field(description="Meta's button type: web_url, postback, "
                                 "phone_number, …")
    title: str | None
    url: str | None = strawberry.field(description="web_url buttons.")
    payload: str | None = strawberry.field(description="postback and phone_number buttons.")


@strawberry.type(description="A text with up to three buttons (Meta's button template).")
class ButtonTemplateContent:
    text: str
    buttons: list[Button]


@strawberry.type(description="One card of a generic template.")
class TemplateElement:
    title: str
    subtitle: str | None
    image_url: str | None
    default_action_url: str | None
    buttons: list[Button]


@strawberry.type(description="A carousel of cards (Meta's generic template).")
class GenericTemplateContent:
    elements: list[TemplateElement]


@strawberry.type(description="The person tapped a postback button (or Get Started).")
class PostbackContent:
    title: str | None
    payload: str | None


@strawberry.type(description="A reaction event, where one is stored as a message. Reactions "
                 "to a message are in its metadata (reaction).")
class ReactionContent:
    action: str = strawberry.field(description="react or unreact.")
    emoji: str | None
    reaction: str | None
    message_id: str | None = strawberry.field(description="Meta's id (mid) of the message "
                                              "reacted to.")


@strawberry.type(description="A shape this gateway does not type (yet): the content as stored.")
class UnknownContent:
    raw: JSON


MessageContent = Annotated[
    TextContent | AttachmentContent | QuickRepliesContent | ButtonTemplateContent
    | GenericTemplateContent | PostbackContent | ReactionContent | UnknownContent,
    strawberry.union("MessageContent", description="What a message carries, typed; "
                     "UnknownContent for any other shape. rawContent is the JSON as stored."),
]


class _Odd(Exception):
    """A stored shape that is not what its kind should be: read as UnknownContent."""


def read_content(stored: Any) -> MessageContent:
    """The typed content of a message as stored; UnknownContent for anything it cannot read."""
    try:
        return _read(stored)
    except (_Odd, TypeError, ValueError, AttributeError, KeyError):
        return UnknownContent(raw=stored)


def _read(stored: Any) -> MessageContent:
    if not isinstance(stored, dict):
        raise _Odd
    if isinstance(stored.get("message"), dict):  # a received message, or an echo of a sent one
        return _message(stored["message"])
    if isinstance(stored.get("postback"), dict):
        postback = stored["postback"]
        return PostbackContent(title=_text(postback.get("title")),
                               payload=_text(postback.get("payload")))
    if isinstance(stored.get("reaction"), dict):
        reaction = stored["reaction"]
        action = _text(reaction.get("action"))
        if action is None:
            raise _Odd
        return ReactionContent(action=action, emoji=_text(reaction.get("emoji")),
                               reaction=_text(reaction.get("reaction")),
                               message_id=_text(reaction.get("mid")))
    if {"sender", "recipient", "timestamp"} & stored.keys():
        raise _Odd  # another webhook event
    return _message(stored)  # a Send API message this gateway sent


def _message(message: dict[str, Any]) -> MessageContent:
    """A Send API message object, or the `message` of a webhook event (Meta's shapes differ in
    `attachment` against `attachments`, and in `quick_replies` against `quick_reply`)."""
    text = _text(message.get("text"))
    replies = message.get("quick_replies")
    if text is not None and isinstance(replies, list) and replies:
        return QuickRepliesContent(text=text, replies=[_quick_reply(r) for r in replies])
    if text is not None:
        tapped = message.get("quick_reply")
        return TextContent(text=text, quick_reply_payload=_text(tapped.get("payload"))
                           if isinstance(tapped, dict) else None)
    attachments = message.get("attachments")
    if attachments is None and message.get("attachment") is not None:
        attachments = [message["attachment"]]
    if isinstance(attachments, list) and attachments:
        templates = [a for a in attachments if isinstance(a, dict) and a.get("type") == "template"]
        if templates:
            return _template(_object(templates[0].get("payload")))
        return AttachmentContent(attachments=_attachments(attachments))
    if message.get("sticker_id") is not None:  # the Send API's sticker
        return AttachmentContent(attachments=[Attachment(
            type=AttachmentKind.STICKER, url=None, title=None,
            sticker_id=_text(message["sticker_id"]), attachment_id=None)])
    raise _Odd


def _attachments(items: list[Any]) -> list[Attachment]:
    """Meta sends a sticker twice for a while (types `image` and `sticker`, both with its id):
    it is one sticker."""
    read, stickers = [], set()
    for attachment in (_attachment(_object(item)) for item in items):
        if attachment.type is AttachmentKind.STICKER:
            if attachment.sticker_id in stickers:
                continue
            stickers.add(attachment.sticker_id)
        read.append(attachment)
    return read


def _attachment(item: dict[str, Any]) -> Attachment:
    payload = item.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    sticker_id = _text(payload.get("sticker_id"))
    kind = _kind(item.get("type"))
    if sticker_id is not None and kind is AttachmentKind.IMAGE and len(payload) <= 2:
        kind = AttachmentKind.STICKER  # a like or a sticker, as Meta sent them before `sticker`
    return Attachment(type=kind, url=_text(payload.get("url")),
                      title=_text(item.get("title")) or _text(payload.get("title")),
                      sticker_id=sticker_id, attachment_id=_text(payload.get("attachment_id")))


def _kind(value: Any) -> AttachmentKind:
    name = value if isinstance(value, str) else ""
    if name == "ig_reel":
        return AttachmentKind.REEL
    try:
        return AttachmentKind(name)
    except ValueError:
        return AttachmentKind.OTHER


def _template(payload: dict[str, Any]) -> MessageContent:
    kind = payload.get("template_type")
    if kind == "button":
        text = _text(payload.get("text"))
        if text is None:
            raise _Odd
        return ButtonTemplateContent(text=text, buttons=_buttons(payload.get("buttons")))
    if kind == "generic" and isinstance(payload.get("elements"), list):
        return GenericTemplateContent(elements=[_element(_object(e))
                                                for e in payload["elements"]])
    raise _Odd  # the other templates (media, receipt, …) stay UnknownContent


def _element(element: dict[str, Any]) -> TemplateElement:
    title = _text(element.get("title"))
    if title is None:
        raise _Odd
    action = element.get("default_action")
    return TemplateElement(
        title=title, subtitle=_text(element.get("subtitle")),
        image_url=_text(element.get("image_url")),
        default_action_url=_text(action.get("url")) if isinstance(action, dict) else None,
        buttons=_buttons(element.get("buttons")),
    )


def _buttons(value: Any) -> list[Button]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Odd
    buttons = []
    for item in value:
        button = _object(item)
        kind = _text(button.get("type"))
        if kind is None:
            raise _Odd
        buttons.append(Button(type=kind, title=_text(button.get("title")),
                              url=_text(button.get("url")),
                              payload=_text(button.get("payload"))))
    return buttons


def _quick_reply(value: Any) -> QuickReply:
    reply = _object(value)
    return QuickReply(content_type=QuickReplyType(reply.get("content_type", "text")),
                      title=_text(reply.get("title")), payload=_text(reply.get("payload")),
                      image_url=_text(reply.get("image_url")))


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Odd
    return value


def _text(value: Any) -> str | None:
    """A string as stored; a number (Meta writes some ids as numbers) as its digits."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _Odd


# --- what sendMessage sends ---------------------------------------------------------------------


@strawberry.enum(description="What the Send API sends by URL or upload.")
class AttachmentType(Enum):
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    FILE = "file"


@strawberry.input(description="A file Meta fetches from a public URL.")
class AttachmentInput:
    type: AttachmentType
    url: str


@strawberry.input(description="A quick reply button; TEXT needs a title and a payload.")
class QuickReplyInput:
    title: str | None = None
    payload: str | None = None
    image_url: str | None = None
    content_type: QuickReplyType = QuickReplyType.TEXT


@strawberry.input(description="A text (up to 2000 characters) with 1–13 quick replies.")
class QuickRepliesInput:
    text: str
    replies: list[QuickReplyInput]


@strawberry.enum(description="The buttons a template can carry here.")
class ButtonType(Enum):
    WEB_URL = "web_url"
    POSTBACK = "postback"
    PHONE_NUMBER = "phone_number"


@strawberry.input(description="A button: WEB_URL needs url; POSTBACK and PHONE_NUMBER a payload "
                  "(a phone number: +15105551234).")
class ButtonInput:
    type: ButtonType
    title: str
    url: str | None = None
    payload: str | None = None


@strawberry.input(description="One card of a generic template.")
class TemplateElementInput:
    title: str
    subtitle: str | None = None
    image_url: str | None = None
    default_action_url: str | None = None
    buttons: list[ButtonInput] | None = None


@strawberry.input
class ButtonTemplateInput:
    text: str
    buttons: list[ButtonInput]


@strawberry.input
class GenericTemplateInput:
    elements: list[TemplateElementInput]


@strawberry.input(description="A template: `text` and 1–3 buttons (button template) or 1–10 "
                  "elements (generic template).", one_of=True)
class TemplateInput:
    button: ButtonTemplateInput | None = strawberry.UNSET
    generic: GenericTemplateInput | None = strawberry.UNSET


@strawberry.input(one_of=True, description="What to send: exactly one of these. `raw` is any "
                  "Send API message object, as before (e.g. a template not typed here).")
class OutgoingMessage:
    text: str | None = strawberry.UNSET
    attachment: AttachmentInput | None = strawberry.UNSET
    attachment_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="An uploaded attachment's id (uploadAttachment).")
    quick_replies: QuickRepliesInput | None = strawberry.UNSET
    template: TemplateInput | None = strawberry.UNSET
    raw: JSON | None = strawberry.UNSET


def outgoing_arguments(value: Any) -> Any:
    """The input as plain JSON under its GraphQL (camelCase) names, for
    `gateway.inputs.OutgoingMessage`: fields left out are dropped, enums are their values."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [outgoing_arguments(item) for item in value]
    fields = getattr(value, "__strawberry_definition__", None)
    if fields is None:
        return value
    return {_camel(field.python_name): outgoing_arguments(getattr(value, field.python_name))
            for field in fields.fields
            if getattr(value, field.python_name) not in (None, strawberry.UNSET)}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
