"""GraphQL types: thin views over the domain dataclasses. Never a page token."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any, Generic, TypeVar

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON
from strawberry.types import Info

from gateway import domain

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


@strawberry.type(description="A connected (or formerly connected) Facebook page.")
class Channel:
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
class Tag:
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


@strawberry.type(description="One message, from the person, the page or this gateway.")
class Message:
    id: strawberry.ID
    conversation_id: strawberry.ID
    channel_id: strawberry.ID
    content: JSON = strawberry.field(
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

    @classmethod
    def of(cls, message: domain.Message) -> Message:
        return cls(
            id=strawberry.ID(message.id), conversation_id=strawberry.ID(message.conversation_id),
            channel_id=strawberry.ID(message.channel_id), content=message.content,
            state=message.state, delivery_state=message.state,
            sender_type=SenderType(message.sender_type.value),
            from_contact=message.from_contact, sent_at=moment(message.sent_at),
            source="facebook", source_message_id=message.source_message_id,
            metadata=message.metadata(), read_by_contact=message.read_by_contact,
        )


@strawberry.type(description="The thread between a page and one person.")
class Conversation:
    id: strawberry.ID
    channel_id: strawberry.ID
    contact: Contact
    created_at: datetime
    last_activity_at: datetime
    unread_count: int
    state: str | None = strawberry.field(description="Set by users, e.g. OPEN or CLOSED.")
    user_data: JSON = strawberry.field(description="Set through upsertMetadata.")
    _tag_ids: strawberry.Private[list[str]]
    _channel: strawberry.Private[domain.Channel | None]
    _last_message_id: strawberry.Private[str | None]
    _last_message: strawberry.Private[domain.Message | None]

    @strawberry.field
    async def channel(self, info: Info) -> Channel | None:
        channel = self._channel or await info.context["loaders"].channel.load(self.channel_id)
        return Channel.of(channel) if channel else None

    @strawberry.field(description="By name.")
    async def tags(self, info: Info) -> list[Tag]:
        if not self._tag_ids:
            return []
        loader = info.context.setdefault(
            "tag_loader", DataLoader(info.context["gateway"].tags.by_ids, cache=False)
        )
        found = [tag for tag in await loader.load_many(self._tag_ids) if tag is not None]
        return [Tag.of(tag) for tag in sorted(found, key=lambda tag: tag.name)]

    @strawberry.field
    async def last_message(self, info: Info) -> Message | None:
        message = self._last_message
        if message is None and self._last_message_id:
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
            user_data=conversation.user_data, _tag_ids=conversation.tag_ids, _channel=channel,
            _last_message_id=conversation.last_message_id, _last_message=last_message,
        )

    @classmethod
    def of_view(cls, view: domain.ConversationView) -> Conversation:
        return cls.of(view.conversation, view.channel, view.last_message)


Node = TypeVar("Node")


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[Node]):
    cursor: str
    node: Node


@strawberry.type
class Connection(Generic[Node]):
    edges: list[Edge[Node]]
    page_info: PageInfo
    total_count: int


def connection(page: domain.Page, shape) -> Connection:
    edges = [Edge(cursor=cursor, node=shape(item))
             for item, cursor in zip(page.items, page.cursors, strict=True)]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_more, has_previous_page=page.previous_cursor is not None,
            start_cursor=edges[0].cursor if edges else None,
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
    message: JSON = strawberry.field(description='A Send API message object, e.g. {"text": "Hi"}.')
    messaging_type: str | None = None
    tag: str | None = None


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
class Webhook:
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


@strawberry.type(description="A contact (Airy's contacts): made for each conversation's person, "
                 "or by a user. Contact is the person as a conversation shows them.")
class ContactCard:
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
