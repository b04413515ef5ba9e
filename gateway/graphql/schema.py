"""Query, Mutation and Subscription: each resolver parses, calls the service, shapes. No logic."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable

import strawberry
from strawberry.types import Info

from gateway.errors import InvalidInput, NotFound
from strawberry.scalars import JSON

from gateway.graphql.types import (
    Channel,
    ConnectFacebookChannelInput,
    Connection,
    Conversation,
    ConversationFilterInput,
    CreateTagInput,
    FacebookPage,
    Message,
    MetadataSubject,
    SendMessageInput,
    Tag,
    UpdateChannelInput,
    UpdateTagInput,
    UpdateWebhookInput,
    Webhook,
    SubscribeWebhookInput,
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

    @strawberry.field(description="Pages a Facebook user manages, from a user token.")
    async def facebook_pages(self, info: Info, auth_token: str) -> list[FacebookPage]:
        pages = await service(info).explore_facebook_pages(auth_token)
        return [FacebookPage(page_id=p.page_id, name=p.name, image_url=p.image_url,
                             connected=p.connected) for p in pages]

    @strawberry.field(description="Every outgoing webhook, subscribed or not.")
    async def webhooks(self, info: Info) -> list[Webhook]:
        return [Webhook.of(w, queued) for w, queued in await service(info).list_webhooks()]

    @strawberry.field
    async def webhook(self, info: Info, id: strawberry.ID) -> Webhook:
        return Webhook.of(*await service(info).webhook_info(id))

    @strawberry.field(description="Every tag, by name.")
    async def tags(self, info: Info) -> list[Tag]:
        return [Tag.of(tag) for tag in await service(info).list_tags()]

    @strawberry.field(description="Newest activity first.")
    async def conversations(
        self, info: Info, first: int = 20, after: str | None = None,
        channel_id: strawberry.ID | None = None, filter: ConversationFilterInput | None = None,
    ) -> Connection[Conversation]:
        page = await service(info).list_conversations(
            channel_id=channel_id, cursor=after, page_size=first,
            where=filter.to_domain() if filter else None,
        )
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

    @strawberry.mutation(description="Put a tag on a conversation.")
    async def tag_conversation(
        self, info: Info, conversation_id: strawberry.ID, tag_id: strawberry.ID
    ) -> Conversation:
        return await _changed(info, conversation_id,
                              service(info).tag_conversation(conversation_id, tag_id))

    @strawberry.mutation(description="Take a tag off a conversation.")
    async def untag_conversation(
        self, info: Info, conversation_id: strawberry.ID, tag_id: strawberry.ID
    ) -> Conversation:
        return await _changed(info, conversation_id,
                              service(info).untag_conversation(conversation_id, tag_id))

    @strawberry.mutation(description="Create a tag (CONFLICT when the name is taken).")
    async def create_tag(self, info: Info, input: CreateTagInput) -> Tag:
        color = input.color.value if input.color else None
        return Tag.of(await service(info).create_tag(input.name, color))

    @strawberry.mutation(description="Rename a tag or change its colour.")
    async def update_tag(self, info: Info, input: UpdateTagInput) -> Tag:
        color = input.color.value if input.color else None
        return Tag.of(await service(info).update_tag(input.id, name=input.name, color=color))

    @strawberry.mutation(description="Delete a tag and take it off every conversation.")
    async def delete_tag(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        await service(info).delete_tag(id)
        return id

    @strawberry.mutation(description="Merge data into the userData of a message, conversation "
                         "or channel; answers the userData as it is now.")
    async def upsert_metadata(
        self, info: Info, subject: MetadataSubject, id: strawberry.ID, data: JSON
    ) -> JSON:
        return await service(info).upsert_metadata(subject.value, id, data)

    @strawberry.mutation(description='Attach suggested replies: {"<id>": {"content": {...}}}.')
    async def suggest_replies(
        self, info: Info, message_id: strawberry.ID, suggestions: JSON
    ) -> Message:
        return Message.of(await service(info).suggest_replies(message_id, suggestions))

    @strawberry.mutation(description="Subscribe an outgoing webhook (or change one, by id).")
    async def subscribe_webhook(self, info: Info, input: SubscribeWebhookInput) -> Webhook:
        webhook = await service(info).subscribe_webhook(
            input.url, webhook_id=input.id, name=input.name, events=input.events,
            headers=_headers(input.headers), signature_key=input.signature_key,
        )
        return Webhook.of(webhook)

    @strawberry.mutation
    async def update_webhook(self, info: Info, input: UpdateWebhookInput) -> Webhook:
        webhook = await service(info).update_webhook(
            input.id, url=input.url, name=input.name, events=input.events,
            headers=_headers(input.headers), signature_key=input.signature_key,
        )
        return Webhook.of(*await service(info).webhook_info(webhook.id))

    @strawberry.mutation(description="Post nothing more to the webhook, not even what was queued.")
    async def unsubscribe_webhook(self, info: Info, id: strawberry.ID) -> Webhook:
        await service(info).unsubscribe_webhook(id)
        return Webhook.of(*await service(info).webhook_info(id))

    @strawberry.mutation(description="Set the conversation's unread count back to 0.")
    async def mark_conversation_read(self, info: Info, id: strawberry.ID) -> Conversation:
        return await _changed(info, id, service(info).mark_conversation_read(id))


def _headers(headers: object) -> dict[str, str] | None:
    if headers is not None and not isinstance(headers, dict):
        raise InvalidInput("headers must be an object of header names and values")
    return headers


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

    @strawberry.subscription(description="Channels connected, disconnected, renamed, or whose "
                             "token Meta refused.")
    async def channel_updated(self, info: Info) -> AsyncGenerator[Channel, None]:
        changes = info.context["bus"].subscribe(lambda c: c.collection == "channels")
        async for change in changes:
            yield Channel.of(change.value)


__all__ = ["Query", "Mutation", "Subscription", "NotFound"]
