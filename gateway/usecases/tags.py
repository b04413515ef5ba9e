"""Tags: Airy's tags, and tagging conversations."""

from __future__ import annotations

import logging
from typing import Any, cast

from gateway.domain import (
    DEFAULT_TAG_COLOR,
    TAG_COLORS,
    Tag,
    TagColor,
)
from gateway.errors import (
    Conflict,
    InvalidInput,
    NotFound,
)
from gateway.usecases.base import (
    UseCase,
)
from gateway.validation import check_storable

log = logging.getLogger(__name__)


class Tags(UseCase):
    """Tags (unique names, Airy's colours) and the conversations carrying them."""

    async def create(self, name: str, color: str | None = None) -> Tag:
        name = _tag_name(name)
        tag = await self.store.tags.create(name, _tag_color(color or DEFAULT_TAG_COLOR))
        if tag is None:
            raise Conflict(f"a tag named {name!r} exists already")
        return tag

    async def all(self) -> list[Tag]:
        return await self.store.tags.list()

    async def update(self, tag_id: str, name: str | None = None,
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

    async def delete(self, tag_id: str) -> None:
        """Delete the tag and take it off every conversation."""
        if not await self.store.tags.delete(tag_id):
            raise NotFound(f"tag {tag_id} not found")
        await self.store.conversations.drop_tag(tag_id)

    async def by_ids(self, ids: list[str]) -> list[Tag | None]:
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


def _tag_name(name: str) -> str:
    check_storable(name, "name")
    if not name.strip():
        raise InvalidInput("name must not be empty")
    return name.strip()


def _tag_color(color: str) -> TagColor:
    if color not in TAG_COLORS:
        raise InvalidInput(f"color must be one of {', '.join(TAG_COLORS)}")
    return cast(TagColor, color)
