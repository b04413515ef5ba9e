"""Ingest: webhook events stored once and applied (messages, echoes, reactions, receipts)."""

from __future__ import annotations

import logging
import uuid
from collections import Counter

from gateway.domain import (
    Channel,
    DeliveryState,
    EventKind,
    InboundEvent,
    Message,
    SenderType,
    new_id,
    now_ms,
)
from gateway.usecases.base import (
    ECHO_METADATA_PREFIX,
    UNCOUNTED,
    Deps,
    UseCase,
)

log = logging.getLogger(__name__)

MESSAGE_KINDS = (EventKind.MESSAGE, EventKind.POSTBACK, EventKind.ECHO)
# A message an event brings has an id derived from the event's key: applying the event again
# (Meta's retry, the unprocessed-events worker) finds the message it stored before, even one
# without a mid.
INBOUND_MESSAGE_IDS = uuid.UUID("5b0f3c9e-2d2a-4c55-9a53-0e6f7d1c2b41")
# A conversation is never deleted and never changes channel or person, so the id found for a
# (channel, person) stays right: the ids of the people who wrote last are kept, and their next
# messages need no lookup.
KNOWN_CONVERSATIONS = 50_000


class Ingest(UseCase):
    """Meta's events: recorded before anything else, applied in order, each once."""

    def __init__(self, deps: Deps) -> None:
        super().__init__(deps)
        self._conversation_ids: dict[tuple[str, str], str] = {}  # oldest first

    async def ingest(self, events: list[InboundEvent]) -> None:
        """Store the events, then apply each once. Returns when all are stored and applied."""
        pending = await self.store.events.record(events, now_ms())
        invalid = Counter((e.page_id, e.invalid) for e in events if e.invalid)
        for (page_id, reason), count in invalid.items():  # the reason never quotes the event
            log.warning("kept %d invalid event(s) %s aside, not applied: %s", count,
                        f"of page {page_id}" if page_id else "of an entry without a page id",
                        reason)
        await self._apply_all(pending)

    async def apply_unprocessed(self, older_than_ms: int = 60_000) -> int:
        """Apply events that were stored but never applied (a process died in between)."""
        events = await self.store.events.unprocessed(now_ms() - older_than_ms)
        await self._apply_all(events)
        return len(events)

    async def _apply_all(self, events: list[InboundEvent]) -> None:
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
                continue
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

    async def _apply_messages(self, run: list[tuple[Channel, InboundEvent]]) -> None:
        """Messages, postbacks and echoes: a conversation lookup only for people not met before,
        one insert for all, one batch of updates (one per conversation); a message stored
        before (same mid, or same event) is not stored again. One the same event stored (a try
        that failed, or ran at the same time) is counted unread unless that try counted it; one
        another event stored (the same mid sent again, changed) is that event's to count."""
        people = [(channel, event.contact_id, event) for channel, event in run if event.contact_id]
        if not people:
            return
        remembered = self._conversation_ids
        conversations: dict[tuple[str, str], str] = {}
        contacts: dict[str, list[str]] = {}
        for channel, contact, _ in people:
            if (channel.id, contact) in remembered:
                conversations[channel.id, contact] = remembered[channel.id, contact]
            else:
                contacts.setdefault(channel.id, []).append(contact)
        for channel_id, ids in contacts.items():
            found = await self.store.conversations.find_many(channel_id, ids)
            conversations |= {(channel_id, contact): c.id for contact, c in found.items()}
        messages: list[Message] = []
        for channel, contact, event in people:
            key = (channel.id, contact)
            if key not in conversations:
                # Its profile job, queued first, says it is still to be counted until it is: if
                # this stops half-way, the profile worker counts it (once: see CounterRepo).
                conversation_id = new_id()
                await self.store.profile_jobs.add(conversation_id, now_ms(), {UNCOUNTED: True})
                conversation, created = await self.store.conversations.create(
                    conversation_id, channel.id, contact, event.timestamp)
                conversations[key] = conversation.id
                if created:
                    await self.store.conversations.count_new(conversation)
                    await self.store.profile_jobs.forget(conversation_id, UNCOUNTED)
                    self.signals.profiles()
                else:  # another process stored it first: its job is that one's
                    await self.store.profile_jobs.done(conversation_id)
            message = await self._message_of(channel, conversations[key], event)
            remembered.pop(key, None)
            remembered[key] = conversations[key]  # the newest last
            if len(remembered) > KNOWN_CONVERSATIONS:
                del remembered[next(iter(remembered))]
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
        self, channel: Channel, conversation_id: str, event: InboundEvent
    ) -> Message | None:
        """The message an event brings; None for an echo of a message this gateway sent."""
        if event.kind is EventKind.ECHO:
            app_id = self.settings.facebook_app_id
            ours = event.app_id is not None and event.app_id == app_id
            metadata = event.echo_metadata or ""
            if (ours or not app_id) and metadata.startswith(ECHO_METADATA_PREFIX):
                our_id = metadata[len(ECHO_METADATA_PREFIX):]
                if await self.store.messages.reconcile_echo(
                    our_id, event.source_message_id or "", conversation_id
                ):
                    return None
            sender = SenderType.APP if ours else SenderType.PAGE
        else:
            sender = SenderType.CONTACT
        return Message(
            id=str(uuid.uuid5(INBOUND_MESSAGE_IDS, event.key)), conversation_id=conversation_id,
            channel_id=channel.id, content=event.raw, sender_type=sender,
            state=DeliveryState.DELIVERED, sent_at=event.timestamp,
            source_message_id=event.source_message_id, kind=event.kind.value,
        )

    async def _note_messages(self, messages: list[Message], ours: set[str]) -> None:
        """One update per conversation, all sent at once: its newest message, and the messages
        among `ours` counted (the person's unread too), exactly once however often this runs for
        them (see note_messages)."""
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
        await self.store.conversations.note_many([
            (conversation_id, message.id, message.sent_at, new.get(conversation_id, []),
             unread.get(conversation_id, [])) for conversation_id, message in newest.items()])
