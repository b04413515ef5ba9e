"""The store in memory: the same ports as `gateway.store.mongo.Store` (`gateway.store.ports`),
over plain dicts of domain objects, for the fast tests (tests/unit runs every use-case on both).

It keeps what a caller can observe: the orders and cursors of every list, counts kept once per
item, duplicates refused (ids, Meta's mids, tag names, deliveries per change), events recorded
once, job and delivery leases, and the marks the writes leave. Objects are copied in and out, as
a round trip to a server would. It holds nothing but what this process wrote, so it never meets a
document it cannot read, and it has no change streams: the bus, the query cache and the outgoing
webhooks' feeds follow the MongoDB store only, and are tested on it (end to end).
"""

from __future__ import annotations

import builtins
import copy
import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import replace
from typing import Any, BinaryIO, TypeVar, cast

from gateway.domain import (
    Channel,
    Contact,
    ContactCard,
    Conversation,
    ConversationFilter,
    DeliveryState,
    FetchState,
    InboundEvent,
    Message,
    MessageEdit,
    Optin,
    Page,
    Reaction,
    Referral,
    SenderType,
    Tag,
    TagColor,
    ThreadOwner,
    Webhook,
    new_id,
)
from gateway.errors import Conflict, InvalidInput
from gateway.filters import (
    AllOf,
    AnyOf,
    Expr,
    Field,
    Has,
    Is,
    Like,
    Not,
    Term,
    Within,
    any_of,
    replace_terms,
    text_matches,
)
from gateway.store.contacts import _after, _cursor, sort_key
from gateway.store.lucene import NUMBER
from gateway.store.mongo import (
    MAX_OPTINS,
    PARKED_AT,
    Position,
    conversations_of,
    decode_position,
    encode_cursor,
)
from gateway.store.ports import (
    DELIVERED,
    FAILED,
    PARKED_EDIT_MS,
    PARKED_EDITS_MAX,
    QUEUED,
    Attachment,
    Delivery,
    Job,
    Note,
    ParkedEdit,
)

T = TypeVar("T")
_MESSAGE_CURSOR = re.compile(r"(.*)~([1-9][0-9]{0,8})", flags=re.DOTALL)


def _copy(value: T) -> T:
    return copy.deepcopy(value)


def _after_position(items: Iterable[T], key: Callable[[T], tuple[int, str]], start: Position,
                    limit: int) -> list[T]:
    """Up to `limit` items in descending `key` order (value, id), from `start` on, as
    `gateway.store.mongo.read_after` reads them."""
    ordered = sorted(items, key=key, reverse=True)
    if start.value is not None and start.item_id is not None:
        ordered = [item for item in ordered if key(item) < (start.value, start.item_id)]
    return ordered[start.skip:start.skip + limit]


def _before_position(items: Iterable[T], key: Callable[[T], tuple[int, str]], end: Position,
                     limit: int) -> list[T]:
    """Up to `limit` items before `end` in descending `key` order, nearest first, as
    `gateway.store.mongo.read_before` reads them."""
    ordered = sorted(items, key=key, reverse=True)
    if end.value is not None and end.item_id is not None:
        ordered = [item for item in ordered if key(item) > (end.value, end.item_id)]
    elif end.skip:
        ordered = ordered[:end.skip]
    return ordered[::-1][:limit]


def _page_before(items: list[T], size: int, cursor_of: Callable[[T], str], before: str | None,
                 total: int) -> Page:
    """A backward page of the first `size` of `items` (nearest first, one more than the page
    holds), in the list's order."""
    shown = items[:size][::-1]
    cursors = [cursor_of(item) for item in shown]
    return Page(items=_copy(shown), cursors=cursors, has_more=before is not None,
                previous_cursor=cursors[0] if len(items) > size and cursors else None,
                total=total, start_cursor=cursors[0] if cursors else None)


def _page(items: list[T], size: int, cursor_of: Callable[[T], str], previous: str | None,
          total: int) -> Page:
    """A page of the first `size` of `items` (read one more than the page holds)."""
    shown = items[:size]
    cursors = [cursor_of(item) for item in shown]
    return Page(items=_copy(shown), cursors=cursors, has_more=len(items) > size,
                previous_cursor=previous, total=total,
                end_cursor=cursors[-1] if cursors else None)


# --- channels ---------------------------------------------------------------------------------


class MemoryChannels:
    def __init__(self) -> None:
        self.items: dict[str, Channel] = {}

    async def get(self, channel_id: str) -> Channel | None:
        return _copy(self.items.get(channel_id))

    def _by_page(self, page_id: str) -> Channel | None:
        return next((c for c in self.items.values() if c.source_channel_id == page_id), None)

    async def by_page(self, page_id: str) -> Channel | None:
        return _copy(self._by_page(page_id))

    async def many(self, ids: list[str]) -> dict[str, Channel]:
        return {i: _copy(self.items[i]) for i in ids if i in self.items}

    async def ids_of_source(self, source: str) -> list[str]:
        return [c.id for c in self.items.values() if c.source == source]

    async def token_refused(self, channel_id: str, at: int) -> None:
        channel = self.items.get(channel_id)
        if channel and channel.token_valid:
            channel.token_valid, channel.updated_at = False, at

    async def save_connected(self, page_id: str, name: str, image_url: str | None, token: str,
                             at: int) -> Channel:
        channel = self._by_page(page_id) or Channel(
            id=new_id(), source_channel_id=page_id, name=name, image_url=image_url,
            connected=True, created_at=at, updated_at=at)
        self.items[channel.id] = replace(channel, name=name, image_url=image_url,
                                         page_token=token, connected=True, token_valid=True,
                                         updated_at=at)
        return _copy(self.items[channel.id])

    async def set_disconnected(self, channel_id: str, at: int) -> Channel | None:
        channel = self.items.get(channel_id)
        if channel is None:
            return None
        channel.connected, channel.page_token, channel.updated_at = False, "", at
        return _copy(channel)

    async def update(self, channel_id: str, changes: dict[str, Any], at: int
                     ) -> Channel | None:
        channel = self.items.get(channel_id)
        if channel is None or not channel.connected:
            return None
        self.items[channel_id] = replace(channel, **changes, updated_at=at)
        return _copy(self.items[channel_id])

    async def list(self, source: str | None = None, connected: bool = True
                   ) -> builtins.list[Channel]:
        found = [c for c in self.items.values()
                 if c.connected == connected and (not source or c.source == source)]
        return _copy(sorted(found, key=lambda c: c.created_at))


# --- counts and conversations -------------------------------------------------------------------


class MemoryCounters:
    """Each count with every item it counted (the MongoDB store keeps a mark of the last few)."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[int, set[str]]] = {}

    async def create(self, key: str, value: int) -> None:
        self.items.setdefault(key, (value, set()))

    async def exists(self, key: str) -> bool:
        return key in self.items

    async def add_once(self, key: str, item_id: str) -> bool:
        if key not in self.items:
            return False
        value, counted = self.items[key]
        if item_id not in counted:
            self.items[key] = (value + 1, counted | {item_id})
        return True

    async def values(self, keys: list[str]) -> dict[str, int]:
        return {key: self.items[key][0] for key in keys if key in self.items}

    async def values_of(self, prefix: str) -> dict[str, int]:
        return {key: value for key, (value, _) in self.items.items() if key.startswith(prefix)}


class MemoryConversations:
    def __init__(self, counters: MemoryCounters, channels: MemoryChannels) -> None:
        self.items: dict[str, Conversation] = {}
        self.counted: dict[str, set[str]] = {}  # the messages each conversation counted
        # opt-ins' tokens by (conversation, type, payload); never on a Conversation
        self.optin_tokens: dict[tuple[str, str, str | None], str] = {}
        self.counters = counters
        self.channels = channels

    async def get(self, conversation_id: str) -> Conversation | None:
        return _copy(self.items.get(conversation_id))

    def _find(self, channel_id: str, contact_id: str) -> Conversation | None:
        return next((c for c in self.items.values()
                     if c.channel_id == channel_id and c.contact.id == contact_id), None)

    async def find(self, channel_id: str, contact_id: str) -> Conversation | None:
        return _copy(self._find(channel_id, contact_id))

    async def find_many(self, channel_id: str, contact_ids: list[str]
                        ) -> dict[str, Conversation]:
        found = (self._find(channel_id, contact_id) for contact_id in contact_ids)
        return {c.contact.id: _copy(c) for c in found if c is not None}

    async def create(self, conversation_id: str, channel_id: str, contact_id: str, at: int
                     ) -> tuple[Conversation, bool]:
        stored = self._find(channel_id, contact_id)
        if stored is not None:
            return _copy(stored), False
        conversation = Conversation(id=conversation_id, channel_id=channel_id,
                                    contact=Contact(id=contact_id), created_at=at,
                                    last_message_at=at)
        self.items[conversation_id] = conversation
        self.counted[conversation_id] = set()
        return _copy(conversation), True

    async def note_messages(self, conversation_id: str, message_id: str, sent_at: int,
                            new_ids: builtins.list[str], unread_ids: Sequence[str] = ()
                            ) -> None:
        conversation = self.items.get(conversation_id)
        if conversation is None:
            return
        if conversation.last_message_at <= sent_at:
            conversation.last_message_at, conversation.last_message_id = sent_at, message_id
        counted = self.counted[conversation_id]
        for item in dict.fromkeys([*new_ids, *unread_ids]):
            if item not in counted:
                counted.add(item)
                conversation.message_count += 1
                conversation.unread_count += item in unread_ids

    async def note_many(self, notes: builtins.list[Note]) -> None:
        for note in notes:
            await self.note_messages(*note)

    async def uncount(self, conversation_id: str, message_id: str) -> None:
        if message_id in self.counted.get(conversation_id, set()):
            self.counted[conversation_id].discard(message_id)
            self.items[conversation_id].message_count -= 1

    async def count_new(self, conversation: Conversation) -> None:
        if not await self.counters.add_once(conversations_of(conversation.channel_id),
                                            conversation.id):
            await self.count_channel_once(conversation.channel_id)

    async def count_channel_once(self, channel_id: str) -> int:
        key = conversations_of(channel_id)
        if await self.counters.exists(key):
            return 0
        await self.counters.create(key, sum(c.channel_id == channel_id
                                            for c in self.items.values()))
        return 1

    async def replace_last_message(self, conversation_id: str, old_id: str, new_id: str
                                   ) -> None:
        conversation = self.items.get(conversation_id)
        if conversation and conversation.last_message_id == old_id:
            conversation.last_message_id = new_id

    async def set_fields(self, conversation_id: str, values: dict[str, Any]) -> bool:
        """`values` by dotted paths (`state`, `contact.display_name`)."""
        conversation = self.items.get(conversation_id)
        if conversation is None:
            return False
        for path, value in values.items():
            *parents, name = path.split(".")
            target: Any = conversation
            for parent in parents:
                target = getattr(target, parent)
            setattr(target, name, value)
        return True

    async def set_thread_owner(self, conversation_id: str, owner: ThreadOwner) -> bool:
        return await self.set_fields(conversation_id, {"thread_owner": _copy(owner)})

    async def mark_read(self, conversation_id: str) -> bool:
        return await self.set_fields(conversation_id, {"unread_count": 0})

    async def refer(self, conversation_id: str, referral: Referral) -> bool:
        conversation = self.items.get(conversation_id)
        if conversation is None or (conversation.referral is not None
                                    and conversation.referral.updated_at > referral.updated_at):
            return False
        conversation.referral = _copy(referral)
        return True

    async def add_optin(self, conversation_id: str, optin: Optin, token: str | None) -> bool:
        conversation = self.items.get(conversation_id)
        if conversation is None:
            return False
        key = (conversation_id, optin.type, optin.payload)
        same = [o for o in conversation.optins if (o.type, o.payload) == key[1:]]
        if same and same[0].updated_at > optin.updated_at:
            return False
        if token:
            self.optin_tokens[key] = token
        kept = [o for o in conversation.optins if o not in same][-(MAX_OPTINS - 1):]
        conversation.optins = [*kept, replace(optin, has_token=key in self.optin_tokens)]
        return True

    async def optin_token(self, conversation_id: str, type: str, payload: str | None
                          ) -> str | None:
        return self.optin_tokens.get((conversation_id, type, payload))

    async def tag(self, conversation_id: str, tag_id: str) -> bool:
        conversation = self.items.get(conversation_id)
        if conversation and tag_id not in conversation.tag_ids:
            conversation.tag_ids = sorted([*conversation.tag_ids, tag_id])
        return conversation is not None

    async def untag(self, conversation_id: str, tag_id: str) -> bool:
        conversation = self.items.get(conversation_id)
        if conversation:
            conversation.tag_ids = [t for t in conversation.tag_ids if t != tag_id]
        return conversation is not None

    async def drop_tag(self, tag_id: str) -> None:
        for conversation_id in self.items:
            await self.untag(conversation_id, tag_id)

    async def page(self, where: ConversationFilter, cursor: str | None, size: int) -> Page:
        found, total = await self._found(where)
        start = decode_position(cursor) if cursor else Position()
        items = _after_position(found, lambda c: (c.last_message_at, c.id), start, size + 1)
        return _page(items, size, lambda c: encode_cursor(c.last_message_at, c.id), cursor,
                     total)

    async def page_before(self, where: ConversationFilter, cursor: str | None, size: int
                          ) -> Page:
        found, total = await self._found(where)
        end = decode_position(cursor) if cursor else Position()
        end = Position(end.value, end.item_id) if end.value is not None else end
        items = _before_position(found, lambda c: (c.last_message_at, c.id), end, size + 1)
        return _page_before(items, size, lambda c: encode_cursor(c.last_message_at, c.id),
                            cursor, total)

    async def _found(self, where: ConversationFilter) -> tuple[list[Conversation], int]:
        """The conversations that match, and the total a page gives (as the MongoDB store
        counts it)."""
        query = self._with_channels(where.query) if where.query is not None else None
        found = [c for c in self.items.values()
                 if _listed(c, where) and (query is None or holds(query, c))]
        if where.query is None and where.state is None and not where.tag_ids \
                and where.unread is None and not where.display_name:  # the channels' counts
            keys = None if where.channel_ids is None else \
                [conversations_of(c) for c in dict.fromkeys(where.channel_ids)]
            counts = await (self.counters.values_of(conversations_of("")) if keys is None
                            else self.counters.values(keys))
            total = sum(counts.values())
        else:
            total = len(found)
        return found, total

    async def many(self, ids: list[str]) -> dict[str, Conversation]:
        return {i: _copy(self.items[i]) for i in ids if i in self.items}

    def _with_channels(self, expr: Expr) -> Expr:
        """`source` terms read as the channels of those sources (connected or not)."""
        def channels_of(term: Term) -> Expr:
            if term.field is not Field.SOURCE:
                return term
            return any_of(Is(Field.CHANNEL_ID, c.id) for c in self.channels.items.values()
                          if text_matches(term, c.source))

        return replace_terms(expr, channels_of)

    async def profile_fetched(self, conversation_id: str, display_name: str | None,
                              avatar_url: str | None) -> None:
        if conversation_id in self.items:
            self.items[conversation_id].contact = replace(
                self.items[conversation_id].contact, display_name=display_name,
                avatar_url=avatar_url, fetch_state=FetchState.OK, fetch_error=None)

    async def profile_failed(self, conversation_id: str, error: str) -> None:
        conversation = self.items.get(conversation_id)
        if conversation and conversation.contact.fetch_state is FetchState.PENDING:
            conversation.contact.fetch_state = FetchState.FAILED
            conversation.contact.fetch_error = error


def _listed(conversation: Conversation, where: ConversationFilter) -> bool:
    """Whether the JSON-object filters hold (`where.query` is `holds`')."""
    name = conversation.contact.display_name
    return (where.channel_ids is None or conversation.channel_id in where.channel_ids) \
        and (where.state is None or conversation.state == where.state) \
        and all(t in conversation.tag_ids for t in where.tag_ids or []) \
        and (where.unread is None or (conversation.unread_count > 0) == where.unread) \
        and (not where.display_name or (name is not None and re.search(
            re.escape(where.display_name), name, re.IGNORECASE) is not None))


MISSING = object()


def _value(conversation: Conversation, term: Term) -> Any:
    """What the term's field holds; MISSING for a path to nothing."""
    contact = conversation.contact
    value: Any = {
        Field.ID: conversation.id, Field.DISPLAY_NAME: contact.display_name,
        Field.AVATAR_URL: contact.avatar_url, Field.FETCH_STATE: contact.fetch_state.value,
        Field.CHANNEL_ID: conversation.channel_id, Field.UNREAD_COUNT: conversation.unread_count,
        Field.CREATED_AT: conversation.created_at,
        Field.LAST_MESSAGE_AT: conversation.last_message_at, Field.STATE: conversation.state,
        Field.USER_DATA: conversation.user_data,
    }[term.field]
    for key in term.path:
        value = value.get(key, MISSING) if isinstance(value, dict) else MISSING
    return value


def _number(value: Any) -> Any:
    """Users' data as `gateway.store.lucene` compares it: a boolean as the number nx-27017 keeps."""
    return int(value) if isinstance(value, bool) else value


def holds(expr: Expr, conversation: Conversation) -> bool:
    """What `gateway.store.lucene` makes of the expression, for one conversation (`source` read
    as channel ids first)."""
    if isinstance(expr, AllOf):
        return all(holds(part, conversation) for part in expr.parts)
    if isinstance(expr, AnyOf):
        return any(holds(part, conversation) for part in expr.parts)
    if isinstance(expr, Not):
        return not holds(expr.part, conversation)
    if expr.field is Field.TAG_IDS and isinstance(expr, Is):
        return str(expr.value) in conversation.tag_ids
    if expr.field in (Field.TAG_IDS, Field.SOURCE):
        raise ValueError(f"{expr} is not a term the store answers")
    value = _value(conversation, expr)
    if expr.field is Field.USER_DATA:
        value = _number(value)
    if isinstance(expr, Has):
        return value is not MISSING and value is not None
    if isinstance(expr, Like):
        flags = re.DOTALL | (re.IGNORECASE if expr.field is Field.DISPLAY_NAME else 0)
        return isinstance(value, str) and re.fullmatch(expr.regex(), value, flags) is not None
    if isinstance(expr, Within):
        return _within(expr, value)
    if expr.field is Field.DISPLAY_NAME:
        return isinstance(value, str) and re.fullmatch(
            re.escape(str(expr.value)), value, re.IGNORECASE | re.DOTALL) is not None
    if expr.field is Field.USER_DATA and isinstance(expr.value, str):
        return value == expr.value if isinstance(value, str) else value in _spelled(expr.value)
    return _same(value, expr.value)


def _within(term: Within, value: Any) -> bool:
    numeric = all(isinstance(b, int | float) for b in (term.low, term.high) if b is not None)
    if isinstance(value, bool) or not (isinstance(value, int | float) if numeric
                                       else isinstance(value, str)):
        return False
    return (term.low is None or (value >= term.low if term.include_low else value > term.low)) \
        and (term.high is None or (value <= term.high if term.include_high
                                   else value < term.high))


def _spelled(text: str) -> list[float]:
    """The number a text spells (`true` and `false` as 1 and 0), if any."""
    if NUMBER.fullmatch(text):
        return [float(text)]
    return {"true": [1.0], "false": [0.0]}.get(text, [])


def _same(value: Any, wanted: Any) -> bool:
    """Equal, and of the same kind (a boolean equals no number)."""
    return value is not MISSING and isinstance(value, bool) == isinstance(wanted, bool) \
        and value == wanted


# --- messages ---------------------------------------------------------------------------------


class MemoryMessages:
    def __init__(self) -> None:
        self.items: dict[str, Message] = {}
        self.reaction_at: dict[str, int] = {}  # when each message's reaction was given

    def _by_mid(self, mid: str | None) -> Message | None:
        return next((m for m in self.items.values() if mid and m.source_message_id == mid),
                    None)

    async def insert(self, message: Message) -> bool:
        if message.id in self.items or self._by_mid(message.source_message_id):
            return False
        self.items[message.id] = _copy(message)
        self.reaction_at[message.id] = 0
        return True

    async def insert_many(self, messages: list[Message]) -> list[Message]:
        return [message for message in messages if not await self.insert(message)]

    async def stored_copies(self, messages: list[Message]) -> list[Message]:
        found = [self._by_mid(m.source_message_id) if m.source_message_id
                 else self.items.get(m.id) for m in messages]
        return _copy(list({m.id: m for m in found if m is not None}.values()))

    async def get(self, message_id: str) -> Message | None:
        return _copy(self.items.get(message_id))

    async def many(self, ids: list[str]) -> dict[str, Message]:
        return {i: _copy(self.items[i]) for i in ids if i in self.items}

    async def page(self, conversation_id: str, cursor: str | None, size: int, total: int
                   ) -> Page:
        """Newest first; the cursor is the id of the last message of the previous page (with
        `~<n>`: that many more behind it)."""
        messages = [m for m in self.items.values() if m.conversation_id == conversation_id]
        start = self._start(messages, cursor) if cursor else Position()
        items = _after_position(messages, lambda m: (m.sent_at, m.id), start, size + 1)
        return _page(items, size, lambda m: m.id, cursor, total)

    async def page_before(self, conversation_id: str, cursor: str | None, size: int,
                          total: int) -> Page:
        messages = [m for m in self.items.values() if m.conversation_id == conversation_id]
        end = self._start(messages, cursor) if cursor else Position()
        end = Position(end.value, end.item_id) if end.value is not None else end
        items = _before_position(messages, lambda m: (m.sent_at, m.id), end, size + 1)
        return _page_before(items, size, lambda m: m.id, cursor, total)

    def _start(self, messages: list[Message], cursor: str) -> Position:
        by_id = {m.id: m for m in messages}
        after, skip = by_id.get(cursor), 0
        if after is None and (match := _MESSAGE_CURSOR.fullmatch(cursor)):
            skip = int(match.group(2))
            if not match.group(1):
                return Position(skip=skip)
            after = by_id.get(match.group(1))
        if after is None:
            raise InvalidInput("cursor is not a message of this conversation")
        return Position(after.sent_at, after.id, skip)

    async def mark_delivered(self, message_id: str, mid: str | None) -> str | None:
        message = self.items.get(message_id)
        if message is None or message.state not in (DeliveryState.PENDING,
                                                    DeliveryState.DELIVERED):
            return None
        removed = None
        copy_ = self._by_mid(mid)
        if copy_ is not None and copy_.id != message_id:
            if copy_.kind != "echo":
                raise Conflict(f"message {copy_.id} has Meta's id {mid} already")
            del self.items[copy_.id]  # an echo of this very send, stored first: keep one
            removed = copy_.id
        message.state, message.error = DeliveryState.DELIVERED, None
        message.source_message_id = mid or message.source_message_id
        return removed

    async def back_to_pending(self, message_id: str) -> Message | None:
        message = self.items.get(message_id)
        if message is None or message.state is not DeliveryState.FAILED:
            return None
        message.state, message.error = DeliveryState.PENDING, None
        return _copy(message)

    async def add_suggestions(self, message_id: str, suggestions: dict[str, Any]
                              ) -> Message | None:
        message = self.items.get(message_id)
        if message is None:
            return None
        message.suggestions = {**message.suggestions, **_copy(suggestions)}
        return _copy(message)

    async def mark_failed(self, message_id: str, error: dict[str, Any]) -> None:
        message = self.items.get(message_id)
        if message and message.state is DeliveryState.PENDING:
            message.state, message.error = DeliveryState.FAILED, _copy(error)

    async def reconcile_echo(self, message_id: str, mid: str, conversation_id: str) -> bool:
        message = self.items.get(message_id)
        if message is None or message.conversation_id != conversation_id \
                or message.sender_type is not SenderType.APP \
                or message.source_message_id is not None or self._by_mid(mid):
            return False
        message.source_message_id, message.state, message.error = \
            mid, DeliveryState.DELIVERED, None
        return True

    async def react(self, mid: str, reaction: dict[str, Any] | None, at: int) -> bool:
        message = self._by_mid(mid)
        if message is None or self.reaction_at[message.id] > at:
            return False
        message.reaction = cast(Reaction | None, _copy(reaction))
        self.reaction_at[message.id] = at
        return True

    async def edit(self, mid: str, text: str | None, num_edit: int, at: int) -> bool | None:
        message = self._by_mid(mid)
        if message is None:
            return None
        if message.edit_count >= num_edit:
            return False
        inner = message.content.get("message")
        holder: dict[str, Any] = inner if isinstance(inner, dict) else message.content
        message.edits.append(MessageEdit(text=cast(str | None, holder.get("text")),
                                         edited_at=at))
        holder["text"] = text
        message.edit_count = num_edit
        return True

    def _ours(self, conversation_id: str) -> Iterable[Message]:
        return (m for m in self.items.values() if m.conversation_id == conversation_id
                and m.sender_type in (SenderType.APP, SenderType.PAGE))

    async def pending_before(self, message: Message) -> bool:
        return any(other.state is DeliveryState.PENDING and other.sent_at < message.sent_at
                   for other in self._ours(message.conversation_id))

    async def delivered_up_to(self, conversation_id: str, mids: list[str],
                              watermark: int | None) -> None:
        for message in self._ours(conversation_id):
            if message.state is DeliveryState.PENDING and (
                    message.source_message_id in mids
                    or (watermark is not None and message.sent_at <= watermark)):
                message.state = DeliveryState.DELIVERED

    async def read_up_to(self, conversation_id: str, watermark: int) -> None:
        for message in self._ours(conversation_id):
            if message.sent_at <= watermark:
                message.read_by_contact = True


# --- tags, events, work queues ------------------------------------------------------------------


class MemoryTags:
    def __init__(self) -> None:
        self.items: dict[str, Tag] = {}

    def _named(self, name: str) -> Tag | None:
        return next((t for t in self.items.values() if t.name == name), None)

    async def create(self, name: str, color: TagColor) -> Tag | None:
        if self._named(name):
            return None
        tag = Tag(id=new_id(), name=name, color=color)
        self.items[tag.id] = tag
        return _copy(tag)

    async def get(self, tag_id: str) -> Tag | None:
        return _copy(self.items.get(tag_id))

    async def many(self, ids: builtins.list[str]) -> dict[str, Tag]:
        return {i: _copy(self.items[i]) for i in ids if i in self.items}

    async def update(self, tag_id: str, changes: dict[str, Any]) -> bool:
        named = self._named(changes.get("name", ""))
        if named is not None and named.id != tag_id:
            raise Conflict(f"a tag named {changes.get('name')!r} exists already")
        if tag_id not in self.items:
            return False
        self.items[tag_id] = replace(self.items[tag_id], **changes)
        return True

    async def delete(self, tag_id: str) -> bool:
        return self.items.pop(tag_id, None) is not None

    async def list(self) -> builtins.list[Tag]:
        return _copy(sorted(self.items.values(), key=lambda t: t.name))


class MemoryEvents:
    def __init__(self) -> None:
        # by key: the event, when it was received, whether it was applied (or is never to be)
        self.items: dict[str, tuple[InboundEvent, int, bool]] = {}

    async def record(self, events: list[InboundEvent], at: int) -> list[InboundEvent]:
        pending = []
        for key, event in {event.key: event for event in events}.items():
            stored = self.items.setdefault(key, (_copy(event), at, event.invalid is not None))
            if not stored[2] and event.invalid is None:
                pending.append(event)
        return pending

    async def mark_processed(self, keys: list[str]) -> None:
        for key in keys:
            if key in self.items:
                self.items[key] = (*self.items[key][:2], True)

    async def unprocessed(self, older_than: int, limit: int = 500) -> list[InboundEvent]:
        due = [(at, event) for event, at, done in self.items.values()
               if not done and at <= older_than]
        return [_copy(event) for _, event in sorted(due, key=lambda d: d[0])[:limit]]


class MemoryParkedEdits:
    def __init__(self) -> None:
        self.items: dict[str, tuple[ParkedEdit, int]] = {}  # by mid: the edit, when parked

    async def park(self, edit: ParkedEdit, now: int) -> bool:
        self.items = {mid: kept for mid, kept in self.items.items()
                      if kept[1] >= now - PARKED_EDIT_MS}
        stored = self.items.get(edit.mid)
        if stored is None and len(self.items) >= PARKED_EDITS_MAX:
            return False
        if stored is None or stored[0].num_edit < edit.num_edit:
            self.items[edit.mid] = (_copy(edit), now)
        return True

    async def take(self, mids: builtins.list[str]) -> builtins.list[ParkedEdit]:
        return [self.items.pop(mid)[0] for mid in dict.fromkeys(mids) if mid in self.items]


class MemoryAttachments:
    def __init__(self) -> None:
        self.items: dict[str, tuple[Attachment, bytes]] = {}
        self.meta_ids: dict[tuple[str, str], str] = {}  # (attachment, page) -> Meta's id

    async def save(self, attachment: Attachment, source: BinaryIO) -> None:
        self.items[attachment.id] = (_copy(attachment), source.read())

    async def get(self, attachment_id: str) -> Attachment | None:
        kept = self.items.get(attachment_id)
        return _copy(kept[0]) if kept else None

    async def read(self, attachment_id: str) -> bytes | None:
        kept = self.items.get(attachment_id)
        return kept[1] if kept else None

    async def meta_id(self, attachment_id: str, page_id: str) -> str | None:
        return self.meta_ids.get((attachment_id, page_id))

    async def keep_meta_id(self, attachment_id: str, page_id: str, meta_id: str) -> None:
        self.meta_ids.setdefault((attachment_id, page_id), meta_id)


class MemoryJobs:
    def __init__(self) -> None:
        self.items: dict[str, Job] = {}
        self.next_at: dict[str, int] = {}
        self.groups: dict[str, str] = {}

    async def add(self, job_id: str, at: int, data: dict[str, Any] | None = None,
                  due: int | None = None, group: str | None = None) -> None:
        if job_id not in self.items:
            self.items[job_id] = Job(id=job_id, attempts=0, created_at=at, data=_copy(data or {}))
            self.next_at[job_id] = at if due is None else due
            if group is not None:
                self.groups[job_id] = group

    async def claim(self, now: int, lease_ms: int) -> Job | None:
        """The most overdue job, taken for `lease_ms`."""
        due = [job_id for job_id, at in self.next_at.items() if at <= now]
        if not due:
            return None
        job_id = min(due, key=self.next_at.__getitem__)
        self.next_at[job_id] = now + lease_ms
        return _copy(self.items[job_id])

    async def claim_many(self, now: int, lease_ms: int, limit: int,
                         busy: Collection[str] = ()) -> list[Job]:
        """Up to `limit` of the most overdue jobs, oldest first, at most one of each group and
        none of the `busy` groups, taken for `lease_ms`."""
        taken: list[str] = []
        groups: set[str | None] = set()
        for job_id in sorted((job_id for job_id, at in self.next_at.items() if at <= now),
                             key=self.next_at.__getitem__):  # ties: in the order queued
            group = self.groups.get(job_id)
            if group is not None and (group in busy or group in groups):
                continue
            groups.add(group)
            taken.append(job_id)
            if len(taken) == limit:
                break
        for job_id in taken:
            self.next_at[job_id] = now + lease_ms
        return [_copy(self.items[job_id]) for job_id in taken]

    async def park(self, job_id: Any, reason: str) -> None:
        if job_id in self.next_at:
            self.next_at[job_id] = PARKED_AT

    async def subject_unreadable(self, job_id: str) -> bool:
        return False  # what this store holds can always be read

    async def forget(self, job_id: str, key: str) -> None:
        if job_id in self.items:
            self.items[job_id].data.pop(key, None)

    async def release(self, job_id: str, at: int, key: str) -> None:
        if job_id in self.items:
            self.items[job_id].data.pop(key, None)
            self.next_at[job_id] = at

    async def retry_at(self, job_id: str, at: int, attempts: int) -> None:
        if job_id in self.items:
            self.next_at[job_id], self.items[job_id].attempts = at, attempts

    async def done(self, job_id: str) -> None:
        self.items.pop(job_id, None)
        self.next_at.pop(job_id, None)
        self.groups.pop(job_id, None)


# --- outgoing webhooks --------------------------------------------------------------------------


class MemoryWebhooks:
    def __init__(self) -> None:
        self.items: dict[str, Webhook] = {}

    async def insert(self, webhook: Webhook) -> bool:
        if webhook.id in self.items:
            return False
        self.items[webhook.id] = _copy(webhook)
        return True

    async def get(self, webhook_id: str) -> Webhook | None:
        return _copy(self.items.get(webhook_id))

    async def exists(self, webhook_id: str) -> bool:
        return webhook_id in self.items

    async def update(self, webhook_id: str, changes: dict[str, Any]) -> Webhook | None:
        if webhook_id not in self.items:
            return None
        self.items[webhook_id] = replace(self.items[webhook_id], **_copy(changes))
        return _copy(self.items[webhook_id])

    async def record(self, webhook_id: str, at: int, error: str | None) -> None:
        if webhook_id in self.items:
            values = {"last_success_at": at} if error is None else \
                {"last_error": error, "last_error_at": at}
            self.items[webhook_id] = replace(self.items[webhook_id], **values)

    async def many(self, ids: builtins.list[str]) -> dict[str, Webhook]:
        return {i: _copy(self.items[i]) for i in ids if i in self.items}

    async def list(self, subscribed_only: bool = False) -> builtins.list[Webhook]:
        found = [w for w in self.items.values() if w.subscribed or not subscribed_only]
        return _copy(sorted(found, key=lambda w: w.created_at))


class MemoryDeliveries:
    def __init__(self) -> None:
        # by id: the delivery, its state, its place in its webhook's queue, when it left it
        self.items: dict[str, tuple[Delivery, str, int, int]] = {}

    async def enqueue(self, webhook_id: str, change_key: str, event_type: str, payload: Any,
                      at: int, seq: int) -> bool:
        delivery_id = f"{webhook_id}:{change_key}"
        if delivery_id in self.items:
            return False
        self.items[delivery_id] = (Delivery(
            id=delivery_id, webhook_id=webhook_id, type=event_type, payload=_copy(payload),
            created_at=at, next_at=at, attempts=0), QUEUED, seq, 0)
        return True

    def _queued(self, webhook_id: str) -> builtins.list[tuple[Delivery, str, int, int]]:
        return [item for item in self.items.values()
                if item[0].webhook_id == webhook_id and item[1] == QUEUED]

    async def head(self, webhook_id: str, at: int,
                   dropped: Callable[[str], Awaitable[None]] | None = None) -> Delivery | None:
        queued = self._queued(webhook_id)
        return _copy(min(queued, key=lambda item: item[2])[0]) if queued else None

    async def claim(self, delivery_id: str, now: int, lease_ms: int) -> bool:
        item = self.items.get(delivery_id)
        if item is None or item[1] != QUEUED or item[0].next_at > now:
            return False
        item[0].next_at = now + lease_ms
        return True

    async def retry_at(self, delivery_id: str, at: int, attempts: int) -> None:
        if delivery_id in self.items:
            self.items[delivery_id][0].next_at = at
            self.items[delivery_id][0].attempts = attempts

    async def finish(self, delivery_id: str, state: str, at: int) -> None:
        if delivery_id in self.items:
            delivery, _, seq, _ = self.items[delivery_id]
            self.items[delivery_id] = (delivery, state, seq, at)

    async def queued(self, webhook_id: str) -> int:
        return len(self._queued(webhook_id))

    async def drop_queued(self, webhook_id: str) -> None:
        for item in self._queued(webhook_id):
            del self.items[item[0].id]

    async def prune(self, finished_before: int) -> None:
        for delivery, state, _, finished_at in builtins.list(self.items.values()):
            if state in (DELIVERED, FAILED) and finished_at < finished_before:
                del self.items[delivery.id]


class MemoryFeedPositions:
    def __init__(self) -> None:
        self.items: dict[str, Any] = {}

    async def get(self, name: str) -> Any:
        return self.items.get(name)

    async def save(self, name: str, token: Any, at: int) -> None:
        self.items[name] = token


# --- contacts -----------------------------------------------------------------------------------


class MemoryContacts:
    def __init__(self) -> None:
        self.items: dict[str, ContactCard] = {}
        self.links: dict[str, str] = {}  # conversation id: contact id

    async def get(self, contact_id: str) -> ContactCard | None:
        return _copy(self.items.get(contact_id))

    async def insert(self, card: ContactCard) -> ContactCard:
        """A card stored under its id already is answered instead."""
        return _copy(self.items.setdefault(card.id, _copy(card)))

    async def insert_many(self, cards: list[ContactCard]) -> None:
        for card in cards:
            await self.insert(card)

    async def total(self) -> int:
        return len(self.items)

    async def page(self, cursor: str | None, size: int) -> Page:
        after = _after(cursor) if cursor else None
        cards = sorted((c for c in self.items.values() if after is None or sort_key(c) < after),
                       key=sort_key, reverse=True)
        return _page(cards[:size + 1], size, lambda c: _cursor(sort_key(c)), cursor,
                     len(self.items))

    async def page_before(self, cursor: str | None, size: int) -> Page:
        end = _after(cursor) if cursor else None
        cards = sorted((c for c in self.items.values() if end is None or sort_key(c) > end),
                       key=sort_key)
        return _page_before(cards[:size + 1], size, lambda c: _cursor(sort_key(c)), cursor,
                            len(self.items))

    async def many(self, ids: list[str]) -> dict[str, ContactCard]:
        return {i: _copy(self.items[i]) for i in ids if i in self.items}

    async def change(self, contact_id: str, apply: Callable[[ContactCard], ContactCard]
                     ) -> ContactCard | None:
        if contact_id not in self.items:
            return None
        self.items[contact_id] = _copy(apply(_copy(self.items[contact_id])))
        return _copy(self.items[contact_id])

    async def delete(self, contact_id: str) -> bool:
        return self.items.pop(contact_id, None) is not None

    async def linked(self, conversation_id: str) -> str | None:
        return self.links.get(conversation_id)

    async def link(self, conversation_id: str, contact_id: str) -> str:
        return self.links.setdefault(conversation_id, contact_id)

    async def conversations_of(self, contact_id: str) -> list[str]:
        return [c for c, linked in self.links.items() if linked == contact_id]

    async def move_links(self, source_id: str, destination_id: str) -> None:
        for conversation_id in await self.conversations_of(source_id):
            self.links[conversation_id] = destination_id

    async def unlink_all(self, contact_id: str) -> None:
        for conversation_id in await self.conversations_of(contact_id):
            del self.links[conversation_id]


# --- the store ----------------------------------------------------------------------------------


class MemoryStore:
    """Every repository of `gateway.store.ports.StorePort`, in this process's memory."""

    def __init__(self) -> None:
        self.channels = MemoryChannels()
        self.counters = MemoryCounters()
        self.conversations = MemoryConversations(self.counters, self.channels)
        self.messages = MemoryMessages()
        self.events = MemoryEvents()
        self.parked_edits = MemoryParkedEdits()
        self.tags = MemoryTags()
        self.webhooks = MemoryWebhooks()
        self.deliveries = MemoryDeliveries()
        self.feed_positions = MemoryFeedPositions()
        self.contacts = MemoryContacts()
        self.outbox = MemoryJobs()
        self.profile_jobs = MemoryJobs()
        self.attachments = MemoryAttachments()

    async def merge_user_data(self, subject: str, owner_id: str, data: dict[str, Any]
                              ) -> dict[str, Any] | None:
        """Objects merge key by key; anything else replaces what was there."""
        owners: dict[str, Any] = {"message": self.messages.items,
                                  "conversation": self.conversations.items,
                                  "channel": self.channels.items}
        owner = owners[subject].get(owner_id)
        if owner is None:
            return None
        _merge(owner.user_data, _copy(data))
        return _copy(owner.user_data)

    async def close(self) -> None:
        """Nothing to release."""


def _merge(into: dict[str, Any], data: dict[str, Any]) -> None:
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
