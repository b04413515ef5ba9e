"""Messages: a conversation's pages, sends through the Send API (queued, then delivered by the
sender worker), and suggested replies."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gateway.domain import (
    Channel,
    Conversation,
    DeliveryState,
    Message,
    Page,
    SenderType,
    new_id,
    now_ms,
)
from gateway.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    UpstreamError,
)
from gateway.ratelimit import PageLimiter, is_media, is_rate_error
from gateway.store.ports import Job
from gateway.usecases.base import (
    ECHO_METADATA_PREFIX,
    Deps,
    UseCase,
    backoff,
    check_page_size,
    lease_ms,
    note_token_refusal,
    subject_missing,
)
from gateway.validation import check_field_names, check_storable

log = logging.getLogger(__name__)

MESSAGING_TYPES = ("RESPONSE", "UPDATE", "MESSAGE_TAG")
UNNOTED = "unnoted"  # in a send's job: its conversation has not counted the message yet
# A send behind an older one of its conversation that is still to go looks again after this.
BEHIND_MS = 250
# A conversation's last message this little ahead of now is taken as now (two sends in one
# millisecond, or Meta's clock a little ahead of ours); further ahead, it is not followed.
SAME_MOMENT_MS = 1000


class Messages(UseCase):
    """A conversation's messages, and sends: stored pending, delivered by the sender worker."""

    def __init__(self, deps: Deps) -> None:
        super().__init__(deps)
        # One per process: every lane to a page shares that page's pace.
        self.limiter = PageLimiter(self.settings.send_rate_per_page,
                                   self.settings.send_media_rate_per_page)

    async def page(
        self, conversation_id: str, cursor: str | None = None, page_size: int = 20
    ) -> Page:
        check_page_size(page_size)
        conversation = await self.store.conversations.get(conversation_id)
        if conversation is None:
            raise NotFound(f"conversation {conversation_id} not found")
        return await self.store.messages.page(conversation_id, cursor, page_size,
                                              conversation.message_count)

    async def by_ids(self, ids: list[str]) -> list[Message | None]:
        """For DataLoaders: one query for any number of ids, answers in the order asked."""
        found = await self.store.messages.many(ids)
        return [found.get(i) for i in ids]

    async def send(
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
        # Sends to one conversation within a millisecond still get times in the order they
        # were made: the sender delivers a conversation's messages in that order.
        at, last = now_ms(), conversation.last_message_at
        sent = Message(
            id=new_id(), conversation_id=conversation.id, channel_id=channel.id, content=message,
            sender_type=SenderType.APP, state=DeliveryState.PENDING,
            sent_at=last + 1 if at <= last < at + SAME_MOMENT_MS else at,
            send_options={"messaging_type": messaging_type, "tag": tag},
        )
        # Queued first: a message is never stored pending with nothing to deliver it. The job
        # says the conversation is still to count it until it has: if this stops half-way, the
        # sender counts it (exactly once: see note_messages).
        await self.store.outbox.add(sent.id, sent.sent_at,
                                    {**(sent.send_options or {}), UNNOTED: True})
        await self.store.messages.insert(sent)
        await self.store.conversations.note_messages(conversation.id, sent.id, sent.sent_at,
                                                     [sent.id])
        await self.store.outbox.forget(sent.id, UNNOTED)
        self.signals.sends()
        return sent

    async def resend(self, message_id: str) -> Message:
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
        self.signals.sends()
        return again

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

    async def deliver_due(self) -> int:
        """Send every message whose turn has come; returns how many were tried.

        Up to `send_concurrency` sends at once, to as many conversations: a job taken while its
        conversation has a send under way goes back where it was in the queue, so a process
        holds only the sends it has started (a killed one leaves nothing to be sent out of
        order) and each conversation's messages go out one at a time, oldest first."""
        tried = 0
        lease = lease_ms(self.settings)
        limit = self.settings.send_concurrency
        busy: set[str] = set()  # conversations with a send under way
        running: set[asyncio.Task] = set()
        conversations: dict[str, Conversation | None] = {}  # read once per pass
        crowded = False  # the last take met busy conversations: take one at a time
        while True:
            free = limit - len(running)
            jobs = [] if self.running.stopping or free <= 0 else \
                await self.store.outbox.claim_many(now_ms(), lease, 1 if crowded else free)
            started = 0
            if jobs:
                messages = await self.store.messages.many([job.id for job in jobs])
                channels = await self.store.channels.many(
                    list({m.channel_id for m in messages.values()}))
                behind: set[str] = set()  # conversations with a job of this take handed back
                for job in jobs:
                    message = messages.get(job.id)
                    key = message.conversation_id if message else job.id
                    if key in busy or key in behind:  # behind the send under way, where it was
                        behind.add(key)
                        await self.store.outbox.retry_at(job.id, job.created_at, job.attempts)
                        continue
                    busy.add(key)
                    started += 1
                    running.add(asyncio.create_task(
                        self._deliver_one(key, busy, job, message, channels, conversations)))
                crowded = started < len(jobs)
                tried += started
            if not running:
                return tried
            if not started or len(running) >= limit:
                finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                running -= finished
                failed = [exc for task in finished if (exc := task.exception())]
                if failed:
                    # A store failure ends the pass, as it always has: once the other sends
                    # under way have finished (one cut off would be sent again).
                    await asyncio.gather(*running, return_exceptions=True)
                    raise failed[0]

    async def _deliver_one(self, key: str, busy: set[str], job: Job, message: Message | None,
                           channels: dict[str, Channel],
                           conversations: dict[str, Conversation | None]) -> None:
        try:
            await self._deliver(job, message, channels, conversations)
        finally:
            busy.discard(key)

    async def _deliver(self, job: Job, message: Message | None, channels: dict[str, Channel],
                       conversations: dict[str, Conversation | None]) -> None:
        if message is None:
            await subject_missing(self.store.outbox, job)
            return
        if job.data.get(UNNOTED):  # stored by a send that stopped before counting it
            await self.store.conversations.note_messages(
                message.conversation_id, message.id, message.sent_at, [message.id])
            await self.store.outbox.forget(job.id, UNNOTED)
        if message.state is not DeliveryState.PENDING:
            await self.store.outbox.done(job.id)
            return
        if await self.store.messages.pending_before(message):
            # An older message of the conversation is still to go (waiting for a retry, or
            # held by a process that stopped until its lease ends): this one waits behind it,
            # so that the person gets them in the order they were sent.
            await self.store.outbox.retry_at(job.id, now_ms() + BEHIND_MS, job.attempts)
            return
        attempts = job.attempts + 1
        channel = channels.get(message.channel_id)
        if message.conversation_id not in conversations:
            conversations[message.conversation_id] = await self.store.conversations.get(
                message.conversation_id)
        conversation = conversations[message.conversation_id]
        if channel is None or not channel.connected or conversation is None:
            error = {"message": "the conversation's channel is disconnected", "transient": False}
            await self.store.messages.mark_failed(message.id, error)
            await self.store.outbox.done(job.id)
            return
        payload = dict(message.content)
        payload.setdefault("metadata", ECHO_METADATA_PREFIX + message.id)
        media = is_media(message.content)
        await self.limiter.wait(channel.id, media)
        try:
            mid = await self.graph.send_message(
                channel.page_token, conversation.contact.id, payload,
                messaging_type=str(job.data.get("messaging_type") or "RESPONSE"),
                tag=str(job.data["tag"]) if job.data.get("tag") else None,
            )
        except UpstreamError as exc:
            if is_rate_error(exc.graph_code, exc.http_status):
                self.limiter.slow_down(channel.id, media)
            if exc.transient and attempts < self.settings.send_max_attempts:
                delay = backoff(self.settings, attempts)
                log.info("message %s: attempt %d failed (%s), retrying in %.1fs",
                         message.id, attempts, exc.message, delay)
                await self.store.outbox.retry_at(job.id, now_ms() + int(delay * 1000), attempts)
                return
            log.warning("message %s failed after %d attempt(s): %s",
                        message.id, attempts, exc.message)
            # First: a reader of the failure sees the refused token too.
            await note_token_refusal(self.store, channel, exc)
            await self.store.messages.mark_failed(message.id, exc.to_dict())
        else:
            removed = await self.store.messages.mark_delivered(message.id, mid)
            if removed:
                await self.store.conversations.replace_last_message(
                    message.conversation_id, removed, message.id
                )
                await self.store.conversations.uncount(message.conversation_id, removed)
        await self.store.outbox.done(job.id)
