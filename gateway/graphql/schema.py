"""Query, Mutation and Subscription: each resolver parses, calls a use-case, shapes. No logic."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Annotated, Any, TypeVar, cast

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON
from strawberry.types import Info

from gateway import inputs
from gateway.errors import InvalidInput, NotFound
from gateway.graphql.content import outgoing_arguments
from gateway.graphql.types import (
    Channel,
    ConnectFacebookChannelInput,
    Connection,
    ContactCard,
    ContactInput,
    Conversation,
    ConversationFilterInput,
    CreateTagInput,
    FacebookPage,
    Message,
    MetadataSubject,
    Node,
    SenderAction,
    SendMessageInput,
    SubscribeWebhookInput,
    Tag,
    TagChange,
    UpdateChannelInput,
    UpdateTagInput,
    UpdateWebhookInput,
    Webhook,
    WebhookStatus,
    connection,
)
from gateway.graphql.uploads import UploadedAttachment, upload_attachment
from gateway.store.mongo import Change
from gateway.usecases import UseCases

M = TypeVar("M", bound=inputs.Body)


def service(info: Info) -> UseCases:
    return info.context["gateway"]


def checked(model: type[M], names: dict[str, str] | None = None, **arguments: Any) -> M:
    """The arguments, parsed by the input model the REST route uses (`gateway.inputs`), given
    under the REST body's field names: one rule for both. An error names the GraphQL argument
    (`names` maps a field to it where the name is not just the field's in camelCase). An argument
    left out (null) takes the model's default."""
    def name(field: str) -> str:
        head, *rest = field.split("_")
        return (names or {}).get(field) or head + "".join(part.title() for part in rest)

    return inputs.parse(model, {k: v for k, v in arguments.items() if v is not None}, name)


PAGE = {"page_size": "first", "cursor": "after"}  # a connection's arguments
PAGE_BACK = {"page_size": "last", "cursor": "before"}  # the same, read backward
First = Annotated[int | None, strawberry.argument(
    description="Forward: this many (1–100, default 20) after `after`.")]
Last = Annotated[int | None, strawberry.argument(
    description="Backward: this many (1–100, default 20) before `before` (the last ones "
    "without it). Not with first or after.")]


def paging(first: int | None, after: str | None, last: int | None, before: str | None
           ) -> tuple[dict[str, str], dict[str, Any], bool]:
    """A connection's arguments as the list body's fields (and their GraphQL names for errors),
    and whether the page is read backward. One direction per page: Relay allows first with
    last, but a page here is read one way, so the mix is refused rather than half-applied."""
    if last is None and before is None:
        return PAGE, {"page_size": first, "cursor": after}, False
    if first is not None and last is not None:
        raise InvalidInput("give first or last, not both (first pages forward, last backward)")
    if first is not None or after is not None:
        raise InvalidInput("first and after page forward, last and before backward: "
                           "give one pair, not both")
    return PAGE_BACK, {"page_size": last, "cursor": before}, True
ID_OF = {subject: {f"{subject}_id": "id"} for subject in ("channel", "conversation", "message")}


@strawberry.type
class Query:
    @strawberry.field(description="Connected channels, optionally of one source.")
    async def channels(self, info: Info, source: str | None = None) -> list[Channel]:
        body = checked(inputs.ChannelsList, source=source)
        return [Channel.of(c) for c in await service(info).channels.connected(source=body.source)]

    @strawberry.field
    async def channel(self, info: Info, id: strawberry.ID) -> Channel:
        body = checked(inputs.ChannelRef, ID_OF["channel"], channel_id=id)
        return Channel.of(await service(info).channels.get(body.channel_id))

    @strawberry.field(description="Pages a Facebook user manages, from a user token.")
    async def facebook_pages(self, info: Info, auth_token: str) -> list[FacebookPage]:
        body = checked(inputs.ExploreFacebook, auth_token=auth_token)
        pages = await service(info).channels.explore_facebook(body.auth_token)
        return [FacebookPage(page_id=p.page_id, name=p.name, image_url=p.image_url,
                             connected=p.connected) for p in pages]

    @strawberry.field(description="Every outgoing webhook, subscribed or not.")
    async def webhooks(self, info: Info) -> list[Webhook]:
        return [Webhook.of(w, queued) for w, queued in await service(info).webhooks.all()]

    @strawberry.field
    async def webhook(self, info: Info, id: strawberry.ID) -> Webhook:
        body = checked(inputs.WebhookRef, id=id)
        return Webhook.of(*await service(info).webhooks.info(body.id))

    @strawberry.field(description="Every tag, by name.")
    async def tags(self, info: Info) -> list[Tag]:
        return [Tag.of(tag) for tag in await service(info).tags.all()]

    @strawberry.field(description="Newest activity first.")
    async def conversations(
        self, info: Info, first: First = None, after: str | None = None,
        channel_id: strawberry.ID | None = None, filter: ConversationFilterInput | None = None,
        query: Annotated[str | None, strawberry.argument(
            description="Airy's Lucene filter, e.g. 'unread_count:[1 TO *] AND "
            "display_name:*ada*' (instead of filter).")] = None,
        last: Last = None, before: str | None = None,
    ) -> Connection[Conversation]:
        if filter is not None and query is not None:
            raise InvalidInput("give either filter or query, not both")
        names, page_at, backward = paging(first, after, last, before)
        body = checked(inputs.ConversationsList, {**names, "filters": "filter"},
                       channel_id=channel_id, **page_at,
                       filters=query if query is not None else
                       filter.arguments() if filter else None)
        page = await service(info).conversations.page(
            channel_id=body.channel_id, cursor=body.cursor, page_size=body.page_size,
            where=body.filters.to_domain() if body.filters else None, backward=backward,
        )
        return connection(page, Conversation.of_view)

    @strawberry.field
    async def conversation(self, info: Info, id: strawberry.ID) -> Conversation:
        body = checked(inputs.ConversationRef, ID_OF["conversation"], conversation_id=id)
        return Conversation.of_view(await service(info).conversations.get(body.conversation_id))

    @strawberry.field(description="Newest first.")
    async def messages(
        self, info: Info, conversation_id: strawberry.ID, first: First = None,
        after: str | None = None, last: Last = None, before: str | None = None,
    ) -> Connection[Message]:
        names, page_at, backward = paging(first, after, last, before)
        body = checked(inputs.MessagesList, names, conversation_id=conversation_id, **page_at)
        page = await service(info).messages.page(body.conversation_id, cursor=body.cursor,
                                                 page_size=body.page_size, backward=backward)
        return connection(page, Message.of)

    @strawberry.field(description="Contacts, newest first.")
    async def contacts(self, info: Info, first: First = None, after: str | None = None,
                       last: Last = None, before: str | None = None
                       ) -> Connection[ContactCard]:
        names, page_at, backward = paging(first, after, last, before)
        body = checked(inputs.ContactsList, names, **page_at)
        page = await service(info).contacts.page(cursor=body.cursor, page_size=body.page_size,
                                                 backward=backward)
        return connection(page, ContactCard.of)

    @strawberry.field(description="One contact, by id or by conversationId (a conversation's "
                      "contact is made if it is not yet).")
    async def contact(self, info: Info, id: strawberry.ID | None = None,
                      conversation_id: strawberry.ID | None = None) -> ContactCard:
        body = checked(inputs.ContactInfo, id=id, conversation_id=conversation_id)
        contacts = service(info).contacts
        card = await contacts.get(body.id) if body.id is not None else \
            await contacts.of_conversation(str(body.conversation_id))
        return ContactCard.of(card)

    @strawberry.field(description="The object of that id, whatever its type (Relay's refetch); "
                      "null when there is none.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        body = checked(inputs.NodeRef, id=id)
        return await _node(info, body.id)

    @strawberry.field(description="The objects of those ids (at most 100), in the order asked; "
                      "null for each that is none.")
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        body = checked(inputs.NodesRef, ids=ids)
        return list(await asyncio.gather(*(_node(info, node_id) for node_id in body.ids)))


def _loader(info: Info, key: str, load: Callable[[list[str]], Awaitable[list[Any]]]
            ) -> DataLoader:
    """The request's DataLoader of one type: the ids of every node asked at once are read with
    one query (`_id` `$in`) per type."""
    return info.context.setdefault(key, DataLoader(load, cache=False))


async def _node(info: Info, node_id: str) -> Node | None:
    """Ids stay as every API hands them out (UUIDs made here, so two types never share one), so
    a node is looked for under each type at once. A webhook's id may be chosen by its client:
    webhooks are looked at last, so such an id never hides an object made here."""
    gateway = service(info)
    loaders = info.context["loaders"]
    conversation, message, channel, tag, card, webhook = await asyncio.gather(
        _loader(info, "conversation_loader", gateway.conversations.by_ids).load(node_id),
        loaders.message.load(node_id),
        loaders.channel.load(node_id),
        _loader(info, "tag_loader", gateway.tags.by_ids).load(node_id),
        _loader(info, "contact_loader", gateway.contacts.by_ids).load(node_id),
        _loader(info, "webhook_loader", gateway.webhooks.by_ids).load(node_id),
    )
    if conversation is not None:
        return Conversation.of(conversation)
    if message is not None:
        return Message.of(message)
    if channel is not None:
        return Channel.of(channel)
    if tag is not None:
        return Tag.of(tag)
    if card is not None:
        return ContactCard.of(card)
    return Webhook.of(*webhook) if webhook is not None else None


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Subscribe the app to a page and store it as a channel.")
    async def connect_facebook_channel(
        self, info: Info, input: ConnectFacebookChannelInput
    ) -> Channel:
        body = checked(inputs.ConnectFacebook, page_id=input.page_id, page_token=input.page_token,
                       name=input.name, image_url=input.image_url)
        channel = await service(info).channels.connect_facebook(
            body.page_id, body.page_token, name=body.name, image_url=body.image_url
        )
        return Channel.of(channel)

    @strawberry.mutation(description="Unsubscribe the app from the page; the history stays.")
    async def disconnect_channel(self, info: Info, id: strawberry.ID) -> Channel:
        body = checked(inputs.ChannelRef, ID_OF["channel"], channel_id=id)
        return Channel.of(await service(info).channels.disconnect(body.channel_id))

    @strawberry.mutation
    async def update_channel(self, info: Info, input: UpdateChannelInput) -> Channel:
        body = checked(inputs.ChannelUpdate, ID_OF["channel"], channel_id=input.id, name=input.name,
                       image_url=input.image_url)
        channel = await service(info).channels.update(body.channel_id, name=body.name,
                                                      image_url=body.image_url)
        return Channel.of(channel)

    upload_attachment: UploadedAttachment = strawberry.mutation(
        resolver=upload_attachment, description="Upload a file (GraphQL multipart request spec, "
        "with the header Apollo-Require-Preflight: true) to send with sendMessage's "
        "attachmentId; PAYLOAD_TOO_LARGE past ATTACHMENT_MAX_BYTES.")

    @strawberry.mutation(description="Queue a message; it comes back PENDING and is delivered "
                         "in the background (watch messageUpdated).")
    async def send_message(self, info: Info, input: SendMessageInput) -> Message:
        typed = checked(inputs.TypedSend, message=outgoing_arguments(input.message))
        body = checked(inputs.MessagesSend, conversation_id=input.conversation_id,
                       message=typed.message.send_api(), messaging_type=input.messaging_type,
                       tag=input.tag, force=input.force)
        message = await service(info).messages.send(
            body.conversation_id, body.message, messaging_type=body.messaging_type, tag=body.tag,
            force=body.force,
        )
        return Message.of(message)

    @strawberry.mutation(description="Pass the thread to another app (Page Inbox unless "
                         "targetAppId names one), through the Graph API.")
    async def pass_thread_control(
        self, info: Info, conversation_id: strawberry.ID, target_app_id: str | None = None,
        metadata: str | None = None,
    ) -> Conversation:
        body = checked(inputs.PassThreadControl, conversation_id=conversation_id,
                       target_app_id=target_app_id, metadata=metadata)
        return await _changed(info, body.conversation_id, service(info).handover.pass_control(
            body.conversation_id, body.target_app_id, body.metadata))

    @strawberry.mutation(description="Take the thread back from the app that owns it.")
    async def take_thread_control(
        self, info: Info, conversation_id: strawberry.ID, metadata: str | None = None,
    ) -> Conversation:
        body = checked(inputs.ThreadControlCall, conversation_id=conversation_id, metadata=metadata)
        return await _changed(info, body.conversation_id, service(info).handover.take_control(
            body.conversation_id, body.metadata))

    @strawberry.mutation(description="Ask the thread's owner to pass it to this app.")
    async def request_thread_control(
        self, info: Info, conversation_id: strawberry.ID, metadata: str | None = None,
    ) -> Conversation:
        body = checked(inputs.ThreadControlCall, conversation_id=conversation_id, metadata=metadata)
        return await _changed(info, body.conversation_id, service(info).handover.request_control(
            body.conversation_id, body.metadata))

    @strawberry.mutation(description="Send a failed message again (CONFLICT when it is not).")
    async def resend_message(self, info: Info, id: strawberry.ID) -> Message:
        body = checked(inputs.MessageRef, ID_OF["message"], message_id=id)
        return Message.of(await service(info).messages.resend(body.message_id))

    @strawberry.mutation(description="Name the contact by hand.")
    async def update_contact(
        self, info: Info, conversation_id: strawberry.ID, display_name: str
    ) -> Conversation:
        body = checked(inputs.UpdateContact, conversation_id=conversation_id,
                       display_name=display_name)
        return await _changed(info, body.conversation_id, service(info).conversations
                              .update_contact(body.conversation_id, body.display_name))

    @strawberry.mutation(description="Fetch the contact's profile again, in the background.")
    async def refetch_contact(self, info: Info, conversation_id: strawberry.ID) -> Conversation:
        body = checked(inputs.ConversationRef, conversation_id=conversation_id)
        return await _changed(info, body.conversation_id,
                              service(info).conversations.refetch_contact(body.conversation_id))

    @strawberry.mutation(description="Set (or, with null, remove) the conversation's state.")
    async def set_conversation_state(
        self, info: Info, id: strawberry.ID, state: str | None = None
    ) -> Conversation:
        if state is None:  # removed, as conversations.removeState does
            ref = checked(inputs.ConversationRef, ID_OF["conversation"], conversation_id=id)
            return await _changed(info, ref.conversation_id, service(info).conversations
                                  .set_state(ref.conversation_id, None))
        body = checked(inputs.ConversationState, ID_OF["conversation"], conversation_id=id,
                       state=state)
        return await _changed(info, body.conversation_id, service(info).conversations
                              .set_state(body.conversation_id, body.state))

    @strawberry.mutation(description="Put a tag on a conversation.")
    async def tag_conversation(
        self, info: Info, conversation_id: strawberry.ID, tag_id: strawberry.ID
    ) -> Conversation:
        body = checked(inputs.ConversationTag, conversation_id=conversation_id, tag_id=tag_id)
        return await _changed(info, body.conversation_id,
                              service(info).tags.tag_conversation(body.conversation_id,
                                                                  body.tag_id))

    @strawberry.mutation(description="Take a tag off a conversation.")
    async def untag_conversation(
        self, info: Info, conversation_id: strawberry.ID, tag_id: strawberry.ID
    ) -> Conversation:
        body = checked(inputs.ConversationTag, conversation_id=conversation_id, tag_id=tag_id)
        return await _changed(info, body.conversation_id,
                              service(info).tags.untag_conversation(body.conversation_id,
                                                                    body.tag_id))

    @strawberry.mutation(description="Create a tag (CONFLICT when the name is taken).")
    async def create_tag(self, info: Info, input: CreateTagInput) -> Tag:
        body = checked(inputs.TagCreate, name=input.name,
                       color=input.color.value if input.color else None)
        return Tag.of(await service(info).tags.create(body.name, body.color))

    @strawberry.mutation(description="Rename a tag or change its colour.")
    async def update_tag(self, info: Info, input: UpdateTagInput) -> Tag:
        body = checked(inputs.TagUpdate, id=input.id, name=input.name,
                       color=input.color.value if input.color else None)
        return Tag.of(await service(info).tags.update(body.id, name=body.name, color=body.color))

    @strawberry.mutation(description="Delete a tag and take it off every conversation.")
    async def delete_tag(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        body = checked(inputs.TagRef, id=id)
        await service(info).tags.delete(body.id)
        return strawberry.ID(body.id)

    @strawberry.mutation(description="Merge data into the userData of a message, conversation "
                         "or channel; answers the userData as it is now.")
    async def upsert_metadata(
        self, info: Info, subject: MetadataSubject, id: strawberry.ID, data: JSON
    ) -> JSON:
        body = checked(inputs.MetadataUpsert, subject=subject.value, id=id, data=data)
        return cast(JSON, await service(info).metadata.upsert(body.subject, body.id, body.data))

    @strawberry.mutation(description='Attach suggested replies: {"<id>": {"content": {...}}}.')
    async def suggest_replies(
        self, info: Info, message_id: strawberry.ID, suggestions: JSON
    ) -> Message:
        body = checked(inputs.SuggestReplies, message_id=message_id, suggestions=suggestions)
        return Message.of(await service(info).messages.suggest_replies(body.message_id,
                                                                       body.suggestions))

    @strawberry.mutation(description="Subscribe an outgoing webhook (or change one, by id).")
    async def subscribe_webhook(self, info: Info, input: SubscribeWebhookInput) -> Webhook:
        body = checked(inputs.WebhookSubscribe, url=input.url, id=input.id, name=input.name,
                       events=input.events, headers=input.headers,
                       signature_key=input.signature_key)
        webhook = await service(info).webhooks.subscribe(
            body.url, webhook_id=body.id, name=body.name, events=body.events,
            headers=body.headers, signature_key=body.signature_key,
        )
        return Webhook.of(webhook)

    @strawberry.mutation
    async def update_webhook(self, info: Info, input: UpdateWebhookInput) -> Webhook:
        body = checked(inputs.WebhookUpdate, id=input.id, url=input.url, name=input.name,
                       events=input.events, headers=input.headers,
                       signature_key=input.signature_key)
        webhook = await service(info).webhooks.update(
            body.id, url=body.url, name=body.name, events=body.events,
            headers=body.headers, signature_key=body.signature_key,
        )
        return Webhook.of(*await service(info).webhooks.info(webhook.id))

    @strawberry.mutation(description="Post nothing more to the webhook, not even what was queued.")
    async def unsubscribe_webhook(self, info: Info, id: strawberry.ID) -> Webhook:
        body = checked(inputs.WebhookRef, id=id)
        await service(info).webhooks.unsubscribe(body.id)
        return Webhook.of(*await service(info).webhooks.info(body.id))

    @strawberry.mutation(description="Set the conversation's unread count back to 0.")
    async def mark_conversation_read(self, info: Info, id: strawberry.ID) -> Conversation:
        body = checked(inputs.ConversationRef, ID_OF["conversation"], conversation_id=id)
        return await _changed(info, body.conversation_id,
                              service(info).conversations.mark_read(body.conversation_id))

    @strawberry.mutation(description="Show the conversation's person a sender action (typing, "
                         "seen): not a message, paced with the page's sends; true once Meta "
                         "took it.")
    async def send_sender_action(self, info: Info, conversation_id: strawberry.ID,
                                 action: SenderAction) -> bool:
        body = checked(inputs.SenderActionCall, conversation_id=conversation_id,
                       action=action.value)
        await service(info).sender_actions.send(body.conversation_id, body.action)
        return True

    @strawberry.mutation(description="Create a contact (at least one field).")
    async def create_contact(self, info: Info, input: ContactInput) -> ContactCard:
        body = checked(inputs.ContactCreate, **input.arguments())
        return ContactCard.of(await service(info).contacts.create(body.fields()))

    @strawberry.mutation(description="Create contacts in bulk (at most 500).")
    async def import_contacts(self, info: Info, contacts: list[ContactInput]) -> list[ContactCard]:
        body = checked(inputs.ContactsImport,
                       contacts=[{k: v for k, v in item.arguments().items() if v is not None}
                                 for item in contacts])
        cards = await service(info).contacts.import_many([item.fields() for item in body.contacts])
        return [ContactCard.of(card) for card in cards]

    @strawberry.mutation(description='Change a contact\'s fields; "" removes a field, or a key '
                         "of an object field. (updateContact names a conversation's contact.)")
    async def update_contact_card(self, info: Info, id: strawberry.ID,
                                  input: ContactInput) -> ContactCard:
        body = checked(inputs.ContactUpdate, id=id, **input.arguments())
        return ContactCard.of(await service(info).contacts.update(body.id, body.changes()))

    @strawberry.mutation(description="Delete a contact.")
    async def delete_contact(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        body = checked(inputs.ContactRef, id=id)
        await service(info).contacts.delete(body.id)
        return strawberry.ID(body.id)

    @strawberry.mutation(description="Merge sourceId into destinationId; answers the merged "
                         "contact.")
    async def merge_contacts(self, info: Info, source_id: strawberry.ID,
                             destination_id: strawberry.ID) -> ContactCard:
        body = checked(inputs.ContactsMerge, source_id=source_id, destination_id=destination_id)
        return ContactCard.of(await service(info).contacts.merge(body.source_id,
                                                                 body.destination_id))


async def _changed(info: Info, conversation_id: str, change: Awaitable[None]) -> Conversation:
    """Make the change, then answer with the conversation as it is now."""
    await change
    return Conversation.of_view(await service(info).conversations.get(conversation_id))

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

    @strawberry.subscription(description="Changes to messages: delivery state, reactions, reads, "
                             "edits.")
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
                             "unread count, contact profile, referral, opt-ins.")
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

    @strawberry.subscription(description="Contacts made, changed or merged into (from every "
                             "process).")
    async def contact_updated(self, info: Info) -> AsyncGenerator[ContactCard, None]:
        changes = info.context["bus"].subscribe(lambda c: c.collection == "contacts")
        async for change in changes:
            yield ContactCard.of(change.value)

    @strawberry.subscription(description="Tags created, renamed or recoloured, and deleted "
                             "(deleted: true, tag: null).")
    async def tag_updated(self, info: Info) -> AsyncGenerator[TagChange, None]:
        changes = info.context["bus"].subscribe(lambda c: c.collection == "tags", deletions=True)
        async for change in changes:
            yield TagChange.of(str(change.key), change.value)

    @strawberry.subscription(description="Webhooks subscribed, changed or unsubscribed, and each "
                             "outcome of a delivery: how its deliveries fare (never its URL, "
                             "headers or key).")
    async def webhook_updated(
        self, info: Info, id: strawberry.ID | None = None,
    ) -> AsyncGenerator[WebhookStatus, None]:
        changes = info.context["bus"].subscribe(
            lambda c: c.collection == "webhooks" and (id is None or c.value.id == id))
        async for change in changes:
            yield WebhookStatus.of(change.value)


__all__ = ["Query", "Mutation", "Subscription", "NotFound"]
