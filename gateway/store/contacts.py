"""Contacts in MongoDB: the cards (`contacts`), and which contact each conversation's person is
(`contact_links`, one document per conversation, keyed by the conversation id).

The link is what makes a conversation's contact exist once: whoever links the conversation first
(the profile job, or `contacts.info` by conversation id before that job ran) names the contact,
every later caller reads that name back, and a merge moves the links. Its `_id` is the unique
key, so no other unique index is needed on either server.

Every query has a shape both servers answer from an index (see gateway/store/mongo.py):
- a card or a link by `_id`;
- the links of a contact by `contact_id` (`$eq`, indexed);
- the list in descending `sort_key` order (creation time, then id: unique, so a cursor is one
  range on one indexed field, never an `$or`);
- its `total` is a count kept with the writes (`counters`, `_id` "contacts"): nx-27017 answers
  the `count` command on a whole collection by reading every row. It is added to right after
  contacts are stored and taken from right after they are deleted, so a process killed between
  the two leaves it off by those contacts. Missing (a store that never had one), it is counted
  once from the collection.

A card is changed by replacing it whole, guarded by its `version`: replacements keep every JSON
type on nx-27017 (a plain `$set` of `true` there stores 1), and a concurrent change to the same
card is read again and applied on top instead of undone.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, fields
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from gateway.domain import ContactCard, Page
from gateway.errors import Conflict, InvalidInput
from gateway.store.documents import read, validate
from gateway.store.queries import count, eq

Doc = Mapping[str, Any]
# Attempts at a guarded replacement before giving up: each lost one means another change landed.
REPLACE_ATTEMPTS = 20
COUNTER = "contacts"  # the `counters` document that counts them
_SORT_KEY = re.compile(r"[0-9]{15}:.{1,200}", flags=re.DOTALL)
_CARD_FIELDS = [f.name for f in fields(ContactCard)]


def sort_key(card: ContactCard) -> str:
    """Newest first when sorted descending: the creation time, zero-padded, then the id."""
    return f"{card.created_at:015d}:{card.id}"


def _cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _after(cursor: str) -> str:
    try:
        key = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
    except (ValueError, binascii.Error, UnicodeError):
        key = ""
    if not _SORT_KEY.fullmatch(key):
        raise InvalidInput("cursor is not one this gateway handed out")
    return key


class ContactRepo:
    def __init__(self, contacts, links, counters) -> None:
        self.c = contacts
        self.links = links
        self.counters = counters

    async def get(self, contact_id: str) -> ContactCard | None:
        return _contact(await self.c.find_one({"_id": contact_id}))

    async def insert(self, card: ContactCard) -> ContactCard:
        """Store a new card; one stored under its id already is answered instead."""
        try:
            await self.c.insert_one(_contact_doc(card, 0))
        except DuplicateKeyError:
            stored = await self.get(card.id)
            if stored is None:
                raise Conflict(f"the stored contact {card.id} cannot be read "
                               "(the gateway's log says why)") from None
            return stored
        await self._count(1)
        return card

    async def insert_many(self, cards: list[ContactCard]) -> None:
        if cards:
            await self.c.insert_many([_contact_doc(card, 0) for card in cards], ordered=True)
            await self._count(len(cards))

    async def _count(self, n: int) -> None:
        await self.counters.update_one({"_id": COUNTER}, {"$inc": {"value": n}})

    async def total(self) -> int:
        doc = await self.counters.find_one({"_id": COUNTER})
        if doc is None:
            with contextlib.suppress(DuplicateKeyError):
                await self.counters.insert_one({"_id": COUNTER, "value": await count(self.c, {})})
            doc = await self.counters.find_one({"_id": COUNTER}) or {}
        value = doc.get("value")
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    async def page(self, cursor: str | None, size: int) -> Page:
        """Newest first; `total`: every stored card (unreadable ones too)."""
        query: dict[str, Any] = {"sort_key": {"$lt": _after(cursor)}} if cursor else {}
        docs = await self.c.find(query).sort("sort_key", DESCENDING).limit(size + 1).to_list()
        total = await self.total()
        items: list[ContactCard] = []
        cursors: list[str] = []
        for doc in docs[:size]:
            if (card := _contact(doc)) is not None:
                items.append(card)
                cursors.append(_cursor(str(doc.get("sort_key"))))
        last = docs[:size][-1].get("sort_key") if docs[:size] else None
        return Page(items=items, cursors=cursors, has_more=len(docs) > size,
                    previous_cursor=cursor, total=total,
                    end_cursor=_cursor(last) if isinstance(last, str) else None)

    async def page_before(self, cursor: str | None, size: int) -> Page:
        """The `size` cards just before `cursor` in `page`'s order (the oldest without one),
        newest first, with `page`'s cursors: the same index, read the other way."""
        query: dict[str, Any] = {"sort_key": {"$gt": _after(cursor)}} if cursor else {}
        docs = await self.c.find(query).sort("sort_key", ASCENDING).limit(size + 1).to_list()
        total = await self.total()
        shown = docs[:size][::-1]
        items: list[ContactCard] = []
        cursors: list[str] = []
        for doc in shown:
            if (card := _contact(doc)) is not None:
                items.append(card)
                cursors.append(_cursor(str(doc.get("sort_key"))))
        first = shown[0].get("sort_key") if shown else None
        start = _cursor(first) if isinstance(first, str) else None
        return Page(items=items, cursors=cursors, has_more=cursor is not None,
                    previous_cursor=(start or (cursors[0] if cursors else None))
                    if len(docs) > size else None,
                    total=total, start_cursor=start)

    async def many(self, ids: list[str]) -> dict[str, ContactCard]:
        docs = await self.c.find({"_id": {"$in": list(set(ids))}}).to_list()
        return {card.id: card for doc in docs if (card := _contact(doc)) is not None}

    async def change(self, contact_id: str,
                     apply: Callable[[ContactCard], ContactCard]) -> ContactCard | None:
        """Replace the card with `apply(card)`, unless another change lands first: then `apply`
        runs again on the card as it is now. None: no such card (or one that cannot be read)."""
        for _ in range(REPLACE_ATTEMPTS):
            doc = await self.c.find_one({"_id": contact_id})
            card = _contact(doc)
            if doc is None or card is None:
                return None
            version = doc.get("version", 0)
            changed = apply(card)
            result = await self.c.replace_one({"_id": contact_id, "version": eq(version)},
                                              _contact_doc(changed, version + 1))
            if result.matched_count:
                return changed
        raise Conflict(f"contact {contact_id} is changing too often to change it now; "
                       "try again")

    async def delete(self, contact_id: str) -> bool:
        deleted = (await self.c.delete_one({"_id": contact_id})).deleted_count == 1
        if deleted:
            await self._count(-1)
        return deleted

    # --- links: which contact a conversation's person is ---------------------------------

    async def linked(self, conversation_id: str) -> str | None:
        doc = await self.links.find_one({"_id": conversation_id})
        contact_id = doc.get("contact_id") if doc else None
        return contact_id if isinstance(contact_id, str) else None

    async def link(self, conversation_id: str, contact_id: str) -> str:
        """Link the conversation to `contact_id` unless it is linked: the contact it is linked
        to, whichever linked it first."""
        try:
            await self.links.insert_one({"_id": conversation_id, "contact_id": contact_id})
        except DuplicateKeyError:
            linked = await self.linked(conversation_id)
            if linked is None:
                raise
            return linked
        return contact_id

    async def conversations_of(self, contact_id: str) -> list[str]:
        docs = self.links.find({"contact_id": eq(contact_id)}, {"_id": 1})
        return [doc["_id"] async for doc in docs]

    async def move_links(self, source_id: str, destination_id: str) -> None:
        await self.links.update_many({"contact_id": eq(source_id)},
                                     {"$set": {"contact_id": destination_id}})

    async def unlink_all(self, contact_id: str) -> None:
        await self.links.delete_many({"contact_id": eq(contact_id)})


def _contact_doc(card: ContactCard, version: int) -> dict[str, Any]:
    doc = asdict(card)
    doc["_id"] = doc.pop("id")
    doc["sort_key"] = sort_key(card)
    doc["version"] = version
    return doc


def _contact(doc: Doc | None) -> ContactCard | None:
    """The card a document holds; None: none, or unreadable (skipped with a warning)."""
    return read("contacts", doc, to_contact)


def to_contact(doc: Doc) -> ContactCard:
    values = {name: doc.get(name) for name in _CARD_FIELDS if name != "id"}
    for name in ("via", "address", "conversations", "metadata"):
        values[name] = values[name] or {}
    values["merge_history"] = values["merge_history"] or []
    return validate(ContactCard, {**values, "id": doc["_id"]})
