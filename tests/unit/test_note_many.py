"""Several conversations noted at once (ingest's one round trip): each message counted once, the
newest message last, whatever was noted before or arrives out of order (on each store)."""

from __future__ import annotations

import pytest

from gateway.domain import Conversation
from tests.unit.conftest import Rig

pytestmark = pytest.mark.anyio


async def stored(rig: Rig, conversation_id: str) -> Conversation:
    conversation = await rig.store.conversations.get(conversation_id)
    assert conversation is not None
    return conversation


async def test_notes_of_several_conversations_count_once_and_keep_the_newest(rig: Rig):
    await rig.connect()
    first = (await rig.write("4242")).conversation
    second = (await rig.write("4343")).conversation
    at = max(first.last_message_at, second.last_message_at) + 10
    notes = [(first.id, "a-2", at, ["a-2", "a-3"], ["a-2", "a-3"]),
             (second.id, "b-2", at, ["b-2"], ["b-2"])]
    for _ in range(2):  # applied again: counted once
        await rig.store.conversations.note_many(notes)
    one, two = await stored(rig, first.id), await stored(rig, second.id)
    assert (one.message_count, one.unread_count, one.last_message_id) == (3, 3, "a-2")
    assert (two.message_count, two.unread_count, two.last_message_id) == (2, 2, "b-2")

    # An older message, with one counted before and one not: the new one counted, the last kept.
    await rig.store.conversations.note_many([(first.id, "a-1", at - 5, ["a-3", "a-4"], [])])
    one = await stored(rig, first.id)
    assert (one.message_count, one.unread_count, one.last_message_id) == (4, 3, "a-2")

    # More messages than a window of marks (see COUNTED_WINDOW): every one counted.
    many = [f"c-{i}" for i in range(120)]
    await rig.store.conversations.note_many([(second.id, "c-119", at + 1, many, many)])
    two = await stored(rig, second.id)
    assert (two.message_count, two.unread_count, two.last_message_id) == (122, 122, "c-119")
