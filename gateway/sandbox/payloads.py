"""Webhook bodies in the formats Meta documents for the Messenger Platform, and their signing.

The sandbox, the `simulate` command and the tests build what Meta would post with these, so
that all three speak one format.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from gateway.sources.facebook.signature import sign

_last = 0


def ts() -> int:
    """The time now in milliseconds, strictly increasing from call to call, as Meta's are."""
    global _last
    _last = max(int(time.time() * 1000), _last + 1)
    return _last


def mid() -> str:
    return "m_" + uuid.uuid4().hex


def envelope(page_id: str, *events: dict[str, Any], standby: list[dict] | None = None) -> dict:
    entry: dict[str, Any] = {"id": page_id, "time": ts(), "messaging": list(events)}
    if standby is not None:
        entry["standby"] = standby
    return {"object": "page", "entry": [entry]}


def text(page_id: str, psid: str, body: str = "Hello!", message_id: str | None = None,
         at: int | None = None, **message: Any) -> dict:
    return {
        "sender": {"id": psid}, "recipient": {"id": page_id}, "timestamp": at or ts(),
        "message": {"mid": message_id or mid(), "text": body, **message},
    }


def attachment(page_id: str, psid: str, kind: str, payload: dict, **extra: Any) -> dict:
    return {
        "sender": {"id": psid}, "recipient": {"id": page_id}, "timestamp": ts(),
        "message": {"mid": mid(), "attachments": [{"type": kind, "payload": payload}], **extra},
    }


def echo(page_id: str, psid: str, body: str = "Hi from the page", message_id: str | None = None,
         app_id: int | None = None, metadata: str | None = None) -> dict:
    message: dict[str, Any] = {"mid": message_id or mid(), "is_echo": True, "text": body}
    if app_id is not None:
        message["app_id"] = app_id
    if metadata is not None:
        message["metadata"] = metadata
    return {"sender": {"id": page_id}, "recipient": {"id": psid}, "timestamp": ts(),
            "message": message}


def postback(page_id: str, psid: str, title: str = "Get Started", payload: str = "GET_STARTED",
             message_id: str | None = None) -> dict:
    body: dict[str, Any] = {"title": title, "payload": payload}
    if message_id:
        body["mid"] = message_id
    return {"sender": {"id": psid}, "recipient": {"id": page_id}, "timestamp": ts(),
            "postback": body}


def reaction(page_id: str, psid: str, target_mid: str, action: str = "react",
             emoji: str = "\u2764\ufe0f", at: int | None = None) -> dict:
    body: dict[str, Any] = {"mid": target_mid, "action": action}
    if action == "react":
        body.update({"reaction": "love", "emoji": emoji})
    return {"sender": {"id": psid}, "recipient": {"id": page_id}, "timestamp": at or ts(),
            "reaction": body}


def delivery(page_id: str, psid: str, watermark: int, mids: list[str] | None = None) -> dict:
    body: dict[str, Any] = {"watermark": watermark}
    if mids:
        body["mids"] = mids
    return {"sender": {"id": psid}, "recipient": {"id": page_id}, "timestamp": ts(),
            "delivery": body}


def read(page_id: str, psid: str, watermark: int) -> dict:
    return {"sender": {"id": psid}, "recipient": {"id": page_id}, "timestamp": ts(),
            "read": {"watermark": watermark}}


def signed(secret: str, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """The body and headers of Meta's POST of `payload`: JSON, signed with the app secret (both
    signatures Meta sends: SHA-256, which the gateway checks, and the older SHA-1)."""
    body = json.dumps(payload).encode()
    sha1 = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    return body, {"Content-Type": "application/json", "User-Agent": "facebookexternalua",
                  "X-Hub-Signature": "sha1=" + sha1, "X-Hub-Signature-256": sign(secret, body)}
