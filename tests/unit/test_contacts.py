"""Contacts, in-process: made once per conversation (by its profile job, or on demand before it),
created, imported, listed, changed, deleted and merged."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import InvalidInput, NotFound
from tests.unit.conftest import PAGE_ID, Rig

pytestmark = pytest.mark.anyio


async def test_the_profile_job_makes_the_conversations_contact_once(rig: Rig):
    await rig.connect()
    rig.fake.add_profile("4242", "Ada", "Lovelace", pic="https://img.example/ada.jpg")
    conversation = (await rig.write("4242")).conversation

    assert await rig.uc.profiles.fetch_due() == 1
    card = await rig.uc.contacts.of_conversation(conversation.id)
    assert (card.display_name, card.avatar_url) == ("Ada Lovelace", "https://img.example/ada.jpg")
    assert card.conversations == {conversation.id: "facebook"}
    assert card.metadata == {"facebook": {"psid": "4242", "page_id": PAGE_ID}}

    # Fetched again (a refetch, or the job taken again after a crash): the same contact.
    rig.fake.add_profile("4242", "Ada", "King")
    await rig.uc.conversations.refetch_contact(conversation.id)
    assert await rig.uc.profiles.fetch_due() == 1
    page = await rig.uc.contacts.page()
    assert [(c.id, c.display_name) for c in page.items] == [(card.id, "Ada King")]
    assert page.total == 1


async def test_a_contact_asked_for_before_the_profile_job_ran_is_the_one_it_names(rig: Rig):
    await rig.connect()
    rig.fake.add_profile("4242", "Ada", "Lovelace")
    conversation = (await rig.write("4242")).conversation

    early = await rig.uc.contacts.of_conversation(conversation.id)
    assert early.display_name is None and early.conversations == {conversation.id: "facebook"}
    assert (await rig.uc.contacts.of_conversation(conversation.id)).id == early.id
    await rig.uc.profiles.fetch_due()

    assert (await rig.uc.contacts.get(early.id)).display_name == "Ada Lovelace"
    assert (await rig.uc.contacts.page()).total == 1
    with pytest.raises(NotFound):
        await rig.uc.contacts.of_conversation("no-such-conversation")


async def test_naming_the_conversations_person_by_hand_names_their_contact(rig: Rig):
    await rig.connect()
    rig.fake.add_profile("4242", "Ada", "Lovelace", pic="https://img.example/ada.jpg")
    conversation = (await rig.write("4242")).conversation
    await rig.uc.profiles.fetch_due()

    await rig.uc.conversations.update_contact(conversation.id, " Countess Lovelace ")
    card = await rig.uc.contacts.of_conversation(conversation.id)
    assert card.display_name == "Countess Lovelace"
    assert card.avatar_url == "https://img.example/ada.jpg"  # kept: no picture was given
    view = await rig.uc.conversations.get(conversation.id)
    assert view.conversation.contact.display_name == "Countess Lovelace"


async def test_a_refused_profile_still_leaves_a_contact(rig: Rig):
    await rig.connect()
    conversation = (await rig.write("4242")).conversation  # Meta has no profile of this person
    await rig.uc.profiles.fetch_due()
    card = await rig.uc.contacts.of_conversation(conversation.id)
    assert card.display_name is None and card.metadata["facebook"]["psid"] == "4242"


async def test_contacts_are_created_imported_and_listed_newest_first_in_pages(rig: Rig):
    first = await rig.uc.contacts.create({"display_name": "Grace", "via": {"phone": "+1 555"}})
    assert first.via == {"phone": "+1 555"} and first.merge_history == []
    await asyncio.sleep(0.002)  # the others are created a millisecond later at least
    imported = await rig.uc.contacts.import_many(
        [{"display_name": f"Person {n}"} for n in range(5)])
    assert [c.display_name for c in imported] == [f"Person {n}" for n in range(5)]

    seen, cursor, totals = [], None, set()
    while True:
        page = await rig.uc.contacts.page(cursor, page_size=2)
        seen += [c.id for c in page.items]
        totals.add(page.total)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted([first.id, *(c.id for c in imported)])
    assert len(seen) == 6 and totals == {6}
    assert seen[-1] == first.id  # created before the others
    with pytest.raises(InvalidInput, match="cursor"):
        await rig.uc.contacts.page("not-a-cursor")
    with pytest.raises(InvalidInput, match="field name"):
        await rig.uc.contacts.create({"metadata": {"a.b": 1}})


async def test_an_update_sets_and_removes_fields_and_names_the_conversations(rig: Rig):
    await rig.connect()
    conversation = (await rig.write("4242")).conversation
    card = await rig.uc.contacts.of_conversation(conversation.id)
    await rig.uc.contacts.update(card.id, {"title": "Dr", "via": {"email": "a@b.c", "phone": "1"},
                                           "metadata": {"crm": {"id": 7, "vip": True}}})

    changed = await rig.uc.contacts.update(card.id, {
        "display_name": "Ada (VIP)", "title": "", "via": {"phone": ""}, "metadata": {"x": False}})
    assert changed.title is None and changed.via == {"email": "a@b.c"}
    # Types kept as given (true stays true, not 1), and the facebook key stays.
    assert changed.metadata == {"facebook": {"psid": "4242", "page_id": PAGE_ID},
                                "crm": {"id": 7, "vip": True}, "x": False}
    stored = await rig.uc.contacts.get(card.id)
    assert stored == changed and stored.metadata["crm"]["vip"] is True
    # The inbox shows the conversation's name: the contact's new name is the conversation's.
    assert (await rig.conversation_of("4242")).conversation.display_name == "Ada (VIP)"

    cleared = await rig.uc.contacts.update(card.id, {"via": ""})
    assert cleared.via == {} and cleared.display_name == "Ada (VIP)"
    with pytest.raises(NotFound):
        await rig.uc.contacts.update("no-such-contact", {"title": "x"})


async def test_concurrent_updates_of_one_contact_both_land(rig: Rig):
    card = await rig.uc.contacts.create({"display_name": "Grace"})
    await asyncio.gather(*(rig.uc.contacts.update(card.id, {"metadata": {f"k{n}": n}})
                           for n in range(8)))
    assert (await rig.uc.contacts.get(card.id)).metadata == {f"k{n}": n for n in range(8)}


async def test_a_merge_keeps_the_destination_fills_it_in_and_removes_the_source(rig: Rig):
    await rig.connect()
    conversation = (await rig.write("4242")).conversation
    source = await rig.uc.contacts.of_conversation(conversation.id)
    source = await rig.uc.contacts.update(source.id, {"display_name": "Ada", "title": "Dr",
                                                      "via": {"phone": "1", "email": "s@x"}})
    destination = await rig.uc.contacts.create({"display_name": "Ada Lovelace",
                                                "via": {"email": "d@x"}})

    merged = await rig.uc.contacts.merge(source.id, destination.id)
    assert merged.id == destination.id
    assert (merged.display_name, merged.title) == ("Ada Lovelace", "Dr")
    assert merged.via == {"phone": "1", "email": "d@x"}
    assert merged.conversations == {conversation.id: "facebook"}
    assert merged.metadata["facebook"]["psid"] == "4242"
    [copy] = merged.merge_history
    assert copy["id"] == source.id and copy["display_name"] == "Ada"
    with pytest.raises(NotFound):
        await rig.uc.contacts.get(source.id)
    # The conversation's person is the destination now.
    assert (await rig.uc.contacts.of_conversation(conversation.id)).id == destination.id
    assert (await rig.uc.contacts.page()).total == 1

    with pytest.raises(NotFound):
        await rig.uc.contacts.merge(source.id, destination.id)
    with pytest.raises(InvalidInput):
        await rig.uc.contacts.merge(destination.id, destination.id)


async def test_a_deleted_contact_is_gone_and_its_conversation_gets_a_new_one(rig: Rig):
    await rig.connect()
    conversation = (await rig.write("4242")).conversation
    card = await rig.uc.contacts.of_conversation(conversation.id)
    await rig.uc.contacts.delete(card.id)
    with pytest.raises(NotFound):
        await rig.uc.contacts.get(card.id)
    with pytest.raises(NotFound):
        await rig.uc.contacts.delete(card.id)
    again = await rig.uc.contacts.of_conversation(conversation.id)
    assert again.id != card.id and again.metadata["facebook"]["psid"] == "4242"
