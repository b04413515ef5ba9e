"""Conversations: lists (with their filters), one conversation, read state, contact and state."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

from gateway.domain import (
    Conversation,
    ConversationFilter,
    ConversationView,
    Page,
    now_ms,
)
from gateway.errors import (
    InvalidInput,
    NotFound,
)
from gateway.usecases.base import (
    Deps,
    UseCase,
    check_page_size,
)
from gateway.usecases.contacts import name_contact
from gateway.validation import check_field_names, check_storable

log = logging.getLogger(__name__)


async def _nothing() -> dict:
    return {}


class Conversations(UseCase):
    """Conversations and what a list shows beside each (channel, last message)."""

    def __init__(self, deps: Deps, on_read: Callable[[str], None] | None = None) -> None:
        super().__init__(deps)
        self._on_read = on_read  # told of each conversation read (sender actions: mark_seen)

    async def page(
        self, channel_id: str | None = None, cursor: str | None = None, page_size: int = 20,
        where: ConversationFilter | None = None, backward: bool = False,
    ) -> Page:
        """Newest activity first, each with its channel and last message; `where` narrows.
        `backward`: the page before `cursor` (the last page without one)."""
        check_page_size(page_size)
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
        page = await (self.store.conversations.page_before if backward
                      else self.store.conversations.page)(where, cursor, page_size)
        views = await self._views(page.items)
        by_id = dict(zip([c.id for c in page.items], page.cursors, strict=True))
        return replace(page, items=views, cursors=[by_id[v.conversation.id] for v in views])

    async def get(self, conversation_id: str) -> ConversationView:
        conversation = await self.store.conversations.get(conversation_id)
        views = await self._views([conversation]) if conversation else []
        if not views:  # none, or it (or its channel) cannot be read
            raise NotFound(f"conversation {conversation_id} not found")
        return views[0]

    async def by_ids(self, ids: list[str]) -> list[Conversation | None]:
        """For DataLoaders: one query for any number of ids, answers in the order asked."""
        found = await self.store.conversations.many(ids)
        return [found.get(i) for i in ids]

    async def mark_read(self, conversation_id: str) -> None:
        if not await self.store.conversations.mark_read(conversation_id):
            raise NotFound(f"conversation {conversation_id} not found")
        if self._on_read is not None:
            self._on_read(conversation_id)

    async def update_contact(self, conversation_id: str, display_name: str) -> None:
        """Name the contact by hand; `refetch_contact` takes Meta's name again."""
        check_storable(display_name, "display_name")
        if not display_name.strip():
            raise InvalidInput("display_name must not be empty")
        if not await self.store.conversations.set_fields(
            conversation_id, {"contact.display_name": display_name.strip()}
        ):
            raise NotFound(f"conversation {conversation_id} not found")
        await name_contact(self.store, conversation_id, display_name.strip())

    async def refetch_contact(self, conversation_id: str) -> None:
        """Fetch the contact's profile again, in the background."""
        if await self.store.conversations.get(conversation_id) is None:
            raise NotFound(f"conversation {conversation_id} not found")
        await self.store.profile_jobs.add(conversation_id, now_ms())
        self.signals.profiles()

    async def set_state(self, conversation_id: str, state: str | None) -> None:
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
        last_ids = [c.last_message_id for c in conversations if c.last_message_id]
        channels, messages = await asyncio.gather(
            self.store.channels.many([c.channel_id for c in conversations]),
            self.store.messages.many(last_ids) if last_ids else _nothing())
        return [
            ConversationView(c, channels[c.channel_id], messages.get(c.last_message_id or ""))
            for c in conversations
            if c.channel_id in channels
        ]
