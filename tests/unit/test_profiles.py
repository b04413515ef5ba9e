"""Contacts' profiles: fetched by the profile pass after a first message, retried, given up."""

from __future__ import annotations

import pytest

from gateway.domain import FetchState
from gateway.usecases.profiles import PROFILE_MAX_REFUSALS
from tests.unit.conftest import PAGE_TOKEN, Rig

pytestmark = pytest.mark.anyio


async def test_a_first_message_queues_the_profile_and_the_pass_fetches_it(rig: Rig):
    await rig.connect()
    rig.fake.add_profile("4242", "Ada", "Lovelace", pic="https://img.example/ada.jpg")

    view = await rig.write("4242")

    assert view.conversation.contact.fetch_state is FetchState.PENDING
    assert view.conversation.display_name == "Facebook " + view.conversation.id[-5:]
    assert rig.signals.profiles.take()
    assert await rig.uc.profiles.fetch_due() == 1
    contact = (await rig.conversation_of("4242")).conversation.contact
    assert (contact.display_name, contact.avatar_url, contact.fetch_state) == \
        ("Ada Lovelace", "https://img.example/ada.jpg", FetchState.OK)
    [call] = rig.fake.calls_of("profile")
    assert (call.path, call.query["access_token"]) == ("4242", PAGE_TOKEN)
    await rig.write("4242", "again")  # a known person: no new fetch
    assert await rig.uc.profiles.fetch_due() == 0


async def test_a_profile_unavailable_for_a_while_is_fetched_later(rig: Rig):
    await rig.connect()
    rig.fake.add_profile("4242", "Ada", "Lovelace")
    rig.fake.fail("profile", "server_error", times=2)
    await rig.write("4242")

    assert await rig.uc.profiles.fetch_due() == 1
    assert (await rig.conversation_of("4242")).conversation.contact.display_name is None
    await rig.drain(rig.uc.profiles.fetch_due)

    contact = (await rig.conversation_of("4242")).conversation.contact
    assert (contact.display_name, contact.fetch_state) == ("Ada Lovelace", FetchState.OK)
    assert len(rig.fake.calls_of("profile")) == 3


async def test_a_refused_profile_is_given_up_after_a_few_refusals(rig: Rig):
    await rig.connect()
    await rig.write("4242")  # Meta has no profile of this person for the page: refused

    await rig.drain(rig.uc.profiles.fetch_due)

    contact = (await rig.conversation_of("4242")).conversation.contact
    assert (contact.fetch_state, contact.fetch_error) == (FetchState.FAILED,
                                                          "(#100) Invalid parameter")
    assert contact.display_name is None
    assert len(rig.fake.calls_of("profile")) == PROFILE_MAX_REFUSALS


async def test_a_refused_page_token_marks_the_channel(rig: Rig):
    await rig.connect()
    rig.fake.fail("profile", "bad_token")

    await rig.write("4242")
    await rig.uc.profiles.fetch_due()

    assert not (await rig.uc.channels.connected())[0].token_valid


async def test_a_stopping_process_takes_no_new_profile(rig: Rig):
    await rig.connect()
    await rig.write("4242")
    rig.running.stopping = True

    assert await rig.uc.profiles.fetch_due() == 0
    assert rig.fake.calls_of("profile") == []
