"""Parse Meta's webhook envelope into `InboundEvent`s.

The envelope is checked whole before anything is stored, so a bad body is refused as a whole.
Event kinds this gateway does not model are kept as `UNKNOWN` with their raw JSON, never refused.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from gateway.domain import EventKind, InboundEvent, now_ms
from gateway.errors import InvalidInput
from gateway.validation import check_storable

MAX_EVENTS = 10_000


def parse_envelope(body: bytes) -> list[InboundEvent]:
    """Every `entry[].messaging[]` and `entry[].standby[]` event of a webhook POST body."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidInput("request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise InvalidInput("request body must be a JSON object")
    check_storable(payload)
    if payload.get("object") != "page":
        raise InvalidInput('only "object": "page" webhooks are accepted')
    entries = payload.get("entry", [])
    if not isinstance(entries, list):
        raise InvalidInput("entry must be a list")
    events: list[InboundEvent] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InvalidInput(f"entry[{index}] must be an object")
        page_id = entry.get("id")
        if isinstance(page_id, int) and not isinstance(page_id, bool):
            page_id = str(page_id)
        if not isinstance(page_id, str) or not page_id:
            raise InvalidInput(f"entry[{index}].id must be the page id")
        for list_name in ("messaging", "standby"):
            items = entry.get(list_name, [])
            if not isinstance(items, list):
                raise InvalidInput(f"entry[{index}].{list_name} must be a list")
            for position, raw in enumerate(items):
                if not isinstance(raw, dict):
                    raise InvalidInput(f"entry[{index}].{list_name}[{position}] must be an object")
                events.append(parse_event(page_id, raw))
    if len(events) > MAX_EVENTS:
        raise InvalidInput(f"a webhook call may carry at most {MAX_EVENTS} events")
    return events


def parse_event(page_id: str, raw: dict[str, Any]) -> InboundEvent:
    """Classify one messaging event; what cannot be read is kept as UNKNOWN."""
    key = event_key(page_id, raw)
    timestamp = _int(raw.get("timestamp")) or now_ms()
    sender = _id_of(raw.get("sender"))
    recipient = _id_of(raw.get("recipient"))
    event = InboundEvent(
        key=key, page_id=page_id, kind=EventKind.UNKNOWN, raw=raw, timestamp=timestamp,
        contact_id=sender,
    )
    message = raw.get("message")
    if isinstance(message, dict):
        mid = _str(message.get("mid"))
        if message.get("is_echo") is True:
            if recipient and mid:
                event.kind = EventKind.ECHO
                event.contact_id = recipient
                event.source_message_id = mid
                app_id = message.get("app_id")
                event.app_id = str(app_id) if isinstance(app_id, (int, str)) else None
                event.echo_metadata = _str(message.get("metadata"))
        elif sender and mid:
            event.kind = EventKind.MESSAGE
            event.source_message_id = mid
        return event
    postback = raw.get("postback")
    if isinstance(postback, dict) and sender:
        event.kind = EventKind.POSTBACK
        event.source_message_id = _str(postback.get("mid"))
        return event
    reaction = raw.get("reaction")
    if isinstance(reaction, dict) and sender and _str(reaction.get("mid")):
        action = reaction.get("action")
        if action in ("react", "unreact"):
            event.kind = EventKind.REACTION
            event.source_message_id = _str(reaction.get("mid"))
            event.reaction = {
                "action": action,
                "emoji": _str(reaction.get("emoji")),
                "reaction": _str(reaction.get("reaction")),
            }
        return event
    for kind, name in ((EventKind.DELIVERY, "delivery"), (EventKind.READ, "read")):
        body = raw.get(name)
        if isinstance(body, dict) and sender:
            event.watermark = _int(body.get("watermark"))
            mids = body.get("mids")
            event.mids = [m for m in mids if isinstance(m, str)] if isinstance(mids, list) else []
            if event.watermark is not None or event.mids:
                event.kind = kind
            return event
    return event


def event_key(page_id: str, raw: dict[str, Any]) -> str:
    """The same event delivered twice hashes the same, whatever the order of its keys."""
    canonical = json.dumps([page_id, raw], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _id_of(party: Any) -> str | None:
    if isinstance(party, dict):
        value = party.get("id")
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return _str(value)
    return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None
