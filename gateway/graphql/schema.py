"""Query, Mutation and Subscription: each resolver parses, calls the service, shapes. No logic."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable

import strawberry
from strawberry.types import Info

from gateway.errors import NotFound
from gateway.graphql.types import (
    Channel,
    ConnectFacebookChannelInput,
    Connection,
    Conversation,
    Message,
    SendMessageInput,
    UpdateChannelInput,
    connection,
)
from gateway.service import Gateway
from gateway.store.mongo import Change


def service(info: Info) -> Gateway:
    return info.context["gateway"]


@strawberry.type
class Query:
    @strawberry.field(description="Connected channels, optionally of one source.")
    async def channels(self, info: Info, source: str | None = None) -> list[Channel]:
        return [Channel.of(c) for c in await service(info).list_channels(source=source)]

    @strawberry.field
    async def channel(self, info: Info, id: strawberry.ID) -> Channel:
        return Channel.of(await service(info).get_channel(id))

    @strawberry.field(description="Newest activity first.")
    async def conversations(
        self, info: Info, first: int = 20, after: str | None = None,
        channel_id: strawberry.ID | None = None,
    ) -> Connection[Conversation]:
        page = await service(info).list_conversations(channel_id=channel_id, cursor=after,
                                                      page_size=first)
        return connection(page, Conversation.of_view)

    @strawberry.field
    async def conversation(self, info: Info, id: strawberry.ID) -> Conversation:
        return Conversation.of_view(await service(info).get_conversation(id))

    @strawberry.field(description="Newest first.")
    async def messages(
        self, info: Info, conversation_id: strawberry.ID, first: int = 20,
        after: str | None = None,
    ) -> Connection[Message]:
        page = await service(info).list_messages(conversation_id, cursor=after, page_size=first)
        return connection(page, Message.of)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Subscribe the app to a page and store it as a channel.")
    async def connect_facebook_channel(
        self, info: Info, input: ConnectFacebookChannelInput
    ) -> Channel:
        channel = await service(info).connect_facebook_channel(
            input.page_id, input.page_token, name=input.name, image_url=input.image_url
        )
        return Channel.of(channel)

    @strawberry.mutation(description="Unsubscribe the app from the page; the history stays.")
    async def disconnect_channel(self, info: Info, id: strawberry.ID) -> Channel:
        return Channel.of(await service(info).disconnect_channel(id))

    @strawberry.mutation
    async def update_channel(self, info: Info, input: UpdateChannelInput) -> Channel:
        channel = await service(info).update_channel(input.id, name=input.name,
                                                     image_url=input.image_url)
        return Channel.of(channel)

    @strawberry.mutation(description="Queue a message; it comes back PENDING and is delivered "
                         "in the background (watch messageUpdated).")
    async def send_message(self, info: Info, input: SendMessageInput) -> Message:
        message = await service(info).send_message(
            input.conversation_id, input.message, messaging_type=input.messaging_type,
            tag=input.tag,
        )
        return Message.of(message)

    @strawberry.mutation(description="Send a failed message again (CONFLICT when it is not).")
    async def resend_message(self, info: Info, id: strawberry.ID) -> Message:
        return Message.of(await service(info).resend_message(id))

    @strawberry.mutation(description="Name the contact by hand.")
    async def update_contact(
        self, info: Info, conversation_id: strawberry.ID, display_name: str
    ) -> Conversation:
        return await _changed(info, conversation_id,
                              service(info).update_contact(conversation_id, display_name))

    @strawberry.mutation(description="Fetch the contact's profile again, in the background.")
    async def refetch_contact(self, info: Info, conversation_id: strawberry.ID) -> Conversation:
        return await _changed(info, conversation_id, service(info).refetch_contact(conversation_id))

    @strawberry.mutation(description="Set (or, with null, remove) the conversation's state.")
    async def set_conversation_state(
        self, info: Info, id: strawberry.ID, state: str | None = None
    ) -> Conversation:
        return await _changed(info, id, service(info).set_conversation_state(id, state))

    @strawberry.mutation(description="Set the conversation's unread count back to 0.")
    async def mark_conversation_read(self, info: Info, id: strawberry.ID) -> Conversation:
        return await _changed(info, id, service(info).mark_conversation_read(id))


async def _changed(info: Info, conversation_id: str, change: Awaitable[None]) -> Conversation:
    """Make the change, then answer with the conversation as it is now."""
    await change
    return Conversation.of_view(await service(info).get_conversation(conversation_id))

def _in(change: Change, conversation_id: str | None, channel_id: str | None) -> bool:
    value = change.value
    if conversation_id and getattr(value, "conversation_id", value.id) != conversation_id:
        return False
    return not channel_id or value.channel_id == channel_id


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Every new message: received, sent here or elsewhere.")
    async def message_created(
        self, info: Info, conversation_id: strawberry.ID | None = None,
        channel_id: strawberry.ID | None = None,
    ) -> AsyncGenerator[Message, None]:
        changes = info.context["bus"].subscribe(
            lambda c: c.collection == "messages" and c.operation == "insert"
            and _in(c, conversation_id, channel_id)
        )
        async for change in changes:
            yield Message.of(change.value)

    @strawberry.subscription(description="Changes to messages: delivery state, reactions, reads.")
    async def message_updated(
        self, info: Info, conversation_id: strawberry.ID | None = None,
        channel_id: strawberry.ID | None = None,
    ) -> AsyncGenerator[Message, None]:
        changes = info.context["bus"].subscribe(
            lambda c: c.collection == "messages" and c.operation != "insert"
            and _in(c, conversation_id, channel_id)
        )
        async for change in changes:
            yield Message.of(change.value)

    @strawberry.subscription(description="New conversations and changes to them: last message, "
                             "unread count, contact profile.")
    async def conversation_updated(
        self, info: Info, channel_id: strawberry.ID | None = None,
    ) -> AsyncGenerator[Conversation, None]:
        changes = info.context["bus"].subscribe(
            lambda c: c.collection == "conversations" and _in(c, None, channel_id)
        )
        async for change in changes:
            yield Conversation.of(change.value)


__all__ = ["Query", "Mutation", "Subscription", "NotFound"]
