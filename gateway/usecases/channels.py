"""Channels: connecting a Facebook page, listing, renaming and disconnecting channels."""

from __future__ import annotations

import logging

from gateway.domain import (
    Channel,
    FacebookPage,
    is_graph_id,
    now_ms,
)
from gateway.errors import (
    InvalidInput,
    NotFound,
    UpstreamRefused,
)
from gateway.usecases.base import (
    UseCase,
)
from gateway.validation import check_storable

log = logging.getLogger(__name__)


class Channels(UseCase):
    """Facebook pages connected through the Graph API (page tokens go nowhere but to Meta)."""

    async def connect_facebook(
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

    async def disconnect(self, channel_id: str) -> Channel:
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

    async def connected(self, source: str | None = None) -> list[Channel]:
        return await self.store.channels.list(source=source)

    async def get(self, channel_id: str) -> Channel:
        channel = await self.store.channels.get(channel_id)
        if channel is None or not channel.connected:
            raise NotFound(f"channel {channel_id} not found")
        return channel

    async def update(
        self, channel_id: str, name: str | None = None, image_url: str | None = None
    ) -> Channel:
        check_storable([name, image_url], "channel")
        changes = {k: v for k, v in (("name", name), ("image_url", image_url)) if v is not None}
        if "name" in changes and not changes["name"].strip():
            raise InvalidInput("name must not be empty")
        if not changes:
            return await self.get(channel_id)
        channel = await self.store.channels.update(channel_id, changes, now_ms())
        if channel is None:
            raise NotFound(f"channel {channel_id} not found")
        return channel

    async def explore_facebook(self, user_token: str) -> list[FacebookPage]:
        """The pages a Facebook user manages, each saying whether it is connected here."""
        check_storable(user_token, "auth_token")
        if not user_token.strip():
            raise InvalidInput("auth_token must not be empty")
        pages = await self.graph.list_pages(user_token.strip())
        connected = {c.source_channel_id for c in await self.store.channels.list("facebook")}
        return [FacebookPage(page_id=p["id"], name=p.get("name") or f"Facebook page {p['id']}",
                             image_url=p.get("image_url"), connected=p["id"] in connected)
                for p in pages]

    async def by_ids(self, ids: list[str]) -> list[Channel | None]:
        """For DataLoaders: one query for any number of ids, answers in the order asked."""
        found = await self.store.channels.many(ids)
        return [found.get(i) for i in ids]
