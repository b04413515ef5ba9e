"""Messages: a conversation's pages, sends through the Send API (queued, then delivered by the
sender worker), and suggested replies."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import replace
from typing import Any, BinaryIO

from gateway.domain import (
    Channel,
    Conversation,
    DeliveryState,
    Message,
    Page,
    SenderType,
    is_graph_id,
    new_id,
    now_ms,
)
from gateway.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    TooLarge,
    UpstreamError,
    UpstreamRefused,
)
from gateway.ratelimit import PageLimiter, is_media, is_rate_error
from gateway.store.ports import Attachment, Job
from gateway.usecases.base import (
    ECHO_METADATA_PREFIX,
    INVALID_TOKEN,
    Deps,
    UseCase,
    backoff,
    check_can_send,
    check_page_size,
    lease_ms,
    note_token_refusal,
    subject_missing,
    token_refused_message,
)
from gateway.usecases.handover import owned_elsewhere
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
        # Sends under way in this process, by the sender's passes and handed over at once by
        # `send`: their conversations (one send at a time each) and how many.
        self._busy: set[str] = set()
        self._in_flight = 0
        self._handed: set[asyncio.Task] = set()
        self._storing: Counter[str] = Counter()  # sends being stored, by conversation
        # Channels whose token Meta refused to a send of this process, and when: a channel read
        # before then (by a pass or a send under way) is taken as refused.
        self._refused: dict[str, int] = {}

    async def page(
        self, conversation_id: str, cursor: str | None = None, page_size: int = 20,
        backward: bool = False,
    ) -> Page:
        """Newest first; `backward`: the page before `cursor` (the oldest without one)."""
        check_page_size(page_size)
        conversation = await self.store.conversations.get(conversation_id)
        if conversation is None:
            raise NotFound(f"conversation {conversation_id} not found")
        return await (self.store.messages.page_before if backward
                      else self.store.messages.page)(conversation_id, cursor, page_size,
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
        force: bool = False,
    ) -> Message:
        """Store the message as pending; a worker delivers it through the Send API. A thread
        another app owns takes it only with `force` (Meta decides then)."""
        if not isinstance(message, dict) or not message:
            raise InvalidInput("message must be a non-empty object, e.g. {\"text\": \"Hello\"}")
        check_storable(message, "message")
        message = await self._with_upload_type(message)
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
        channel = check_can_send(await self.store.channels.get(conversation.channel_id))
        owner = conversation.thread_owner
        if owner is not None and owner.someone_else and not force:
            raise Conflict(owned_elsewhere(owner))
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
        # says the conversation is still to count it until it has, and is not due before a
        # lease would end: the sender leaves it alone while this counts it, and if this stops
        # half-way, the sender counts it then (exactly once: see note_messages).
        self._storing[conversation.id] += 1
        try:
            await self.store.outbox.add(sent.id, sent.sent_at,
                                        {**(sent.send_options or {}), UNNOTED: True},
                                        due=at + lease_ms(self.settings), group=conversation.id)
            await self.store.messages.insert(sent)
            await self.store.conversations.note_messages(conversation.id, sent.id, sent.sent_at,
                                                         [sent.id])
            if not self._hand_over(sent, channel, conversation):
                await self.store.outbox.release(sent.id, sent.sent_at, UNNOTED)
                self._wake_at(sent.sent_at)
        finally:
            self._storing[conversation.id] -= 1
            if not self._storing[conversation.id]:
                del self._storing[conversation.id]
        return sent

    async def upload(self, filename: str, content_type: str, kind: str, size: int,
                     source: BinaryIO) -> Attachment:
        """Keep an uploaded file (its bytes in GridFS) for sends to name by its id; nothing is
        stored past ATTACHMENT_MAX_BYTES. It reaches Meta at its first send to each page."""
        limit = self.settings.attachment_max_bytes
        if size > limit:
            raise TooLarge(f"the file is {size} bytes; an attachment may be at most {limit} "
                           "bytes (ATTACHMENT_MAX_BYTES)")
        if size <= 0:
            raise InvalidInput("the file is empty")
        attachment = Attachment(id=new_id(), type=kind, filename=filename,
                                content_type=content_type, size=size, created_at=now_ms())
        await self.store.attachments.save(attachment, source)
        return attachment

    async def _with_upload_type(self, message: dict[str, Any]) -> dict[str, Any]:
        """A message naming an upload names one that is stored, as a type it may be sent as;
        with no type (GraphQL's `attachmentId`), as the type it was uploaded as."""
        upload_id = uploaded_id(message)
        if upload_id is None:
            return message
        attachment = await self.store.attachments.get(upload_id)
        if attachment is None:
            raise InvalidInput("message.attachment.payload.attachment_id: no attachment "
                               f"{upload_id[:100]!r} was uploaded (POST /media.upload)")
        kind = message["attachment"].get("type")
        if kind is None:
            return {**message, "attachment": {**message["attachment"], "type": attachment.type}}
        if kind not in (attachment.type, "file"):
            raise InvalidInput(f"message.attachment.type: attachment {upload_id} was uploaded as "
                               f"{attachment.type!r}; send it as that type (or as 'file')")
        return message

    async def _meta_attachment(self, payload: dict[str, Any], channel: Channel
                               ) -> dict[str, Any]:
        """The message as Meta takes it: an upload it names goes to Meta once per page
        (Attachment Upload API), and the send names Meta's attachment_id from then on."""
        upload_id = uploaded_id(payload)
        if upload_id is None:
            return payload
        page = channel.source_channel_id
        meta_id = await self.store.attachments.meta_id(upload_id, page)
        if meta_id is None:
            attachment = await self.store.attachments.get(upload_id)
            data = await self.store.attachments.read(upload_id)
            if attachment is None or data is None:
                raise UpstreamRefused(f"the uploaded attachment {upload_id} is not stored")
            meta_id = await self.graph.upload_attachment(
                channel.page_token, attachment.type, attachment.filename,
                attachment.content_type, data)
            await self.store.attachments.keep_meta_id(upload_id, page, meta_id)
        sent = payload["attachment"]
        return {**payload, "attachment": {**sent, "payload": {**sent["payload"],
                                                              "attachment_id": meta_id}}}

    def _hand_over(self, sent: Message, channel: Channel, conversation: Conversation) -> bool:
        """Deliver a send this process has just queued itself, at once, when a lane is free and
        its conversation has no send under way here: its job stays taken (not due before a
        lease ends) and the claim, and reading back what is in hand, are saved. If the process
        dies meanwhile, the job falls due and is sent (and counted, once) by any process."""
        # Another send to the conversation being stored here at the same time may be older:
        # both go through the queue, which takes the older first.
        if (not self.settings.send_at_once or self.running.stopping
                or self._storing[conversation.id] > 1 or conversation.id in self._busy
                or self._in_flight >= self.settings.send_concurrency):
            return False
        job = Job(id=sent.id, attempts=0, created_at=sent.sent_at,
                  data=dict(sent.send_options or {}))
        self._busy.add(conversation.id)
        self._in_flight += 1
        task = asyncio.create_task(self._deliver_one(
            conversation.id, job, sent, {channel.id: channel}, {conversation.id: conversation},
            at_once=True))
        self._handed.add(task)
        task.add_done_callback(self._handed_done)
        return True

    def _wake_at(self, at: int) -> None:
        """Wake the sender when a send falls due: at once, or at `at` when that is a little
        ahead (sends made within one millisecond are given the next ones, to keep their order)."""
        delay = (at - now_ms()) / 1000
        if delay <= 0:
            self.signals.sends()
        else:
            asyncio.get_running_loop().call_later(delay, self.signals.sends)

    def _handed_done(self, task: asyncio.Task) -> None:
        self._handed.discard(task)
        if not task.cancelled() and (exc := task.exception()):
            # The job stays queued (taken until its lease ends): the sender tries it again.
            log.warning("a send handed over at once failed on the store (%s); the sender "
                        "worker takes it up again", type(exc).__name__)

    async def drain(self) -> None:
        """Wait for the sends handed over at once (at shutdown)."""
        if self._handed:
            await asyncio.gather(*self._handed, return_exceptions=True)

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
        check_can_send(await self.store.channels.get(message.channel_id))
        await self.store.outbox.add(message.id, now_ms(), message.send_options,
                                    group=message.conversation_id)
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
        busy = self._busy  # conversations with a send under way (sends handed over too)
        running: set[asyncio.Task] = set()
        conversations: dict[str, Conversation | None] = {}  # read once per pass
        crowded = False  # the last take met busy conversations: take one at a time
        while True:
            free = limit - self._in_flight
            jobs = [] if self.running.stopping or free <= 0 else \
                await self.store.outbox.claim_many(now_ms(), lease, 1 if crowded else free, busy)
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
                    self._in_flight += 1
                    started += 1
                    running.add(asyncio.create_task(
                        self._deliver_one(key, job, message, channels, conversations)))
                crowded = started < len(jobs)
                tried += started
            if not running and not self._handed:
                return tried
            if not started or self._in_flight >= limit:
                # Sends handed over by `send` hold lanes too: the pass goes on when one ends.
                finished, _ = await asyncio.wait(running | self._handed,
                                                 return_when=asyncio.FIRST_COMPLETED)
                finished &= running
                running -= finished
                failed = [exc for task in finished if (exc := task.exception())]
                if failed:
                    # A store failure ends the pass, as it always has: once the other sends
                    # under way have finished (one cut off would be sent again).
                    await asyncio.gather(*running, return_exceptions=True)
                    raise failed[0]

    async def _deliver_one(self, key: str, job: Job, message: Message | None,
                           channels: dict[str, Channel],
                           conversations: dict[str, Conversation | None],
                           at_once: bool = False) -> None:
        try:
            await self._deliver(job, message, channels, conversations, at_once)
        finally:
            self._busy.discard(key)
            self._in_flight -= 1

    async def _deliver(self, job: Job, message: Message | None, channels: dict[str, Channel],
                       conversations: dict[str, Conversation | None],
                       at_once: bool = False) -> None:
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
            # so that the person gets them in the order they were sent. A send started at once
            # goes back to its place in the queue instead: the sender takes it after the older
            # one (or, taking it first, finds it behind and waits as above).
            if at_once:
                await self.store.outbox.retry_at(job.id, job.created_at, job.attempts)
                self._wake_at(job.created_at)
            else:
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
        refused_at = self._refused.get(channel.id)
        if refused_at is not None and channel.updated_at <= refused_at:
            channel = replace(channel, token_valid=False)  # read before this process saw it
        if not channel.token_valid:  # Meta refused the token: not tried again until reconnected
            error = {"message": token_refused_message(channel), "transient": False}
            await self.store.messages.mark_failed(message.id, error)
            await self.store.outbox.done(job.id)
            return
        payload = dict(message.content)
        payload.setdefault("metadata", ECHO_METADATA_PREFIX + message.id)
        media = is_media(message.content)
        await self.limiter.wait(channel.id, media)
        try:
            payload = await self._meta_attachment(payload, channel)
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
            if exc.graph_code == INVALID_TOKEN:  # sends under way here see it before the store
                self._refused[channel.id] = now_ms()
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


def uploaded_id(message: dict[str, Any]) -> str | None:
    """The upload a message names, as `{"attachment": {"type": "image", "payload":
    {"attachment_id": "<id media.upload answered>"}}}`. Meta's own attachment ids (digits) are
    not ours: they go to Meta as they are."""
    attachment = message.get("attachment")
    payload = attachment.get("payload") if isinstance(attachment, dict) else None
    value = payload.get("attachment_id") if isinstance(payload, dict) else None
    return value if isinstance(value, str) and value and not is_graph_id(value) else None
