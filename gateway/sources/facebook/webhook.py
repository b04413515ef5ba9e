"""Parse Meta's webhook envelope into `InboundEvent`s, checking every field the gateway uses.

This is the edge: whatever a signed call carries is checked here, so nothing further in meets a
time out of range or an id that is not Meta's shape (ids become Graph API path segments, times
become dates on every read).

- A body that is not JSON, not `"object": "page"`, whose `entry` is not a list, or that holds what
  MongoDB cannot store at all (integers over 64 bits, NaN), is refused whole: 400, nothing stored.
- An entry or an event that fails a check becomes an *invalid* event: kept raw in the events log
  with the reason, never applied. The rest of the call is stored and applied as usual, and Meta
  gets its 200, so one bad event neither blocks the good ones nor makes Meta retry for days.
- Event kinds this gateway does not model are kept as `UNKNOWN` with their raw JSON.
- An opt-in's notification-messages token is taken out of the event as kept (`raw`) and carried
  apart (`secret`), to be stored sealed (docs/webhook-events.md).
- Absent (or null) optional fields mean what they meant before: no timestamp is the time the event
  was received; a message without a sender or a mid is not a message (`UNKNOWN`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from gateway.domain import HANDOVER_KINDS, MAX_MS, EventKind, InboundEvent, is_graph_id, now_ms
from gateway.errors import InvalidInput
from gateway.validation import load_json

MAX_EVENTS = 10_000
# Times (event timestamps, delivery and read watermarks) are milliseconds since the epoch: from
# 2004 (before Facebook) to a day ahead of now (clocks differ a little, never by a day).
EARLIEST_MS = int(datetime(2004, 1, 1, tzinfo=UTC).timestamp() * 1000)
LATEST_AHEAD_MS = 24 * 3600 * 1000
MAX_MID_CHARS = 512  # Meta's mids are about 100 characters
MAX_METADATA_CHARS = 1000  # the Send API's limit on `metadata`
MAX_REACTION_CHARS = 100  # an emoji (a few code points) or a reaction's name
MAX_MIDS = 1000  # mids listed in one delivery event
MAX_TEXT_CHARS = 20_000  # an edited text (Messenger's own limit is 2,000 characters)
MAX_REF_CHARS = 2083  # a referral's `ref` (an m.me link's, at most as long as a URL)
MAX_FIELD_CHARS = 1000  # a referral's or an opt-in's other strings, and an opt-in's token
MAX_NUM_EDIT = 1000  # Meta allows five edits of a message
TOKEN = "notification_messages_token"  # an opt-in's secret: sealed in the store, never in `raw`
HANDOVER_APP_IDS = ("new_owner_app_id", "previous_owner_app_id", "requested_owner_app_id")


class _Invalid(Exception):
    """A field fails its check; the message, the reason kept with the event, names the field
    and never quotes its value."""


def parse_envelope(body: bytes, now: int | None = None) -> list[InboundEvent]:
    """Every `entry[].messaging[]` and `entry[].standby[]` event of a webhook POST body; a
    broken entry or event comes back as one event marked `invalid`."""
    payload = load_json(body)  # the one JSON rule of every body that comes in
    if not isinstance(payload, dict):
        raise InvalidInput("request body must be a JSON object")
    if payload.get("object") != "page":
        raise InvalidInput('only "object": "page" webhooks are accepted')
    entries = payload.get("entry", [])
    if not isinstance(entries, list):
        raise InvalidInput("entry must be a list")
    received = now_ms() if now is None else now
    events: list[InboundEvent] = []
    for entry in entries:
        events.extend(_entry_events(entry, received))
    if len(events) > MAX_EVENTS:
        raise InvalidInput(f"a webhook call may carry at most {MAX_EVENTS} events")
    return events


def _entry_events(entry: Any, received: int) -> list[InboundEvent]:
    """The events of one entry; an entry that cannot be read is kept whole as one invalid event."""
    page_id = ""
    try:
        if not isinstance(entry, dict):
            raise _Invalid("the entry must be a JSON object")
        page_id = _graph_id(entry.get("id"), "entry.id") or ""
        if not page_id:
            raise _Invalid("entry.id must be a Graph API id (1 to 32 digits)")
        lists: list[list[Any]] = []
        for list_name in ("messaging", "standby"):
            items = entry.get(list_name, [])
            if not isinstance(items, list):
                raise _Invalid(f"entry.{list_name} must be a list")
            lists.append(items)
    except _Invalid as exc:
        return [InboundEvent(key=event_key("entry:" + page_id, entry), page_id=page_id,
                             kind=EventKind.UNKNOWN, raw=entry, timestamp=received,
                             invalid=str(exc))]
    events = [parse_event(page_id, raw, received) for items in lists for raw in items]
    for event in events[len(lists[0]):]:  # standby: sent while another app owns the thread
        event.standby = True
    return events


def parse_event(page_id: str, raw: Any, now: int | None = None) -> InboundEvent:
    """Classify one messaging event; what is not a kind this gateway models is kept as UNKNOWN,
    what fails a check as invalid."""
    key = event_key(page_id, raw)
    received = now_ms() if now is None else now
    try:
        return _read_event(key, page_id, raw, received)
    except _Invalid as exc:
        return InboundEvent(key=key, page_id=page_id, kind=EventKind.UNKNOWN,
                            raw=_without_token(raw), timestamp=received, invalid=str(exc))


def _read_event(key: str, page_id: str, raw: Any, received: int) -> InboundEvent:
    if not isinstance(raw, dict):
        raise _Invalid("the event must be a JSON object")
    timestamp = _time(raw.get("timestamp"), "timestamp", received) or received
    sender = _party(raw.get("sender"), "sender")
    recipient = _party(raw.get("recipient"), "recipient")
    event = InboundEvent(
        key=key, page_id=page_id, kind=EventKind.UNKNOWN, raw=raw, timestamp=timestamp,
        contact_id=sender,
    )
    message = raw.get("message")
    if isinstance(message, dict):
        mid = _text(message.get("mid"), "message.mid", MAX_MID_CHARS)
        if message.get("is_echo") is True:
            app_id = _graph_id(message.get("app_id"), "message.app_id")
            metadata = _text(message.get("metadata"), "message.metadata", MAX_METADATA_CHARS)
            if recipient and mid:
                event.kind = EventKind.ECHO
                event.contact_id = recipient
                event.source_message_id = mid
                event.app_id = app_id
                event.echo_metadata = metadata
        elif sender and mid:
            event.kind = EventKind.MESSAGE
            event.source_message_id = mid
            event.referral = _referral(message.get("referral"), "message.referral")
        return event
    postback = raw.get("postback")
    if isinstance(postback, dict) and sender:
        event.kind = EventKind.POSTBACK
        event.source_message_id = _text(postback.get("mid"), "postback.mid", MAX_MID_CHARS)
        event.referral = _referral(postback.get("referral"), "postback.referral")
        return event
    reaction = raw.get("reaction")
    if isinstance(reaction, dict) and sender:
        mid = _text(reaction.get("mid"), "reaction.mid", MAX_MID_CHARS)
        action = reaction.get("action")
        if mid and action in ("react", "unreact"):
            event.kind = EventKind.REACTION
            event.source_message_id = mid
            event.reaction = {
                "action": action,
                "emoji": _text(reaction.get("emoji"), "reaction.emoji", MAX_REACTION_CHARS),
                "reaction": _text(reaction.get("reaction"), "reaction.reaction",
                                  MAX_REACTION_CHARS),
            }
        return event
    edit = raw.get("message_edit")
    if isinstance(edit, dict) and sender:
        event.kind = EventKind.EDIT
        event.source_message_id = _text(edit.get("mid"), "message_edit.mid", MAX_MID_CHARS)
        event.edit = {"text": _text(edit.get("text"), "message_edit.text", MAX_TEXT_CHARS),
                      "num_edit": _num_edit(edit.get("num_edit"))}
        if not event.source_message_id:
            raise _Invalid("message_edit.mid must be a mid")
        return event
    if isinstance(raw.get("referral"), dict) and sender:
        event.kind = EventKind.REFERRAL
        event.referral = _referral(raw["referral"], "referral")
        return event
    optin = raw.get("optin")
    if isinstance(optin, dict):
        event.raw = _without_token(raw)
        event.kind = EventKind.OPTIN
        event.optin, event.secret = _optin(optin)
        return event
    for kind, name in ((EventKind.DELIVERY, "delivery"), (EventKind.READ, "read")):
        body = raw.get(name)
        if isinstance(body, dict) and sender:
            event.watermark = _time(body.get("watermark"), f"{name}.watermark", received)
            event.mids = _mids(body.get("mids"), f"{name}.mids")
            if event.watermark is not None or event.mids:
                event.kind = kind
            return event
    for kind in HANDOVER_KINDS:
        body = raw.get(kind.value)
        if isinstance(body, dict) and sender:
            event.kind = kind
            event.handover = _handover(body, kind.value)
            return event
    return event


def event_key(page_id: str, raw: Any) -> str:
    """The same event delivered twice hashes the same, whatever the order of its keys."""
    canonical = json.dumps([page_id, raw], sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _time(value: Any, what: str, received: int) -> int | None:
    """Milliseconds since the epoch, an integer (1.7e12 is one too), in the sane range; None
    when absent."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"{what} must be an integer time in milliseconds")
    if not EARLIEST_MS <= value <= received + LATEST_AHEAD_MS:
        raise _Invalid(f"{what} must be a time between 2004-01-01 and a day from now")
    return value


def _graph_id(value: Any, what: str) -> str | None:
    """A page id, PSID or app id (Meta sends them as strings, app ids as numbers); None when
    absent."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not is_graph_id(value):
        raise _Invalid(f"{what} must be a Graph API id (1 to 32 digits)")
    return value


def _party(party: Any, what: str) -> str | None:
    """The id of a sender or recipient: `{"id": "<digits>"}`; None when absent (an optin's
    sender may carry a `user_ref` instead)."""
    if party is None:
        return None
    if not isinstance(party, dict):
        raise _Invalid(f"{what} must be an object with an id")
    return _graph_id(party.get("id"), f"{what}.id")


def _text(value: Any, what: str, limit: int) -> str | None:
    """A string of at most `limit` characters; None when absent or empty."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise _Invalid(f"{what} must be a string of at most {limit} characters")
    return value or None


def _mids(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_MIDS:
        raise _Invalid(f"{what} must be a list of at most {MAX_MIDS} mids")
    mids = [_text(mid, what, MAX_MID_CHARS) for mid in value]
    return [mid for mid in mids if mid]


def _handover(body: dict[str, Any], what: str) -> dict[str, str | None]:
    """A handover event's app ids (Meta sends them as strings or numbers; null: the thread was
    idle) and its `metadata`, the caller's free text."""
    handover: dict[str, str | None] = {
        name: _graph_id(body.get(name), f"{what}.{name}") for name in HANDOVER_APP_IDS}
    handover["metadata"] = _text(body.get("metadata"), f"{what}.metadata", MAX_METADATA_CHARS)
    return handover


def _num_edit(value: Any) -> int:
    """Which edit of the message this is, 1 and up (Meta's example sends it as a string)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 4:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_NUM_EDIT:
        raise _Invalid(f"message_edit.num_edit must be an integer from 1 to {MAX_NUM_EDIT}")
    return value


def _referral(value: Any, what: str) -> dict[str, Any] | None:
    """A referral's source, type, ref and ad id (an ad's context and the rest stay in `raw`);
    None when absent."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _Invalid(f"{what} must be an object")
    ad_id = value.get("ad_id")
    if isinstance(ad_id, int) and not isinstance(ad_id, bool):
        ad_id = str(ad_id)
    return {"source": _text(value.get("source"), f"{what}.source", MAX_FIELD_CHARS),
            "type": _text(value.get("type"), f"{what}.type", MAX_FIELD_CHARS),
            "ref": _text(value.get("ref"), f"{what}.ref", MAX_REF_CHARS),
            "ad_id": _text(ad_id, f"{what}.ad_id", MAX_FIELD_CHARS)}


def _optin(optin: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """An opt-in's fields (a Send to Messenger opt-in: type "plugin", its `ref` the payload),
    and its notification-messages token apart."""
    def text(name: str, limit: int = MAX_FIELD_CHARS) -> str | None:
        return _text(optin.get(name), f"optin.{name}", limit)

    expires = optin.get("token_expiry_timestamp")
    if isinstance(expires, float) and expires.is_integer():
        expires = int(expires)
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int)
                                or not 0 <= expires <= MAX_MS):
        raise _Invalid("optin.token_expiry_timestamp must be an integer time in milliseconds")
    fields = {
        "type": text("type") or "plugin", "payload": text("payload") or text("ref", MAX_REF_CHARS),
        "title": text("title"), "frequency": text("notification_messages_frequency"),
        "timezone": text("notification_messages_timezone"), "expires_at": expires,
        "status": text("notification_messages_status"),
    }
    return fields, text(TOKEN)


def _without_token(raw: Any) -> Any:
    """The event as the events log keeps it: an opt-in's token taken out (it is stored sealed)."""
    if isinstance(raw, dict) and isinstance(raw.get("optin"), dict) and TOKEN in raw["optin"]:
        return {**raw, "optin": {k: v for k, v in raw["optin"].items() if k != TOKEN}}
    return raw
