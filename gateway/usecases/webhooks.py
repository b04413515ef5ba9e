"""Outgoing webhooks: subscribing, changing and removing them (delivery is gateway.outgoing's)."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

from gateway.domain import (
    WEBHOOK_EVENTS,
    WEBHOOK_SIGNATURE_HEADER,
    Webhook,
    new_id,
    now_ms,
)
from gateway.egress import parse_address, refusal, why_not_public
from gateway.errors import (
    InvalidInput,
    NotFound,
)
from gateway.usecases.base import (
    UseCase,
)
from gateway.validation import check_storable

log = logging.getLogger(__name__)

HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")  # RFC 9110 token
# An RFC 9110 field value in ASCII: visible characters, with spaces and tabs only between them.
HEADER_VALUE = re.compile(r"(?:[\x21-\x7e](?:[ \t]*[\x21-\x7e])*)?")
# Headers of a webhook's deliveries that the gateway sets itself, or that would change how the
# request is framed or carried: a webhook cannot give them.
RESERVED_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "content-type",
    WEBHOOK_SIGNATURE_HEADER.lower(), "keep-alive", "proxy-connection", "te", "trailer",
    "upgrade", "expect",
})


class Webhooks(UseCase):
    """The webhooks changes are posted to; the feed is told when they change."""

    async def subscribe(
        self, url: str, webhook_id: str | None = None, name: str | None = None,
        events: list[str] | None = None, headers: dict[str, str] | None = None,
        signature_key: str | None = None,
    ) -> Webhook:
        """Subscribe a new webhook, or (given the id of one) change it and subscribe it again."""
        if webhook_id and await self.store.webhooks.exists(webhook_id):
            return await self.update(webhook_id, url=url, name=name, events=events,
                                             headers=headers, signature_key=signature_key,
                                             subscribed=True)
        now = now_ms()
        webhook = Webhook(
            id=webhook_id or new_id(), name=_webhook_name(name),
            url=_webhook_url(url, self.settings.webhook_allow_private),
            events=_webhook_events(events) if events is not None else list(WEBHOOK_EVENTS),
            headers=check_webhook_headers(headers or {}), subscribed=True, created_at=now,
            updated_at=now, signature_key=_webhook_key(signature_key or ""),
        )
        if not await self.store.webhooks.insert(webhook):  # the same id, subscribed just now
            return await self.subscribe(url, webhook_id, name, events, headers,
                                                signature_key)
        self.signals.webhooks()
        log.info("webhook %s subscribed", webhook.id)
        return webhook

    async def update(
        self, webhook_id: str, url: str | None = None, name: str | None = None,
        events: list[str] | None = None, headers: dict[str, str] | None = None,
        signature_key: str | None = None, subscribed: bool | None = None,
    ) -> Webhook:
        changes: dict[str, Any] = {"updated_at": now_ms()}
        if url is not None:
            changes["url"] = _webhook_url(url, self.settings.webhook_allow_private)
        if name is not None:
            changes["name"] = _webhook_name(name)
        if events is not None:
            changes["events"] = _webhook_events(events)
        if headers is not None:
            changes["headers"] = check_webhook_headers(headers)
        if signature_key is not None:
            changes["signature_key"] = _webhook_key(signature_key)
        if subscribed is not None:
            changes["subscribed"] = subscribed
        webhook = await self.store.webhooks.update(webhook_id, changes)
        if webhook is None:
            raise NotFound(f"webhook {webhook_id} not found")
        self.signals.webhooks()
        return webhook

    async def unsubscribe(self, webhook_id: str) -> Webhook:
        """Stop posting to the webhook, including what was queued for it."""
        webhook = await self.update(webhook_id, subscribed=False)
        await self.store.deliveries.drop_queued(webhook_id)
        log.info("webhook %s unsubscribed", webhook_id)
        return webhook

    async def info(self, webhook_id: str) -> tuple[Webhook, int]:
        """The webhook and how many deliveries wait for it."""
        webhook = await self.store.webhooks.get(webhook_id)
        if webhook is None:
            raise NotFound(f"webhook {webhook_id} not found")
        return webhook, await self.store.deliveries.queued(webhook_id)

    async def by_ids(self, ids: list[str]) -> list[tuple[Webhook, int] | None]:
        """For DataLoaders: one query for any number of ids (and each one's queue count),
        answers in the order asked."""
        found = await self.store.webhooks.many(ids)
        return [(found[i], await self.store.deliveries.queued(i)) if i in found else None
                for i in ids]

    async def all(self) -> list[tuple[Webhook, int]]:
        return [(w, await self.store.deliveries.queued(w.id))
                for w in await self.store.webhooks.list()]


def _webhook_url(url: str, allow_private: bool) -> str:
    """A receiver URL: http(s), and not an IP literal that delivery would refuse anyway (a name
    is checked on the addresses it resolves to, when each delivery is made: gateway.egress)."""
    check_storable(url, "url")
    try:
        parts = urlsplit(url.strip())
        host, _ = parts.hostname, parts.port  # a malformed host or port raises ValueError
    except ValueError:
        host = None
    if not host or parts.scheme not in ("http", "https") or len(url) > 2000:
        raise InvalidInput("url must be an http or https URL, e.g. https://example.com/hook")
    address = parse_address(host)
    reason = why_not_public(address) if address is not None and not allow_private else None
    if address is not None and reason:
        raise InvalidInput(f"url: {refusal(host, address, reason)}")
    return url.strip()


def _webhook_name(name: str | None) -> str | None:
    check_storable(name, "name")
    if name is not None and len(name) > 200:
        raise InvalidInput("name must be at most 200 characters")
    if name is None:
        return None
    return name.strip() or None


def _webhook_events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e not in WEBHOOK_EVENTS]
    if unknown or not events:
        raise InvalidInput(f"events must name one or more of {', '.join(WEBHOOK_EVENTS)}"
                           + (f"; unknown: {', '.join(map(str, unknown))}" if unknown else ""))
    return [e for e in WEBHOOK_EVENTS if e in events]


def check_webhook_headers(headers: dict[str, str]) -> dict[str, str]:
    """The headers a webhook's deliveries carry, as HTTP can send them (REST and GraphQL alike,
    and the sender, for webhooks stored before they were checked). `InvalidInput` names the
    header at fault, never its value (which may be a secret)."""
    check_storable(headers, "headers")
    if len(headers) > 30:
        raise InvalidInput("headers: at most 30")
    seen: set[str] = set()
    for key, value in headers.items():
        name = repr(key) if len(key) <= 100 else repr(key[:100]) + "…"
        if not HEADER_NAME.fullmatch(key):
            raise InvalidInput(f"headers: {name} is not a header name (1 to 100 letters, digits "
                               "and !#$%&'*+-.^_`|~)")
        if key.lower() in RESERVED_HEADERS:
            raise InvalidInput(f"headers: {name} cannot be given: the gateway sets it, or it "
                               "would change how deliveries are sent")
        if key.lower() in seen:
            raise InvalidInput(f"headers: {name} is given twice (header names ignore case)")
        seen.add(key.lower())
        if not isinstance(value, str) or len(value) > 4000 or not HEADER_VALUE.fullmatch(value):
            raise InvalidInput(f"headers: the value of {name} must be text of at most 4000 "
                               "visible ASCII characters, with spaces or tabs only between them")
    return dict(headers)


def _webhook_key(key: str) -> str:
    check_storable(key, "signature_key")
    if len(key) > 500:
        raise InvalidInput("signature_key must be at most 500 characters")
    return key
