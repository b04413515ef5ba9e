"""Airy-compatible routes: `POST /<noun>.<verb>` with a JSON body. Parse, call the service, shape."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.domain import ConversationFilter
from gateway.rest import bodies
from gateway.rest.shapes import (
    channel_json,
    contact_json,
    conversation_json,
    message_json,
    page_json,
    webhook_json,
)
from gateway.service import Gateway
from gateway.validation import load_json

Handler = Callable[[Gateway, Any], Awaitable[Response]]


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
    reads_store: bool = False  # answered from the store alone: the query cache may keep it


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


async def connect_facebook(gw: Gateway, body: bodies.ConnectFacebook) -> Response:
    channel = await gw.connect_facebook_channel(
        body.page_id, body.page_token, name=body.name, image_url=body.image_url
    )
    return JSONResponse(channel_json(channel))


async def disconnect_facebook(gw: Gateway, body: bodies.ChannelRef) -> Response:
    await gw.disconnect_channel(body.channel_id)
    return no_content()


async def channels_list(gw: Gateway, body: bodies.ChannelsList) -> Response:
    channels = await gw.list_channels(source=body.source)
    return JSONResponse({"data": [channel_json(c) for c in channels]})


async def channels_info(gw: Gateway, body: bodies.ChannelRef) -> Response:
    return JSONResponse(channel_json(await gw.get_channel(body.channel_id)))


async def channels_update(gw: Gateway, body: bodies.ChannelUpdate) -> Response:
    channel = await gw.update_channel(body.channel_id, name=body.name, image_url=body.image_url)
    return JSONResponse(channel_json(channel))


async def conversations_list(gw: Gateway, body: bodies.ConversationsList) -> Response:
    where = ConversationFilter(**body.filters.model_dump()) if body.filters else None
    page = await gw.list_conversations(
        channel_id=body.channel_id, cursor=body.cursor, page_size=body.page_size, where=where
    )
    return JSONResponse(page_json(page, conversation_json))


async def conversations_info(gw: Gateway, body: bodies.ConversationRef) -> Response:
    return JSONResponse(conversation_json(await gw.get_conversation(body.conversation_id)))


async def conversations_read(gw: Gateway, body: bodies.ConversationRef) -> Response:
    await gw.mark_conversation_read(body.conversation_id)
    return no_content()


async def conversations_update_contact(gw: Gateway, body: bodies.UpdateContact) -> Response:
    await gw.update_contact(body.conversation_id, body.display_name)
    return no_content()


async def conversations_refetch(gw: Gateway, body: bodies.ConversationRef) -> Response:
    await gw.refetch_contact(body.conversation_id)
    return Response(status_code=202)


async def conversations_set_state(gw: Gateway, body: bodies.ConversationState) -> Response:
    await gw.set_conversation_state(body.conversation_id, body.state)
    return no_content()


async def conversations_remove_state(gw: Gateway, body: bodies.ConversationRef) -> Response:
    await gw.set_conversation_state(body.conversation_id, None)
    return no_content()


async def messages_resend(gw: Gateway, body: bodies.MessageRef) -> Response:
    return JSONResponse(message_json(await gw.resend_message(body.message_id)))


async def conversations_tag(gw: Gateway, body: bodies.ConversationTag) -> Response:
    await gw.tag_conversation(body.conversation_id, body.tag_id)
    return no_content()


async def conversations_untag(gw: Gateway, body: bodies.ConversationTag) -> Response:
    await gw.untag_conversation(body.conversation_id, body.tag_id)
    return no_content()


async def messages_suggest_replies(gw: Gateway, body: bodies.SuggestReplies) -> Response:
    return JSONResponse(message_json(await gw.suggest_replies(body.message_id, body.suggestions)))


async def metadata_upsert(gw: Gateway, body: bodies.MetadataUpsert) -> Response:
    await gw.upsert_metadata(body.subject, body.id, body.data)
    return no_content()


async def explore_facebook(gw: Gateway, body: bodies.ExploreFacebook) -> Response:
    pages = await gw.explore_facebook_pages(body.auth_token)
    return JSONResponse({"data": [asdict(page) for page in pages]})


async def tags_create(gw: Gateway, body: bodies.TagCreate) -> Response:
    return JSONResponse(asdict(await gw.create_tag(body.name, body.color)), status_code=201)


async def tags_list(gw: Gateway, body: bodies.Body) -> Response:
    return JSONResponse({"data": [asdict(tag) for tag in await gw.list_tags()]})


async def tags_update(gw: Gateway, body: bodies.TagUpdate) -> Response:
    await gw.update_tag(body.id, name=body.name, color=body.color)
    return no_content()


async def tags_delete(gw: Gateway, body: bodies.TagRef) -> Response:
    await gw.delete_tag(body.id)
    return no_content()


async def webhooks_subscribe(gw: Gateway, body: bodies.WebhookSubscribe) -> Response:
    webhook = await gw.subscribe_webhook(
        body.url, webhook_id=body.id, name=body.name, events=body.events, headers=body.headers,
        signature_key=body.signature_key,
    )
    return JSONResponse(webhook_json(webhook))


async def webhooks_update(gw: Gateway, body: bodies.WebhookUpdate) -> Response:
    webhook = await gw.update_webhook(
        body.id, url=body.url, name=body.name, events=body.events, headers=body.headers,
        signature_key=body.signature_key,
    )
    return JSONResponse(webhook_json(webhook))


async def webhooks_unsubscribe(gw: Gateway, body: bodies.WebhookRef) -> Response:
    return JSONResponse(webhook_json(await gw.unsubscribe_webhook(body.id)))


async def webhooks_info(gw: Gateway, body: bodies.WebhookRef) -> Response:
    return JSONResponse(webhook_json(*await gw.webhook_info(body.id)))


async def webhooks_list(gw: Gateway, body: bodies.Body) -> Response:
    return JSONResponse({"data": [webhook_json(*item) for item in await gw.list_webhooks()]})


async def messages_list(gw: Gateway, body: bodies.MessagesList) -> Response:
    view = await gw.get_conversation(body.conversation_id)
    page = await gw.list_messages(body.conversation_id, cursor=body.cursor,
                                  page_size=body.page_size)
    contact = contact_json(view.conversation)
    return JSONResponse(page_json(page, lambda m: message_json(m, contact)))


async def messages_send(gw: Gateway, body: bodies.MessagesSend) -> Response:
    message = await gw.send_message(
        body.conversation_id, body.message, messaging_type=body.messaging_type, tag=body.tag
    )
    return JSONResponse(message_json(message))


routes = [
    post("/channels.facebook.connect", bodies.ConnectFacebook, connect_facebook, "Channel",
         "Subscribe the app to a page and store it (same page: same id).", calls_graph=True),
    post("/channels.facebook.disconnect", bodies.ChannelRef, disconnect_facebook, None,
         "Unsubscribe the app from the page; the history stays.", calls_graph=True),
    post("/channels.facebook.explore", bodies.ExploreFacebook, explore_facebook, "PageList",
         "The pages a Facebook user manages (a user token), each saying whether it is "
         "connected.", calls_graph=True),
    post("/channels.list", bodies.ChannelsList, channels_list, "ChannelList",
         "Connected channels.", reads_store=True),
    post("/channels.info", bodies.ChannelRef, channels_info, "Channel", "One connected channel.",
         reads_store=True),
    post("/channels.update", bodies.ChannelUpdate, channels_update, "Channel",
         "Rename a channel or change its picture."),
    post("/conversations.list", bodies.ConversationsList, conversations_list, "ConversationPage",
         "Conversations, newest activity first.", reads_store=True),
    post("/conversations.info", bodies.ConversationRef, conversations_info, "Conversation",
         "One conversation.", reads_store=True),
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
    post("/tags.list", bodies.Body, tags_list, "TagList", "Every tag, by name.",
         reads_store=True),
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
         "A conversation's messages, newest first.", reads_store=True),
    post("/messages.send", bodies.MessagesSend, messages_send, "Message",
         "Queue a message (answered pending); it is delivered in the background."),
]

READ_PATHS = [spec.path for spec in SPECS if spec.reads_store]
