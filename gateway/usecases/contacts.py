"""Contacts: Airy's address book of the people who write to the pages, and of others.

Each conversation's person becomes a contact once: the new conversation's profile job links the
conversation to a new contact (`contact_of`, idempotent: the job is retried after a crash), and a
profile fetched later gives the contact its name and picture (`name_contact`), as does a name
given to the conversation's person by hand (`conversations.update-contact`). Asking for a
conversation's contact before that job ran makes it the same way, so whichever comes first makes
it and the other finds it. Users create, import, change, delete and merge contacts.

A display name a user gives a contact through `update` is also given to each conversation linked
to it, since Airy's inbox shows the conversation's name; a name the profile brings is the
conversation's already. The `conversations` a user gives are kept as given: they link nothing.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from gateway.domain import (
    CONTACT_OBJECT_FIELDS,
    CONTACT_TEXT_FIELDS,
    Channel,
    ContactCard,
    Conversation,
    JsonObject,
    Page,
    iso,
    new_id,
    now_ms,
)
from gateway.errors import InvalidInput, NotFound
from gateway.store.ports import StorePort
from gateway.usecases.base import UseCase, check_page_size
from gateway.validation import check_field_names, check_storable

# A contact keeps copies of the contacts merged into it, up to this many (the oldest dropped).
MERGE_HISTORY_MAX = 50
SOURCE = "facebook"  # every conversation's source


class Contacts(UseCase):
    """Contacts made for conversations, or by users; changed, deleted and merged by users."""

    async def create(self, fields: dict[str, Any]) -> ContactCard:
        card = _new_card(new_id(), now_ms(), fields)
        return await self.store.contacts.insert(card)

    async def import_many(self, items: list[dict[str, Any]]) -> list[ContactCard]:
        """Every contact checked first, then stored in one round trip, in the order given."""
        at = now_ms()
        cards = [_new_card(new_id(), at, fields, f"contacts.{n}") for n, fields in
                 enumerate(items)]
        await self.store.contacts.insert_many(cards)
        return cards

    async def page(self, cursor: str | None = None, page_size: int = 20,
                   backward: bool = False) -> Page:
        """Newest first; `backward`: the page before `cursor` (the last page without one)."""
        check_page_size(page_size)
        if backward:
            return await self.store.contacts.page_before(cursor, page_size)
        return await self.store.contacts.page(cursor, page_size)

    async def by_ids(self, ids: list[str]) -> list[ContactCard | None]:
        """For DataLoaders: one query for any number of ids, answers in the order asked."""
        found = await self.store.contacts.many(ids)
        return [found.get(i) for i in ids]

    async def get(self, contact_id: str) -> ContactCard:
        card = await self.store.contacts.get(contact_id)
        if card is None:
            raise NotFound(f"contact {contact_id} not found")
        return card

    async def of_conversation(self, conversation_id: str) -> ContactCard:
        """The contact of the conversation's person, made now if its profile job has not run."""
        linked = await self.store.contacts.linked(conversation_id)
        card = await self.store.contacts.get(linked) if linked else None
        if card is not None:
            return card
        conversation = await self.store.conversations.get(conversation_id)
        if conversation is None:
            raise NotFound(f"conversation {conversation_id} not found")
        channel = await self.store.channels.get(conversation.channel_id)
        return await contact_of(self.store, conversation, channel)

    async def update(self, contact_id: str, changes: dict[str, Any]) -> ContactCard:
        """Change the fields given; `""` removes a field, or one key of an object field."""
        _check(changes, "body")
        at = now_ms()
        card = await self.store.contacts.change(
            contact_id, lambda card: replace(_changed(card, changes), updated_at=at))
        if card is None:
            raise NotFound(f"contact {contact_id} not found")
        if changes.get("display_name"):
            for conversation_id in await self.store.contacts.conversations_of(contact_id):
                await self.store.conversations.set_fields(
                    conversation_id, {"contact.display_name": changes["display_name"]})
        return card

    async def delete(self, contact_id: str) -> None:
        """Its conversations are unlinked first: asked for again, each gets a new contact."""
        if await self.store.contacts.get(contact_id) is None:
            raise NotFound(f"contact {contact_id} not found")
        await self.store.contacts.unlink_all(contact_id)
        if not await self.store.contacts.delete(contact_id):
            raise NotFound(f"contact {contact_id} not found")

    async def merge(self, source_id: str, destination_id: str) -> ContactCard:
        """Fields the destination lacks come from the source, the source's conversations join
        it, a copy of the source is kept in its `merge_history`, and the source is gone. Tried
        again after a failure half-way, it does the rest (one copy of the source is kept)."""
        source = await self.get(source_id)
        if source_id == destination_id:
            raise InvalidInput("source_id and destination_id are the same contact")
        at = now_ms()
        merged = await self.store.contacts.change(
            destination_id, lambda card: replace(_merged(source, card), updated_at=at))
        if merged is None:
            raise NotFound(f"contact {destination_id} not found")
        await self.store.contacts.move_links(source_id, destination_id)
        await self.store.contacts.delete(source_id)
        return merged


async def contact_of(store: StorePort, conversation: Conversation,
                     channel: Channel | None) -> ContactCard:
    """The conversation's contact: linked already, or made now (named as the conversation's
    person is, with `metadata.facebook` saying who they are on which page)."""
    contact_id = await store.contacts.link(conversation.id, new_id())
    card = await store.contacts.get(contact_id)
    if card is not None:
        return card
    at = now_ms()
    person = conversation.contact
    return await store.contacts.insert(ContactCard(
        id=contact_id, created_at=at, updated_at=at, display_name=person.display_name,
        avatar_url=person.avatar_url, conversations={conversation.id: SOURCE},
        metadata={"facebook": {"psid": person.id,
                               "page_id": channel.source_channel_id if channel else None}},
    ))


async def name_contact(store: StorePort, conversation_id: str, display_name: str | None,
                       avatar_url: str | None = None) -> None:
    """The conversation's person was named (by the profile fetched from Meta, or by hand): so is
    their contact, if it is made yet; a picture given replaces the contact's."""
    contact_id = await store.contacts.linked(conversation_id)
    if contact_id is None:
        return
    at = now_ms()
    await store.contacts.change(contact_id, lambda card: replace(
        card, display_name=display_name or card.display_name,
        avatar_url=avatar_url or card.avatar_url, updated_at=at))


def _check(fields: dict[str, Any], what: str) -> None:
    check_storable(fields, what)
    for name in ("via", "metadata", "conversations", "address"):
        if isinstance(fields.get(name), dict):
            check_field_names(fields[name], f"{what}.{name}" if what != "body" else name)


def _new_card(contact_id: str, at: int, fields: dict[str, Any],
              what: str = "body") -> ContactCard:
    _check(fields, what)
    return ContactCard(id=contact_id, created_at=at, updated_at=at, **{
        name: value for name, value in fields.items()
        if name in CONTACT_TEXT_FIELDS or name in CONTACT_OBJECT_FIELDS})


def _changed(card: ContactCard, changes: dict[str, Any]) -> ContactCard:
    """`card` with `changes`: a text field set, or removed by `""`; an object field's keys
    merged in, each removed by `""`, or the whole field removed by `""`."""
    values: dict[str, Any] = {}
    for name, value in changes.items():
        if name in CONTACT_TEXT_FIELDS:
            values[name] = value or None
        elif name in CONTACT_OBJECT_FIELDS:
            current: dict[str, Any] = {} if value == "" else dict(getattr(card, name))
            for key, item in (value or {}).items():
                if item == "":
                    current.pop(key, None)
                else:
                    current[key] = item
            values[name] = current
    return replace(card, **values)


def _merged(source: ContactCard, destination: ContactCard) -> ContactCard:
    """The destination, with what it lacks taken from the source."""
    values: dict[str, Any] = {}
    for name in CONTACT_TEXT_FIELDS:
        if getattr(destination, name) is None:
            values[name] = getattr(source, name)
    for name in CONTACT_OBJECT_FIELDS:
        values[name] = {**getattr(source, name), **getattr(destination, name)}
    # One copy of each contact merged in (a merge tried again finds the source's copy kept).
    seen: set[Any] = set()
    kept: list[JsonObject] = []
    for entry in [*destination.merge_history, _copy(source), *source.merge_history]:
        if entry.get("id") not in seen:
            seen.add(entry.get("id"))
            kept.append(entry)
    return replace(destination, merge_history=kept[-MERGE_HISTORY_MAX:], **values)


def _copy(card: ContactCard) -> JsonObject:
    """A merged contact as it was, without its own history (kept beside it)."""
    copy = asdict(card)
    del copy["merge_history"]
    copy["created_at"], copy["updated_at"] = iso(card.created_at), iso(card.updated_at)
    return copy
