"""Airy's JSON shapes for channels, conversations and messages (snake_case, ISO-8601 times)."""

from __future__ import annotations

from typing import Any

from gateway.domain import (
    Channel,
    Conversation,
    ConversationView,
    Message,
    Page,
    Webhook,
    iso,
)


def channel_json(channel: Channel) -> dict[str, Any]:
    # The page token is never part of any answer.
    return {
        "id": channel.id,
        "source": channel.source,
        "source_channel_id": channel.source_channel_id,
        "connected": channel.connected,
        "metadata": {"name": channel.name, "image_url": channel.image_url,
                     "token_valid": channel.token_valid, "user_data": channel.user_data},
    }


def contact_json(conversation: Conversation) -> dict[str, Any]:
    contact = conversation.contact
    return {
        "id": contact.id,
        "display_name": conversation.display_name,
        "avatar_url": contact.avatar_url,
        "fetch_state": contact.fetch_state.value,
    }


def message_json(message: Message, contact: dict[str, Any] | None = None) -> dict[str, Any]:
    sender = {"id": None, "name": None, "avatar_url": None}
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
        "sent_at": iso(message.sent_at),
        "source": "facebook",
        "metadata": message.metadata(),
        "sender": sender,
    }


def conversation_json(view: ConversationView) -> dict[str, Any]:
    conversation = view.conversation
    contact = contact_json(conversation)
    return {
        "id": conversation.id,
        "created_at": iso(conversation.created_at),
        "channel": channel_json(view.channel),
        "contact": contact,
        "metadata": {
            "contact": {k: contact[k] for k in ("display_name", "avatar_url", "fetch_state")},
            "unread_count": conversation.unread_count,
            "state": conversation.state,
            "tags": {tag_id: "" for tag_id in conversation.tag_ids},
            "user_data": conversation.user_data,
        },
        "unread_count": conversation.unread_count,
        "last_message": message_json(view.last_message, contact) if view.last_message else None,
    }


def page_json(page: Page, shape) -> dict[str, Any]:
    return {
        "data": [shape(item) for item in page.items],
        "pagination_data": {
            "previous_cursor": page.previous_cursor,
            "next_cursor": page.next_cursor,
            "total": page.total,
        },
    }


def webhook_json(webhook: Webhook, queued: int | None = None) -> dict[str, Any]:
    """Airy's webhook shape; with `queued`, also how its deliveries fare. Never the key."""
    shape: dict[str, Any] = {
        "id": webhook.id, "name": webhook.name, "url": webhook.url, "headers": webhook.headers,
        "events": webhook.events,
        "status": "Subscribed" if webhook.subscribed else "Unsubscribed",
    }
    if queued is not None:
        shape |= {"last_success_at": iso(webhook.last_success_at),
                  "last_error": webhook.last_error, "last_error_at": iso(webhook.last_error_at),
                  "queued": queued}
    return shape
