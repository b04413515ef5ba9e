"""Metadata: users' data merged deeply into a message, conversation or channel, types kept."""

from __future__ import annotations

import pytest

from gateway.errors import InvalidInput, NotFound
from tests.unit.conftest import Rig

pytestmark = pytest.mark.anyio


async def test_data_is_merged_key_by_key_and_shown_on_the_conversation(rig: Rig):
    await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id
    upsert = rig.uc.metadata.upsert

    await upsert("conversation", conversation_id, {"crm": {"id": "c-1", "stage": "lead"}})
    merged = await upsert("conversation", conversation_id,
                          {"crm": {"stage": "customer"}, "notes": ["called"]})

    assert merged == {"crm": {"id": "c-1", "stage": "customer"}, "notes": ["called"]}
    got = await rig.uc.conversations.get(conversation_id)
    assert got.conversation.user_data == merged
    replaced = await upsert("conversation", conversation_id, {"crm": "gone", "notes": None})
    assert replaced == {"crm": "gone", "notes": None}


async def test_every_json_type_is_kept(rig: Rig):
    await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id
    data = {"vip": True, "muted": False, "score": 1.5, "visits": 3, "none": None,
            "list": [1, "two", False], "nested": {"flag": True, "zero": 0}}

    merged = await rig.uc.metadata.upsert("conversation", conversation_id, data)
    again = await rig.uc.metadata.upsert("conversation", conversation_id,
                                         {"nested": {"also": False}})

    assert merged == data
    assert [type(merged[k]) for k in ("vip", "muted", "score", "visits")] == \
        [bool, bool, float, int]
    assert again["nested"] == {"flag": True, "zero": 0, "also": False}
    assert type(again["nested"]["also"]) is bool and type(again["nested"]["zero"]) is int


async def test_messages_and_channels_carry_data_too(rig: Rig):
    channel = await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id
    message_id = (await rig.messages(conversation_id))[0].id

    await rig.uc.metadata.upsert("message", message_id, {"rating": 5})
    await rig.uc.metadata.upsert("channel", channel.id, {"team": "support"})

    message = (await rig.messages(conversation_id))[0]
    assert message.user_data == {"rating": 5}
    assert message.metadata()["user_data"] == {"rating": 5}
    assert (await rig.uc.channels.get(channel.id)).user_data == {"team": "support"}


@pytest.mark.parametrize("subject, owner, data, error, message", [
    ("contact", "x", {"a": 1}, InvalidInput, "subject must be one of"),
    ("conversation", "no-such-conversation", {"a": 1}, NotFound, "conversation no-such"),
    ("message", "no-such-message", {"a": 1}, NotFound, "message no-such"),
    ("conversation", "x", ["a"], InvalidInput, "data must be a JSON object"),
    ("conversation", "x", {"a.b": 1}, InvalidInput, "field name 'a.b'"),
    ("conversation", "x", {"$set": 1}, InvalidInput, "field name '\\$set'"),
])
async def test_bad_upserts_are_refused(rig: Rig, subject, owner, data, error, message):
    with pytest.raises(error, match=message):
        await rig.uc.metadata.upsert(subject, owner, data)
