"""Sender actions: what the person sees the page do (typing on or off, their messages seen),
through the Send API's `sender_action`. Nothing is stored: they are not messages.

They are Send API calls, so they take the same per-page pace as sends (the sender's limiter, one
per process): a burst of them is spread out rather than answered 613 by Meta. A conversation read
here may tell the person it was seen (`MARK_SEEN_ON_READ`): in the background, so that reading
never waits for Meta nor fails because of it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal, get_args

from gateway.errors import GatewayError, InvalidInput, NotFound, UpstreamError
from gateway.ratelimit import PageLimiter, is_rate_error
from gateway.usecases.base import Deps, UseCase, check_can_send, note_token_refusal

log = logging.getLogger(__name__)

SenderActionName = Literal["typing_on", "typing_off", "mark_seen"]
SENDER_ACTIONS: tuple[str, ...] = get_args(SenderActionName)


class SenderActions(UseCase):
    """Sender actions, paced with the sends of each page."""

    def __init__(self, deps: Deps, limiter: PageLimiter) -> None:
        super().__init__(deps)
        self.limiter = limiter  # the sender's: sender actions count against the page's pace
        self._background: set[asyncio.Task] = set()

    async def send(self, conversation_id: str, action: str) -> None:
        """Show `action` to the conversation's person; answers once Meta took it."""
        if action not in SENDER_ACTIONS:
            raise InvalidInput(f"action must be one of {', '.join(SENDER_ACTIONS)}")
        conversation = await self.store.conversations.get(conversation_id)
        if conversation is None:
            raise NotFound(f"conversation {conversation_id} not found")
        channel = check_can_send(await self.store.channels.get(conversation.channel_id))
        await self.limiter.wait(channel.id, False)
        try:
            await self.graph.sender_action(channel.page_token, conversation.contact.id, action)
        except UpstreamError as exc:
            if is_rate_error(exc.graph_code, exc.http_status):
                self.limiter.slow_down(channel.id, False)
            await note_token_refusal(self.store, channel, exc)
            raise

    def seen_after_read(self, conversation_id: str) -> None:
        """The conversation was read here: tell the person (MARK_SEEN_ON_READ), in the
        background; a failure is logged, never the reader's."""
        if not self.settings.mark_seen_on_read or self.running.stopping:
            return
        task = asyncio.create_task(self._mark_seen(conversation_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _mark_seen(self, conversation_id: str) -> None:
        try:
            await self.send(conversation_id, "mark_seen")
        except GatewayError as exc:
            log.info("conversation %s read, but mark_seen was not sent: %s", conversation_id,
                     exc.message)
        except Exception as exc:  # noqa: BLE001  # the store away: the read is done regardless
            log.warning("conversation %s read, but mark_seen was not sent (%s)",
                        conversation_id, type(exc).__name__)
