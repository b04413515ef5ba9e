"""Edits, referrals, opt-ins and unhandled kinds: Meta's events in its documented shapes, applied
on both stores; and the store functions they use."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.domain import Optin, Referral, now_ms
from gateway.sources.facebook.webhook import parse_envelope
from gateway.store.ports import PARKED_EDIT_MS, ParkedEdit
from tests import payloads
from tests.unit.conftest import PAGE_ID, Rig

pytestmark = pytest.mark.anyio
PSID = "4242"


def envelope(*events: dict) -> dict:
    return payloads.envelope(PAGE_ID, *events)


def edit(target_mid: str, text: str, num_edit: Any, psid: str = PSID) -> dict:
    """A `message_edits` event as Meta documents it."""
    return {"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": payloads.ts(),
            "message_edit": {"mid": target_mid, "text": text, "num_edit": num_edit}}


def referral(body: dict, psid: str = PSID) -> dict:
    return {"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": payloads.ts(),
            "referral": body}


def optin(body: dict, psid: str | None = PSID) -> dict:
    """A `messaging_optins` event; without a PSID, a checkbox plugin's (a `user_ref` instead)."""
    event = {"recipient": {"id": PAGE_ID}, "timestamp": payloads.ts(), "optin": body}
    return {"sender": {"id": psid}, **event} if psid else event


async def test_an_edit_replaces_the_text_and_keeps_the_earlier(rig: Rig):
    await rig.connect()
    view = await rig.write(PSID, "See you at 5", message_id="m_edited")

    await rig.webhook(envelope(edit("m_edited", "See you at 6", 1)))
    await rig.webhook(envelope(edit("m_edited", "See you at 7", "2")))  # Meta's example: a string

    [message] = await rig.messages(view.conversation.id)
    assert message.content["message"]["text"] == "See you at 7"  # Meta's shape, edited
    assert message.content["message"]["mid"] == "m_edited"
    assert message.edit_count == 2
    assert [e["text"] for e in message.edits] == ["See you at 5", "See you at 6"]
    assert message.metadata()["edit_count"] == 2
    assert [e["text"] for e in message.metadata()["edits"]] == ["See you at 5", "See you at 6"]


async def test_a_replayed_or_older_edit_changes_nothing(rig: Rig):
    await rig.connect()
    view = await rig.write(PSID, "one", message_id="m_replay")
    second = envelope(edit("m_replay", "three", 2))

    await rig.webhook(second)
    await rig.webhook(envelope(edit("m_replay", "two", 1)))  # older, and late
    await rig.webhook(second)  # Meta's retry
    second["entry"][0]["messaging"][0]["timestamp"] += 1  # the same edit, another delivery
    await rig.webhook(second)

    [message] = await rig.messages(view.conversation.id)
    assert message.content["message"]["text"] == "three"
    assert (message.edit_count, [e["text"] for e in message.edits]) == (2, ["one"])
    assert view.conversation.message_count == 1


async def test_an_edit_before_its_message_is_applied_when_it_comes(rig: Rig):
    await rig.connect()
    await rig.webhook(envelope(edit("m_later", "edited", 1)))
    assert [v.conversation.contact.id for v in (await rig.uc.conversations.page()).items] == []

    view = await rig.write(PSID, "original", message_id="m_later")

    [message] = await rig.messages(view.conversation.id)
    assert message.content["message"]["text"] == "edited"
    assert [e["text"] for e in message.edits] == ["original"]
    assert await rig.store.parked_edits.take(["m_later"]) == []  # no longer parked


async def test_a_parked_edit_is_dropped_after_its_time(rig: Rig):
    parked = rig.store.parked_edits
    old = ParkedEdit(mid="m_old", text="old", num_edit=1, at=1_000)
    assert await parked.park(old, now=1_000)
    assert await parked.park(ParkedEdit(mid="m_new", text="x", num_edit=1, at=2_000),
                             now=PARKED_EDIT_MS + 2_000)  # prunes what is older than its time
    assert await parked.take(["m_old", "m_new", "m_none"]) == [
        ParkedEdit(mid="m_new", text="x", num_edit=1, at=2_000)]


async def test_a_parked_edit_keeps_the_latest_of_its_message(rig: Rig):
    parked = rig.store.parked_edits
    for num, text in ((2, "two"), (1, "one"), (3, "three")):
        assert await parked.park(ParkedEdit(mid="m_p", text=text, num_edit=num, at=num), now=10)
    assert await parked.take(["m_p"]) == [ParkedEdit(mid="m_p", text="three", num_edit=3, at=3)]
    assert await parked.take(["m_p"]) == []


async def test_the_store_edits_a_message_once_per_edit_number(rig: Rig):
    await rig.connect()
    view = await rig.write(PSID, "a", message_id="m_store")
    messages = rig.store.messages
    assert await messages.edit("m_none", "x", 1, 5) is None
    assert await messages.edit("m_store", "b", 1, 5) is True
    assert await messages.edit("m_store", "c", 1, 6) is False
    [message] = await rig.messages(view.conversation.id)
    assert (message.content["message"]["text"], message.edits) == (
        "b", [{"text": "a", "edited_at": 5}])


async def test_a_referral_from_an_ad_and_from_a_link(rig: Rig):
    await rig.connect()
    # Click to Messenger: the ad's referral comes with the person's first message.
    ad = payloads.text(PAGE_ID, PSID, "Is this in stock?", referral={
        "ref": "spring", "ad_id": "6045246247433", "source": "ADS", "type": "OPEN_THREAD",
        "ads_context_data": {"ad_title": "Spring sale", "photo_url": "https://x.example/p.jpg"}})
    await rig.webhook(envelope(ad))
    view = await rig.conversation_of(PSID)
    assert view.conversation.referral == Referral(
        source="ADS", type="OPEN_THREAD", ref="spring", ad_id="6045246247433",
        updated_at=ad["timestamp"])
    [message] = await rig.messages(view.conversation.id)
    assert message.content["message"]["referral"]["ads_context_data"]["ad_title"] == "Spring sale"

    # Later, an m.me link with a ref, into the thread that exists.
    link = referral({"ref": "winter-menu", "source": "SHORTLINK", "type": "OPEN_THREAD"})
    await rig.webhook(envelope(link))
    conversation = (await rig.conversation_of(PSID)).conversation
    assert conversation.referral == Referral(source="SHORTLINK", type="OPEN_THREAD",
                                             ref="winter-menu", ad_id=None,
                                             updated_at=link["timestamp"])
    assert conversation.message_count == 1  # a referral is no message

    # An older referral, delivered late, does not replace the latest.
    late = referral({"ref": "old", "source": "SHORTLINK", "type": "OPEN_THREAD"})
    late["timestamp"] = ad["timestamp"] - 1
    await rig.webhook(envelope(late))
    assert (await rig.conversation_of(PSID)).conversation.referral.ref == "winter-menu"


async def test_a_get_started_postback_with_a_referral_starts_the_conversation(rig: Rig):
    await rig.connect()
    event = payloads.postback(PAGE_ID, "5151")
    event["postback"]["referral"] = {"ref": "qr-code", "source": "SHORTLINK",
                                     "type": "OPEN_THREAD"}
    await rig.webhook(envelope(event))
    view = await rig.conversation_of("5151")
    assert view.conversation.referral is not None
    assert (view.conversation.referral.ref, view.conversation.message_count) == ("qr-code", 1)


async def test_a_referral_alone_starts_a_conversation_without_messages(rig: Rig):
    await rig.connect()
    await rig.webhook(envelope(referral({"ref": "x", "source": "SHORTLINK",
                                         "type": "OPEN_THREAD"}, psid="6161")))
    view = await rig.conversation_of("6161")
    assert view.conversation.referral is not None and view.conversation.referral.ref == "x"
    assert (view.conversation.message_count, view.last_message) == (0, None)


async def test_an_optin_keeps_its_token_in_the_store_only(rig: Rig):
    await rig.connect()
    await rig.write(PSID, "Tell me about sales")
    body = {"type": "notification_messages", "payload": "SALES",
            "notification_messages_token": "SECRET-NOTIFICATION-TOKEN-1",
            "notification_messages_frequency": "WEEKLY",
            "notification_messages_timezone": "Europe/Berlin",
            "token_expiry_timestamp": 1_900_000_000_000, "user_token_status": "NOT_REFRESHED",
            "title": "Sales"}
    await rig.webhook(envelope(optin(body)))
    conversation = (await rig.conversation_of(PSID)).conversation
    [kept] = conversation.optins
    assert (kept.type, kept.payload, kept.frequency, kept.timezone, kept.expires_at,
            kept.title, kept.has_token) == ("notification_messages", "SALES", "WEEKLY",
                                            "Europe/Berlin", 1_900_000_000_000, "Sales", True)
    assert "SECRET-NOTIFICATION-TOKEN-1" not in repr(conversation)
    assert await rig.store.conversations.optin_token(
        conversation.id, "notification_messages", "SALES") == "SECRET-NOTIFICATION-TOKEN-1"

    # The person stops them: the same opt-in, changed, keeps its token.
    stop = {"type": "notification_messages", "payload": "SALES",
            "notification_messages_status": "STOP NOTIFICATIONS"}
    await rig.webhook(envelope(optin(stop)))
    [kept] = (await rig.conversation_of(PSID)).conversation.optins
    assert (kept.status, kept.has_token) == ("STOP NOTIFICATIONS", True)


async def test_the_store_keeps_one_optin_per_type_and_payload(rig: Rig):
    await rig.connect()
    view = await rig.write(PSID)
    conversations = rig.store.conversations
    cid = view.conversation.id

    def one(payload: str, at: int) -> Optin:
        return Optin(type="notification_messages", payload=payload, updated_at=at)

    assert await conversations.add_optin(cid, one("A", 10), "tok-a")
    assert await conversations.add_optin(cid, one("B", 11), None)
    assert not await conversations.add_optin(cid, one("A", 5), "tok-older")  # older: kept out
    assert await conversations.add_optin(cid, one("A", 12), None)
    optins = (await conversations.get(cid)).optins
    assert [(o.payload, o.updated_at, o.has_token) for o in optins] == [
        ("B", 11, False), ("A", 12, True)]
    assert await conversations.optin_token(cid, "notification_messages", "A") == "tok-a"
    assert await conversations.optin_token(cid, "notification_messages", "B") is None
    assert not await conversations.add_optin("no-such-conversation", one("A", 1), None)
    assert await conversations.refer(cid, Referral("ADS", "OPEN_THREAD", "r", "1", 20))
    assert not await conversations.refer(cid, Referral("ADS", "OPEN_THREAD", "s", "1", 19))


async def test_a_plugin_optin_without_a_person_is_counted_not_applied(rig: Rig):
    await rig.connect()
    await rig.webhook(envelope(
        optin({"ref": "checkout", "user_ref": "ref-from-checkbox"}, psid=None),
        {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": payloads.ts(),
         "account_linking": {"status": "linked", "authorization_code": "code"}},
        {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": payloads.ts(),
         "account_linking": {"status": "unlinked"}},
    ))
    assert (await rig.uc.conversations.page()).total == 0
    assert rig.uc.ingest.unhandled == {"optin.user_ref": 1, "account_linking": 2}


async def test_an_optin_stored_but_not_applied_keeps_its_token_for_the_events_worker(rig: Rig):
    await rig.connect()
    await rig.write(PSID)
    body = {"type": "notification_messages", "payload": "LATER",
            "notification_messages_token": "TOKEN-FOR-THE-WORKER"}
    [event] = parse_envelope(json.dumps(envelope(optin(body))).encode())
    assert event.secret == "TOKEN-FOR-THE-WORKER"
    assert "notification_messages_token" not in event.raw["optin"]
    assert "TOKEN-FOR-THE-WORKER" not in repr(event)
    await rig.store.events.record([event], now_ms() - 120_000)  # a process died after this

    assert await rig.uc.ingest.apply_unprocessed() == 1
    conversation = (await rig.conversation_of(PSID)).conversation
    assert await rig.store.conversations.optin_token(
        conversation.id, "notification_messages", "LATER") == "TOKEN-FOR-THE-WORKER"


def test_an_invalid_optin_is_logged_without_its_token():
    body = {"type": "notification_messages", "payload": "P", "token_expiry_timestamp": "soon",
            "notification_messages_token": "TOKEN-OF-A-BAD-OPTIN"}
    [event] = parse_envelope(json.dumps(envelope(optin(body))).encode())
    assert event.invalid == "optin.token_expiry_timestamp must be an integer time in milliseconds"
    assert "TOKEN-OF-A-BAD-OPTIN" not in json.dumps(event.raw)
    assert event.secret is None


@pytest.mark.parametrize("num_edit", [0, -1, "five", 1001, True, None, 2.5])
def test_an_edit_number_out_of_range_makes_the_edit_invalid(num_edit: Any):
    [event] = parse_envelope(json.dumps(envelope(edit("m_x", "t", num_edit))).encode())
    assert event.invalid == "message_edit.num_edit must be an integer from 1 to 1000"


@pytest.mark.only_store("nx-27017", reason="writes stored documents through the driver")
async def test_unreadable_stored_context_reads_as_none_and_the_rest_stays(rig: Rig):
    await rig.connect()
    view = await rig.write(PSID, "kept", message_id="m_poisoned")
    db = rig.store.db  # type: ignore[attr-defined]
    good = {"type": "notification_messages", "payload": "OK", "updated_at": 5, "token": "x"}
    await db.conversations.update_one({"_id": view.conversation.id}, {"$set": {
        "referral": {"source": 7}, "optins": [{"type": None}, "text", good]}})
    await db.messages.update_one({"mid": "m_poisoned"}, {"$set": {
        "edit_count": 1, "edits": [{"text": "was", "edited_at": 3}, {"edited_at": "later"}]}})

    conversation = (await rig.conversation_of(PSID)).conversation
    assert conversation.referral is None
    assert [(o.payload, o.has_token) for o in conversation.optins] == [("OK", False)]
    [message] = await rig.messages(view.conversation.id)
    assert message.edits == [{"text": "was", "edited_at": 3}]

    await db.conversations.update_one({"_id": view.conversation.id}, {"$set": {"optins": 3}})
    assert (await rig.conversation_of(PSID)).conversation.optins == []
