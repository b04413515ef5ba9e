"""Handover: the thread owner as Meta's events tell it (both stores), the calls that change it,
a send into a thread another app owns, and a page token Meta refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.domain import (
    PAGE_INBOX_APP_ID,
    DeliveryState,
    EventKind,
    InboundEvent,
    ThreadOwner,
)
from gateway.errors import Conflict, Forbidden, InvalidInput
from gateway.usecases.handover import owner_after
from tests import payloads
from tests.unit.conftest import APP_ID, PAGE_ID, RETRY_DUE, Rig

pytestmark = pytest.mark.anyio

OTHER_APP = "777000111"


def handover(kind: str, psid: str = "4242", at: int | None = None, **body: Any) -> dict:
    """A `messaging_handovers` event in Meta's documented shape."""
    return {"sender": {"id": psid}, "recipient": {"id": PAGE_ID},
            "timestamp": at or payloads.ts(), kind: body}


def event(kind: EventKind, at: int, standby: bool = False, **handover: Any) -> InboundEvent:
    return InboundEvent(key="k", page_id=PAGE_ID, kind=kind, raw={}, timestamp=at,
                        contact_id="4242", handover=handover or None, standby=standby)


# --- owner_after: what each event says of the owner ---------------------------------------------


def test_each_event_tells_the_owner():
    passed = owner_after(None, event(EventKind.PASS_THREAD_CONTROL, 10,
                                     new_owner_app_id=APP_ID), APP_ID)
    assert passed == ThreadOwner(owner="app", updated_at=10, app_id=APP_ID)
    to_inbox = owner_after(passed, event(EventKind.PASS_THREAD_CONTROL, 11,
                                         new_owner_app_id=PAGE_INBOX_APP_ID), APP_ID)
    assert to_inbox and to_inbox.owner == "page_inbox" and to_inbox.someone_else
    taken = owner_after(passed, event(EventKind.TAKE_THREAD_CONTROL, 12,
                                      previous_owner_app_id=APP_ID), APP_ID)
    assert taken == ThreadOwner(owner="other_app", updated_at=12)
    asked = owner_after(taken, event(EventKind.REQUEST_THREAD_CONTROL, 13,
                                     requested_owner_app_id=OTHER_APP), APP_ID)
    assert asked == ThreadOwner(owner="other_app", updated_at=12, requested_by=OTHER_APP,
                                requested_at=13)
    # An older event changes nothing; a standby event says another app owns the thread, once.
    assert owner_after(asked, event(EventKind.PASS_THREAD_CONTROL, 5), APP_ID) is None
    standby = owner_after(passed, event(EventKind.MESSAGE, 20, standby=True), APP_ID)
    assert standby == ThreadOwner(owner="other_app", updated_at=20)
    assert owner_after(standby, event(EventKind.MESSAGE, 21, standby=True), APP_ID) is None
    assert owner_after(passed, event(EventKind.MESSAGE, 21), APP_ID) is None


# --- events in, on both stores ------------------------------------------------------------------


async def owner_of(rig: Rig, psid: str = "4242") -> ThreadOwner | None:
    return (await rig.conversation_of(psid)).conversation.thread_owner


async def test_handover_events_set_the_conversation_owner(rig: Rig):
    await rig.connect()
    await rig.write("4242")
    assert await owner_of(rig) is None
    at = payloads.ts()
    await rig.webhook(payloads.envelope(PAGE_ID, handover(
        "take_thread_control", at=at, previous_owner_app_id=APP_ID, new_owner_app_id=None,
        metadata="a person takes over")))
    assert await owner_of(rig) == ThreadOwner(owner="other_app", updated_at=at)
    await rig.webhook(payloads.envelope(PAGE_ID, handover(
        "request_thread_control", at=at + 1, requested_owner_app_id=int(OTHER_APP))))
    owner = await owner_of(rig)
    assert owner and owner.requested_by == OTHER_APP and owner.requested_at == at + 1
    await rig.webhook(payloads.envelope(PAGE_ID, handover(
        "pass_thread_control", at=at + 2, previous_owner_app_id=PAGE_INBOX_APP_ID,
        new_owner_app_id=APP_ID, metadata="back to the bot")))
    assert await owner_of(rig) == ThreadOwner(owner="app", updated_at=at + 2, app_id=APP_ID)
    # Applied once: the same delivery again (Meta's retry) changes nothing.
    await rig.webhook(payloads.envelope(PAGE_ID, handover(
        "take_thread_control", at=at, previous_owner_app_id=APP_ID, new_owner_app_id=None,
        metadata="a person takes over")))
    assert (await owner_of(rig)).owner == "app"  # type: ignore[union-attr]


async def test_a_standby_message_is_stored_and_says_another_app_owns_the_thread(rig: Rig):
    await rig.connect()
    message = payloads.text(PAGE_ID, "5151", "written while Page Inbox answers")
    await rig.webhook(payloads.envelope(PAGE_ID, standby=[message]))
    view = await rig.conversation_of("5151")
    assert view.last_message and view.last_message.content["message"]["text"] == \
        "written while Page Inbox answers"
    owner = view.conversation.thread_owner
    assert owner and owner.owner == "other_app" and owner.updated_at == message["timestamp"]


async def test_a_handover_event_without_a_conversation_is_only_logged(rig: Rig):
    await rig.connect()
    await rig.webhook(payloads.envelope(PAGE_ID, handover(
        "pass_thread_control", psid="999", new_owner_app_id=APP_ID)))
    assert (await rig.uc.conversations.page()).items == []


async def test_a_bad_app_id_keeps_the_event_aside(rig: Rig):
    await rig.connect()
    await rig.write("4242")
    await rig.webhook(payloads.envelope(PAGE_ID, handover(
        "pass_thread_control", new_owner_app_id="../me")))
    assert await owner_of(rig) is None


@pytest.mark.only_store("nx-27017", reason="writes a stored document through the driver")
async def test_an_unreadable_stored_owner_reads_as_not_known(rig: Rig):
    await rig.connect()
    conversation = (await rig.write("4242")).conversation
    db = rig.store.db  # type: ignore[attr-defined]
    await db.conversations.update_one({"_id": conversation.id},
                                      {"$set": {"thread_owner": {"owner": "nobody"}}})
    assert await owner_of(rig) is None


# --- calls out, and sends ------------------------------------------------------------------------


async def test_pass_take_and_request_call_the_graph_api(rig: Rig):
    await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id
    await rig.uc.handover.pass_control(conversation_id, metadata="needs a person")
    owner = await owner_of(rig)
    assert owner and owner.owner == "page_inbox" and owner.app_id == PAGE_INBOX_APP_ID
    await rig.uc.handover.request_control(conversation_id)
    await rig.uc.handover.take_control(conversation_id, metadata="bot again")
    assert (await owner_of(rig)).owner == "app"  # type: ignore[union-attr]
    calls = [(c.kind, c.json) for c in rig.fake.calls if c.kind.endswith("thread_control")]
    assert calls == [
        ("pass_thread_control", {"recipient": {"id": "4242"},
                                 "target_app_id": PAGE_INBOX_APP_ID,
                                 "metadata": "needs a person"}),
        ("request_thread_control", {"recipient": {"id": "4242"}}),
        ("take_thread_control", {"recipient": {"id": "4242"}, "metadata": "bot again"}),
    ]
    with pytest.raises(InvalidInput, match="target_app_id"):
        await rig.uc.handover.pass_control(conversation_id, "not-an-app")


async def test_a_send_into_another_apps_thread_is_refused_unless_forced(rig: Rig):
    await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id
    await rig.webhook(payloads.envelope(PAGE_ID, handover(
        "pass_thread_control", new_owner_app_id=PAGE_INBOX_APP_ID)))
    with pytest.raises(Conflict, match="owned by Page Inbox .*take-thread-control"):
        await rig.uc.messages.send(conversation_id, {"text": "hi"})
    sent = await rig.uc.messages.send(conversation_id, {"text": "hi"}, force=True)
    assert sent.state is DeliveryState.PENDING


async def settle(rig: Rig, conversation_id: str, message_id: str) -> None:
    """Run the sender's passes (and wait for sends handed over at once) until the message is
    no longer pending."""
    for _ in range(20):
        await rig.uc.messages.drain()
        await rig.uc.messages.deliver_due()
        found = {m.id: m for m in await rig.messages(conversation_id)}[message_id]
        if found.state is not DeliveryState.PENDING:
            return
        await asyncio.sleep(RETRY_DUE)
    raise AssertionError("the message is still pending after 20 passes")


async def test_a_refused_token_stops_sends_until_the_page_is_connected_again(rig: Rig):
    channel = await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id
    rig.fake.add_page(PAGE_ID, "a-new-token")  # Meta no longer takes the old one
    first = await rig.uc.messages.send(conversation_id, {"text": "one"})
    second = await rig.uc.messages.send(conversation_id, {"text": "two"})
    await settle(rig, conversation_id, second.id)
    states = {m.id: m for m in await rig.messages(conversation_id)}
    assert states[first.id].error and states[first.id].error["code"] == 190
    assert "connect the page again" in states[second.id].error["message"]  # type: ignore[index]
    assert len(rig.fake.calls_of("send")) == 1  # the second never reached Meta
    with pytest.raises(Forbidden, match="connect the page again"):
        await rig.uc.messages.send(conversation_id, {"text": "three"})
    with pytest.raises(Forbidden, match="connect the page again"):
        await rig.uc.handover.take_control(conversation_id)
    # Connected again later than the refusal (the sender tells them apart by the millisecond).
    await asyncio.sleep(0.005)
    await rig.uc.channels.connect_facebook(channel.source_channel_id, "a-new-token")
    sent = await rig.uc.messages.send(conversation_id, {"text": "four"})
    await settle(rig, conversation_id, sent.id)
    assert {m.id: m for m in await rig.messages(conversation_id)}[sent.id].state is \
        DeliveryState.DELIVERED
