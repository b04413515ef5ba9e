"""Ingest: webhook events stored once and applied (messages, echoes, reactions, receipts)."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections import Counter

from gateway.domain import (
    HANDOVER_KINDS,
    Channel,
    DeliveryState,
    EventKind,
    InboundEvent,
    Message,
    Optin,
    Referral,
    SenderType,
    new_id,
    now_ms,
)
from gateway.store.ports import PARKED_EDITS_MAX, ParkedEdit
from gateway.usecases.applying import Applier, Busy, Room
from gateway.usecases.base import (
    ECHO_METADATA_PREFIX,
    UNCOUNTED,
    Deps,
    UseCase,
)
from gateway.usecases.handover import Handover

log = logging.getLogger(__name__)

# Edits, referrals and opt-ins: what the person did about a message or the conversation.
CONTEXT_KINDS = (EventKind.EDIT, EventKind.REFERRAL, EventKind.OPTIN)
# Kinds of unhandled events counted apart (Meta's are a few dozen); the rest as "other".
UNHANDLED_KINDS_MAX = 100
UNHANDLED_KIND = re.compile(r"[a-z][a-z0-9_]{0,63}")
ENVELOPE_KEYS = ("sender", "recipient", "timestamp")


def unhandled_kind(raw: object) -> str:
    """What an event the gateway does not understand is: the first key of the event beside the
    envelope's (Meta names each kind so: `account_linking`, `game_play`, …)."""
    keys = [key for key in raw if key not in ENVELOPE_KEYS] if isinstance(raw, dict) else []
    if not keys:
        return "empty"
    return keys[0] if UNHANDLED_KIND.fullmatch(keys[0]) else "other"

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
        self.handover = Handover(deps)
        self._conversation_ids: dict[tuple[str, str], str] = {}  # oldest first
        # Events no part of the gateway understands, by kind, since this process started.
        self.unhandled: Counter[str] = Counter()
        self.applier = Applier(self._apply_all, Room(self.settings.webhook_apply_queue_events))

    async def ingest(self, events: list[InboundEvent], wait: float | None = None) -> None:
        """Store the events, then apply each once, in the background (see applying.py).
        Returns once all are applied, or `wait` seconds after it was called (None: no limit),
        or right after storing them if that took longer; raises what applying them raised
        within that time. Nothing is stored (Busy) while the events in hand leave no room for
        these within the room's wait (ROOM_WAIT_SECONDS)."""
        loop = asyncio.get_running_loop()
        until = None if wait is None else loop.time() + wait
        count = sum(1 for e in events if not e.invalid)
        if not await self.applier.room.take(count):
            raise Busy(f"{self.applier.room.held} webhook events are being applied; "
                       "try again in a moment")
        try:
            pending = await self.store.events.record(events, now_ms())
        except BaseException:
            self.applier.room.give(count)
            raise
        batches = self.applier.submit(pending, count)  # at once: the order they were stored in
        invalid = Counter((e.page_id, e.invalid) for e in events if e.invalid)
        for (page_id, reason), n in invalid.items():  # the reason never quotes the event
            log.warning("kept %d invalid event(s) %s aside, not applied: %s", n,
                        f"of page {page_id}" if page_id else "of an entry without a page id",
                        reason)
        left = None if until is None else until - loop.time()
        if not batches or (left is not None and left <= 0):
            return
        done, _ = await asyncio.wait(batches, timeout=left)
        for batch in done:
            if not batch.cancelled() and batch.exception():
                raise batch.exception()  # type: ignore[misc]

    async def apply_unprocessed(self, older_than_ms: int = 60_000) -> int:
        """Apply events that were stored but never applied (a process died in between, or
        stopped before it was done), in order with the batches in hand; one that is in hand
        already is not applied twice."""
        events = await self.store.events.unprocessed(now_ms() - older_than_ms)
        batches = self.applier.submit(events, 0)
        if batches:
            await asyncio.wait(batches)
            for batch in batches:
                if not batch.cancelled() and batch.exception():
                    raise batch.exception()  # type: ignore[misc]
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
                if not event.standby:  # a standby message then tells the thread's owner
                    continue
            await self._apply_messages(run)
            run = []
            await self._apply(channel, event)
        await self._apply_messages(run)
        await self.store.events.mark_processed([e.key for e in events])

    async def _apply(self, channel: Channel, event: InboundEvent) -> None:
        kind = event.kind
        if kind in HANDOVER_KINDS or event.standby:
            await self.handover.note_event(channel, event)
        if kind in CONTEXT_KINDS:
            await self._apply_context(channel, event)
            return
        if kind is EventKind.UNKNOWN:
            self._count_unhandled(unhandled_kind(event.raw))
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

    async def _apply_context(self, channel: Channel, event: InboundEvent) -> None:
        """Edits, referrals and opt-ins (docs/webhook-events.md)."""
        if event.kind is EventKind.EDIT:
            if event.source_message_id and event.edit:
                await self._edit(ParkedEdit(mid=event.source_message_id,
                                            text=event.edit.get("text"),
                                            num_edit=event.edit["num_edit"], at=event.timestamp))
            return
        if event.contact_id is None:  # a plugin's opt-in names a user_ref: no conversation
            self._count_unhandled(f"{event.kind.value}.user_ref")
            return
        conversation_id = await self._conversation_with(channel, event.contact_id,
                                                        event.timestamp)
        if event.kind is EventKind.REFERRAL and event.referral:
            await self._refer(conversation_id, event)
        elif event.kind is EventKind.OPTIN and event.optin:
            fields = event.optin
            optin = Optin(type=fields.get("type") or "plugin", payload=fields.get("payload"),
                          updated_at=event.timestamp, title=fields.get("title"),
                          frequency=fields.get("frequency"), timezone=fields.get("timezone"),
                          expires_at=fields.get("expires_at"), status=fields.get("status"),
                          has_token=bool(event.secret))
            await self.store.conversations.add_optin(conversation_id, optin, event.secret)

    async def _refer(self, conversation_id: str, event: InboundEvent) -> None:
        referral = event.referral or {}
        await self.store.conversations.refer(conversation_id, Referral(
            source=referral.get("source"), type=referral.get("type"), ref=referral.get("ref"),
            ad_id=referral.get("ad_id"), updated_at=event.timestamp))

    async def _edit(self, edit: ParkedEdit) -> None:
        """Apply the edit, or keep it for its message (Meta may send it first)."""
        messages = self.store.messages
        if await messages.edit(edit.mid, edit.text, edit.num_edit, edit.at) is not None:
            return
        if not await self.store.parked_edits.park(edit, now_ms()):
            log.warning("dropped an edit of a message not stored: %d edits wait already",
                        PARKED_EDITS_MAX)
        # The message may have been stored since it was looked for; then it is edited here.
        elif await messages.edit(edit.mid, edit.text, edit.num_edit, edit.at) is not None:
            await self.store.parked_edits.take([edit.mid])

    async def _apply_parked(self, mids: list[str]) -> None:
        """Edits that came before their messages, now stored (one lookup for all)."""
        for edit in await self.store.parked_edits.take(mids) if mids else []:
            await self.store.messages.edit(edit.mid, edit.text, edit.num_edit, edit.at)

    async def _conversation_with(self, channel: Channel, contact: str, at: int) -> str:
        """The id of the conversation with this person, made if there is none (an opt-in or a
        referral may come before any message)."""
        key = (channel.id, contact)
        if key in self._conversation_ids:
            return self._conversation_ids[key]
        found = await self.store.conversations.find(channel.id, contact)
        return found.id if found is not None else \
            await self._new_conversation(channel.id, contact, at)

    async def _new_conversation(self, channel_id: str, contact: str, at: int) -> str:
        """A conversation with a person met for the first time, counted once. Its profile job,
        queued first, says it is still to be counted until it is: if this stops half-way, the
        profile worker counts it (once: see CounterRepo)."""
        conversation_id = new_id()
        await self.store.profile_jobs.add(conversation_id, now_ms(), {UNCOUNTED: True})
        conversation, created = await self.store.conversations.create(
            conversation_id, channel_id, contact, at)
        if created:
            await self.store.conversations.count_new(conversation)
            await self.store.profile_jobs.forget(conversation_id, UNCOUNTED)
            self.signals.profiles()
        else:  # another process stored it first: its job is that one's
            await self.store.profile_jobs.done(conversation_id)
        return conversation.id

    def _count_unhandled(self, kind: str) -> None:
        if kind in self.unhandled or len(self.unhandled) < UNHANDLED_KINDS_MAX:
            self.unhandled[kind] += 1
        else:
            self.unhandled["other"] += 1

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
                conversations[key] = await self._new_conversation(channel.id, contact,
                                                                  event.timestamp)
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
        for channel, contact, event in people:  # an ad's or a link's referral, with a message
            if event.referral:
                await self._refer(conversations[channel.id, contact], event)
        await self._apply_parked([m.source_message_id for m in messages if m.id in ours
                                  and m.from_contact and m.source_message_id])

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
