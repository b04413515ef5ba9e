"""Ingest: Meta's events stored once and applied: messages, echoes, reactions, receipts."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.domain import DeliveryState, SenderType, now_ms
from gateway.sources.facebook.webhook import parse_envelope
from tests import payloads
from tests.unit.conftest import APP_ID, PAGE_ID, Rig

pytestmark = pytest.mark.anyio


def envelope(*events: dict) -> dict:
    return payloads.envelope(PAGE_ID, *events)


async def test_messages_attachments_and_postbacks_start_a_conversation(rig: Rig):
    await rig.connect()

    await rig.webhook(envelope(
        payloads.text(PAGE_ID, "4242", "Hi"),
        payloads.attachment(PAGE_ID, "4242", "image", {"url": "https://img.example/x.png"}),
        payloads.postback(PAGE_ID, "4242", message_id="m_postback"),
    ))

    view = await rig.conversation_of("4242")
    assert (view.conversation.message_count, view.conversation.unread_count) == (3, 3)
    messages = await rig.messages(view.conversation.id)
    assert [m.kind for m in messages] == ["postback", "message", "message"]
    assert {m.sender_type for m in messages} == {SenderType.CONTACT}
    assert {m.state for m in messages} == {DeliveryState.DELIVERED}
    assert messages[2].content["message"]["text"] == "Hi"  # the whole event, as Meta sent it
    assert messages[1].content["message"]["attachments"][0]["type"] == "image"
    assert messages[0].source_message_id == "m_postback"
    assert view.last_message.id == messages[0].id
    assert (await rig.uc.conversations.page()).total == 1


async def test_an_event_delivered_twice_is_stored_and_counted_once(rig: Rig):
    await rig.connect()
    body = envelope(payloads.text(PAGE_ID, "4242", "once"))

    await rig.webhook(body)
    await rig.webhook(body)  # Meta's retry
    await rig.webhook(envelope(body["entry"][0]["messaging"][0],
                               body["entry"][0]["messaging"][0]))  # twice in one call

    view = await rig.conversation_of("4242")
    assert (view.conversation.message_count, view.conversation.unread_count) == (1, 1)
    assert len(await rig.messages(view.conversation.id)) == 1
    assert (await rig.uc.conversations.page()).total == 1


async def test_the_same_mid_sent_again_is_one_message(rig: Rig):
    await rig.connect()

    await rig.write("4242", "first", message_id="m_same")
    view = await rig.write("4242", "changed", message_id="m_same")

    assert view.conversation.message_count == 1
    [message] = await rig.messages(view.conversation.id)
    assert message.content["message"]["text"] == "first"


async def test_the_echo_of_our_own_send_is_reconciled_not_stored_again(rig: Rig):
    await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id
    sent = await rig.uc.messages.send(conversation_id, {"text": "Yes"})
    await rig.uc.messages.deliver_due()

    await rig.webhook(envelope(payloads.echo(PAGE_ID, "4242", "Yes", message_id="m_fake_1",
                                             app_id=int(APP_ID), metadata="mg:" + sent.id)))

    messages = await rig.messages(conversation_id)
    assert [m.id for m in messages][0] == sent.id and len(messages) == 2
    assert (messages[0].source_message_id, messages[0].state) == \
        ("m_fake_1", DeliveryState.DELIVERED)
    view = await rig.uc.conversations.get(conversation_id)
    assert (view.conversation.message_count, view.conversation.unread_count) == (2, 1)


async def test_an_echo_before_the_send_apis_answer_is_one_message(rig: Rig):
    await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id
    sent = await rig.uc.messages.send(conversation_id, {"text": "Yes"})
    rig.fake.mids.append("m_early")

    await rig.webhook(envelope(payloads.echo(PAGE_ID, "4242", "Yes", message_id="m_early",
                                             app_id=int(APP_ID), metadata="mg:" + sent.id)))
    await rig.uc.messages.deliver_due()

    messages = await rig.messages(conversation_id)
    assert len(messages) == 2 and messages[0].id == sent.id
    assert (messages[0].source_message_id, messages[0].state) == \
        ("m_early", DeliveryState.DELIVERED)


async def test_an_echo_of_another_apps_message_is_the_pages(rig: Rig):
    await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id

    await rig.webhook(envelope(payloads.echo(PAGE_ID, "4242", "From Page Inbox",
                                             app_id=263902037430900)))

    latest = (await rig.messages(conversation_id))[0]
    assert (latest.kind, latest.sender_type) == ("echo", SenderType.PAGE)
    assert latest.content["message"]["text"] == "From Page Inbox"
    view = await rig.uc.conversations.get(conversation_id)
    assert (view.conversation.message_count, view.conversation.unread_count) == (2, 1)


async def test_reactions_are_set_and_taken_back(rig: Rig):
    await rig.connect()
    conversation_id = (await rig.write("4242", message_id="m_liked")).conversation.id

    await rig.webhook(envelope(payloads.reaction(PAGE_ID, "4242", "m_liked", emoji="👍")))
    reacted = (await rig.messages(conversation_id))[0]
    await rig.webhook(envelope(payloads.reaction(PAGE_ID, "4242", "m_liked", action="unreact")))
    unreacted = (await rig.messages(conversation_id))[0]

    assert (reacted.reaction["emoji"], reacted.reaction["reaction"]) == ("👍", "love")
    assert reacted.metadata()["reaction"]["emoji"] == "👍"
    assert unreacted.reaction is None
    assert len(await rig.messages(conversation_id)) == 1  # a reaction is no message


async def test_a_reaction_older_than_the_last_one_changes_nothing(rig: Rig):
    await rig.connect()
    conversation_id = (await rig.write("4242", message_id="m_liked")).conversation.id
    late = payloads.reaction(PAGE_ID, "4242", "m_liked", action="unreact")
    await rig.webhook(envelope(payloads.reaction(PAGE_ID, "4242", "m_liked")))

    await rig.webhook(envelope(late))  # sent before the reaction, arrived after it

    assert (await rig.messages(conversation_id))[0].reaction is not None


async def test_delivery_and_read_receipts_mark_our_messages(rig: Rig):
    await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id
    sent = await rig.uc.messages.send(conversation_id, {"text": "Yes"})
    ours = (await rig.messages(conversation_id))[0]
    assert ours.metadata()["user_read"] is False

    await rig.webhook(envelope(payloads.delivery(PAGE_ID, "4242", payloads.ts())))
    delivered = (await rig.messages(conversation_id))[0]
    await rig.webhook(envelope(payloads.read(PAGE_ID, "4242", payloads.ts())))
    read = (await rig.messages(conversation_id))[0]

    assert delivered.id == sent.id and delivered.state is DeliveryState.DELIVERED
    assert read.read_by_contact and read.metadata()["user_read"] is True
    theirs = (await rig.messages(conversation_id))[1]
    assert not theirs.read_by_contact and "user_read" not in theirs.metadata()


async def test_a_read_receipt_covers_only_what_was_sent_before_its_watermark(rig: Rig):
    await rig.connect()
    conversation_id = (await rig.write("4242")).conversation.id
    one = await rig.uc.messages.send(conversation_id, {"text": "one"})
    await asyncio.sleep(0.002)  # "two" is sent a millisecond later at least
    await rig.uc.messages.send(conversation_id, {"text": "two"})

    await rig.webhook(envelope(payloads.read(PAGE_ID, "4242", one.sent_at)))

    newest, older, _ = await rig.messages(conversation_id)
    assert (newest.content["text"], newest.read_by_contact) == ("two", False)
    assert (older.content["text"], older.read_by_contact) == ("one", True)


async def test_events_of_a_page_without_a_connected_channel_are_ignored(rig: Rig):
    channel = await rig.connect()

    await rig.webhook(payloads.envelope("555", payloads.text("555", "4242")))
    await rig.uc.channels.disconnect(channel.id)
    await rig.webhook(envelope(payloads.text(PAGE_ID, "4243")))

    page = await rig.uc.conversations.page()
    assert (page.items, page.total) == ([], 0)


@pytest.mark.only_store("nx-27017", reason="reads the events log's documents through the driver")
async def test_an_invalid_event_is_kept_aside_and_the_rest_applied(rig: Rig):
    await rig.connect()
    broken = payloads.text(PAGE_ID, "4242", "never applied")
    broken["timestamp"] = "yesterday"

    await rig.webhook(envelope(broken, payloads.text(PAGE_ID, "4242", "applied")))

    view = await rig.conversation_of("4242")
    assert [m.content["message"]["text"] for m in await rig.messages(view.conversation.id)] \
        == ["applied"]
    assert view.conversation.message_count == 1
    kept = [doc async for doc in rig.store.events.c.find({}) if doc.get("invalid")]
    assert [(doc["raw"], doc["invalid"], doc["processed"]) for doc in kept] == \
        [(broken, "timestamp must be an integer time in milliseconds", True)]
    assert await rig.uc.ingest.apply_unprocessed(older_than_ms=0) == 0  # never applied later


async def test_events_stored_but_never_applied_are_applied_by_the_events_pass(rig: Rig):
    await rig.connect()
    body = json.dumps(envelope(payloads.text(PAGE_ID, "4242", "stored, then the process died")))
    events = parse_envelope(body.encode())
    await rig.store.events.record(events, now_ms() - 120_000)  # and nothing after

    assert await rig.uc.ingest.apply_unprocessed() == 1

    view = await rig.conversation_of("4242")
    assert (view.conversation.message_count, view.conversation.unread_count) == (1, 1)
    assert view.last_message.content["message"]["text"] == "stored, then the process died"
    await rig.webhook(json.loads(body))  # Meta's retry of the same call: applied already
    assert (await rig.conversation_of("4242")).conversation.message_count == 1
    assert await rig.uc.ingest.apply_unprocessed() == 0
