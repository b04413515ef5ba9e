"""Airy-compatible routes: `POST /<noun>.<verb>` with a JSON body. Parse, call a use-case, shape."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway import inputs as bodies
from gateway.errors import InvalidInput
from gateway.rest.shapes import (
    attachment_json,
    channel_json,
    contact_card_json,
    contact_json,
    conversation_json,
    facebook_page_json,
    message_json,
    page_json,
    tag_json,
    webhook_json,
)
from gateway.usecases import UseCases
from gateway.validation import load_json

Handler = Callable[[UseCases, Any], Awaitable[Response]]


async def read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    return load_json(raw)


@dataclass(frozen=True)
class RouteSpec:
    """What the OpenAPI document says of a route (see gateway.rest.openapi)."""

    path: str
    model: type[bodies.Body]
    answer: str | None  # the response schema's name; None: 204 No Content
    summary: str
    calls_graph: bool = False
    empty_status: int = 204  # the status of an answer without a body
    answer_status: int = 200  # the status of an answer with a body
    conflict: bool = False  # may answer 409
    media_type: str = "application/json"  # of the request body


SPECS: list[RouteSpec] = []


def post(path: str, model: type[bodies.Body], handler: Handler, answer: str | None,
         summary: str, **spec: Any) -> Route:
    async def endpoint(request: Request) -> Response:
        body = bodies.parse(model, await read_json(request))
        return await handler(request.app.state.gateway, body)

    SPECS.append(RouteSpec(path, model, answer, summary, **spec))
    return Route(path, endpoint, methods=["POST"], name=path.strip("/"))


def no_content() -> Response:
    return Response(status_code=204)


async def connect_facebook(gw: UseCases, body: bodies.ConnectFacebook) -> Response:
    channel = await gw.channels.connect_facebook(
        body.page_id, body.page_token, name=body.name, image_url=body.image_url
    )
    return JSONResponse(channel_json(channel))


async def disconnect_facebook(gw: UseCases, body: bodies.ChannelRef) -> Response:
    await gw.channels.disconnect(body.channel_id)
    return no_content()


async def channels_list(gw: UseCases, body: bodies.ChannelsList) -> Response:
    channels = await gw.channels.connected(source=body.source)
    return JSONResponse({"data": [channel_json(c) for c in channels]})


async def channels_info(gw: UseCases, body: bodies.ChannelRef) -> Response:
    return JSONResponse(channel_json(await gw.channels.get(body.channel_id)))


async def channels_update(gw: UseCases, body: bodies.ChannelUpdate) -> Response:
    channel = await gw.channels.update(body.channel_id, name=body.name, image_url=body.image_url)
    return JSONResponse(channel_json(channel))


async def conversations_list(gw: UseCases, body: bodies.ConversationsList) -> Response:
    where = body.filters.to_domain() if body.filters else None
    page = await gw.conversations.page(
        channel_id=body.channel_id, cursor=body.cursor, page_size=body.page_size, where=where
    )
    return JSONResponse(page_json(page, conversation_json))


async def conversations_info(gw: UseCases, body: bodies.ConversationRef) -> Response:
    return JSONResponse(conversation_json(await gw.conversations.get(body.conversation_id)))


async def conversations_read(gw: UseCases, body: bodies.ConversationRef) -> Response:
    await gw.conversations.mark_read(body.conversation_id)
    return no_content()


async def conversations_update_contact(gw: UseCases, body: bodies.UpdateContact) -> Response:
    await gw.conversations.update_contact(body.conversation_id, body.display_name)
    return no_content()


async def conversations_refetch(gw: UseCases, body: bodies.ConversationRef) -> Response:
    await gw.conversations.refetch_contact(body.conversation_id)
    return Response(status_code=202)


async def conversations_set_state(gw: UseCases, body: bodies.ConversationState) -> Response:
    await gw.conversations.set_state(body.conversation_id, body.state)
    return no_content()


async def conversations_remove_state(gw: UseCases, body: bodies.ConversationRef) -> Response:
    await gw.conversations.set_state(body.conversation_id, None)
    return no_content()


async def messages_resend(gw: UseCases, body: bodies.MessageRef) -> Response:
    return JSONResponse(message_json(await gw.messages.resend(body.message_id)))


async def conversations_tag(gw: UseCases, body: bodies.ConversationTag) -> Response:
    await gw.tags.tag_conversation(body.conversation_id, body.tag_id)
    return no_content()


async def conversations_untag(gw: UseCases, body: bodies.ConversationTag) -> Response:
    await gw.tags.untag_conversation(body.conversation_id, body.tag_id)
    return no_content()


async def messages_suggest_replies(gw: UseCases, body: bodies.SuggestReplies) -> Response:
    message = await gw.messages.suggest_replies(body.message_id, body.suggestions)
    return JSONResponse(message_json(message))


async def metadata_upsert(gw: UseCases, body: bodies.MetadataUpsert) -> Response:
    await gw.metadata.upsert(body.subject, body.id, body.data)
    return no_content()


async def explore_facebook(gw: UseCases, body: bodies.ExploreFacebook) -> Response:
    pages = await gw.channels.explore_facebook(body.auth_token)
    return JSONResponse({"data": [facebook_page_json(page) for page in pages]})


async def tags_create(gw: UseCases, body: bodies.TagCreate) -> Response:
    return JSONResponse(tag_json(await gw.tags.create(body.name, body.color)), status_code=201)


async def tags_list(gw: UseCases, body: bodies.Body) -> Response:
    return JSONResponse({"data": [tag_json(tag) for tag in await gw.tags.all()]})


async def tags_update(gw: UseCases, body: bodies.TagUpdate) -> Response:
    await gw.tags.update(body.id, name=body.name, color=body.color)
    return no_content()


async def tags_delete(gw: UseCases, body: bodies.TagRef) -> Response:
    await gw.tags.delete(body.id)
    return no_content()


async def webhooks_subscribe(gw: UseCases, body: bodies.WebhookSubscribe) -> Response:
    webhook = await gw.webhooks.subscribe(
        body.url, webhook_id=body.id, name=body.name, events=body.events, headers=body.headers,
        signature_key=body.signature_key,
    )
    return JSONResponse(webhook_json(webhook))


async def webhooks_update(gw: UseCases, body: bodies.WebhookUpdate) -> Response:
    webhook = await gw.webhooks.update(
        body.id, url=body.url, name=body.name, events=body.events, headers=body.headers,
        signature_key=body.signature_key,
    )
    return JSONResponse(webhook_json(webhook))


async def webhooks_unsubscribe(gw: UseCases, body: bodies.WebhookRef) -> Response:
    return JSONResponse(webhook_json(await gw.webhooks.unsubscribe(body.id)))


async def webhooks_info(gw: UseCases, body: bodies.WebhookRef) -> Response:
    return JSONResponse(webhook_json(*await gw.webhooks.info(body.id)))


async def webhooks_list(gw: UseCases, body: bodies.Body) -> Response:
    return JSONResponse({"data": [webhook_json(*item) for item in await gw.webhooks.all()]})


async def messages_list(gw: UseCases, body: bodies.MessagesList) -> Response:
    view = await gw.conversations.get(body.conversation_id)
    page = await gw.messages.page(body.conversation_id, cursor=body.cursor,
                                  page_size=body.page_size)
    contact = contact_json(view.conversation)
    return JSONResponse(page_json(page, lambda m: message_json(m, contact)))


async def messages_send(gw: UseCases, body: bodies.MessagesSend) -> Response:
    message = await gw.messages.send(
        body.conversation_id, body.message, messaging_type=body.messaging_type, tag=body.tag,
        force=body.force,
    )
    return JSONResponse(message_json(message))


async def messages_sender_action(gw: UseCases, body: bodies.SenderActionCall) -> Response:
    await gw.sender_actions.send(body.conversation_id, body.action)
    return no_content()


async def conversations_pass_thread_control(gw: UseCases,
                                            body: bodies.PassThreadControl) -> Response:
    await gw.handover.pass_control(body.conversation_id, body.target_app_id, body.metadata)
    return JSONResponse(conversation_json(await gw.conversations.get(body.conversation_id)))


async def conversations_take_thread_control(gw: UseCases,
                                            body: bodies.ThreadControlCall) -> Response:
    await gw.handover.take_control(body.conversation_id, body.metadata)
    return JSONResponse(conversation_json(await gw.conversations.get(body.conversation_id)))


async def conversations_request_thread_control(gw: UseCases,
                                               body: bodies.ThreadControlCall) -> Response:
    await gw.handover.request_control(body.conversation_id, body.metadata)
    return JSONResponse(conversation_json(await gw.conversations.get(body.conversation_id)))


async def contacts_create(gw: UseCases, body: bodies.ContactCreate) -> Response:
    card = await gw.contacts.create(body.fields())
    return JSONResponse(contact_card_json(card), status_code=201)


async def contacts_import(gw: UseCases, body: bodies.ContactsImport) -> Response:
    cards = await gw.contacts.import_many([item.fields() for item in body.contacts])
    return JSONResponse({"data": [contact_card_json(card) for card in cards]}, status_code=201)


async def contacts_list(gw: UseCases, body: bodies.ContactsList) -> Response:
    page = await gw.contacts.page(cursor=body.cursor, page_size=body.page_size)
    return JSONResponse(page_json(page, contact_card_json))


async def contacts_info(gw: UseCases, body: bodies.ContactInfo) -> Response:
    card = await gw.contacts.get(body.id) if body.id is not None else \
        await gw.contacts.of_conversation(str(body.conversation_id))
    return JSONResponse(contact_card_json(card))


async def contacts_update(gw: UseCases, body: bodies.ContactUpdate) -> Response:
    await gw.contacts.update(body.id, body.changes())
    return Response(status_code=202)


async def contacts_delete(gw: UseCases, body: bodies.ContactRef) -> Response:
    await gw.contacts.delete(body.id)
    return Response(status_code=202)


async def contacts_merge(gw: UseCases, body: bodies.ContactsMerge) -> Response:
    card = await gw.contacts.merge(body.source_id, body.destination_id)
    return JSONResponse(contact_card_json(card))


def post_list(path: str, field: str, model: type[bodies.Body], handler: Handler,
              answer: str, summary: str, **spec: Any) -> Route:
    """A route whose body is a bare JSON array (as Airy's client posts it), read as the model's
    `field`; a JSON object is read as the model itself."""
    async def endpoint(request: Request) -> Response:
        data = await read_json(request)
        body = bodies.parse(model, {field: data} if isinstance(data, list) else data)
        return await handler(request.app.state.gateway, body)

    SPECS.append(RouteSpec(path, model, answer, summary, **spec))
    return Route(path, endpoint, methods=["POST"], name=path.strip("/"))


async def media_upload(request: Request) -> Response:
    """A file as multipart/form-data (field `file`, optionally `type`), kept for sends."""
    try:
        form = await request.form(max_files=1, max_fields=4)
    except MultiPartException as exc:
        raise InvalidInput(f"the body is not readable multipart/form-data: {exc.message}"
                           ) from None
    try:
        file = form.get("file")
        upload = bodies.AttachmentUpload.of_part(file, form.get("type") or None)
        assert isinstance(file, UploadFile)
        attachment = await request.app.state.gateway.messages.upload(
            upload.filename, upload.content_type, upload.kind, size_of(file.file), file.file)
    finally:
        await form.close()
    return JSONResponse(attachment_json(attachment))


def size_of(file: BinaryIO) -> int:
    """A spooled upload's size, however starlette counted it."""
    file.seek(0, os.SEEK_END)
    size = file.tell()
    file.seek(0)
    return size


SPECS.append(RouteSpec("/media.upload", bodies.MediaUpload, "Attachment", (
    "Upload a file (multipart/form-data, field `file`; header Apollo-Require-Preflight: true) "
    "to send as an attachment; 413 past ATTACHMENT_MAX_BYTES."), media_type="multipart/form-data"))

routes = [
    Route("/media.upload", media_upload, methods=["POST"], name="media.upload"),
    post("/channels.facebook.connect", bodies.ConnectFacebook, connect_facebook, "Channel",
         "Subscribe the app to a page and store it (same page: same id).", calls_graph=True),
    post("/channels.facebook.disconnect", bodies.ChannelRef, disconnect_facebook, None,
         "Unsubscribe the app from the page; the history stays.", calls_graph=True),
    post("/channels.facebook.explore", bodies.ExploreFacebook, explore_facebook, "PageList",
         "The pages a Facebook user manages (a user token), each saying whether it is "
         "connected.", calls_graph=True),
    post("/channels.list", bodies.ChannelsList, channels_list, "ChannelList",
         "Connected channels."),
    post("/channels.info", bodies.ChannelRef, channels_info, "Channel", "One connected channel."),
    post("/channels.update", bodies.ChannelUpdate, channels_update, "Channel",
         "Rename a channel or change its picture."),
    post("/conversations.list", bodies.ConversationsList, conversations_list, "ConversationPage",
         "Conversations, newest activity first."),
    post("/conversations.info", bodies.ConversationRef, conversations_info, "Conversation",
         "One conversation."),
    post("/conversations.read", bodies.ConversationRef, conversations_read, None,
         "Set the unread count back to 0."),
    post("/conversations.mark-read", bodies.ConversationRef, conversations_read, None,
         "Alias of conversations.read."),
    post("/conversations.update-contact", bodies.UpdateContact, conversations_update_contact,
         None, "Name the contact by hand."),
    post("/conversations.refetch", bodies.ConversationRef, conversations_refetch, None,
         "Fetch the contact's profile again, in the background.", empty_status=202),
    *(post(path, bodies.ConversationState, conversations_set_state, None,
           "Set the conversation's state (e.g. OPEN, CLOSED).")
      for path in ("/conversations.set-state", "/conversations.setState")),
    *(post(path, bodies.ConversationRef, conversations_remove_state, None,
           "Remove the conversation's state.")
      for path in ("/conversations.remove-state", "/conversations.removeState")),
    post("/conversations.tag", bodies.ConversationTag, conversations_tag, None,
         "Put a tag on a conversation."),
    post("/conversations.untag", bodies.ConversationTag, conversations_untag, None,
         "Take a tag off a conversation."),
    post("/messages.suggest-replies", bodies.SuggestReplies, messages_suggest_replies, "Message",
         "Attach suggested replies to a message, by id."),
    post("/metadata.upsert", bodies.MetadataUpsert, metadata_upsert, None,
         "Merge data into the user_data of a message, conversation or channel."),
    post("/tags.create", bodies.TagCreate, tags_create, "Tag", "Create a tag (409: name taken).",
         answer_status=201, conflict=True),
    post("/tags.list", bodies.Body, tags_list, "TagList", "Every tag, by name."),
    post("/tags.update", bodies.TagUpdate, tags_update, None,
         "Rename a tag or change its colour (409: name taken).", conflict=True),
    post("/tags.delete", bodies.TagRef, tags_delete, None,
         "Delete a tag and take it off every conversation."),
    post("/webhooks.subscribe", bodies.WebhookSubscribe, webhooks_subscribe, "Webhook",
         "Subscribe a webhook (or, given an id, change one and subscribe it again)."),
    post("/webhooks.update", bodies.WebhookUpdate, webhooks_update, "Webhook",
         "Change a webhook."),
    post("/webhooks.unsubscribe", bodies.WebhookRef, webhooks_unsubscribe, "Webhook",
         "Post nothing more to the webhook, not even what was queued."),
    post("/webhooks.info", bodies.WebhookRef, webhooks_info, "WebhookInfo",
         "A webhook and how its deliveries fare."),
    post("/webhooks.list", bodies.Body, webhooks_list, "WebhookList",
         "Every webhook, subscribed or not."),
    post("/messages.resend", bodies.MessageRef, messages_resend, "Message",
         "Send a failed message again (409 when it is not failed).", conflict=True),
    post("/messages.list", bodies.MessagesList, messages_list, "MessagePage",
         "A conversation's messages, newest first."),
    post("/messages.send", bodies.MessagesSend, messages_send, "Message",
         "Queue a message (answered pending); it is delivered in the background. 403 while "
         "Meta refuses the page token; 409 when another app owns the thread (unless force).",
         conflict=True),
    post("/messages.sender-action", bodies.SenderActionCall, messages_sender_action, None,
         "Show the person a sender action (typing_on, typing_off, mark_seen): not a message, "
         "paced with the page's sends. 403 while the channel is disconnected or Meta refuses "
         "its token.", calls_graph=True),
    post("/conversations.pass-thread-control", bodies.PassThreadControl,
         conversations_pass_thread_control, "Conversation",
         "Pass the thread to another app (Page Inbox unless target_app_id names one).",
         calls_graph=True),
    post("/conversations.take-thread-control", bodies.ThreadControlCall,
         conversations_take_thread_control, "Conversation",
         "Take the thread back from the app that owns it (the page's primary receiver may).",
         calls_graph=True),
    post("/conversations.request-thread-control", bodies.ThreadControlCall,
         conversations_request_thread_control, "Conversation",
         "Ask the thread's owner to pass it to this app.", calls_graph=True),
    post("/contacts.create", bodies.ContactCreate, contacts_create, "ContactCard",
         "Create a contact (at least one field).", answer_status=201),
    post_list("/contacts.import", "contacts", bodies.ContactsImport, contacts_import,
              "ContactCardList", "Create contacts in bulk: a JSON array of contacts.create "
              "bodies (or {\"contacts\": [...]}), at most 500.", answer_status=201),
    post("/contacts.list", bodies.ContactsList, contacts_list, "ContactCardPage",
         "Contacts, newest first."),
    post("/contacts.info", bodies.ContactInfo, contacts_info, "ContactCard",
         "One contact, by id or by conversation_id (a conversation's contact is made if it "
         "is not yet)."),
    post("/contacts.update", bodies.ContactUpdate, contacts_update, None,
         "Change a contact's fields; \"\" removes a field, or a key of via, address, "
         "conversations or metadata.", empty_status=202),
    post("/contacts.delete", bodies.ContactRef, contacts_delete, None,
         "Delete a contact.", empty_status=202),
    post("/contacts.merge", bodies.ContactsMerge, contacts_merge, "ContactCard",
         "Merge source_id into destination_id; answers the merged contact."),
]

