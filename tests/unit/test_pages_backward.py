"""Backward pages (GraphQL's `last`/`before`), on each store of the rig: walked from the end,
they give every item once, in the forward order, with the very cursors forward pages give, and
say rightly whether more precede or follow. Ties (items of one millisecond) sit across page
boundaries, where a backward read must compare ids."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from gateway.domain import ConversationFilter, Page
from gateway.errors import InvalidInput
from gateway.store import Store
from tests import payloads
from tests.unit.conftest import PAGE_ID, Rig

pytestmark = pytest.mark.anyio

Read = Callable[[str | None, int], Awaitable[Page]]


async def forward(read: Read, size: int) -> list[tuple[str, str]]:
    """(id, cursor) of every item, walked forward `size` at a time."""
    seen: list[tuple[str, str]] = []
    cursor = None
    while True:
        page = await read(cursor, size)
        seen += [(_id(item), c) for item, c in zip(page.items, page.cursors, strict=True)]
        if not page.has_more:
            return seen
        cursor = page.next_cursor


async def backward(read: Read, size: int) -> list[tuple[str, str]]:
    """(id, cursor) of every item, walked from the end `size` at a time, in the list's order."""
    seen: list[tuple[str, str]] = []
    cursor = None
    while True:
        page = await read(cursor, size)
        assert len(page.items) == len(page.cursors) <= size
        assert page.has_more == (cursor is not None)  # the `before` item follows, at least
        seen = [(_id(item), c) for item, c in zip(page.items, page.cursors, strict=True)] + seen
        if page.previous_cursor is None:
            return seen
        # (a page may hold no item, when what it read could not be read: it still moves on)
        assert page.first_cursor is not None and page.first_cursor != cursor
        cursor = page.first_cursor


def _id(item) -> str:
    return getattr(item, "conversation", item).id


async def fill(rig: Rig) -> tuple[str, int]:
    """Nine messages in one conversation, three of them in one millisecond, and seven
    conversations, three of them last written in one millisecond. The long conversation's id."""
    await rig.connect()
    at = payloads.ts() - 60_000
    moments = [at, at + 1, at + 2, at + 2, at + 2, at + 3, at + 4, at + 5, at + 6]
    await rig.webhook(payloads.envelope(PAGE_ID, *(
        payloads.text(PAGE_ID, "4000", f"m{n}", at=t) for n, t in enumerate(moments))))
    others = [at + 10, at + 11, at + 11, at + 11, at + 12, at + 13]
    await rig.webhook(payloads.envelope(PAGE_ID, *(
        payloads.text(PAGE_ID, f"41{n}", "hi", at=t) for n, t in enumerate(others))))
    return (await rig.conversation_of("4000")).conversation.id, len(moments)


async def test_messages_walked_backward_are_the_forward_list_with_its_cursors(rig: Rig):
    conversation_id, count = await fill(rig)
    stored = await rig.store.conversations.get(conversation_id)
    assert stored is not None

    def read(before: bool) -> Read:
        pages = rig.store.messages.page_before if before else rig.store.messages.page
        return lambda cursor, size: pages(conversation_id, cursor, size, stored.message_count)

    everything = await forward(read(False), 100)
    assert len(everything) == count
    for size in (1, 2, 3, 4, 100):
        assert await backward(read(True), size) == everything
        assert await forward(read(False), size) == everything

    # The oldest two; and the two just before the fourth newest, given its cursor.
    oldest = await rig.store.messages.page_before(conversation_id, None, 2, count)
    assert [m.id for m in oldest.items] == [i for i, _ in everything[-2:]]
    assert not oldest.has_more and oldest.previous_cursor is not None
    middle = await rig.store.messages.page_before(conversation_id, everything[3][1], 2, count)
    assert [m.id for m in middle.items] == [i for i, _ in everything[1:3]]
    assert middle.has_more and middle.total == count
    # Meeting forward: after the page's last cursor comes its `before` item.
    after = await rig.store.messages.page(conversation_id, middle.last_cursor, 1, count)
    assert [m.id for m in after.items] == [everything[3][0]]
    newest = await rig.store.messages.page_before(conversation_id, everything[2][1], 5, count)
    assert [m.id for m in newest.items] == [i for i, _ in everything[:2]]
    assert newest.previous_cursor is None  # nothing precedes the newest

    with pytest.raises(InvalidInput):
        await rig.store.messages.page_before(conversation_id, "no-such-message", 2, count)


async def test_conversations_and_contacts_walked_backward_are_their_forward_lists(rig: Rig):
    await fill(rig)
    everyone = ConversationFilter()

    def conversations(before: bool) -> Read:
        pages = rig.store.conversations.page_before if before else rig.store.conversations.page
        return lambda cursor, size: pages(everyone, cursor, size)

    listed = await forward(conversations(False), 100)
    assert len(listed) == 7
    for size in (1, 2, 3, 100):
        assert await backward(conversations(True), size) == listed
    last = await rig.store.conversations.page_before(everyone, None, 2)
    assert last.total == 7 and [c.id for c in last.items] == [i for i, _ in listed[-2:]]

    # A filter narrows a backward page as it does a forward one (the unread ones: all here).
    unread = ConversationFilter(unread=True)
    page = await rig.store.conversations.page_before(unread, listed[2][1], 5)
    assert [c.id for c in page.items] == [i for i, _ in listed[:2]]

    await rig.uc.contacts.import_many([{"display_name": f"Card {n}"} for n in range(5)])
    cards = await forward(lambda c, size: rig.store.contacts.page(c, size), 100)
    assert len(cards) == 5  # (conversations' people become contacts once their profile is in)
    for size in (1, 2, 100):
        assert await backward(lambda c, n: rig.store.contacts.page_before(c, n), size) == cards


@pytest.mark.only_store("nx-27017", reason="stores unreadable documents through the driver")
async def test_unreadable_messages_are_passed_over_backward_as_forward(rig: Rig):
    conversation_id, count = await fill(rig)
    store = rig.store
    assert isinstance(store, Store)

    def read(before: bool) -> Read:
        pages = store.messages.page_before if before else store.messages.page
        return lambda cursor, size: pages(conversation_id, cursor, size, count)

    everything = await forward(read(False), 100)
    broken = [everything[1][0], everything[4][0], everything[-1][0]]  # one of them a tie
    for message_id in broken:
        await store.messages.c.update_one({"_id": message_id}, {"$set": {"state": "lost"}})
    readable = [(i, c) for i, c in everything if i not in broken]
    assert await forward(read(False), 100) == readable
    for size in (1, 2, 3):
        assert await backward(read(True), size) == readable
    # A page ending on an unreadable document goes back from above it, not from its last item.
    page = await store.messages.page_before(conversation_id, everything[3][1], 2, count)
    assert [m.id for m in page.items] == [everything[2][0]]
    assert page.first_cursor == everything[1][1] and page.previous_cursor is not None


async def test_the_use_cases_page_backward_and_read_objects_by_ids(rig: Rig):
    conversation_id, _ = await fill(rig)
    first = await rig.uc.messages.page(conversation_id, page_size=3)
    back = await rig.uc.messages.page(conversation_id, page_size=3, backward=True)
    assert len(back.items) == 3 and back.items[-1].sent_at == min(
        m.sent_at for m in await rig.messages(conversation_id))
    listed = await rig.uc.conversations.page(page_size=2, backward=True)
    assert len(listed.items) == 2 and listed.items[0].channel is not None  # views, as forward

    ids = [conversation_id, "missing", first.items[0].id]
    assert [c.id if c else None for c in await rig.uc.conversations.by_ids(ids)] == \
        [conversation_id, None, None]
    card = await rig.uc.contacts.create({"display_name": "Ada"})
    assert [c.id if c else None for c in await rig.uc.contacts.by_ids([card.id, "x"])] == \
        [card.id, None]
    webhook = await rig.uc.webhooks.subscribe("https://hooks.example/relay")
    found = await rig.uc.webhooks.by_ids(["x", webhook.id])
    assert found[0] is None and found[1] is not None and found[1][0].id == webhook.id
