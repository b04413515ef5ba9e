"""What every store must do alike (run on each store of the rig): counts kept once per item,
guards on state, and queues that take a job or a delivery once."""

from __future__ import annotations

import pytest

from gateway.domain import FetchState, now_ms
from tests.unit.conftest import Rig

pytestmark = pytest.mark.anyio


async def count_of(rig: Rig, conversation_id: str) -> int:
    conversation = await rig.store.conversations.get(conversation_id)
    assert conversation is not None
    return conversation.message_count


async def test_messages_are_counted_once_and_uncounted_once(rig: Rig):
    await rig.connect()
    conversation = (await rig.write("4242")).conversation
    assert await count_of(rig, conversation.id) == 1
    later = conversation.last_message_at + 1

    for _ in range(2):  # applied again (Meta's retry, the events worker): counted once
        await rig.store.conversations.note_messages(conversation.id, "m-2", later, ["m-2"])
    assert await count_of(rig, conversation.id) == 2

    # A second copy of the same echo was removed: it is counted out, once.
    for _ in range(2):
        await rig.store.conversations.uncount(conversation.id, "m-2")
    assert await count_of(rig, conversation.id) == 1
    await rig.store.conversations.uncount(conversation.id, "never-counted")
    assert await count_of(rig, conversation.id) == 1


async def test_a_failed_profile_fetch_only_marks_a_pending_contact(rig: Rig):
    await rig.connect()
    rig.fake.add_profile("4242", "Ada", "Lovelace")
    conversation = (await rig.write("4242")).conversation
    await rig.uc.profiles.fetch_due()
    await rig.store.conversations.profile_failed(conversation.id, "late failure")
    stored = await rig.store.conversations.get(conversation.id)
    assert stored is not None
    assert stored.contact.fetch_state == FetchState.OK
    assert stored.contact.display_name == "Ada Lovelace"
    assert stored.contact.fetch_error is None


async def test_a_job_queued_twice_is_one_job(rig: Rig):
    at = now_ms()
    await rig.store.outbox.add("job-1", at, {"n": 1})
    await rig.store.outbox.add("job-1", at + 5, {"n": 2})
    job = await rig.store.outbox.claim(at + 10, 60_000)
    assert job is not None and job.id == "job-1" and job.data == {"n": 1}
    assert await rig.store.outbox.claim(at + 10, 60_000) is None  # taken, and no second one


async def test_a_delivery_queued_twice_is_one_delivery(rig: Rig):
    at = now_ms()
    deliveries = rig.store.deliveries
    assert await deliveries.enqueue("hook-1", "change-1", "message.created", {"a": 1}, at, 1)
    assert not await deliveries.enqueue("hook-1", "change-1", "message.created", {"a": 2}, at, 2)
    assert await deliveries.queued("hook-1") == 1
    assert await deliveries.enqueue("hook-2", "change-1", "message.created", {"a": 1}, at, 3)
    assert await deliveries.queued("hook-1") == 1
