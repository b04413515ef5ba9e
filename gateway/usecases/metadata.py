"""Metadata: users' data on messages, conversations and channels (Airy's metadata.upsert)."""

from __future__ import annotations

import logging
from typing import Any

from gateway.errors import (
    InvalidInput,
    NotFound,
)
from gateway.store.ports import USER_DATA_SUBJECTS
from gateway.usecases.base import (
    UseCase,
)
from gateway.validation import check_field_names, check_storable

log = logging.getLogger(__name__)


class Metadata(UseCase):
    """Users' data, merged deeply into a message, conversation or channel."""

    async def upsert(
        self, subject: str, owner_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge `data` into the `user_data` of a message, conversation or channel; return it."""
        if subject not in USER_DATA_SUBJECTS:
            raise InvalidInput(f"subject must be one of {', '.join(USER_DATA_SUBJECTS)}")
        if not isinstance(data, dict):
            raise InvalidInput("data must be a JSON object")
        check_storable(data, "data")
        check_field_names(data, "data")
        merged = await self.store.merge_user_data(subject, owner_id, data)
        if merged is None:
            raise NotFound(f"{subject} {owner_id} not found")
        return merged
