"""Messages: a conversation's pages, sends through the Send API (queued, then delivered by the
sender worker), and suggested replies."""

from __future__ import annotations

import logging
from typing import Any

from gateway.domain import (
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
from gateway.store.ports import Job
from gateway.usecases.base import (
    ECHO_METADATA_PREFIX,
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


class Messages(UseCase):
    """A conversation's messages, and sends: stored pending, delivered by the sender worker."""

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
        sent = Message(
            id=new_id(), conversation_id=conversation.id, channel_id=channel.id, content=message,
            sender_type=SenderType.APP, state=DeliveryState.PENDING, sent_at=now_ms(),
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
        """Send every message whose turn has come; returns how many were tried."""
        tried = 0
        lease = lease_ms(self.settings)
        while not self.running.stopping and (job := await self.store.outbox.claim(now_ms(), lease)):
            tried += 1
            await self._deliver(job)
        return tried

    async def _deliver(self, job: Job) -> None:
        message = await self.store.messages.get(job.id)
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
                messaging_type=str(job.data.get("messaging_type") or "RESPONSE"),
                tag=str(job.data["tag"]) if job.data.get("tag") else None,
            )
        except UpstreamError as exc:
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
