"""The use-cases. REST routes, the webhook and (next) GraphQL resolvers all call these, and only these.

Nothing here knows HTTP or JSON shapes: it takes plain values, returns domain objects and raises
`gateway.errors` for what a caller can act on.
"""

from __future__ import annotations

import logging
import random
import re
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import urlsplit

from gateway.config import Settings
from gateway.domain import (
    DEFAULT_TAG_COLOR,
    TAG_COLORS,
    WEBHOOK_EVENTS,
    Channel,
    Conversation,
    ConversationFilter,
    ConversationView,
    FacebookPage,
    DeliveryState,
    EventKind,
    InboundEvent,
    Message,
    Page,
    SenderType,
    Tag,
    WEBHOOK_SIGNATURE_HEADER,
    Webhook,
    is_graph_id,
    new_id,
    now_ms,
)
from gateway.egress import parse_address, refusal, why_not_public
from gateway.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    UpstreamError,
    UpstreamRefused,
)
from gateway.store import Store
from gateway.store.mongo import USER_DATA_OWNERS, Job, JobRepo, merge_user_data
from gateway.validation import check_field_names, check_storable

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 100
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")  # RFC 9110 token
# An RFC 9110 field value in ASCII: visible characters, with spaces and tabs only between them.
HEADER_VALUE = re.compile(r"(?:[\x21-\x7e](?:[ \t]*[\x21-\x7e])*)?")
# Headers of a webhook's deliveries that the gateway sets itself, or that would change how the
# request is framed or carried: a webhook cannot give them.
RESERVED_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "content-type",
    WEBHOOK_SIGNATURE_HEADER.lower(), "keep-alive", "proxy-connection", "te", "trailer",
    "upgrade", "expect",
})
# Our message id rides in the Send API's `metadata`, so the echo Meta sends back names it.
ECHO_METADATA_PREFIX = "mg:"
MESSAGING_TYPES = ("RESPONSE", "UPDATE", "MESSAGE_TAG")
UNNOTED = "unnoted"  # in a send's job: its conversation has not counted the message yet
UNCOUNTED = "uncounted"  # in a new conversation's profile job: its channel has not counted it
MESSAGE_KINDS = (EventKind.MESSAGE, EventKind.POSTBACK, EventKind.ECHO)
INVALID_TOKEN = 190  # Graph API: the access token expired, was revoked or is malformed
# Meta refusing a profile (no permission, person gone) this often is taken as final; outages
# and rate limits are retried for as long as they last.
PROFILE_MAX_REFUSALS = 5
# A job whose subject never got stored (its request failed in between) is dropped after this.
ORPHAN_JOB_MS = 60_000
# A message an event brings has an id derived from the event's key: applying the event again
# (Meta's retry, the unprocessed-events worker) finds the message it stored before, even one
# without a mid.
INBOUND_MESSAGE_IDS = uuid.UUID("5b0f3c9e-2d2a-4c55-9a53-0e6f7d1c2b41")


class GraphApi(Protocol):
    """What the service needs of the Graph API (`gateway.sources.facebook.graph.GraphClient`)."""

    async def get_page(self, page_id: str, token: str) -> dict[str, Any]: ...
    async def subscribe_app(self, page_id: str, token: str) -> None: ...
    async def unsubscribe_app(self, page_id: str, token: str) -> None: ...
    async def get_profile(self, psid: str, token: str) -> dict[str, Any]: ...
    async def list_pages(self, user_token: str) -> list[dict[str, Any]]: ...
    async def send_message(
        self, token: str, recipient_id: str, message: Any, *,
        messaging_type: str = "RESPONSE", tag: str | None = None,
    ) -> str: ...


@dataclass
class IngestResult:
    received: int = 0
    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    invalid: int = 0  # kept raw in the events log, never applied


class Gateway:
    def __init__(self, store: Store, graph: GraphApi, settings: Settings) -> None:
        self.store = store
        self.graph = graph
        self.settings = settings
        # Set by the app: called when a send or a profile fetch is due, to wake its worker now.
        self.on_send_queued: Callable[[], None] = lambda: None
        self.on_profile_due: Callable[[], None] = lambda: None
        self.on_webhooks_changed: Callable[[], None] = lambda: None
        # Set at shutdown: background passes finish the job in hand and take no new one.
        self.stopping = False

    # --- channels ---------------------------------------------------------------------------

    async def connect_facebook_channel(
        self, page_id: str, page_token: str, name: str | None = None, image_url: str | None = None
    ) -> Channel:
        """Subscribe the app to the page, then store it; a Graph refusal stores nothing."""
        check_storable([page_id, page_token, name, image_url], "channel")
        page_id, page_token = page_id.strip(), page_token.strip()
        if not is_graph_id(page_id):
            raise InvalidInput("page_id must be the numeric id of a Facebook page (1 to 32 digits)")
        if not page_token:
            raise InvalidInput("page_token must not be empty")
        if not name or image_url is None:
            page = await self.graph.get_page(page_id, page_token)
            name = name or page.get("name") or f"Facebook page {page_id}"
            image_url = image_url if image_url is not None else page.get("image_url")
        await self.graph.subscribe_app(page_id, page_token)
        channel = await self.store.channels.save_connected(
            page_id, name, image_url, page_token, now_ms()
        )
        await self.store.conversations.count_channel_once(channel.id)  # before a conversation
        log.info("channel %s connected (page %s)", channel.id, page_id)
        return channel

    async def disconnect_channel(self, channel_id: str) -> Channel:
        """Unsubscribe the app and mark the channel disconnected; its history stays."""
        channel = await self.store.channels.get(channel_id)
        if channel is None:
            raise NotFound(f"channel {channel_id} not found")
        if not channel.connected:
            return channel  # disconnecting twice changes nothing
        if channel.page_token:
            try:
                await self.graph.unsubscribe_app(channel.source_channel_id, channel.page_token)
            except UpstreamRefused as exc:
                # The token no longer works (revoked, page removed): nothing left to undo at Meta.
                log.warning("channel %s: Meta refused the unsubscribe: %s", channel_id, exc.message)
        disconnected = await self.store.channels.set_disconnected(channel_id, now_ms())
        log.info("channel %s disconnected", channel_id)
        return disconnected or channel

    async def list_channels(self, source: str | None = None) -> list[Channel]:
        return await self.store.channels.list(source=source)

    async def get_channel(self, channel_id: str) -> Channel:
        channel = await self.store.channels.get(channel_id)
        if channel is None or not channel.connected:
            raise NotFound(f"channel {channel_id} not found")
        return channel

    async def update_channel(
        self, channel_id: str, name: str | None = None, image_url: str | None = None
    ) -> Channel:
        check_storable([name, image_url], "channel")
        changes = {k: v for k, v in (("name", name), ("image_url", image_url)) if v is not None}
        if "name" in changes and not changes["name"].strip():
            raise InvalidInput("name must not be empty")
        if not changes:
            return await self.get_channel(channel_id)
        channel = await self.store.channels.update(channel_id, changes, now_ms())
        if channel is None:
            raise NotFound(f"channel {channel_id} not found")
        return channel

    async def explore_facebook_pages(self, user_token: str) -> list[FacebookPage]:
        """The pages a Facebook user manages, each saying whether it is connected here."""
        check_storable(user_token, "auth_token")
        if not user_token.strip():
            raise InvalidInput("auth_token must not be empty")
        pages = await self.graph.list_pages(user_token.strip())
        connected = {c.source_channel_id for c in await self.store.channels.list("facebook")}
        return [FacebookPage(page_id=p["id"], name=p.get("name") or f"Facebook page {p['id']}",
                             image_url=p.get("image_url"), connected=p["id"] in connected)
                for p in pages]

    async def channels_by_ids(self, ids: list[str]) -> list[Channel | None]:
        """For DataLoaders: one query for any number of ids, answers in the order asked."""
        found = await self.store.channels.many(ids)
        return [found.get(i) for i in ids]

    # --- conversations ----------------------------------------------------------------------

    async def list_conversations(
        self, channel_id: str | None = None, cursor: str | None = None, page_size: int = 20,
        where: ConversationFilter | None = None,
    ) -> Page:
        """Newest activity first, each with its channel and last message; `where` narrows."""
        _check_page_size(page_size)
        where = replace(where) if where else ConversationFilter()
        check_storable([where.state, where.display_name, where.source, where.channel_ids,
                        where.tag_ids], "filters")
        if where.channel_ids is not None and not where.channel_ids:
            raise InvalidInput("filters.channel_ids must name at least one channel")
        check_field_names({tag_id: None for tag_id in where.tag_ids or []}, "filters.tag_ids")
        if channel_id:
            where.channel_ids = [channel_id, *(where.channel_ids or [])]
            if len(set(where.channel_ids)) > 1:
                raise InvalidInput("channel_id and filters.channel_ids name different channels")
        if where.source:
            of_source = await self.store.channels.ids_of_source(where.source)
            chosen = where.channel_ids if where.channel_ids is not None else of_source
            where.channel_ids = [c for c in chosen if c in of_source]
        page = await self.store.conversations.page(where, cursor, page_size)
        views = await self._views(page.items)
        by_id = dict(zip([c.id for c in page.items], page.cursors))
        return replace(page, items=views, cursors=[by_id[v.conversation.id] for v in views])

    async def get_conversation(self, conversation_id: str) -> ConversationView:
        conversation = await self.store.conversations.get(conversation_id)
        views = await self._views([conversation]) if conversation else []
        if not views:  # none, or it (or its channel) cannot be read
            raise NotFound(f"conversation {conversation_id} not found")
        return views[0]

    async def messages_by_ids(self, ids: list[str]) -> list[Message | None]:
        """For DataLoaders: one query for any number of ids, answers in the order asked."""
        found = await self.store.messages.many(ids)
        return [found.get(i) for i in ids]

    async def mark_conversation_read(self, conversation_id: str) -> None:
        if not await self.store.conversations.mark_read(conversation_id):
            raise NotFound(f"conversation {conversation_id} not found")

    async def update_contact(self, conversation_id: str, display_name: str) -> None:
        """Name the contact by hand; `refetch_contact` takes Meta's name again."""
        check_storable(display_name, "display_name")
        if not display_name.strip():
            raise InvalidInput("display_name must not be empty")
        if not await self.store.conversations.set_fields(
            conversation_id, {"contact.display_name": display_name.strip()}
        ):
            raise NotFound(f"conversation {conversation_id} not found")

    async def refetch_contact(self, conversation_id: str) -> None:
        """Fetch the contact's profile again, in the background."""
        if await self.store.conversations.get(conversation_id) is None:
            raise NotFound(f"conversation {conversation_id} not found")
        await self.store.profile_jobs.add(conversation_id, now_ms())
        self.on_profile_due()

    async def set_conversation_state(self, conversation_id: str, state: str | None) -> None:
        """Airy's conversation state (any short word, e.g. OPEN or CLOSED); None removes it."""
        if state is not None:
            check_storable(state, "state")
            if not state.strip():
                raise InvalidInput("state must not be empty")
            state = state.strip()
        if not await self.store.conversations.set_fields(conversation_id, {"state": state}):
            raise NotFound(f"conversation {conversation_id} not found")

    async def _views(self, conversations) -> list[ConversationView]:
        """Join channels and last messages with one query each, whatever the page size. A
        conversation whose channel cannot be read is left out; one whose last message cannot be
        read shows none (the store skips what it cannot read, with a warning)."""
        channels = await self.store.channels.many([c.channel_id for c in conversations])
        last_ids = [c.last_message_id for c in conversations if c.last_message_id]
        messages = await self.store.messages.many(last_ids) if last_ids else {}
        return [
            ConversationView(c, channels[c.channel_id], messages.get(c.last_message_id or ""))
            for c in conversations
            if c.channel_id in channels
        ]

    # --- messages ---------------------------------------------------------------------------

    async def list_messages(
        self, conversation_id: str, cursor: str | None = None, page_size: int = 20
    ) -> Page:
        _check_page_size(page_size)
        conversation = await self.store.conversations.get(conversation_id)
        if conversation is None:
            raise NotFound(f"conversation {conversation_id} not found")
        return await self.store.messages.page(conversation_id, cursor, page_size,
                                              conversation.message_count)

    async def send_message(
        self,
        conversation_id: str,
        message: dict[str, Any],
        messaging_type: str | None = None,
        tag: str | None = None,
    ) -> Message:
        """Store the message as pending; a worker delivers it through the Send API."""
        if not isinstance(message, dict) or not message:
            raise InvalidInput("message must be a non-empty object, e.g. {\"text\": \"Hello\"}")
        check_storable(message, "message")
        messaging_type = messaging_type or ("MESSAGE_TAG" if tag else "RESPONSE")
        if messaging_type not in MESSAGING_TYPES:
            raise InvalidInput(f"messaging_type must be one of {', '.join(MESSAGING_TYPES)}")
        if messaging_type == "MESSAGE_TAG" and not tag:
            raise InvalidInput("tag is required when messaging_type is MESSAGE_TAG")
        if tag and messaging_type != "MESSAGE_TAG":
            raise InvalidInput("tag goes with messaging_type MESSAGE_TAG only")
        conversation = await self.store.conversations.get(conversation_id)
        if conversation is None:
            raise NotFound(f"conversation {conversation_id} not found")
        channel = await self.store.channels.get(conversation.channel_id)
        if channel is None or not channel.connected:
            raise Forbidden("the conversation's channel is disconnected")
        sent = Message(
            id=new_id(), conversation_id=conversation.id, channel_id=channel.id, content=message,
            sender_type=SenderType.APP, state=DeliveryState.PENDING, sent_at=now_ms(),
            send_options={"messaging_type": messaging_type, "tag": tag},
        )
        # Queued first: a message is never stored pending with nothing to deliver it. The job
        # says the conversation is still to count it until it has: if this stops half-way, the
        # sender counts it (exactly once: see note_messages).
        await self.store.outbox.add(sent.id, sent.sent_at, {**sent.send_options, UNNOTED: True})
        await self.store.messages.insert(sent)
        await self.store.conversations.note_messages(conversation.id, sent.id, sent.sent_at,
                                                     [sent.id])
        await self.store.outbox.forget(sent.id, UNNOTED)
        self.on_send_queued()
        return sent

    async def resend_message(self, message_id: str) -> Message:
        """Queue a failed message again, as it was first sent; anything else is a conflict.

        The job is queued before the message turns pending (as in `send_message`); a job left by
        a refused resend finds the message not pending and is dropped by the sender.
        """
        message = await self.store.messages.get(message_id)
        if message is None:
            raise NotFound(f"message {message_id} not found")
        if message.state is not DeliveryState.FAILED:
            raise Conflict("Message is not in a failed state")
        channel = await self.store.channels.get(message.channel_id)
        if channel is None or not channel.connected:
            raise Forbidden("the conversation's channel is disconnected")
        await self.store.outbox.add(message.id, now_ms(), message.send_options)
        again = await self.store.messages.back_to_pending(message_id)
        if again is None:
            raise Conflict("Message is not in a failed state")
        self.on_send_queued()
        return again

    @property
    def _lease_ms(self) -> int:
        """How long a taken job is left alone: longer than any Graph API call it makes."""
        return int((self.settings.graph_api_timeout * 2 + 5) * 1000)

    async def deliver_due_messages(self) -> int:
        """Send every message whose turn has come; returns how many were tried."""
        tried = 0
        while not self.stopping and (job := await self.store.outbox.claim(now_ms(),
                                                                          self._lease_ms)):
            tried += 1
            await self._deliver(job)
        return tried

    async def _deliver(self, job: Job) -> None:
        message = await self.store.messages.get(job.id)
        if message is None:
            await self._subject_missing(self.store.outbox, job)
            return
        if job.data.get(UNNOTED):  # stored by a send that stopped before counting it
            await self.store.conversations.note_messages(
                message.conversation_id, message.id, message.sent_at, [message.id])
            await self.store.outbox.forget(job.id, UNNOTED)
        if message.state is not DeliveryState.PENDING:
            await self.store.outbox.done(job.id)
            return
        attempts = job.attempts + 1
        channel = await self.store.channels.get(message.channel_id)
        conversation = await self.store.conversations.get(message.conversation_id)
        if channel is None or not channel.connected or conversation is None:
            error = {"message": "the conversation's channel is disconnected", "transient": False}
            await self.store.messages.mark_failed(message.id, error)
            await self.store.outbox.done(job.id)
            return
        payload = dict(message.content)
        payload.setdefault("metadata", ECHO_METADATA_PREFIX + message.id)
        try:
            mid = await self.graph.send_message(
                channel.page_token, conversation.contact.id, payload,
                messaging_type=job.data.get("messaging_type") or "RESPONSE",
                tag=job.data.get("tag"),
            )
        except UpstreamError as exc:
            if exc.transient and attempts < self.settings.send_max_attempts:
                delay = self.backoff(attempts)
                log.info("message %s: attempt %d failed (%s), retrying in %.1fs",
                         message.id, attempts, exc.message, delay)
                await self.store.outbox.retry_at(job.id, now_ms() + int(delay * 1000), attempts)
                return
            log.warning("message %s failed after %d attempt(s): %s",
                        message.id, attempts, exc.message)
            await self._note_token_refusal(channel, exc)  # first: a reader of the failure sees it
            await self.store.messages.mark_failed(message.id, exc.to_dict())
        else:
            removed = await self.store.messages.mark_delivered(message.id, mid)
            if removed:
                await self.store.conversations.replace_last_message(
                    message.conversation_id, removed, message.id
                )
                await self.store.conversations.uncount(message.conversation_id, removed)
        await self.store.outbox.done(job.id)

    async def _note_token_refusal(self, channel: Channel, exc: UpstreamError) -> None:
        if exc.graph_code == INVALID_TOKEN and channel.token_valid:
            log.warning("channel %s: Meta refused its page token; connect the page again",
                        channel.id)
            await self.store.channels.token_refused(channel.id, now_ms())

    @staticmethod
    async def _subject_missing(queue: JobRepo, job: Job) -> None:
        """What the job is about is not stored: not yet (look again in a second), or never
        (its request failed, or it lost a race to create it): then the job is dropped. Stored
        but unreadable, it will not become readable by itself: the job is parked."""
        if await queue.subject_unreadable(job.id):
            await queue.park(job.id, "what it is about cannot be read")
        elif now_ms() - job.created_at > ORPHAN_JOB_MS:
            await queue.done(job.id)
        else:
            await queue.retry_at(job.id, now_ms() + 1000, job.attempts)

    def backoff(self, attempts: int) -> float:
        """Exponential backoff with jitter: about base·2^(n-1) seconds, capped."""
        delay = self.settings.retry_base_seconds * 2 ** (attempts - 1)
        return min(delay, self.settings.retry_max_seconds) * random.uniform(0.5, 1.0)

    # --- tags and user data ------------------------------------------------------------------

    async def create_tag(self, name: str, color: str | None = None) -> Tag:
        name = _tag_name(name)
        tag = await self.store.tags.create(name, _tag_color(color or DEFAULT_TAG_COLOR))
        if tag is None:
            raise Conflict(f"a tag named {name!r} exists already")
        return tag

    async def list_tags(self) -> list[Tag]:
        return await self.store.tags.list()

    async def update_tag(self, tag_id: str, name: str | None = None,
                         color: str | None = None) -> Tag:
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = _tag_name(name)
        if color is not None:
            changes["color"] = _tag_color(color)
        found = await self.store.tags.update(tag_id, changes) if changes else \
            await self.store.tags.get(tag_id) is not None
        if not found:
            raise NotFound(f"tag {tag_id} not found")
        tag = await self.store.tags.get(tag_id)
        if tag is None:  # stored, but it cannot be read
            raise NotFound(f"tag {tag_id} not found")
        return tag

    async def delete_tag(self, tag_id: str) -> None:
        """Delete the tag and take it off every conversation."""
        if not await self.store.tags.delete(tag_id):
            raise NotFound(f"tag {tag_id} not found")
        await self.store.conversations.drop_tag(tag_id)

    async def tags_by_ids(self, ids: list[str]) -> list[Tag | None]:
        """For DataLoaders: one query for any number of ids, answers in the order asked."""
        found = await self.store.tags.many(ids)
        return [found.get(i) for i in ids]

    async def tag_conversation(self, conversation_id: str, tag_id: str) -> None:
        if await self.store.tags.get(tag_id) is None:
            raise NotFound(f"tag {tag_id} not found")
        if not await self.store.conversations.tag(conversation_id, tag_id):
            raise NotFound(f"conversation {conversation_id} not found")

    async def untag_conversation(self, conversation_id: str, tag_id: str) -> None:
        """Untagging a conversation that does not carry the tag changes nothing."""
        if await self.store.tags.get(tag_id) is None:
            raise NotFound(f"tag {tag_id} not found")
        if not await self.store.conversations.untag(conversation_id, tag_id):
            raise NotFound(f"conversation {conversation_id} not found")

    async def upsert_metadata(
        self, subject: str, owner_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge `data` into the `user_data` of a message, conversation or channel; return it."""
        if subject not in USER_DATA_OWNERS:
            raise InvalidInput(f"subject must be one of {', '.join(USER_DATA_OWNERS)}")
        if not isinstance(data, dict):
            raise InvalidInput("data must be a JSON object")
        check_storable(data, "data")
        check_field_names(data, "data")
        merged = await merge_user_data(self.store, subject, owner_id, data)
        if merged is None:
            raise NotFound(f"{subject} {owner_id} not found")
        return merged

    async def suggest_replies(self, message_id: str, suggestions: dict[str, Any]) -> Message:
        """Attach suggested replies to a message, by id: `{"<id>": {"content": {...}}}`."""
        if not isinstance(suggestions, dict) or not suggestions:
            raise InvalidInput('suggestions must be a non-empty object: {"<id>": {"content": …}}')
        for key, value in suggestions.items():
            if not isinstance(value, dict) or "content" not in value:
                raise InvalidInput(f"suggestions.{key} must be an object with a content")
        check_storable(suggestions, "suggestions")
        check_field_names(suggestions, "suggestions")
        message = await self.store.messages.add_suggestions(message_id, suggestions)
        if message is None:
            raise NotFound(f"message {message_id} not found")
        return message

    # --- outgoing webhooks -------------------------------------------------------------------

    async def subscribe_webhook(
        self, url: str, webhook_id: str | None = None, name: str | None = None,
        events: list[str] | None = None, headers: dict[str, str] | None = None,
        signature_key: str | None = None,
    ) -> Webhook:
        """Subscribe a new webhook, or (given the id of one) change it and subscribe it again."""
        if webhook_id and await self.store.webhooks.exists(webhook_id):
            return await self.update_webhook(webhook_id, url=url, name=name, events=events,
                                             headers=headers, signature_key=signature_key,
                                             subscribed=True)
        now = now_ms()
        webhook = Webhook(
            id=webhook_id or new_id(), name=_webhook_name(name),
            url=_webhook_url(url, self.settings.webhook_allow_private),
            events=_webhook_events(events) if events is not None else list(WEBHOOK_EVENTS),
            headers=check_webhook_headers(headers or {}), subscribed=True, created_at=now,
            updated_at=now, signature_key=_webhook_key(signature_key or ""),
        )
        if not await self.store.webhooks.insert(webhook):  # the same id, subscribed just now
            return await self.subscribe_webhook(url, webhook_id, name, events, headers,
                                                signature_key)
        self.on_webhooks_changed()
        log.info("webhook %s subscribed", webhook.id)
        return webhook

    async def update_webhook(
        self, webhook_id: str, url: str | None = None, name: str | None = None,
        events: list[str] | None = None, headers: dict[str, str] | None = None,
        signature_key: str | None = None, subscribed: bool | None = None,
    ) -> Webhook:
        changes: dict[str, Any] = {"updated_at": now_ms()}
        if url is not None:
            changes["url"] = _webhook_url(url, self.settings.webhook_allow_private)
        if name is not None:
            changes["name"] = _webhook_name(name)
        if events is not None:
            changes["events"] = _webhook_events(events)
        if headers is not None:
            changes["headers"] = check_webhook_headers(headers)
        if signature_key is not None:
            changes["signature_key"] = _webhook_key(signature_key)
        if subscribed is not None:
            changes["subscribed"] = subscribed
        webhook = await self.store.webhooks.update(webhook_id, changes)
        if webhook is None:
            raise NotFound(f"webhook {webhook_id} not found")
        self.on_webhooks_changed()
        return webhook

    async def unsubscribe_webhook(self, webhook_id: str) -> Webhook:
        """Stop posting to the webhook, including what was queued for it."""
        webhook = await self.update_webhook(webhook_id, subscribed=False)
        await self.store.deliveries.drop_queued(webhook_id)
        log.info("webhook %s unsubscribed", webhook_id)
        return webhook

    async def webhook_info(self, webhook_id: str) -> tuple[Webhook, int]:
        """The webhook and how many deliveries wait for it."""
        webhook = await self.store.webhooks.get(webhook_id)
        if webhook is None:
            raise NotFound(f"webhook {webhook_id} not found")
        return webhook, await self.store.deliveries.queued(webhook_id)

    async def list_webhooks(self) -> list[tuple[Webhook, int]]:
        return [(w, await self.store.deliveries.queued(w.id))
                for w in await self.store.webhooks.list()]

    # --- contacts ---------------------------------------------------------------------------

    async def fetch_due_profiles(self) -> int:
        """Fetch the contact profiles that are due; a failure is retried later with backoff."""
        tried = 0
        while not self.stopping and (job := await self.store.profile_jobs.claim(now_ms(),
                                                                               self._lease_ms)):
            tried += 1
            conversation = await self.store.conversations.get(job.id)
            if conversation is None:
                await self._subject_missing(self.store.profile_jobs, job)
                continue
            if job.data.get(UNCOUNTED):  # stored by an apply that stopped before counting it
                await self.store.conversations.count_new(conversation)
                await self.store.profile_jobs.forget(job.id, UNCOUNTED)
            attempts = job.attempts + 1
            channel = await self.store.channels.get(conversation.channel_id)
            try:
                if channel is None or not channel.connected:
                    raise UpstreamRefused("the conversation's channel is disconnected")
                profile = await self.graph.get_profile(conversation.contact.id, channel.page_token)
            except UpstreamError as exc:
                await self.store.conversations.profile_failed(conversation.id, exc.message)
                if channel is not None:
                    await self._note_token_refusal(channel, exc)
                if not exc.transient and attempts >= PROFILE_MAX_REFUSALS:
                    log.warning("profile of conversation %s: refused %d times (%s); giving up",
                                conversation.id, attempts, exc.message)
                    await self.store.profile_jobs.done(job.id)
                    continue
                delay = self.backoff(attempts)
                log.warning("profile of conversation %s: attempt %d failed (%s), retrying in %.0fs",
                            conversation.id, attempts, exc.message, delay)
                await self.store.profile_jobs.retry_at(
                    job.id, now_ms() + int(delay * 1000), attempts
                )
                continue
            await self.store.conversations.profile_fetched(
                conversation.id, profile.get("display_name"), profile.get("avatar_url")
            )
            await self.store.profile_jobs.done(job.id)
        return tried

    # --- webhook events ---------------------------------------------------------------------

    async def ingest_events(self, events: list[InboundEvent]) -> IngestResult:
        """Store the events, then apply each once. Returns when all are stored and applied."""
        result = IngestResult(received=len(events))
        pending = await self.store.events.record(events, now_ms())
        invalid = Counter((e.page_id, e.invalid) for e in events if e.invalid)
        for (page_id, reason), count in invalid.items():  # the reason never quotes the event
            log.warning("kept %d invalid event(s) %s aside, not applied: %s", count,
                        f"of page {page_id}" if page_id else "of an entry without a page id",
                        reason)
        result.invalid = sum(invalid.values())
        result.duplicates = len(events) - result.invalid - len(pending)
        await self._apply_all(pending, result)
        return result

    async def apply_unprocessed_events(self, older_than_ms: int = 60_000) -> int:
        """Apply events that were stored but never applied (a process died in between)."""
        events = await self.store.events.unprocessed(now_ms() - older_than_ms)
        await self._apply_all(events, IngestResult(received=len(events)))
        return len(events)

    async def _apply_all(self, events: list[InboundEvent], result: IngestResult) -> None:
        """Apply in order; each run of messages together, with a few writes for the whole run."""
        channels: dict[str, Channel | None] = {}
        run: list[tuple[Channel, InboundEvent]] = []
        for event in events:
            if event.invalid:  # never applied (the events log keeps it, marked processed)
                continue
            if event.page_id not in channels:
                channels[event.page_id] = await self.store.channels.by_page(event.page_id)
            channel = channels[event.page_id]
            if channel is None or not channel.connected:
                log.info("ignored a %s event for page %s: no connected channel",
                         event.kind.value, event.page_id)
                result.ignored += 1
                continue
            result.applied += 1
            if event.kind in MESSAGE_KINDS:
                run.append((channel, event))
                continue
            await self._apply_messages(run)
            run = []
            await self._apply(channel, event)
        await self._apply_messages(run)
        await self.store.events.mark_processed([e.key for e in events])

    async def _apply(self, channel: Channel, event: InboundEvent) -> None:
        kind = event.kind
        if kind is EventKind.REACTION and event.source_message_id and event.reaction:
            reaction = None
            if event.reaction["action"] == "react":
                reaction = {"emoji": event.reaction.get("emoji"),
                            "reaction": event.reaction.get("reaction"), "sent_at": event.timestamp}
            await self.store.messages.react(event.source_message_id, reaction, event.timestamp)
        elif kind in (EventKind.DELIVERY, EventKind.READ) and event.contact_id:
            conversation = await self.store.conversations.find(channel.id, event.contact_id)
            if conversation is None:
                return
            if kind is EventKind.DELIVERY:
                await self.store.messages.delivered_up_to(
                    conversation.id, event.mids, event.watermark
                )
            elif event.watermark is not None:
                await self.store.messages.read_up_to(conversation.id, event.watermark)
        # UNKNOWN: the raw event is kept in the events log; there is nothing more to do.

    async def _apply_messages(self, run: list[tuple[Channel, InboundEvent]]) -> None:
        """Messages, postbacks and echoes: one conversation lookup per channel, one insert for
        all, one update per conversation; a message stored before (same mid, or same event) is
        not stored again. One the same event stored (a try that failed, or ran at the same time)
        is counted unread unless that try counted it; one another event stored (the same mid
        sent again, changed) is that event's to count."""
        run = [(channel, event) for channel, event in run if event.contact_id]
        if not run:
            return
        conversations: dict[tuple[str, str], Conversation] = {}
        contacts: dict[str, list[str]] = {}
        for channel, event in run:
            contacts.setdefault(channel.id, []).append(event.contact_id)
        for channel_id, ids in contacts.items():
            found = await self.store.conversations.find_many(channel_id, ids)
            conversations |= {(channel_id, contact): c for contact, c in found.items()}
        messages: list[Message] = []
        for channel, event in run:
            key = (channel.id, event.contact_id)
            if key not in conversations:
                # Its profile job says it is still to be counted until it is: if this stops
                # half-way, the profile worker counts it (once: see CounterRepo).
                queued: list[str] = []

                async def queue_profile(new: str) -> None:
                    queued.append(new)
                    await self.store.profile_jobs.add(new, now_ms(), {UNCOUNTED: True})

                conversations[key], created = await self.store.conversations.create(
                    channel.id, event.contact_id, event.timestamp, before_insert=queue_profile)
                if created:
                    await self.store.conversations.count_new(conversations[key])
                    await self.store.profile_jobs.forget(conversations[key].id, UNCOUNTED)
                    self.on_profile_due()
                elif queued:  # another process stored it first: its job is that one's
                    await self.store.profile_jobs.done(queued[0])
            message = await self._message_of(channel, conversations[key], event)
            if message:
                messages.append(message)
        stored_before = await self.store.messages.insert_many(messages)
        ours = {m.id for m in messages}
        if stored_before:  # their stored copies: shown by their conversations
            skipped = {m.id for m in stored_before}
            known = await self.store.messages.stored_copies(stored_before)
            messages = [m for m in messages if m.id not in skipped] + known
        # A message's id comes from its event, so a stored copy with the id this apply gave it was
        # stored by this very event: it is counted (unless counted already); one with another id
        # is another event's to count.
        await self._note_messages(messages, ours)

    async def _message_of(
        self, channel: Channel, conversation: Conversation, event: InboundEvent
    ) -> Message | None:
        """The message an event brings; None for an echo of a message this gateway sent."""
        if event.kind is EventKind.ECHO:
            app_id = self.settings.facebook_app_id
            ours = event.app_id is not None and event.app_id == app_id
            metadata = event.echo_metadata or ""
            if (ours or not app_id) and metadata.startswith(ECHO_METADATA_PREFIX):
                our_id = metadata[len(ECHO_METADATA_PREFIX):]
                if await self.store.messages.reconcile_echo(
                    our_id, event.source_message_id or "", conversation.id
                ):
                    return None
            sender = SenderType.APP if ours else SenderType.PAGE
        else:
            sender = SenderType.CONTACT
        return Message(
            id=str(uuid.uuid5(INBOUND_MESSAGE_IDS, event.key)), conversation_id=conversation.id,
            channel_id=channel.id, content=event.raw, sender_type=sender,
            state=DeliveryState.DELIVERED, sent_at=event.timestamp,
            source_message_id=event.source_message_id, kind=event.kind.value,
        )

    async def _note_messages(self, messages: list[Message], ours: set[str]) -> None:
        """One update per conversation: its newest message, and the messages among `ours`
        counted (the person's unread too), exactly once however often this runs for them (see
        note_messages)."""
        newest: dict[str, Message] = {}
        new: dict[str, list[str]] = {}
        unread: dict[str, list[str]] = {}
        for message in {m.id: m for m in messages}.values():
            current = newest.get(message.conversation_id)
            if current is None or message.sent_at >= current.sent_at:
                newest[message.conversation_id] = message
            if message.id in ours:
                new.setdefault(message.conversation_id, []).append(message.id)
                if message.from_contact:
                    unread.setdefault(message.conversation_id, []).append(message.id)
        for conversation_id, message in newest.items():
            await self.store.conversations.note_messages(
                conversation_id, message.id, message.sent_at, new.get(conversation_id, []),
                unread.get(conversation_id, []))


def _webhook_url(url: str, allow_private: bool) -> str:
    """A receiver URL: http(s), and not an IP literal that delivery would refuse anyway (a name
    is checked on the addresses it resolves to, when each delivery is made: gateway.egress)."""
    check_storable(url, "url")
    try:
        parts = urlsplit(url.strip())
        host, _ = parts.hostname, parts.port  # a malformed host or port raises ValueError
    except ValueError:
        host = None
    if not host or parts.scheme not in ("http", "https") or len(url) > 2000:
        raise InvalidInput("url must be an http or https URL, e.g. https://example.com/hook")
    address = parse_address(host)
    reason = why_not_public(address) if address is not None and not allow_private else None
    if address is not None and reason:
        raise InvalidInput(f"url: {refusal(host, address, reason)}")
    return url.strip()


def _webhook_name(name: str | None) -> str | None:
    check_storable(name, "name")
    if name is not None and len(name) > 200:
        raise InvalidInput("name must be at most 200 characters")
    if name is None:
        return None
    return name.strip() or None


def _webhook_events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e not in WEBHOOK_EVENTS]
    if unknown or not events:
        raise InvalidInput(f"events must name one or more of {', '.join(WEBHOOK_EVENTS)}"
                           + (f"; unknown: {', '.join(map(str, unknown))}" if unknown else ""))
    return [e for e in WEBHOOK_EVENTS if e in events]


def check_webhook_headers(headers: dict[str, str]) -> dict[str, str]:
    """The headers a webhook's deliveries carry, as HTTP can send them (REST and GraphQL alike,
    and the sender, for webhooks stored before they were checked). `InvalidInput` names the
    header at fault, never its value (which may be a secret)."""
    check_storable(headers, "headers")
    if len(headers) > 30:
        raise InvalidInput("headers: at most 30")
    seen: set[str] = set()
    for key, value in headers.items():
        name = repr(key) if len(key) <= 100 else repr(key[:100]) + "…"
        if not HEADER_NAME.fullmatch(key):
            raise InvalidInput(f"headers: {name} is not a header name (1 to 100 letters, digits "
                               "and !#$%&'*+-.^_`|~)")
        if key.lower() in RESERVED_HEADERS:
            raise InvalidInput(f"headers: {name} cannot be given: the gateway sets it, or it "
                               "would change how deliveries are sent")
        if key.lower() in seen:
            raise InvalidInput(f"headers: {name} is given twice (header names ignore case)")
        seen.add(key.lower())
        if not isinstance(value, str) or len(value) > 4000 or not HEADER_VALUE.fullmatch(value):
            raise InvalidInput(f"headers: the value of {name} must be text of at most 4000 "
                               "visible ASCII characters, with spaces or tabs only between them")
    return dict(headers)


def _webhook_key(key: str) -> str:
    check_storable(key, "signature_key")
    if len(key) > 500:
        raise InvalidInput("signature_key must be at most 500 characters")
    return key


def _tag_name(name: str) -> str:
    check_storable(name, "name")
    if not name.strip():
        raise InvalidInput("name must not be empty")
    return name.strip()


def _tag_color(color: str) -> str:
    if color not in TAG_COLORS:
        raise InvalidInput(f"color must be one of {', '.join(TAG_COLORS)}")
    return color


def _check_page_size(page_size: int) -> None:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
