"""Handover: who owns a person's thread (Meta's handover protocol), and passing, taking and
requesting control of it through the Graph API.

Meta tells an app of the owner in its own way: `pass_thread_control` reaches the app given
control, `take_thread_control` the app it was taken from, `request_thread_control` the owner
that is asked, and every event of a thread another app owns arrives on `entry.standby`. The
conversation keeps what was last heard (`ThreadOwner`); a send into a thread another app owns
is refused (Meta would refuse it) unless the caller forces it.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from gateway.domain import (
    PAGE_INBOX_APP_ID,
    Channel,
    Conversation,
    EventKind,
    InboundEvent,
    ThreadOwner,
    is_graph_id,
    iso,
    now_ms,
)
from gateway.errors import InvalidInput, NotFound, UpstreamError
from gateway.usecases.base import UseCase, check_can_send, note_token_refusal

log = logging.getLogger(__name__)

MAX_METADATA_CHARS = 1000  # the handover API's `metadata`, as the Send API's


def owner_after(current: ThreadOwner | None, event: InboundEvent,
                own_app_id: str) -> ThreadOwner | None:
    """The thread's owner once `event` is heard; None when it changes nothing (an event older
    than what is known, or a standby event when another app is known to own the thread)."""
    at = event.timestamp
    handover = event.handover or {}
    if current is not None and at < max(current.updated_at, current.requested_at or 0):
        return None
    if event.kind is EventKind.PASS_THREAD_CONTROL:
        new = handover.get("new_owner_app_id")
        # Meta passes control to the app it tells: without FACEBOOK_APP_ID, that is this one.
        if new is None or not own_app_id or new == own_app_id:
            return ThreadOwner(owner="app", updated_at=at, app_id=own_app_id or None)
        return ThreadOwner(owner=ThreadOwner.kind_of(new, own_app_id), updated_at=at, app_id=new)
    if event.kind is EventKind.TAKE_THREAD_CONTROL:
        # Told to the app control was taken from: the new owner is another one.
        new = handover.get("new_owner_app_id")
        kind = ThreadOwner.kind_of(new, own_app_id) if new else "other_app"
        return ThreadOwner(owner=kind, updated_at=at, app_id=new)
    if event.kind is EventKind.REQUEST_THREAD_CONTROL:
        base = current or ThreadOwner(owner=None, updated_at=at)
        return replace(base, requested_by=handover.get("requested_owner_app_id"),
                       requested_at=at)
    if event.standby and (current is None or current.owner in (None, "app")):
        # An echo on standby names the app that wrote: the owner.
        app_id = event.app_id if event.kind is EventKind.ECHO else None
        if app_id == own_app_id:
            app_id = None
        kind = ThreadOwner.kind_of(app_id, own_app_id) if app_id else "other_app"
        return ThreadOwner(owner=kind, updated_at=at, app_id=app_id)
    return None


class Handover(UseCase):
    """The thread owner as events tell it, and the calls that change it."""

    async def note_event(self, channel: Channel, event: InboundEvent) -> None:
        """A handover event, or any standby event: the conversation's owner as it tells."""
        if not event.contact_id:
            return
        conversation = await self.store.conversations.find(channel.id, event.contact_id)
        if conversation is None:  # no message from this person yet: nothing to keep it on
            log.info("a %s event for a person without a conversation on channel %s: kept in "
                     "the events log only", event.kind.value, channel.id)
            return
        owner = owner_after(conversation.thread_owner, event, self.settings.facebook_app_id)
        if owner is not None and owner != conversation.thread_owner:
            await self.store.conversations.set_thread_owner(conversation.id, owner)

    async def pass_control(self, conversation_id: str, target_app_id: str | None = None,
                           metadata: str | None = None) -> None:
        """Pass the thread to another app (Page Inbox unless named)."""
        target = target_app_id or PAGE_INBOX_APP_ID
        if not is_graph_id(target):
            raise InvalidInput("target_app_id must be an app id (1 to 32 digits)")
        conversation = await self._call("pass_thread_control", conversation_id, metadata, target)
        own = self.settings.facebook_app_id
        await self.store.conversations.set_thread_owner(conversation.id, ThreadOwner(
            owner=ThreadOwner.kind_of(target, own), updated_at=now_ms(), app_id=target))

    async def take_control(self, conversation_id: str, metadata: str | None = None) -> None:
        """Take the thread back (Meta allows it to the page's primary receiver)."""
        conversation = await self._call("take_thread_control", conversation_id, metadata)
        await self.store.conversations.set_thread_owner(conversation.id, ThreadOwner(
            owner="app", updated_at=now_ms(), app_id=self.settings.facebook_app_id or None))

    async def request_control(self, conversation_id: str, metadata: str | None = None) -> None:
        """Ask the owner (the primary receiver) to pass the thread to this app; the owner
        does not change until it does (a pass_thread_control event)."""
        await self._call("request_thread_control", conversation_id, metadata)

    async def _call(self, action: str, conversation_id: str, metadata: str | None,
                    target_app_id: str | None = None) -> Conversation:
        if metadata is not None and len(metadata) > MAX_METADATA_CHARS:
            raise InvalidInput(f"metadata must be at most {MAX_METADATA_CHARS} characters")
        conversation = await self.store.conversations.get(conversation_id)
        if conversation is None:
            raise NotFound(f"conversation {conversation_id} not found")
        channel = check_can_send(await self.store.channels.get(conversation.channel_id))
        try:
            await self.graph.thread_control(action, channel.page_token, conversation.contact.id,
                                            target_app_id=target_app_id, metadata=metadata)
        except UpstreamError as exc:
            await note_token_refusal(self.store, channel, exc)
            raise
        return conversation


def owned_elsewhere(owner: ThreadOwner) -> str:
    """Why a send into a thread another app owns is refused, and what to do about it."""
    who = "Page Inbox" if owner.owner == "page_inbox" else \
        f"app {owner.app_id}" if owner.app_id else "another app"
    return (f"the conversation's thread is owned by {who} since {iso(owner.updated_at)} "
            "(handover protocol): take it with conversations.take-thread-control "
            "(takeThreadControl), ask its owner with conversations.request-thread-control "
            "(requestThreadControl), or send with force: true")
