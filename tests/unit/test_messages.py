"""Messages: pages with cursors, sends (pending, then delivered or failed by the sender's pass),
retries, resends and suggested replies."""

from __future__ import annotations

import asyncio

import pytest

from gateway.domain import DeliveryState, SenderType
from gateway.errors import Conflict, Forbidden, InvalidInput, NotFound
from tests.unit.conftest import PAGE_TOKEN, RETRY_DUE, Rig

pytestmark = pytest.mark.anyio


async def deliver_all(rig: Rig, conversation_id: str) -> None:
    """Run the sender's passes as its worker does, one after another, until every message sent
    to the conversation is delivered."""
    for _ in range(20):
        await asyncio.sleep(RETRY_DUE)
        await rig.uc.messages.deliver_due()
        if {m.state for m in await rig.messages(conversation_id)
                if m.sender_type is SenderType.APP} == {DeliveryState.DELIVERED}:
            return
    raise AssertionError("messages still undelivered after 20 passes")


async def a_conversation(rig: Rig) -> str:
    await rig.connect()
    return (await rig.write("4242", "Hi, are you open today?")).conversation.id


async def test_cursors_walk_the_messages_newest_first(rig: Rig):
    await rig.connect()
    for n in range(5):
        view = await rig.write("4242", f"message {n}")
    conversation_id = view.conversation.id

    pages, cursor = [], None
    while True:
        page = await rig.uc.messages.page(conversation_id, cursor=cursor, page_size=2)
        assert page.total == 5
        pages.append([m.content["message"]["text"] for m in page.items])
        if not page.has_more:
            break
        cursor = page.next_cursor

    assert pages == [["message 4", "message 3"], ["message 2", "message 1"], ["message 0"]]
    with pytest.raises(InvalidInput, match="cursor is not a message of this conversation"):
        await rig.uc.messages.page(conversation_id, cursor="no-such-message")
    with pytest.raises(InvalidInput, match="page_size"):
        await rig.uc.messages.page(conversation_id, page_size=0)
    with pytest.raises(NotFound):
        await rig.uc.messages.page("no-such-conversation")


async def test_a_send_is_pending_then_delivered_through_the_send_api(rig: Rig):
    conversation_id = await a_conversation(rig)

    sent = await rig.uc.messages.send(conversation_id, {"text": "Yes, until 6 pm."})

    assert (sent.state, sent.sender_type) == (DeliveryState.PENDING, SenderType.APP)
    assert rig.signals.sends.take()
    view = await rig.uc.conversations.get(conversation_id)
    assert view.last_message.id == sent.id and view.conversation.message_count == 2
    assert await rig.uc.messages.deliver_due() == 1

    delivered = (await rig.messages(conversation_id))[0]
    assert delivered.id == sent.id and delivered.state is DeliveryState.DELIVERED
    assert delivered.source_message_id == "m_fake_1"
    [call] = rig.fake.calls_of("send")
    assert call.query["access_token"] == PAGE_TOKEN
    assert call.json == {"recipient": {"id": "4242"}, "messaging_type": "RESPONSE",
                         "message": {"text": "Yes, until 6 pm.", "metadata": "mg:" + sent.id}}
    assert await rig.uc.messages.deliver_due() == 0  # nothing left to send


async def test_a_tagged_send_carries_its_tag(rig: Rig):
    conversation_id = await a_conversation(rig)

    await rig.uc.messages.send(conversation_id, {"text": "Your order shipped"},
                               tag="POST_PURCHASE_UPDATE")
    await rig.uc.messages.deliver_due()

    [call] = rig.fake.calls_of("send")
    assert (call.json["messaging_type"], call.json["tag"]) == \
        ("MESSAGE_TAG", "POST_PURCHASE_UPDATE")


@pytest.mark.parametrize("message, options, error", [
    ({}, {}, "message must be a non-empty object"),
    ({"text": "x"}, {"messaging_type": "SHOUT"}, "messaging_type must be one of"),
    ({"text": "x"}, {"messaging_type": "MESSAGE_TAG"}, "tag is required"),
    ({"text": "x"}, {"messaging_type": "UPDATE", "tag": "T"}, "tag goes with"),
])
async def test_bad_sends_are_refused_and_store_nothing(rig: Rig, message, options, error):
    conversation_id = await a_conversation(rig)

    with pytest.raises(InvalidInput, match=error):
        await rig.uc.messages.send(conversation_id, message, **options)
    assert len(await rig.messages(conversation_id)) == 1


async def test_a_send_to_an_unknown_or_disconnected_conversation_is_refused(rig: Rig):
    conversation_id = await a_conversation(rig)
    with pytest.raises(NotFound):
        await rig.uc.messages.send("no-such-conversation", {"text": "x"})

    channel = (await rig.uc.channels.connected())[0]
    await rig.uc.channels.disconnect(channel.id)
    with pytest.raises(Forbidden, match="disconnected"):
        await rig.uc.messages.send(conversation_id, {"text": "x"})


async def test_a_refused_send_fails_with_metas_reason(rig: Rig):
    conversation_id = await a_conversation(rig)
    rig.fake.fail("send", "outside_window")

    sent = await rig.uc.messages.send(conversation_id, {"text": "Late reply"})
    await rig.uc.messages.deliver_due()

    failed = (await rig.messages(conversation_id))[0]
    assert failed.id == sent.id and failed.state is DeliveryState.FAILED
    assert failed.error["message"] == "(#10) This message is sent outside of allowed window."
    assert (failed.error["code"], failed.error["transient"]) == (10, False)
    assert failed.metadata()["error"] == failed.error["message"]
    assert len(rig.fake.calls_of("send")) == 1  # not tried again
    assert (await rig.uc.channels.connected())[0].token_valid


async def test_a_refused_page_token_marks_the_channel(rig: Rig):
    conversation_id = await a_conversation(rig)
    rig.fake.fail("send", "bad_token")

    await rig.uc.messages.send(conversation_id, {"text": "x"})
    await rig.uc.messages.deliver_due()

    assert (await rig.messages(conversation_id))[0].error["code"] == 190
    channel = (await rig.uc.channels.connected())[0]
    assert channel.connected and not channel.token_valid


async def test_a_transient_failure_is_retried(rig: Rig):
    conversation_id = await a_conversation(rig)
    rig.fake.fail("send", "server_error")

    sent = await rig.uc.messages.send(conversation_id, {"text": "x"})
    assert await rig.uc.messages.deliver_due() == 1
    assert (await rig.messages(conversation_id))[0].state is DeliveryState.PENDING

    await rig.drain(rig.uc.messages.deliver_due)

    message = (await rig.messages(conversation_id))[0]
    assert (message.id, message.state) == (sent.id, DeliveryState.DELIVERED)
    assert len(rig.fake.calls_of("send")) == 2


async def test_transient_failures_give_up_after_the_last_attempt(rig: Rig):
    conversation_id = await a_conversation(rig)
    attempts = rig.settings.send_max_attempts
    rig.fake.fail("send", "rate_limit", times=attempts)

    await rig.uc.messages.send(conversation_id, {"text": "x"})
    await rig.drain(rig.uc.messages.deliver_due)

    failed = (await rig.messages(conversation_id))[0]
    assert failed.state is DeliveryState.FAILED
    assert (failed.error["code"], failed.error["transient"]) == (613, True)
    assert len(rig.fake.calls_of("send")) == attempts


async def test_a_failed_message_is_resent_as_it_was_first_sent(rig: Rig):
    conversation_id = await a_conversation(rig)
    rig.fake.fail("send", "unavailable_user")
    sent = await rig.uc.messages.send(conversation_id, {"text": "x"}, messaging_type="UPDATE")
    await rig.uc.messages.deliver_due()
    rig.signals.sends.take()

    again = await rig.uc.messages.resend(sent.id)

    assert again.state is DeliveryState.PENDING and again.error is None
    assert rig.signals.sends.take()
    await rig.uc.messages.deliver_due()
    delivered = (await rig.messages(conversation_id))[0]
    assert (delivered.id, delivered.state) == (sent.id, DeliveryState.DELIVERED)
    assert [c.json["messaging_type"] for c in rig.fake.calls_of("send")] == ["UPDATE", "UPDATE"]
    with pytest.raises(Conflict, match="not in a failed state"):
        await rig.uc.messages.resend(sent.id)
    with pytest.raises(NotFound):
        await rig.uc.messages.resend("no-such-message")


async def test_a_send_whose_channel_was_disconnected_meanwhile_fails(rig: Rig):
    conversation_id = await a_conversation(rig)
    sent = await rig.uc.messages.send(conversation_id, {"text": "x"})
    await rig.uc.channels.disconnect((await rig.uc.channels.connected())[0].id)

    await rig.uc.messages.deliver_due()

    failed = (await rig.messages(conversation_id))[0]
    assert (failed.id, failed.state) == (sent.id, DeliveryState.FAILED)
    assert failed.error["message"] == "the conversation's channel is disconnected"
    assert rig.fake.calls_of("send") == []
    with pytest.raises(Forbidden):
        await rig.uc.messages.resend(sent.id)


async def test_suggested_replies_are_merged_by_id(rig: Rig):
    conversation_id = await a_conversation(rig)
    message_id = (await rig.messages(conversation_id))[0].id

    await rig.uc.messages.suggest_replies(message_id, {"a": {"content": {"text": "Yes"}}})
    message = await rig.uc.messages.suggest_replies(
        message_id, {"b": {"content": {"text": "No"}, "score": 0.5}})

    assert message.suggestions == {"a": {"content": {"text": "Yes"}},
                                   "b": {"content": {"text": "No"}, "score": 0.5}}
    assert (await rig.messages(conversation_id))[0].metadata()["suggestions"] == \
        message.suggestions
    with pytest.raises(InvalidInput, match="non-empty object"):
        await rig.uc.messages.suggest_replies(message_id, {})
    with pytest.raises(InvalidInput, match="suggestions.c must be an object with a content"):
        await rig.uc.messages.suggest_replies(message_id, {"c": {"text": "no content"}})
    with pytest.raises(NotFound):
        await rig.uc.messages.suggest_replies("no-such-message", {"a": {"content": {}}})


async def test_messages_by_ids_answer_in_the_order_asked(rig: Rig):
    conversation_id = await a_conversation(rig)
    message_id = (await rig.messages(conversation_id))[0].id

    found = await rig.uc.messages.by_ids([message_id, "nope"])

    assert found[0] is not None and found[0].id == message_id and found[1] is None


# --- delivering several conversations at once ---------------------------------------------------


async def test_lanes_deliver_conversations_side_by_side_each_in_queue_order(rig: Rig):
    await rig.connect()
    people = [str(5000 + n) for n in range(4)]
    conversations = {p: (await rig.write(p, "hi")).conversation.id for p in people}
    rig.fake.jitter["send"] = 0.01  # answers come back in any order
    for n in range(5):
        for person in people:
            await rig.uc.messages.send(conversations[person], {"text": f"{person} {n}"})

    assert await rig.uc.messages.deliver_due() == 20

    calls = rig.fake.calls_of("send")
    assert len({c.json["message"]["metadata"] for c in calls}) == len(calls) == 20
    for person in people:
        texts = [c.json["message"]["text"] for c in calls if c.json["recipient"]["id"] == person]
        assert texts == [f"{person} {n}" for n in range(5)]
        assert {m.state for m in await rig.messages(conversations[person])
                if m.sender_type is SenderType.APP} == {DeliveryState.DELIVERED}
    assert await rig.uc.messages.deliver_due() == 0


async def test_a_rate_error_slows_the_page_and_the_message_is_sent_again(rig: Rig):
    conversation_id = await a_conversation(rig)
    rig.fake.fail("send", "rate_limit")
    for n in range(3):
        await rig.uc.messages.send(conversation_id, {"text": f"m{n}"})
    limiter = rig.uc.messages.limiter
    channel = (await rig.uc.channels.connected())[0]
    full = limiter.rate(channel.id, False)

    await rig.uc.messages.deliver_due()  # m0 answered 613, to be tried again
    assert limiter.rate(channel.id, False) < full
    await deliver_all(rig, conversation_id)

    texts = [c.json["message"]["text"] for c in rig.fake.calls_of("send")]
    assert texts == ["m0", "m0", "m1", "m2"]  # the newer ones waited for m0's second try
    assert {m.state for m in await rig.messages(conversation_id)
            if m.sender_type is SenderType.APP} == {DeliveryState.DELIVERED}


async def test_claiming_many_jobs_takes_the_oldest_once(rig: Rig):
    for n in range(5):
        await rig.store.outbox.add(f"job{n}", 100 + n)
    first = await rig.store.outbox.claim_many(200, 10_000, 3)
    second = await rig.store.outbox.claim_many(200, 10_000, 3)
    assert [j.id for j in first] == ["job0", "job1", "job2"]
    assert [j.id for j in second] == ["job3", "job4"]
    assert await rig.store.outbox.claim_many(200, 10_000, 3) == []
    assert [j.id for j in await rig.store.outbox.claim_many(10_300, 1, 9)] == [
        "job0", "job1", "job2", "job3", "job4"]  # the leases ran out


async def test_a_message_waiting_for_a_retry_holds_the_newer_ones_of_its_conversation(rig: Rig):
    conversation_id = await a_conversation(rig)
    other = (await rig.write("4343", "me too")).conversation.id
    rig.fake.fail("send", "server_error")
    first = await rig.uc.messages.send(conversation_id, {"text": "first"})
    second = await rig.uc.messages.send(conversation_id, {"text": "second"})
    elsewhere = await rig.uc.messages.send(other, {"text": "elsewhere"})
    assert first.sent_at < second.sent_at  # made in order, in whatever millisecond

    await rig.uc.messages.deliver_due()  # first fails for now; second waits; elsewhere goes
    sent = [c.json["message"]["text"] for c in rig.fake.calls_of("send")]
    assert "second" not in sent and "elsewhere" in sent

    await deliver_all(rig, conversation_id)
    sent = [c.json["message"]["text"] for c in rig.fake.calls_of("send")
            if c.json["recipient"]["id"] == "4242"]
    assert sent == ["first", "first", "second"]
    states = {m.id: m.state for m in await rig.messages(conversation_id)}
    assert states[first.id] is states[second.id] is DeliveryState.DELIVERED
    assert elsewhere.id not in states


# --- sends started at once, in the process that took them -------------------------------------


@pytest.mark.settings(SEND_AT_ONCE="1")
async def test_a_send_starts_at_once_without_the_sender_worker(rig: Rig):
    conversation_id = await a_conversation(rig)

    sent = await rig.uc.messages.send(conversation_id, {"text": "at once"})
    await rig.uc.messages.drain()  # no deliver_due: nothing took it from the queue

    [message] = [m for m in await rig.messages(conversation_id) if m.id == sent.id]
    assert message.state is DeliveryState.DELIVERED
    assert [c.json["message"]["text"] for c in rig.fake.calls_of("send")] == ["at once"]
    # Its job is done: a pass of the sender finds nothing to send, and nothing goes twice.
    assert await rig.uc.messages.deliver_due() == 0
    assert len(rig.fake.calls_of("send")) == 1
    # Counted once, as a send through the queue is.
    assert (await rig.store.conversations.get(conversation_id)).message_count == 2


@pytest.mark.settings(SEND_AT_ONCE="1")
async def test_sends_started_at_once_keep_each_conversations_order(rig: Rig):
    await rig.connect()
    people = [str(5100 + n) for n in range(4)]
    conversations = {p: (await rig.write(p, "hi")).conversation.id for p in people}
    rig.fake.jitter["send"] = 0.01  # answers come back in any order
    for n in range(5):
        for person in people:  # the first of each conversation starts at once, the rest queue
            await rig.uc.messages.send(conversations[person], {"text": f"{person} {n}"})

    for _ in range(20):
        await rig.uc.messages.deliver_due()
        await rig.uc.messages.drain()
        if len(rig.fake.calls_of("send")) == 20:
            break
        await asyncio.sleep(0.3)  # a send behind one under way looks again after BEHIND_MS

    calls = rig.fake.calls_of("send")
    assert len({c.json["message"]["metadata"] for c in calls}) == len(calls) == 20
    for person in people:
        texts = [c.json["message"]["text"] for c in calls if c.json["recipient"]["id"] == person]
        assert texts == [f"{person} {n}" for n in range(5)]


@pytest.mark.settings(SEND_AT_ONCE="1")
async def test_a_send_started_at_once_left_unfinished_is_sent_by_the_queue_once(rig: Rig):
    conversation_id = await a_conversation(rig)
    rig.running.stopping = True  # a process stopping hands nothing over: the queue has it
    sent = await rig.uc.messages.send(conversation_id, {"text": "queued"})
    assert rig.fake.calls_of("send") == []
    rig.running.stopping = False

    assert await rig.uc.messages.deliver_due() == 1

    [message] = [m for m in await rig.messages(conversation_id) if m.id == sent.id]
    assert message.state is DeliveryState.DELIVERED
    assert len(rig.fake.calls_of("send")) == 1


@pytest.mark.settings(SEND_AT_ONCE="1")
async def test_sends_made_at_once_to_one_conversation_go_out_in_order_without_waiting(rig: Rig):
    """A send is not started at once while an older one to its conversation is being stored
    beside it: started, the newer would find the older still pending and wait behind it."""
    conversation_id = await a_conversation(rig)

    sent = await asyncio.gather(*(rig.uc.messages.send(conversation_id, {"text": f"m{n}"})
                                  for n in range(6)))
    passes = 0
    while len(rig.fake.calls_of("send")) < 6 and passes < 100:
        await rig.uc.messages.deliver_due()
        await rig.uc.messages.drain()
        await asyncio.sleep(0.005)  # sends in one millisecond are given the next ones
        passes += 1

    states = {m.id: m.state for m in await rig.messages(conversation_id)}
    assert [states[m.id] for m in sent] == [DeliveryState.DELIVERED] * 6
    # None waited behind an older one (BEHIND_MS, 250 ms, when it does).
    assert passes * 0.005 < 0.2
    sent_at = {m.content["text"]: m.sent_at for m in sent}  # sends in one moment may tie
    times = [sent_at[c.json["message"]["text"]] for c in rig.fake.calls_of("send")]
    assert len(times) == 6 and times == sorted(times)
