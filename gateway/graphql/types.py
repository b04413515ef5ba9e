"""GraphQL types: thin views over the domain dataclasses. Never a page token."""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Generic, TypeVar

import strawberry
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
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


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

    @classmethod
    def of(cls, channel: domain.Channel) -> Channel:
        return cls(id=strawberry.ID(channel.id), source=channel.source,
                   source_channel_id=channel.source_channel_id, name=channel.name,
                   image_url=channel.image_url, connected=channel.connected,
                   token_valid=channel.token_valid)


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
            state=message.state, delivery_state=message.state, sender_type=SenderType(message.sender_type.value),
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
    _channel: strawberry.Private[domain.Channel | None]
    _last_message_id: strawberry.Private[str | None]
    _last_message: strawberry.Private[domain.Message | None]

    @strawberry.field
    async def channel(self, info: Info) -> Channel | None:
        channel = self._channel or await info.context["loaders"].channel.load(self.channel_id)
        return Channel.of(channel) if channel else None

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
            unread_count=conversation.unread_count, state=conversation.state, _channel=channel,
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
    edges = [Edge(cursor=cursor, node=shape(item)) for item, cursor in zip(page.items,
                                                                              page.cursors)]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_more, has_previous_page=page.previous_cursor is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
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
