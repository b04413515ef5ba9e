"""Domain types: plain dataclasses that the service layer and the adapters share.

Mongo documents never leave `gateway.store`; everything above it speaks these types.
Times are integer milliseconds since the epoch (Meta's unit), in UTC.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


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

    @property
    def from_contact(self) -> bool:
        return self.sender_type is SenderType.CONTACT


@dataclass
class Conversation:
    id: str
    channel_id: str
    contact: Contact
    created_at: int
    last_message_at: int
    unread_count: int = 0
    last_message_id: str | None = None


@dataclass
class ConversationView:
    """A conversation with what a list shows beside it."""

    conversation: Conversation
    channel: Channel
    last_message: Message | None


@dataclass
class Page:
    """One page of a cursor-paginated list."""

    items: list[Any]
    next_cursor: str | None
    previous_cursor: str | None
    total: int


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
