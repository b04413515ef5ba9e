"""GraphQL types: thin views over the domain dataclasses. Never a page token."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Generic, TypeVar

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON
from strawberry.types import Info

from gateway import domain
from gateway.graphql.content import MessageContent, OutgoingMessage, read_content

DeliveryState = strawberry.enum(domain.DeliveryState, description="Where an outgoing message is.")


@strawberry.enum(description="Who wrote a message, in Airy's words.")
class SenderType(Enum):
    SOURCE_CONTACT = strawberry.enum_value("source_contact", description="the person")
    SOURCE_USER = strawberry.enum_value(
        "source_user", description="the page, answering from another app (e.g. Page Inbox)"
    )
    APP_USER = strawberry.enum_value("app_user", description="this gateway")


FetchState = strawberry.enum(domain.FetchState, description="Whether the contact's profile is in.")


def moment(ms: int) -> datetime:
    return domain.moment(ms)  # exact to the millisecond, up to the last one of year 9999


def _iso(when: datetime) -> str:
    """As REST writes times (domain.iso), so a client reads one format from both APIs."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Strawberry's own scalar for datetimes, replaced (`SCALARS`, given to the schema's config): every
# time field is a `datetime` and is written as REST writes it.
DATETIME = strawberry.scalar(
    name="DateTime",
    serialize=_iso,
    parse_value=lambda value: datetime.fromisoformat(str(value)),
    description="A time in UTC: ISO-8601 with milliseconds and Z, as REST writes it "
                "(2026-11-25T10:00:00.123Z).",
)
SCALARS: dict[object, Any] = {datetime: DATETIME}


@strawberry.interface(description="An object Relay can refetch with node(id:): its id is the "
                      "one every query, mutation and REST route takes (docs/graphql.md, Relay).")
class Node:
    id: strawberry.ID


@strawberry.type(description="A connected (or formerly connected) Facebook page.")
class Channel(Node):
    id: strawberry.ID
    source: str
    source_channel_id: str = strawberry.field(description="The Facebook page id.")
    name: str
    image_url: str | None
    connected: bool
    token_valid: bool = strawberry.field(
        description="False once Meta refused the page token: connect the page again."
    )
    user_data: JSON = strawberry.field(description="Set through upsertMetadata.")

    @classmethod
    def of(cls, channel: domain.Channel) -> Channel:
        return cls(id=strawberry.ID(channel.id), source=channel.source,
                   source_channel_id=channel.source_channel_id, name=channel.name,
                   image_url=channel.image_url, connected=channel.connected,
                   token_valid=channel.token_valid, user_data=channel.user_data)


TagColor = strawberry.enum(
    Enum("TagColor", {c.removeprefix("tag-").upper(): c for c in domain.TAG_COLORS}),
    description="Airy's tag colours.",
)


@strawberry.type(description="A label users put on conversations.")
class Tag(Node):
    id: strawberry.ID
    name: str
    color: TagColor

    @classmethod
    def of(cls, tag: domain.Tag) -> Tag:
        return cls(id=strawberry.ID(tag.id), name=tag.name, color=TagColor(tag.color))


@strawberry.type(description="A page a Facebook user manages.")
class FacebookPage:
    page_id: str
    name: str
    image_url: str | None
    connected: bool = strawberry.field(description="Whether it is connected here already.")


@strawberry.enum(description="What upsertMetadata writes to.")
class MetadataSubject(Enum):
    MESSAGE = "message"
    CONVERSATION = "conversation"
    CHANNEL = "channel"


@strawberry.type(description="The person a conversation is with.")
class Contact:
    id: strawberry.ID = strawberry.field(description="The person's page-scoped id (PSID).")
    display_name: str
    avatar_url: str | None
    fetch_state: FetchState


@strawberry.type(description="A text a message had before the person edited it.")
class MessageEdit:
    text: str | None
    edited_at: datetime = strawberry.field(description="When this text was replaced.")


@strawberry.type(description="How the person last came to the conversation (Meta's referral).")
class Referral:
    source: str | None = strawberry.field(description="ADS, SHORTLINK, CUSTOMER_CHAT_PLUGIN, …")
    type: str | None = strawberry.field(description="OPEN_THREAD")
    ref: str | None = strawberry.field(description="The link's or the ad's ref parameter.")
    ad_id: str | None
    updated_at: datetime

    @classmethod
    def of(cls, referral: domain.Referral) -> Referral:
        return cls(source=referral.source, type=referral.type, ref=referral.ref,
                   ad_id=referral.ad_id, updated_at=moment(referral.updated_at))


@strawberry.type(description="An opt-in: notification messages, or a Send to Messenger plugin's. "
                 "Its token stays in the gateway, sealed.")
class Optin:
    type: str = strawberry.field(description="notification_messages, or plugin.")
    payload: str | None
    title: str | None
    frequency: str | None = strawberry.field(description="DAILY, WEEKLY or MONTHLY.")
    timezone: str | None
    expires_at: datetime | None = strawberry.field(description="When the token expires.")
    status: str | None = strawberry.field(
        description="STOP NOTIFICATIONS or RESUME NOTIFICATIONS, once changed.")
    has_token: bool
    updated_at: datetime

    @classmethod
    def of(cls, optin: domain.Optin) -> Optin:
        return cls(type=optin.type, payload=optin.payload, title=optin.title,
                   frequency=optin.frequency, timezone=optin.timezone,
                   expires_at=moment(optin.expires_at) if optin.expires_at is not None else None,
                   status=optin.status, has_token=optin.has_token,
                   updated_at=moment(optin.updated_at))


@strawberry.type(description="One message, from the person, the page or this gateway.")
class Message(Node):
    id: strawberry.ID
    conversation_id: strawberry.ID
    channel_id: strawberry.ID
    raw_content: JSON = strawberry.field(
        description="Inbound: the whole Messenger event. Outbound: the message object sent."
    )
    state: DeliveryState
    delivery_state: DeliveryState
    sender_type: SenderType
    from_contact: bool
    sent_at: datetime
    source: str
    source_message_id: str | None = strawberry.field(description="Meta's message id (mid).")
    metadata: JSON = strawberry.field(
        description="Airy's reserved metadata: source.id, error, source.error, reaction, user_read."
    )
    read_by_contact: bool
    edited: bool = strawberry.field(description="Whether the person edited it.")
    edit_count: int = strawberry.field(description="Meta's count of its edits (0: none).")
    edits: list[MessageEdit] = strawberry.field(description="Its earlier texts, oldest first.")

    @strawberry.field(description="What it carries, typed (read from rawContent).")
    def content(self) -> MessageContent:
        return read_content(self.raw_content)

    @classmethod
    def of(cls, message: domain.Message) -> Message:
        return cls(
            id=strawberry.ID(message.id), conversation_id=strawberry.ID(message.conversation_id),
            channel_id=strawberry.ID(message.channel_id), raw_content=message.content,
            state=message.state, delivery_state=message.state,
            sender_type=SenderType(message.sender_type.value),
            from_contact=message.from_contact, sent_at=moment(message.sent_at),
            source="facebook", source_message_id=message.source_message_id,
            metadata=message.metadata(), read_by_contact=message.read_by_contact,
            edited=message.edit_count > 0, edit_count=message.edit_count,
            edits=[MessageEdit(text=edit.get("text"), edited_at=moment(edit["edited_at"]))
                   for edit in message.edits],
        )


@strawberry.enum(description="Who owns a thread (Meta's handover protocol).")
class ThreadOwnerKind(Enum):
    APP = strawberry.enum_value("app", description="this gateway's app (FACEBOOK_APP_ID)")
    OTHER_APP = strawberry.enum_value("other_app", description="another app of the page")
    PAGE_INBOX = strawberry.enum_value("page_inbox", description="the page's Inbox (people)")


@strawberry.type(description="The thread's owner, as Meta last told it or this app changed it.")
class ThreadControl:
    owner: ThreadOwnerKind | None = strawberry.field(description="Null: not known (idle).")
    app_id: str | None = strawberry.field(description="The owner's app id, when known.")
    updated_at: datetime
    requested_by: str | None = strawberry.field(
        description="The app id that last asked for control (request_thread_control).")
    requested_at: datetime | None

    @classmethod
    def of(cls, owner: domain.ThreadOwner) -> ThreadControl:
        return cls(owner=ThreadOwnerKind(owner.owner) if owner.owner else None,
                   app_id=owner.app_id, updated_at=moment(owner.updated_at),
                   requested_by=owner.requested_by,
                   requested_at=moment(owner.requested_at) if owner.requested_at is not None
                   else None)


@strawberry.type(description="The thread between a page and one person.")
class Conversation(Node):
    id: strawberry.ID
    channel_id: strawberry.ID
    contact: Contact
    created_at: datetime
    last_activity_at: datetime
    unread_count: int
    state: str | None = strawberry.field(description="Set by users, e.g. OPEN or CLOSED.")
    user_data: JSON = strawberry.field(description="Set through upsertMetadata.")
    thread_control: ThreadControl | None = strawberry.field(
        description="Who owns the thread (handover protocol); null until Meta tells.")
    referral: Referral | None = strawberry.field(description="The latest referral, if any.")
    optins: list[Optin] = strawberry.field(description="One per type and payload, newest last.")
    _tag_ids: strawberry.Private[list[str]]
    _channel: strawberry.Private[domain.Channel | None]
    _last_message_id: strawberry.Private[str | None]
    _last_message: strawberry.Private[domain.Message | None]

    # What a list brought with each conversation (its channel, its last message) is answered as
    # it is, without an await: a page of conversations then resolves with no awaitable at all,
    # which graphql-core completes far faster than a list of them. What is not at hand is
    # loaded (DataLoaders: one query for the whole page).

    @strawberry.field(graphql_type=Channel | None)
    def channel(self, info: Info) -> Channel | None | Awaitable[Channel | None]:
        if self._channel is not None:
            return Channel.of(self._channel)
        return self._load_channel(info)

    async def _load_channel(self, info: Info) -> Channel | None:
        channel = await info.context["loaders"].channel.load(self.channel_id)
        return Channel.of(channel) if channel else None

    @strawberry.field(description="By name.", graphql_type=list[Tag])
    def tags(self, info: Info) -> list[Tag] | Awaitable[list[Tag]]:
        return self._load_tags(info) if self._tag_ids else []

    async def _load_tags(self, info: Info) -> list[Tag]:
        loader = info.context.setdefault(
            "tag_loader", DataLoader(info.context["gateway"].tags.by_ids, cache=False)
        )
        found = [tag for tag in await loader.load_many(self._tag_ids) if tag is not None]
        return [Tag.of(tag) for tag in sorted(found, key=lambda tag: tag.name)]

    @strawberry.field(graphql_type=Message | None)
    def last_message(self, info: Info) -> Message | None | Awaitable[Message | None]:
        if self._last_message is not None:
            return Message.of(self._last_message)
        return self._load_last_message(info) if self._last_message_id else None

    async def _load_last_message(self, info: Info) -> Message | None:
        message = await info.context["loaders"].message.load(self._last_message_id)
        return Message.of(message) if message else None

    @classmethod
    def of(cls, conversation: domain.Conversation, channel: domain.Channel | None = None,
           last_message: domain.Message | None = None) -> Conversation:
        contact = conversation.contact
        return cls(
            id=strawberry.ID(conversation.id), channel_id=strawberry.ID(conversation.channel_id),
            contact=Contact(id=strawberry.ID(contact.id), display_name=conversation.display_name,
                            avatar_url=contact.avatar_url, fetch_state=contact.fetch_state),
            created_at=moment(conversation.created_at),
            last_activity_at=moment(conversation.last_message_at),
            unread_count=conversation.unread_count, state=conversation.state,
            user_data=conversation.user_data,
            thread_control=ThreadControl.of(conversation.thread_owner)
            if conversation.thread_owner else None,
            referral=Referral.of(conversation.referral) if conversation.referral else None,
            optins=[Optin.of(optin) for optin in conversation.optins],
            _tag_ids=conversation.tag_ids, _channel=channel,
            _last_message_id=conversation.last_message_id, _last_message=last_message,
        )

    @classmethod
    def of_view(cls, view: domain.ConversationView) -> Conversation:
        return cls.of(view.conversation, view.channel, view.last_message)


Item = TypeVar("Item")


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[Item]):
    cursor: str
    node: Item


@strawberry.type
class Connection(Generic[Item]):
    edges: list[Edge[Item]]
    page_info: PageInfo
    total_count: int


def connection(page: domain.Page, shape) -> Connection:
    edges = [Edge(cursor=cursor, node=shape(item))
             for item, cursor in zip(page.items, page.cursors, strict=True)]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_more, has_previous_page=page.previous_cursor is not None,
            # Before the first document read: past any skipped before the first edge.
            start_cursor=page.first_cursor,
            # After the last document read: past any skipped (unreadable) after the last edge.
            end_cursor=page.last_cursor,
        ),
        total_count=page.total,
    )


@strawberry.input
class ConnectFacebookChannelInput:
    page_id: str
    page_token: str
    name: str | None = None
    image_url: str | None = None


@strawberry.input
class UpdateChannelInput:
    id: strawberry.ID
    name: str | None = None
    image_url: str | None = None


@strawberry.input
class SendMessageInput:
    conversation_id: strawberry.ID
    message: OutgoingMessage = strawberry.field(description=(
        'Exactly one of text, attachment, …; {raw: {…}} takes a Send API message object as is.'))
    messaging_type: str | None = None
    tag: str | None = None
    force: bool | None = strawberry.field(default=None, description=(
        "Send even into a thread another app owns (otherwise CONFLICT)."))


@strawberry.input(description="Every field is optional; all that are given must hold.")
class ConversationFilterInput:
    channel_ids: list[strawberry.ID] | None = None
    source: str | None = None
    state: str | None = None
    tag_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Conversations carrying every one of these tags."
    )
    unread: bool | None = strawberry.field(
        default=None, description="true: unread messages waiting; false: all read."
    )
    display_name: str | None = strawberry.field(
        default=None, description="A case-insensitive part of the contact's name."
    )

    def arguments(self) -> dict[str, object]:
        """As `conversations.list`'s `filters` (gateway.inputs.ConversationFilters checks them)."""
        return {"channel_ids": self.channel_ids, "source": self.source, "state": self.state,
                "tag_ids": self.tag_ids, "unread": self.unread,
                "display_name": self.display_name}


@strawberry.input
class CreateTagInput:
    name: str
    color: TagColor | None = None


@strawberry.input
class UpdateTagInput:
    id: strawberry.ID
    name: str | None = None
    color: TagColor | None = None


@strawberry.type(description="An outgoing webhook and how its deliveries fare. Never its key.")
class Webhook(Node):
    id: strawberry.ID
    name: str | None
    url: str
    events: list[str] = strawberry.field(description="message.created, message.updated, "
                                         "conversation.updated, channel.updated")
    headers: JSON
    status: str = strawberry.field(description="Subscribed or Unsubscribed.")
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    queued: int = strawberry.field(description="Deliveries waiting for the receiver.")

    @classmethod
    def of(cls, webhook: domain.Webhook, queued: int = 0) -> Webhook:
        def when(ms: int | None) -> datetime | None:
            return moment(ms) if ms is not None else None

        return cls(id=strawberry.ID(webhook.id), name=webhook.name, url=webhook.url,
                   events=webhook.events, headers=webhook.headers,
                   status="Subscribed" if webhook.subscribed else "Unsubscribed",
                   last_success_at=when(webhook.last_success_at), last_error=webhook.last_error,
                   last_error_at=when(webhook.last_error_at), queued=queued)


@strawberry.input
class SubscribeWebhookInput:
    url: str
    id: strawberry.ID | None = strawberry.field(
        default=None, description="The id of a webhook to change and subscribe again.")
    name: str | None = None
    events: list[str] | None = strawberry.field(default=None, description="Default: all.")
    headers: JSON | None = None
    signature_key: str | None = strawberry.field(
        default=None, description="Signs each body: X-Airy-Content-Signature, hex HMAC-SHA256.")


@strawberry.input
class UpdateWebhookInput:
    id: strawberry.ID
    url: str | None = None
    name: str | None = None
    events: list[str] | None = None
    headers: JSON | None = None
    signature_key: str | None = None


@strawberry.type(description="A tag created or changed (tag set), or deleted (tag null).")
class TagChange:
    id: strawberry.ID
    deleted: bool
    tag: Tag | None = strawberry.field(description="The tag as it is now; null once deleted.")

    @classmethod
    def of(cls, tag_id: str, tag: domain.Tag | None) -> TagChange:
        return cls(id=strawberry.ID(tag_id), deleted=tag is None,
                   tag=Tag.of(tag) if tag is not None else None)


@strawberry.type(description="How an outgoing webhook's deliveries fare, sent as it changes. "
                 "Never its URL, headers or key: webhook(id:) answers those to who asks.")
class WebhookStatus:
    id: strawberry.ID
    name: str | None
    status: str = strawberry.field(description="Subscribed or Unsubscribed.")
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None

    @strawberry.field(description="Deliveries waiting for the receiver (counted when asked).")
    async def queued(self, info: Info) -> int:
        _, queued = await info.context["gateway"].webhooks.info(self.id)
        return queued

    @classmethod
    def of(cls, webhook: domain.Webhook) -> WebhookStatus:
        shown = Webhook.of(webhook)  # the same status and times as the webhook's own fields
        return cls(id=shown.id, name=shown.name, status=shown.status,
                   last_success_at=shown.last_success_at, last_error=shown.last_error,
                   last_error_at=shown.last_error_at)


@strawberry.enum(description="What the person sees the page do (the Send API's sender_action).")
class SenderAction(Enum):
    TYPING_ON = strawberry.enum_value(
        "typing_on", description="the typing bubble, until a message, TYPING_OFF or 20 seconds")
    TYPING_OFF = strawberry.enum_value("typing_off", description="the typing bubble hidden")
    MARK_SEEN = strawberry.enum_value("mark_seen", description="the last message marked seen")


@strawberry.type(description="A contact (Airy's contacts): made for each conversation's person, "
                 "or by a user. Contact is the person as a conversation shows them.")
class ContactCard(Node):
    id: strawberry.ID
    display_name: str | None
    avatar_url: str | None
    title: str | None
    timezone: str | None
    gender: str | None
    locale: str | None
    organization_name: str | None
    via: JSON = strawberry.field(description="phone, email, or any key: value.")
    address: JSON = strawberry.field(description="Any of organization_name, address_line1, "
                                     "address_line2, postcode, city, state, country.")
    conversations: JSON = strawberry.field(description="Conversation id: its source.")
    metadata: JSON = strawberry.field(description="A conversation's person: facebook {psid, "
                                      "page_id}. No arrays.")
    created_at: datetime
    updated_at: datetime
    merge_history: list[JSON] = strawberry.field(
        description="A copy of each contact merged into this one, as it was.")

    @classmethod
    def of(cls, card: domain.ContactCard) -> ContactCard:
        return cls(id=strawberry.ID(card.id), display_name=card.display_name,
                   avatar_url=card.avatar_url, title=card.title, timezone=card.timezone,
                   gender=card.gender, locale=card.locale,
                   organization_name=card.organization_name, via=card.via,
                   address=card.address, conversations=card.conversations,
                   metadata=card.metadata, created_at=moment(card.created_at),
                   updated_at=moment(card.updated_at), merge_history=card.merge_history)


@strawberry.input(description='A contact\'s fields, for createContact, importContacts and '
                  'updateContactCard (where "" removes a field, or a key of an object field).')
class ContactInput:
    display_name: str | None = None
    avatar_url: str | None = None
    title: str | None = None
    timezone: str | None = None
    gender: str | None = None
    locale: str | None = None
    organization_name: str | None = None
    via: JSON | None = None
    address: JSON | None = None
    conversations: JSON | None = None
    metadata: JSON | None = None

    def arguments(self) -> dict[str, Any]:
        """As contacts.create's (and contacts.update's) body: gateway.inputs checks them."""
        return {"display_name": self.display_name, "avatar_url": self.avatar_url,
                "title": self.title, "timezone": self.timezone, "gender": self.gender,
                "locale": self.locale, "organization_name": self.organization_name,
                "via": self.via, "address": self.address, "conversations": self.conversations,
                "metadata": self.metadata}
