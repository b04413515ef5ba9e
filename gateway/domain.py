"""Domain types: plain dataclasses that the service layer and the adapters share.

Mongo documents never leave `gateway.store`; everything above it speaks these types.
Times are integer milliseconds since the epoch (Meta's unit), in UTC.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


def iso(ms: int | None) -> str | None:
    """Milliseconds since the epoch as `2019-02-13T09:39:13.811Z` (Airy's time format)."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id() -> str:
    return str(uuid.uuid4())


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
    created_at: int
    updated_at: int
    source: str = "facebook"
    token_valid: bool = True  # False once Meta refuses the token: connect the page again
    user_data: dict[str, Any] = field(default_factory=dict)  # set through metadata.upsert
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


@dataclass
class Message:
    id: str
    conversation_id: str
    channel_id: str
    content: Any
    sender_type: SenderType
    state: DeliveryState
    sent_at: int
    source_message_id: str | None = None  # Meta's mid
    error: dict[str, Any] | None = None
    reaction: dict[str, Any] | None = None
    read_by_contact: bool = False
    kind: str = "message"  # message, postback, echo
    send_options: dict[str, Any] | None = None  # messaging_type and tag of a message we send
    suggestions: dict[str, Any] = field(default_factory=dict)  # suggested replies, by id
    user_data: dict[str, Any] = field(default_factory=dict)  # set through metadata.upsert

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
        return metadata


@dataclass
class Conversation:
    id: str
    channel_id: str
    contact: Contact
    created_at: int
    last_message_at: int
    unread_count: int = 0
    last_message_id: str | None = None
    state: str | None = None  # Airy's conversation state, e.g. OPEN or CLOSED, set by users
    tag_ids: list[str] = field(default_factory=list)
    user_data: dict[str, Any] = field(default_factory=dict)  # set through metadata.upsert

    @property
    def display_name(self) -> str:
        """Airy's placeholder until the profile is fetched: "Facebook " + the id's last 5 characters."""
        return self.contact.display_name or f"Facebook {self.id[-5:]}"


@dataclass
class ConversationView:
    """A conversation with what a list shows beside it."""

    conversation: Conversation
    channel: Channel
    last_message: Message | None


TAG_COLORS = ("tag-blue", "tag-red", "tag-green", "tag-purple")  # Airy's tag colours
DEFAULT_TAG_COLOR = "tag-blue"


@dataclass
class Tag:
    id: str
    name: str
    color: str


@dataclass
class ConversationFilter:
    """What `conversations.list` narrows to; every field is optional and they all must hold."""

    channel_ids: list[str] | None = None
    source: str | None = None
    state: str | None = None
    tag_ids: list[str] | None = None  # conversations carrying every one of these tags
    unread: bool | None = None  # True: unread_count > 0; False: all read
    display_name: str | None = None  # case-insensitive part of the contact's name


@dataclass
class FacebookPage:
    """A page a Facebook user manages, as `channels.facebook.explore` lists it."""

    page_id: str
    name: str
    image_url: str | None
    connected: bool


WEBHOOK_EVENTS = ("message.created", "message.updated", "conversation.updated", "channel.updated")


@dataclass
class Webhook:
    """An outgoing webhook: where to post which events, and how its deliveries fare."""

    id: str
    url: str
    name: str | None
    events: list[str]  # a subset of WEBHOOK_EVENTS
    headers: dict[str, str]
    subscribed: bool
    created_at: int
    updated_at: int
    signature_key: str = field(default="", repr=False)  # a secret: never answered, never logged
    last_success_at: int | None = None
    last_error: str | None = None
    last_error_at: int | None = None

    def wants(self, event_type: str) -> bool:
        return self.subscribed and event_type in self.events


@dataclass
class Page:
    """One page of a cursor-paginated list; `cursors[i]` continues the list after `items[i]`."""

    items: list[Any]
    cursors: list[str]
    has_more: bool
    previous_cursor: str | None
    total: int

    @property
    def next_cursor(self) -> str | None:
        return self.cursors[-1] if self.has_more and self.cursors else None


class EventKind(str, Enum):
    MESSAGE = "message"
    ECHO = "echo"
    POSTBACK = "postback"
    REACTION = "reaction"
    DELIVERY = "delivery"
    READ = "read"
    UNKNOWN = "unknown"


@dataclass
class InboundEvent:
    """One event a source sent us, as it sent it (`raw`), with what routing needs read out of it."""

    key: str  # stable hash of page + raw event: the same delivery twice has the same key
    page_id: str
    kind: EventKind
    raw: dict[str, Any]
    timestamp: int
    contact_id: str | None = None  # the person's PSID
    source_message_id: str | None = None  # mid of the message this event is, or is about
    app_id: str | None = None  # echoes: the app that sent the message
    echo_metadata: str | None = None  # echoes: the Send API `metadata` that came back
    watermark: int | None = None  # deliveries and reads
    mids: list[str] = field(default_factory=list)  # deliveries: the messages delivered
    reaction: dict[str, Any] | None = None  # reactions: {action, emoji, reaction}
