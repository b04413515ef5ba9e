"""Tags: unique names in Airy's colours, and the conversations carrying them."""

from __future__ import annotations

import pytest

from gateway.domain import ConversationFilter
from gateway.errors import Conflict, InvalidInput, NotFound
from tests.unit.conftest import Rig

pytestmark = pytest.mark.anyio


async def tagged(rig: Rig, tag_id: str) -> list[str]:
    page = await rig.uc.conversations.page(where=ConversationFilter(tag_ids=[tag_id]))
    return [v.conversation.id for v in page.items]


async def test_tags_are_created_listed_by_name_and_unique(rig: Rig):
    urgent = await rig.uc.tags.create(" urgent ", "tag-red")
    vip = await rig.uc.tags.create("vip")

    assert (urgent.name, urgent.color) == ("urgent", "tag-red")
    assert vip.color == "tag-blue"  # Airy's default
    assert [t.name for t in await rig.uc.tags.all()] == ["urgent", "vip"]
    with pytest.raises(Conflict, match="exists already"):
        await rig.uc.tags.create("vip", "tag-green")
    assert len(await rig.uc.tags.all()) == 2


@pytest.mark.parametrize("name, color, message", [
    ("x", "red", "color must be one of tag-blue, tag-red, tag-green, tag-purple"),
    ("  ", None, "name must not be empty"),
])
async def test_bad_tags_are_refused(rig: Rig, name, color, message):
    with pytest.raises(InvalidInput, match=message):
        await rig.uc.tags.create(name, color)
    assert await rig.uc.tags.all() == []


async def test_a_tag_is_renamed_and_recoloured(rig: Rig):
    tag = await rig.uc.tags.create("vip")
    await rig.uc.tags.create("urgent")

    updated = await rig.uc.tags.update(tag.id, name="VIP", color="tag-purple")

    assert (updated.id, updated.name, updated.color) == (tag.id, "VIP", "tag-purple")
    assert (await rig.uc.tags.update(tag.id)).name == "VIP"  # nothing to change
    with pytest.raises(Conflict):
        await rig.uc.tags.update(tag.id, name="urgent")
    with pytest.raises(InvalidInput, match="color must be one of"):
        await rig.uc.tags.update(tag.id, color="blue")
    with pytest.raises(NotFound):
        await rig.uc.tags.update("no-such-tag", name="x")
    with pytest.raises(NotFound):
        await rig.uc.tags.update("no-such-tag")


async def test_tagging_and_untagging_a_conversation(rig: Rig):
    await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id
    tag = await rig.uc.tags.create("vip")

    await rig.uc.tags.tag_conversation(conversation_id, tag.id)
    await rig.uc.tags.tag_conversation(conversation_id, tag.id)  # twice: still once

    assert (await rig.uc.conversations.get(conversation_id)).conversation.tag_ids == [tag.id]
    assert await tagged(rig, tag.id) == [conversation_id]
    await rig.uc.tags.untag_conversation(conversation_id, tag.id)
    await rig.uc.tags.untag_conversation(conversation_id, tag.id)  # not carried: no change
    assert (await rig.uc.conversations.get(conversation_id)).conversation.tag_ids == []
    assert await tagged(rig, tag.id) == []
    for change in (rig.uc.tags.tag_conversation, rig.uc.tags.untag_conversation):
        with pytest.raises(NotFound, match="tag no-such-tag"):
            await change(conversation_id, "no-such-tag")
        with pytest.raises(NotFound, match="conversation no-such-conversation"):
            await change("no-such-conversation", tag.id)


async def test_deleting_a_tag_takes_it_off_every_conversation(rig: Rig):
    await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id
    tag = await rig.uc.tags.create("vip")
    kept = await rig.uc.tags.create("kept")
    await rig.uc.tags.tag_conversation(conversation_id, tag.id)
    await rig.uc.tags.tag_conversation(conversation_id, kept.id)

    await rig.uc.tags.delete(tag.id)

    assert [t.id for t in await rig.uc.tags.all()] == [kept.id]
    assert (await rig.uc.conversations.get(conversation_id)).conversation.tag_ids == [kept.id]
    assert await rig.uc.tags.by_ids([tag.id, kept.id]) == [None, kept]
    with pytest.raises(NotFound):
        await rig.uc.tags.delete(tag.id)
