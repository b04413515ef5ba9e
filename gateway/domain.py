"""Domain types: plain dataclasses that the use-cases and the adapters share.

Mongo documents never leave `gateway.store`; everything above it speaks these types.
Times are integer milliseconds since the epoch (Meta's unit), in UTC, within [0, MAX_MS].
The field annotations are also what a stored document must satisfy to be read back as one of
these types (`gateway.store.documents` validates them with pydantic); anything else is skipped.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, JsonValue, Strict
from typing_extensions import TypedDict

from gateway import filters

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The last millisecond a datetime can hold (the end of year 9999): a later time breaks iso(),
# GraphQL's DateTime and JavaScript's Date alike, so no time the gateway reads is later.
MAX_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - EPOCH) \
    // timedelta(milliseconds=1)
# A time as the domain holds it: an integer (never a string, float or bool) in [0, MAX_MS].
Timestamp = Annotated[int, Strict(), Field(ge=0, le=MAX_MS)]
# A count GraphQL's Int (32-bit) can carry.
Count = Annotated[int, Strict(), Field(ge=0, le=2**31 - 1)]
# What contents and user data are: JSON, so that every answer can be encoded.
JsonObject = dict[str, JsonValue]


def moment(ms: int) -> datetime:
    """Milliseconds since the epoch as a UTC datetime (exact, for any time in [0, MAX_MS])."""
    return EPOCH + timedelta(milliseconds=ms)


def clamp_ms(ms: int) -> int:
    """The time in [0, MAX_MS] nearest to `ms`."""
    return min(max(ms, 0), MAX_MS)


def iso(ms: int | None) -> str | None:
    """Milliseconds since the epoch as `2019-02-13T09:39:13.811Z` (Airy's time format)."""
    if ms is None:
        return None
    when = moment(ms)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id() -> str:
    return str(uuid.uuid4())


# Meta's page ids, page-scoped ids (PSIDs) and app ids: decimal digits, ASCII only.
GRAPH_ID = re.compile(r"[0-9]{1,32}")


def is_graph_id(value: object) -> bool:
    """Is `value` shaped like a Graph API id (a page id, a PSID, an app id)? Only such ids
    become Graph API path segments."""
    return isinstance(value, str) and GRAPH_ID.fullmatch(value) is not None


class DeliveryState(str, Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class SenderType(str, Enum):
    """Who wrote a message (Airy's values before it moved to `from_contact`)."""

    CONTACT = "source_contact"  # the person writing to the page
    PAGE = "source_user"  # the page, answering from another app (e.g. Page Inbox)
    APP = "app_user"  # sent through this gateway


class FetchState(str, Enum):
    PENDING = "pending"
    OK = "ok"
    FAILED = "failed"


@dataclass
class Channel:
    id: str
    source_channel_id: str  # the Facebook page id
    name: str
    image_url: str | None
    connected: bool
    created_at: Timestamp
    updated_at: Timestamp
    source: str = "facebook"
    token_valid: bool = True  # False once Meta refuses the token: connect the page again
    user_data: JsonObject = field(default_factory=dict)  # set through metadata.upsert
    # The page token is held by the store and handed only to the Graph API client;
    # it is kept out of repr() so that no log line can print it.
    page_token: str = field(default="", repr=False)


@dataclass
class Contact:
    id: str  # the page-scoped id (PSID) of the person
    display_name: str | None = None
    avatar_url: str | None = None
    fetch_state: FetchState = FetchState.PENDING
    fetch_error: str | None = None


class Reaction(TypedDict, total=False):
    """The person's reaction to a message."""

    emoji: str | None
    reaction: str | None  # Meta's name for it, e.g. love
    sent_at: Timestamp


class MessageEdit(TypedDict):
    """A text a message had before the person edited it, and when it was replaced."""

    text: str | None
    edited_at: Timestamp


@dataclass
class Message:
    id: str
    conversation_id: str
    channel_id: str
    content: JsonObject  # inbound: the whole Messenger event; outbound: the message object
    sender_type: SenderType
    state: DeliveryState
    sent_at: Timestamp
    source_message_id: str | None = None  # Meta's mid
    error: JsonObject | None = None
    reaction: Reaction | None = None
    read_by_contact: bool = False
    kind: str = "message"  # message, postback, echo
    send_options: JsonObject | None = None  # messaging_type and tag of a message we send
    suggestions: JsonObject = field(default_factory=dict)  # suggested replies, by id
    user_data: JsonObject = field(default_factory=dict)  # set through metadata.upsert
    edit_count: Count = 0  # Meta's num_edit of the last edit applied (0: never edited)
    edits: list[MessageEdit] = field(default_factory=list)  # earlier texts, oldest first

    @property
    def from_contact(self) -> bool:
        return self.sender_type is SenderType.CONTACT

    def metadata(self) -> dict[str, Any]:
        """Airy's reserved message metadata: source.id, error, source.error, reaction, user_read."""
        metadata: dict[str, Any] = {}
        source: dict[str, Any] = {}
        if self.source_message_id:
            source["id"] = self.source_message_id
        if self.error:
            metadata["error"] = self.error.get("message")
            source["error"] = self.error
        if source:
            metadata["source"] = source
        if self.reaction:
            metadata["reaction"] = {
                "emoji": self.reaction.get("emoji"), "sent_at": iso(self.reaction.get("sent_at"))
            }
        if not self.from_contact:
            metadata["user_read"] = self.read_by_contact
        if self.suggestions:
            metadata["suggestions"] = self.suggestions
        if self.user_data:
            metadata["user_data"] = self.user_data
        if self.edit_count:
            metadata["edit_count"] = self.edit_count
            metadata["edits"] = [{"text": edit.get("text"), "edited_at": iso(edit["edited_at"])}
                                 for edit in self.edits]
        return metadata


# The handover protocol: which app answers a person. Page Inbox is the app Meta gives every page.
PAGE_INBOX_APP_ID = "263902037430900"
ThreadOwnerKind = Literal["app", "other_app", "page_inbox"]  # app: this gateway's app


@dataclass
class ThreadOwner:
    """Who owns the conversation's thread, as Meta last said (or as this app last changed it).

    `owner` None: not known (the thread is idle, or only a request was heard of). Another app's
    request for control is kept (`requested_by`, its app id) until the owner changes."""

    owner: ThreadOwnerKind | None
    updated_at: Timestamp
    app_id: str | None = None  # the owning app's id, when Meta named it
    requested_by: str | None = None  # the app id that asked for control last
    requested_at: Timestamp | None = None

    @staticmethod
    def kind_of(app_id: str | None, own_app_id: str) -> ThreadOwnerKind:
        """The owner an app id names: this app (FACEBOOK_APP_ID), Page Inbox, or another."""
        if app_id is not None and app_id == own_app_id:
            return "app"
        return "page_inbox" if app_id == PAGE_INBOX_APP_ID else "other_app"

    @property
    def someone_else(self) -> bool:
        """Another app (or Page Inbox) owns the thread: this app's sends are refused by Meta."""
        return self.owner in ("other_app", "page_inbox")


@dataclass
class Referral:
    """How the person last came to the conversation: an ad, an m.me link's `ref`, a plugin."""

    source: str | None  # Meta's: ADS, SHORTLINK, CUSTOMER_CHAT_PLUGIN, …
    type: str | None  # OPEN_THREAD
    ref: str | None
    ad_id: str | None
    updated_at: Timestamp


@dataclass
class Optin:
    """The person opted in (or changed an opt-in): for notification messages, the topic and
    frequency. Its token, if any, stays in the store, sealed: `has_token` says there is one."""

    type: str  # notification_messages, or "plugin" for a Send to Messenger opt-in (a `ref`)
    payload: str | None
    updated_at: Timestamp
    title: str | None = None
    frequency: str | None = None  # DAILY, WEEKLY, MONTHLY
    timezone: str | None = None
    expires_at: Timestamp | None = None  # the token's expiry
    status: str | None = None  # STOP NOTIFICATIONS, RESUME NOTIFICATIONS
    has_token: bool = False


@dataclass
class Conversation:
    id: str
    channel_id: str
    contact: Contact
    created_at: Timestamp
    last_message_at: Timestamp
    unread_count: Count = 0
    message_count: Count = 0  # messages stored in it, counted as they are stored
    last_message_id: str | None = None
    state: str | None = None  # Airy's conversation state, e.g. OPEN or CLOSED, set by users
    tag_ids: list[str] = field(default_factory=list)
    user_data: JsonObject = field(default_factory=dict)  # set through metadata.upsert
    referral: Referral | None = None  # the latest
    optins: list[Optin] = field(default_factory=list)  # one per (type, payload), newest last
    thread_owner: ThreadOwner | None = None  # the handover protocol's owner; None: never heard

    @property
    def display_name(self) -> str:
        """Airy's placeholder until the profile is fetched: "Facebook " and the id's last 5
        characters."""
        return self.contact.display_name or f"Facebook {self.id[-5:]}"


@dataclass
class ConversationView:
    """A conversation with what a list shows beside it."""

    conversation: Conversation
    channel: Channel
    last_message: Message | None


TagColor = Literal["tag-blue", "tag-red", "tag-green", "tag-purple"]  # Airy's tag colours
TAG_COLORS: tuple[str, ...] = get_args(TagColor)
DEFAULT_TAG_COLOR: TagColor = "tag-blue"


@dataclass
class Tag:
    id: str
    name: str
    color: TagColor


@dataclass
class ConversationFilter:
    """What `conversations.list` narrows to; every field is optional and they all must hold."""

    channel_ids: list[str] | None = None
    source: str | None = None
    state: str | None = None
    tag_ids: list[str] | None = None  # conversations carrying every one of these tags
    unread: bool | None = None  # True: unread_count > 0; False: all read
    display_name: str | None = None  # case-insensitive part of the contact's name
    # What else must hold (Airy's Lucene filters), where the fields above cannot say it
    query: filters.Expr | None = None


@dataclass
class FacebookPage:
    """A page a Facebook user manages, as `channels.facebook.explore` lists it."""

    page_id: str
    name: str
    image_url: str | None
    connected: bool


WEBHOOK_EVENTS = ("message.created", "message.updated", "conversation.updated", "channel.updated")
# Set on each delivery of a webhook with a signature key: the hex HMAC-SHA256 of the body.
WEBHOOK_SIGNATURE_HEADER = "X-Airy-Content-Signature"


@dataclass
class Webhook:
    """An outgoing webhook: where to post which events, and how its deliveries fare."""

    id: str
    url: str
    name: str | None
    events: list[str]  # a subset of WEBHOOK_EVENTS
    headers: dict[str, str]
    subscribed: bool
    created_at: Timestamp
    updated_at: Timestamp
    signature_key: str = field(default="", repr=False)  # a secret: never answered, never logged
    last_success_at: Timestamp | None = None
    last_error: str | None = None
    last_error_at: Timestamp | None = None

    def wants(self, event_type: str) -> bool:
        return self.subscribed and event_type in self.events


@dataclass
class Page:
    """One page of a cursor-paginated list; `cursors[i]` continues the list after `items[i]`.

    `end_cursor` continues it after the last document the page read, which is not the last
    item when stored documents that cannot be read were skipped at the end of the page (the
    next page must not read them again). None: the cursor of the last item.
    """

    items: list[Any]
    cursors: list[str]
    has_more: bool
    previous_cursor: str | None
    total: int
    end_cursor: str | None = None
    # A backward page's: where the list goes back from, before the first document it read
    # (readable or not). None: the cursor of the first item.
    start_cursor: str | None = None

    @property
    def first_cursor(self) -> str | None:
        """Where the list goes back from before this page (the cursor `before` takes)."""
        return self.start_cursor or (self.cursors[0] if self.cursors else None)

    @property
    def last_cursor(self) -> str | None:
        """Where the list goes on after this page, whether or not more follows."""
        return self.end_cursor or (self.cursors[-1] if self.cursors else None)

    @property
    def next_cursor(self) -> str | None:
        return self.last_cursor if self.has_more else None


class EventKind(str, Enum):
    MESSAGE = "message"
    ECHO = "echo"
    POSTBACK = "postback"
    REACTION = "reaction"
    DELIVERY = "delivery"
    READ = "read"
    EDIT = "edit"
    REFERRAL = "referral"
    OPTIN = "optin"
    PASS_THREAD_CONTROL = "pass_thread_control"
    TAKE_THREAD_CONTROL = "take_thread_control"
    REQUEST_THREAD_CONTROL = "request_thread_control"
    UNKNOWN = "unknown"


# The handover protocol's events (`messaging_handovers`), each named by its key in the event.
HANDOVER_KINDS = (EventKind.PASS_THREAD_CONTROL, EventKind.TAKE_THREAD_CONTROL,
                  EventKind.REQUEST_THREAD_CONTROL)


@dataclass
class InboundEvent:
    """One event a source sent us, as it sent it (`raw`), with what routing needs read out of it."""

    key: str  # stable hash of page + raw event: the same delivery twice has the same key
    page_id: str
    kind: EventKind
    raw: Any  # a JSON object; for an invalid event, whatever was sent in its place
    timestamp: Timestamp
    contact_id: str | None = None  # the person's PSID
    source_message_id: str | None = None  # mid of the message this event is, or is about
    app_id: str | None = None  # echoes: the app that sent the message
    echo_metadata: str | None = None  # echoes: the Send API `metadata` that came back
    watermark: int | None = None  # deliveries and reads
    mids: list[str] = field(default_factory=list)  # deliveries: the messages delivered
    reaction: dict[str, Any] | None = None  # reactions: {action, emoji, reaction}
    edit: dict[str, Any] | None = None  # edits: {text, num_edit}
    # referrals, and messages and postbacks that carry one: {source, type, ref, ad_id}
    referral: dict[str, Any] | None = None
    optin: dict[str, Any] | None = None  # opt-ins: Optin's fields but the time and the token
    # An opt-in's notification-messages token: sealed in the events log, never in `raw`.
    secret: str | None = field(default=None, repr=False)
    # Handover events: {new_owner_app_id, previous_owner_app_id, requested_owner_app_id,
    # metadata}, each checked (ids are Graph API ids) or None.
    handover: dict[str, str | None] | None = None
    standby: bool = False  # delivered on `entry.standby`: another app owns the thread
    # Why the event cannot be applied (a field out of range or of the wrong shape): it is kept
    # raw in the events log and never applied. None for a valid event.
    invalid: str | None = None


# Airy's contact fields a user may set (create, import, update), beside `id` and the times.
CONTACT_TEXT_FIELDS = ("display_name", "avatar_url", "title", "timezone", "gender", "locale",
                       "organization_name")
CONTACT_OBJECT_FIELDS = ("via", "address", "conversations", "metadata")
ADDRESS_FIELDS = ("organization_name", "address_line1", "address_line2", "postcode", "city",
                  "state", "country")


@dataclass
class ContactCard:
    """A person in Airy's contacts: made for each conversation's person (linked to it by
    `conversations` and `metadata.facebook`), or by a user. `Contact` is the person as a
    conversation shows them; this is the record users keep and merge."""

    id: str
    created_at: Timestamp
    updated_at: Timestamp
    display_name: str | None = None
    avatar_url: str | None = None
    title: str | None = None
    timezone: str | None = None
    gender: str | None = None
    locale: str | None = None
    organization_name: str | None = None
    via: dict[str, str] = field(default_factory=dict)  # phone, email, <key>: <value>
    address: dict[str, str] = field(default_factory=dict)  # ADDRESS_FIELDS
    conversations: dict[str, str] = field(default_factory=dict)  # conversation id: source
    metadata: JsonObject = field(default_factory=dict)  # facebook {psid, page_id}, users' data
    merge_history: list[JsonObject] = field(default_factory=list)  # copies of merged contacts
