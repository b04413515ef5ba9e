"""The background applier's bounds and order, in-process: the room a webhook call waits for, and
what POST /facebook does when there is none."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.sources.facebook.webhook import parse_envelope
from gateway.usecases.applying import Busy, Room
from tests import payloads
from tests.unit.conftest import PAGE_ID, Rig

pytestmark = pytest.mark.anyio


async def test_a_call_that_does_not_fit_waits_its_turn_then_gives_up():
    room = Room(10)
    assert await room.take(8, 0)
    assert not await room.take(3, 0.05)  # 8 + 3 > 10: no room within 50 ms
    assert room.held == 8

    later = asyncio.ensure_future(room.take(3, 5))
    small = asyncio.ensure_future(room.take(1, 5))  # it would fit, but waits behind the first
    await asyncio.sleep(0.02)
    assert not later.done() and not small.done()
    room.give(8)
    assert await later and await small
    assert room.held == 4


async def test_a_call_bigger_than_the_room_gets_in_alone():
    room = Room(10)
    assert await room.take(50, 0)  # nothing held: it gets in
    assert not await room.take(1, 0.05)
    room.give(50)
    assert await room.take(1, 0)


async def test_one_giving_up_at_the_head_lets_the_next_in():
    room = Room(10)
    assert await room.take(9, 0)
    big = asyncio.ensure_future(room.take(5, 0.05))
    small = asyncio.ensure_future(room.take(1, 5))
    assert not await big
    assert await small  # it fitted all along; the big one's leaving lets it in
    assert room.held == 10


async def test_a_webhook_with_no_room_is_refused_unstored(rig: Rig):
    await rig.connect()
    rig.uc.ingest.applier.room = room = Room(1, wait=0.05)
    room.force(1)  # a call's events in hand
    body = json.dumps(payloads.envelope(PAGE_ID, payloads.text(PAGE_ID, "4242", "later")))

    with pytest.raises(Busy):
        await rig.uc.ingest.ingest(parse_envelope(body.encode()))
    assert await rig.store.events.unprocessed(2**62) == []  # nothing stored
    assert room.held == 1

    room.give(1)
    await rig.uc.ingest.ingest(parse_envelope(body.encode()))  # Meta's retry, with room
    assert (await rig.conversation_of("4242")).conversation.message_count == 1
    assert room.held == 0
