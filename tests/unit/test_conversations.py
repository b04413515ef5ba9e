"""Conversations: lists with each filter and their cursors, totals, read state, state, contact."""

from __future__ import annotations

import pytest

from gateway.domain import ConversationFilter, FetchState
from gateway.errors import InvalidInput, NotFound
from tests.unit.conftest import Rig

pytestmark = pytest.mark.anyio


async def three(rig: Rig) -> list[str]:
    """Three people write, Ada first; their conversations' ids, newest activity first."""
    await rig.connect()
    ids = [(await rig.write(psid)).conversation.id for psid in ("4201", "4202", "4203")]
    return ids[::-1]


async def listed(rig: Rig, **where) -> list[str]:
    page = await rig.uc.conversations.page(where=ConversationFilter(**where))
    assert page.total == len(page.items)
    return [v.conversation.id for v in page.items]


async def test_a_list_is_newest_activity_first_with_channel_and_last_message(rig: Rig):
    ids = await three(rig)
    await rig.write("4201", "again")  # Ada's conversation moves to the top

    page = await rig.uc.conversations.page()

    assert [v.conversation.id for v in page.items] == [ids[2], ids[0], ids[1]]
    top = page.items[0]
    assert top.channel.source_channel_id == "1234567890"
    assert top.last_message.content["message"]["text"] == "again"
    assert (top.conversation.unread_count, top.conversation.message_count) == (2, 2)
    assert top.conversation.display_name == "Facebook " + ids[2][-5:]  # until the profile
    assert (page.total, page.has_more, page.next_cursor) == (3, False, None)


async def test_cursors_walk_the_list_page_by_page(rig: Rig):
    ids = await three(rig)

    first = await rig.uc.conversations.page(page_size=2)
    second = await rig.uc.conversations.page(cursor=first.next_cursor, page_size=2)

    assert [v.conversation.id for v in first.items] == ids[:2]
    assert first.has_more and first.total == 3 and first.previous_cursor is None
    assert [v.conversation.id for v in second.items] == ids[2:]
    assert not second.has_more and second.total == 3 and second.next_cursor is None
    assert second.cursors == [second.last_cursor]


async def test_each_filter_narrows_the_list_and_its_total(rig: Rig):
    ids = await three(rig)
    other = await rig.connect(page_id="999", token="other-token", name="Other")
    elsewhere = (await rig.write("4209", page_id="999")).conversation.id
    tag = await rig.uc.tags.create("vip")
    await rig.uc.tags.tag_conversation(ids[1], tag.id)
    await rig.uc.conversations.set_state(ids[2], "CLOSED")
    await rig.uc.conversations.mark_read(ids[0])
    await rig.uc.conversations.update_contact(ids[1], "Grace Hopper")

    assert await listed(rig) == [elsewhere, *ids]
    assert await listed(rig, channel_ids=[other.id]) == [elsewhere]
    assert await listed(rig, source="facebook") == [elsewhere, *ids]
    assert await listed(rig, source="google") == []
    assert await listed(rig, state="CLOSED") == [ids[2]]
    assert await listed(rig, tag_ids=[tag.id]) == [ids[1]]
    assert await listed(rig, unread=True) == [elsewhere, ids[1], ids[2]]
    assert await listed(rig, unread=False) == [ids[0]]
    assert await listed(rig, display_name="hopper") == [ids[1]]
    assert await listed(rig, unread=True, state="CLOSED") == [ids[2]]
    by_channel = await rig.uc.conversations.page(channel_id=other.id)
    assert [v.conversation.id for v in by_channel.items] == [elsewhere]
    assert by_channel.total == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"page_size": 0}, "page_size must be between 1 and 100"),
    ({"page_size": 101}, "page_size must be between 1 and 100"),
    ({"where": ConversationFilter(channel_ids=[])}, "must name at least one channel"),
    ({"channel_id": "a", "where": ConversationFilter(channel_ids=["b"])}, "different channels"),
])
async def test_bad_list_requests_are_refused(rig: Rig, kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        await rig.uc.conversations.page(**kwargs)


async def test_one_conversation_and_its_read_state(rig: Rig):
    await rig.connect()
    await rig.write("4242", "one")
    view = await rig.write("4242", "two")
    assert view.conversation.unread_count == 2

    await rig.uc.conversations.mark_read(view.conversation.id)

    got = await rig.uc.conversations.get(view.conversation.id)
    assert got.conversation.unread_count == 0
    assert got.last_message.content["message"]["text"] == "two"
    with pytest.raises(NotFound):
        await rig.uc.conversations.get("no-such-conversation")
    with pytest.raises(NotFound):
        await rig.uc.conversations.mark_read("no-such-conversation")


async def test_state_is_set_and_removed(rig: Rig):
    await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id

    await rig.uc.conversations.set_state(conversation_id, " OPEN ")
    assert (await rig.uc.conversations.get(conversation_id)).conversation.state == "OPEN"
    await rig.uc.conversations.set_state(conversation_id, None)
    assert (await rig.uc.conversations.get(conversation_id)).conversation.state is None
    with pytest.raises(InvalidInput, match="state must not be empty"):
        await rig.uc.conversations.set_state(conversation_id, " ")
    with pytest.raises(NotFound):
        await rig.uc.conversations.set_state("no-such-conversation", "OPEN")


async def test_the_contact_is_named_by_hand(rig: Rig):
    await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id

    await rig.uc.conversations.update_contact(conversation_id, " Ada ")

    got = await rig.uc.conversations.get(conversation_id)
    assert got.conversation.display_name == "Ada"
    with pytest.raises(InvalidInput, match="display_name must not be empty"):
        await rig.uc.conversations.update_contact(conversation_id, "")
    with pytest.raises(NotFound):
        await rig.uc.conversations.update_contact("no-such-conversation", "Ada")


async def test_refetching_the_contact_queues_a_profile_job(rig: Rig):
    await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id
    rig.fake.add_profile("4242", "Ada", "Lovelace")
    assert await rig.uc.profiles.fetch_due() == 1  # the first message's fetch
    await rig.uc.conversations.update_contact(conversation_id, "Someone")
    rig.fake.add_profile("4242", "Ada", "King")
    rig.signals.profiles.take()

    await rig.uc.conversations.refetch_contact(conversation_id)

    assert rig.signals.profiles.take()
    assert await rig.uc.profiles.fetch_due() == 1
    contact = (await rig.uc.conversations.get(conversation_id)).conversation.contact
    assert (contact.display_name, contact.fetch_state) == ("Ada King", FetchState.OK)
    with pytest.raises(NotFound):
        await rig.uc.conversations.refetch_contact("no-such-conversation")
