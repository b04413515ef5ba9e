"""Channels: connecting a page through the Graph API, renaming, disconnecting, exploring."""

from __future__ import annotations

import pytest

from gateway.errors import InvalidInput, NotFound, UpstreamRefused
from tests.unit.conftest import PAGE_ID, PAGE_TOKEN, Rig

pytestmark = pytest.mark.anyio


async def test_connecting_a_page_subscribes_the_app_and_lists_the_channel(rig: Rig):
    channel = await rig.connect(name="My Shop")

    assert channel.connected and channel.token_valid
    assert (channel.source, channel.source_channel_id) == ("facebook", PAGE_ID)
    assert (channel.name, channel.image_url) == ("My Shop", "https://img.example/page.png")
    assert [c.query["access_token"] for c in rig.fake.calls_of("subscribe")] == [PAGE_TOKEN]
    assert [c.id for c in await rig.uc.channels.connected()] == [channel.id]
    assert [c.id for c in await rig.uc.channels.connected(source="facebook")] == [channel.id]
    assert await rig.uc.channels.connected(source="google") == []
    assert (await rig.uc.channels.get(channel.id)).name == "My Shop"


async def test_a_name_and_picture_given_are_kept_and_the_page_is_not_read(rig: Rig):
    rig.fake.add_page(PAGE_ID, PAGE_TOKEN, "Meta's name")

    channel = await rig.uc.channels.connect_facebook(
        f" {PAGE_ID} ", PAGE_TOKEN, name="Ours", image_url="https://img.example/ours.png")

    assert (channel.name, channel.image_url) == ("Ours", "https://img.example/ours.png")
    assert channel.source_channel_id == PAGE_ID
    assert rig.fake.calls_of("page") == []


async def test_connecting_a_page_again_keeps_its_channel(rig: Rig):
    first = await rig.connect(name="My Shop")
    await rig.uc.channels.disconnect(first.id)

    again = await rig.connect(name="My Shop")

    assert again.id == first.id and again.connected
    assert [c.id for c in await rig.uc.channels.connected()] == [first.id]


async def test_a_refused_page_token_stores_nothing(rig: Rig):
    rig.fake.add_page(PAGE_ID, "the real token")

    with pytest.raises(UpstreamRefused, match="validating access token") as refused:
        await rig.uc.channels.connect_facebook(PAGE_ID, "a wrong token")

    assert refused.value.graph_code == 190
    assert await rig.uc.channels.connected() == []


@pytest.mark.parametrize("page_id, token, message", [
    ("not-a-page", PAGE_TOKEN, "page_id must be the numeric id"),
    ("1" * 33, PAGE_TOKEN, "page_id must be the numeric id"),
    (PAGE_ID, "  ", "page_token must not be empty"),
])
async def test_bad_connect_inputs_are_refused_before_meta_is_asked(rig: Rig, page_id, token,
                                                                   message):
    with pytest.raises(InvalidInput, match=message):
        await rig.uc.channels.connect_facebook(page_id, token)
    assert rig.fake.calls == []


async def test_updating_a_channel_renames_it(rig: Rig):
    channel = await rig.connect()

    renamed = await rig.uc.channels.update(channel.id, name="Shop two",
                                           image_url="https://img.example/2.png")

    assert (renamed.name, renamed.image_url) == ("Shop two", "https://img.example/2.png")
    assert (await rig.uc.channels.get(channel.id)).name == "Shop two"
    assert (await rig.uc.channels.update(channel.id)).name == "Shop two"  # nothing to change
    with pytest.raises(InvalidInput, match="name must not be empty"):
        await rig.uc.channels.update(channel.id, name=" ")
    with pytest.raises(NotFound):
        await rig.uc.channels.update("no-such-channel", name="x")


async def test_disconnecting_unsubscribes_and_keeps_the_history(rig: Rig):
    channel = await rig.connect()
    view = await rig.write("4242", "Hi")

    gone = await rig.uc.channels.disconnect(channel.id)

    assert not gone.connected
    assert [c.kind for c in rig.fake.calls if c.kind.endswith("subscribe")] == \
        ["subscribe", "unsubscribe"]
    assert await rig.uc.channels.connected() == []
    with pytest.raises(NotFound):
        await rig.uc.channels.get(channel.id)
    with pytest.raises(NotFound):
        await rig.uc.channels.update(channel.id, name="x")
    assert [m.id for m in await rig.messages(view.conversation.id)] == \
        [view.last_message.id]
    assert not (await rig.uc.channels.disconnect(channel.id)).connected  # twice: no change
    assert len(rig.fake.calls_of("unsubscribe")) == 1
    with pytest.raises(NotFound):
        await rig.uc.channels.disconnect("no-such-channel")


async def test_a_page_meta_no_longer_knows_is_disconnected_all_the_same(rig: Rig):
    channel = await rig.connect()
    rig.fake.fail("unsubscribe", "bad_token")

    assert not (await rig.uc.channels.disconnect(channel.id)).connected
    assert await rig.uc.channels.connected() == []


async def test_exploring_lists_a_users_pages_across_metas_paging(rig: Rig):
    rig.fake.add_page("111", "t1", "One")
    rig.fake.add_page("222", "t2", "Two")
    rig.fake.add_page("333", "t3", "Three")
    rig.fake.add_user("user-token", ["111", "222", "333"])  # two answers: pages of two
    await rig.uc.channels.connect_facebook("222", "t2")

    pages = await rig.uc.channels.explore_facebook(" user-token ")

    assert [(p.page_id, p.name, p.connected) for p in pages] == \
        [("111", "One", False), ("222", "Two", True), ("333", "Three", False)]
    assert len(rig.fake.calls_of("accounts")) == 2


async def test_exploring_with_a_refused_or_empty_user_token(rig: Rig):
    with pytest.raises(UpstreamRefused):
        await rig.uc.channels.explore_facebook("unknown-user")
    with pytest.raises(InvalidInput, match="auth_token must not be empty"):
        await rig.uc.channels.explore_facebook(" ")


async def test_channels_by_ids_answer_in_the_order_asked(rig: Rig):
    channel = await rig.connect()

    found = await rig.uc.channels.by_ids(["nope", channel.id])

    assert found[0] is None and found[1] is not None and found[1].id == channel.id
