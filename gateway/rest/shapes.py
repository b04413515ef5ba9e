"""Airy's JSON shapes, each defined once: a TypedDict says what an answer holds, the function
beside it builds that answer from domain objects, and `gateway.rest.openapi` makes each OpenAPI
schema from the same TypedDict (through pydantic), so the document cannot drift from the JSON.

The answers are plain dicts, written as literals in the order their TypedDict lists the fields
(tests/test_openapi.py checks both against real answers): the read paths pay nothing for the
definitions. Snake_case fields, ISO-8601 times, nulls kept. The classes carry the names of the
document's schemas; the domain's types of the same names are written `domain.Channel` etc. here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any, cast

from pydantic import Field, WithJsonSchema
from typing_extensions import TypedDict

from gateway import domain
from gateway.domain import (
    TAG_COLORS,
    WEBHOOK_EVENTS,
    DeliveryState,
    FetchState,
    SenderType,
    iso,
)
from gateway.store.ports import Attachment as StoredAttachment


def _one_of(values: Iterable[str]) -> WithJsonSchema:
    """A string that is one of `values`: the domain's enums, named once, give the document's."""
    return WithJsonSchema({"type": "string", "enum": list(values)})


Time = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time",
                                      "example": "2019-02-13T09:39:13.811Z"})]
Source = Annotated[str, _one_of(["facebook"])]
DeliveryStateName = Annotated[str, _one_of(state.value for state in DeliveryState)]
FetchStateName = Annotated[str, _one_of(state.value for state in FetchState)]
UserData = Annotated[dict[str, Any], Field(description="Set through metadata.upsert.")]


class Error(TypedDict):
    """Every answer that is not a success."""

    message: Annotated[str, Field(description="What is wrong; for a body, the field it names.")]


class ChannelMetadata(TypedDict):
    name: str
    image_url: str | None
    token_valid: Annotated[bool, Field(description="False once Meta refuses the page token: "
                                                   "connect the page again.")]
    user_data: UserData


class Channel(TypedDict):
    """A Facebook page, connected or not. Its page token is never part of any answer."""

    id: str
    source: Source
    source_channel_id: Annotated[str, Field(description="The Facebook page id.")]
    connected: bool
    metadata: ChannelMetadata


class Contact(TypedDict):
    """The person who writes to the page."""

    id: Annotated[str, Field(description="The person's page-scoped id (PSID).")]
    display_name: Annotated[str, Field(description='Until the profile is fetched: "Facebook " '
                                                   "and the last five characters of the "
                                                   "conversation id.")]
    avatar_url: str | None
    fetch_state: FetchStateName


class ContactMetadata(TypedDict):
    display_name: str
    avatar_url: str | None
    fetch_state: FetchStateName


class Sender(TypedDict):
    """Who wrote a message: the contact, or the page (id: the channel's id)."""

    id: str | None
    name: str | None
    avatar_url: str | None


class Message(TypedDict):
    id: str
    content: Annotated[dict[str, Any], Field(description="Inbound: the whole Messenger event. "
                                                         "Outbound: the message object given to "
                                                         "messages.send.")]
    state: DeliveryStateName
    delivery_state: Annotated[DeliveryStateName, Field(description="The same as state.")]
    sender_type: Annotated[str, _one_of(kind.value for kind in SenderType)]
    from_contact: bool
    sent_at: Time
    source: Source
    metadata: Annotated[dict[str, Any], Field(description=(
        "Only what is set of: source (id: Meta's mid; error: Meta's error), error, reaction, "
        "user_read (a message to the contact), suggestions, user_data; edit_count and edits "
        "(the earlier texts, oldest first: {text, edited_at}) once the person edited it."))]
    sender: Sender


class ThreadControl(TypedDict):
    """The thread's owner (Meta's handover protocol), as last heard or changed."""

    owner: Annotated[str | None, Field(description=(
        "app (this gateway's app), other_app, page_inbox, or null: not known (idle)."))]
    app_id: Annotated[str | None, Field(description="The owner's app id, when known.")]
    updated_at: Time
    requested_by: Annotated[str | None, Field(description=(
        "The app id that last asked for control (request_thread_control)."))]
    requested_at: Time | None


class Referral(TypedDict):
    """How the person last came to the conversation (Meta's referral: an ad, an m.me link)."""

    source: Annotated[str | None, Field(description="Meta's: ADS, SHORTLINK, "
                                                    "CUSTOMER_CHAT_PLUGIN, …")]
    type: Annotated[str | None, Field(description="OPEN_THREAD")]
    ref: Annotated[str | None, Field(description="The link's or the ad's ref parameter.")]
    ad_id: str | None
    updated_at: Time


class Optin(TypedDict):
    """An opt-in (notification messages, or a Send to Messenger plugin's). Its token is kept by
    the gateway, sealed, and is never part of any answer."""

    type: Annotated[str, Field(description="notification_messages, or plugin.")]
    payload: str | None
    title: str | None
    frequency: Annotated[str | None, Field(description="DAILY, WEEKLY or MONTHLY.")]
    timezone: str | None
    expires_at: Annotated[Time | None, Field(description="When the token expires.")]
    status: Annotated[str | None, Field(description="STOP NOTIFICATIONS or RESUME "
                                                    "NOTIFICATIONS, once changed.")]
    has_token: bool
    updated_at: Time


class ConversationMetadata(TypedDict):
    contact: ContactMetadata
    unread_count: int
    state: Annotated[str | None, Field(description="Set by users, e.g. OPEN or CLOSED.")]
    tags: Annotated[dict[str, str], Field(description="The ids of its tags, each with an empty "
                                                      "string.")]
    user_data: UserData
    thread_control: Annotated[ThreadControl | None, Field(description=(
        "Who owns the thread (handover protocol), read-only; null until Meta tells."))]
    referral: Annotated[Referral | None, Field(description=(
        "The latest referral (read-only); null until there is one."))]
    optins: Annotated[list[Optin], Field(description=(
        "One per type and payload, newest last (read-only)."))]


class Conversation(TypedDict):
    id: str
    created_at: Time
    channel: Channel
    contact: Contact
    metadata: ConversationMetadata
    unread_count: int
    last_message: Message | None


class PaginationData(TypedDict):
    previous_cursor: str | None
    next_cursor: Annotated[str | None, Field(description="Null on the last page.")]
    total: int


class ConversationPage(TypedDict):
    """Conversations, newest activity first."""

    data: list[Conversation]
    pagination_data: PaginationData


class MessagePage(TypedDict):
    """A conversation's messages, newest first."""

    data: list[Message]
    pagination_data: PaginationData


class ChannelList(TypedDict):
    data: list[Channel]


class Tag(TypedDict):
    id: str
    name: str
    color: Annotated[str, _one_of(TAG_COLORS)]


class Attachment(TypedDict):
    id: Annotated[str, Field(description=(
        'Name it in messages.send: {"attachment": {"type": "<type>", "payload": '
        '{"attachment_id": "<id>"}}}.'))]
    type: Annotated[str, _one_of(["image", "video", "audio", "file"])]
    filename: str
    content_type: str
    size: int
    created_at: Time


class TagList(TypedDict):
    data: list[Tag]


class FacebookPage(TypedDict):
    """A page a Facebook user manages."""

    page_id: str
    name: str
    image_url: str | None
    connected: Annotated[bool, Field(description="Whether it is a connected channel here.")]


class PageList(TypedDict):
    data: list[FacebookPage]


class Webhook(TypedDict):
    """An outgoing webhook. Its signature key is never part of any answer."""

    id: str
    name: str | None
    url: str
    headers: dict[str, str]
    events: list[Annotated[str, _one_of(WEBHOOK_EVENTS)]]
    status: Annotated[str, _one_of(["Subscribed", "Unsubscribed"])]


class WebhookInfo(Webhook):
    """An outgoing webhook and how its deliveries fare."""

    last_success_at: Time | None
    last_error: str | None
    last_error_at: Time | None
    queued: Annotated[int, Field(description="Deliveries waiting to be posted.")]


class WebhookList(TypedDict):
    data: list[WebhookInfo]


class ContactCard(TypedDict):
    """A contact (Airy's contacts API): made for each conversation's person, or by a user."""

    id: str
    display_name: str | None
    avatar_url: str | None
    title: str | None
    timezone: str | None
    gender: str | None
    locale: str | None
    organization_name: str | None
    via: Annotated[dict[str, str], Field(description="phone, email, or any <key>: <value>.")]
    address: Annotated[dict[str, str], Field(description=(
        "Any of organization_name, address_line1, address_line2, postcode, city, state, "
        "country."))]
    conversations: Annotated[dict[str, str], Field(description="Conversation id: its source.")]
    metadata: Annotated[dict[str, Any], Field(description=(
        "A conversation's person: facebook {psid, page_id}. No arrays."))]
    created_at: Time
    merge_history: Annotated[list[dict[str, Any]], Field(description=(
        "A copy of each contact merged into this one, as it was."))]


class ContactCardPage(TypedDict):
    """Contacts, newest first."""

    data: list[ContactCard]
    pagination_data: PaginationData


class ContactCardList(TypedDict):
    data: list[ContactCard]


def channel_json(channel: domain.Channel) -> Channel:
    return {
        "id": channel.id,
        "source": channel.source,
        "source_channel_id": channel.source_channel_id,
        "connected": channel.connected,
        "metadata": {"name": channel.name, "image_url": channel.image_url,
                     "token_valid": channel.token_valid, "user_data": channel.user_data},
    }


def contact_json(conversation: domain.Conversation) -> Contact:
    contact = conversation.contact
    return {
        "id": contact.id,
        "display_name": conversation.display_name,
        "avatar_url": contact.avatar_url,
        "fetch_state": contact.fetch_state.value,
    }


def message_json(message: domain.Message, contact: Contact | None = None) -> Message:
    sender: Sender = {"id": None, "name": None, "avatar_url": None}
    if message.from_contact and contact:
        sender = {"id": contact["id"], "name": contact["display_name"],
                  "avatar_url": contact["avatar_url"]}
    elif not message.from_contact:
        sender = {"id": message.channel_id, "name": None, "avatar_url": None}
    return {
        "id": message.id,
        "content": message.content,
        "state": message.state.value,
        "delivery_state": message.state.value,
        "sender_type": message.sender_type.value,
        "from_contact": message.from_contact,
        "sent_at": cast(str, iso(message.sent_at)),
        "source": "facebook",
        "metadata": message.metadata(),
        "sender": sender,
    }


def conversation_json(view: domain.ConversationView) -> Conversation:
    conversation = view.conversation
    contact = contact_json(conversation)
    metadata: ConversationMetadata = {
        "contact": {"display_name": contact["display_name"],
                    "avatar_url": contact["avatar_url"],
                    "fetch_state": contact["fetch_state"]},
        "unread_count": conversation.unread_count,
        "state": conversation.state,
        "tags": {tag_id: "" for tag_id in conversation.tag_ids},
        "user_data": conversation.user_data,
        "thread_control": thread_control_json(conversation.thread_owner)
        if conversation.thread_owner else None,
        "referral": referral_json(conversation.referral) if conversation.referral else None,
        "optins": [optin_json(optin) for optin in conversation.optins],
    }
    return {
        "id": conversation.id,
        "created_at": cast(str, iso(conversation.created_at)),
        "channel": channel_json(view.channel),
        "contact": contact,
        "metadata": metadata,
        "unread_count": conversation.unread_count,
        "last_message": message_json(view.last_message, contact) if view.last_message else None,
    }


def referral_json(referral: domain.Referral) -> Referral:
    return {"source": referral.source, "type": referral.type, "ref": referral.ref,
            "ad_id": referral.ad_id, "updated_at": cast(str, iso(referral.updated_at))}


def optin_json(optin: domain.Optin) -> Optin:
    """An opt-in as answers show it: never its token."""
    return {"type": optin.type, "payload": optin.payload, "title": optin.title,
            "frequency": optin.frequency, "timezone": optin.timezone,
            "expires_at": iso(optin.expires_at), "status": optin.status,
            "has_token": optin.has_token, "updated_at": cast(str, iso(optin.updated_at))}


def thread_control_json(owner: domain.ThreadOwner) -> ThreadControl:
    return {"owner": owner.owner, "app_id": owner.app_id,
            "updated_at": cast(str, iso(owner.updated_at)), "requested_by": owner.requested_by,
            "requested_at": iso(owner.requested_at)}


def page_json(page: domain.Page, shape: Callable[[Any], Any]) -> dict[str, Any]:
    """A ConversationPage or a MessagePage, as `shape` makes its items."""
    pagination: PaginationData = {
        "previous_cursor": page.previous_cursor,
        "next_cursor": page.next_cursor,
        "total": page.total,
    }
    return {"data": [shape(item) for item in page.items], "pagination_data": pagination}


def tag_json(tag: domain.Tag) -> Tag:
    return {"id": tag.id, "name": tag.name, "color": tag.color}


def attachment_json(attachment: StoredAttachment) -> Attachment:
    return {"id": attachment.id, "type": attachment.type, "filename": attachment.filename,
            "content_type": attachment.content_type, "size": attachment.size,
            "created_at": cast(str, iso(attachment.created_at))}


def facebook_page_json(page: domain.FacebookPage) -> FacebookPage:
    return {"page_id": page.page_id, "name": page.name, "image_url": page.image_url,
            "connected": page.connected}


def webhook_json(webhook: domain.Webhook, queued: int | None = None) -> Webhook:
    """Airy's webhook shape; with `queued`, a WebhookInfo: also how its deliveries fare."""
    shape: Webhook = {
        "id": webhook.id, "name": webhook.name, "url": webhook.url, "headers": webhook.headers,
        "events": webhook.events,
        "status": "Subscribed" if webhook.subscribed else "Unsubscribed",
    }
    if queued is None:
        return shape
    info: WebhookInfo = {
        **shape, "last_success_at": iso(webhook.last_success_at),
        "last_error": webhook.last_error, "last_error_at": iso(webhook.last_error_at),
        "queued": queued,
    }
    return info


def contact_card_json(card: domain.ContactCard) -> ContactCard:
    return {
        "id": card.id,
        "display_name": card.display_name,
        "avatar_url": card.avatar_url,
        "title": card.title,
        "timezone": card.timezone,
        "gender": card.gender,
        "locale": card.locale,
        "organization_name": card.organization_name,
        "via": card.via,
        "address": card.address,
        "conversations": card.conversations,
        "metadata": card.metadata,
        "created_at": cast(str, iso(card.created_at)),
        "merge_history": card.merge_history,
    }
