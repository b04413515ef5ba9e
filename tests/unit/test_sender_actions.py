"""Sender actions on both stores: the Send API body, nothing stored as a message, the page's pace
shared with sends, refusals (disconnected channel, refused token, Meta's errors) and mark_seen
after a read when MARK_SEEN_ON_READ is on."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.errors import Forbidden, InvalidInput, NotFound, UpstreamError
from tests.unit.conftest import Rig

pytestmark = pytest.mark.anyio


def actions(rig: Rig) -> list[dict]:
    return [call.json for call in rig.fake.calls_of("sender_action")]


async def test_each_action_reaches_the_send_api_and_is_not_a_message(rig: Rig):
    await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id
    for action in ("typing_on", "typing_off", "mark_seen"):
        await rig.uc.sender_actions.send(conversation_id, action)
    assert actions(rig) == [{"recipient": {"id": "4242"}, "sender_action": action}
                            for action in ("typing_on", "typing_off", "mark_seen")]
    assert rig.fake.calls_of("send") == []
    assert len(await rig.messages(conversation_id)) == 1  # the person's message alone


async def test_refused_before_meta_is_called(rig: Rig):
    channel = await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id
    with pytest.raises(InvalidInput, match="typing_on, typing_off, mark_seen"):
        await rig.uc.sender_actions.send(conversation_id, "typing")
    with pytest.raises(NotFound):
        await rig.uc.sender_actions.send("no-such-conversation", "typing_on")
    await rig.uc.channels.disconnect(channel.id)
    with pytest.raises(Forbidden, match="disconnected"):
        await rig.uc.sender_actions.send(conversation_id, "typing_on")
    assert actions(rig) == []


async def test_a_refused_token_is_noted_and_stops_the_next_ones(rig: Rig):
    await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id
    rig.fake.fail("sender_action", "bad_token")
    with pytest.raises(UpstreamError) as raised:
        await rig.uc.sender_actions.send(conversation_id, "typing_on")
    assert raised.value.graph_code == 190
    with pytest.raises(Forbidden, match="connect the page again"):
        await rig.uc.sender_actions.send(conversation_id, "typing_on")
    assert len(actions(rig)) == 1


async def test_a_rate_error_slows_the_page_for_sends_too(rig: Rig):
    channel = await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id
    rig.fake.fail("sender_action", "rate_limit")
    with pytest.raises(UpstreamError) as raised:
        await rig.uc.sender_actions.send(conversation_id, "typing_on")
    assert raised.value.graph_code == 613
    limiter = rig.uc.messages.limiter
    assert rig.uc.sender_actions.limiter is limiter
    assert limiter.rate(channel.id, False) < rig.settings.send_rate_per_page


@pytest.mark.settings(SEND_RATE_PER_PAGE="10")
async def test_a_burst_is_paced_at_the_pages_rate(rig: Rig):
    await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id
    started = time.monotonic()
    await asyncio.gather(*(rig.uc.sender_actions.send(conversation_id, "typing_on")
                           for _ in range(6)))
    assert time.monotonic() - started >= 0.45  # 6 calls at 10 a second: 5 gaps of 0.1 s
    times = sorted(call.at for call in rig.fake.calls_of("sender_action"))
    assert len(times) == 6 and times[-1] - times[0] >= 0.45


async def wait_for_calls(rig: Rig, kind: str, count: int) -> None:
    for _ in range(100):
        if len(rig.fake.calls_of(kind)) >= count and all(
                call.answered for call in rig.fake.calls_of(kind)):
            return
        await asyncio.sleep(0.01)


@pytest.mark.settings(MARK_SEEN_ON_READ="1")
async def test_a_read_sends_mark_seen_when_the_setting_is_on(rig: Rig):
    channel = await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id
    await rig.uc.conversations.mark_read(conversation_id)
    await wait_for_calls(rig, "sender_action", 1)
    assert actions(rig) == [{"recipient": {"id": "4242"}, "sender_action": "mark_seen"}]
    # Meta failing, or the channel gone, never fails the read.
    rig.fake.fail("sender_action", "server_error")
    await rig.uc.conversations.mark_read(conversation_id)
    await wait_for_calls(rig, "sender_action", 2)
    await rig.uc.channels.disconnect(channel.id)
    await rig.uc.conversations.mark_read(conversation_id)
    await asyncio.sleep(0.05)
    assert len(actions(rig)) == 2


async def test_a_read_sends_nothing_when_the_setting_is_off(rig: Rig):
    await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id
    await rig.uc.conversations.mark_read(conversation_id)
    await asyncio.sleep(0.05)
    assert actions(rig) == []
