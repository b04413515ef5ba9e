"""Outgoing webhooks: tell other systems what changed, as Airy's integrations expect.

Two halves, both fed by the store, so any number of processes can run them:
- the feed follows the same MongoDB change streams as live subscriptions, from the position it
  saved last, and queues one delivery per subscribed webhook and change (`gateway.store.webhooks`);
- the sender posts each webhook's queue oldest first as `{"type", "payload", "timestamp"}`, signed
  with the webhook's key, and retries with backoff until the receiver takes it or the retry time
  runs out. A delivery is retried until answered 2xx: at least once, in order per webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any

import httpx
from bson.errors import BSONError
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from gateway import retry
from gateway.bus import HISTORY_LOST, RETRY_CAP
from gateway.changes import FEEDS
from gateway.config import Settings
from gateway.domain import WEBHOOK_SIGNATURE_HEADER, Webhook, iso, now_ms
from gateway.egress import NotPublic, webhook_transport
from gateway.errors import InvalidInput, NotFound
from gateway.rest.shapes import channel_json, conversation_json, message_json
from gateway.signals import Running, Signals
from gateway.store import Store
from gateway.store.mongo import Change, changes
from gateway.store.ports import DELIVERED, FAILED, Delivery
from gateway.store.webhooks import change_key
from gateway.usecases.base import backoff
from gateway.usecases.conversations import Conversations
from gateway.usecases.webhooks import check_webhook_headers
from gateway.workers import cancel_all

log = logging.getLogger(__name__)

SIGNATURE_HEADER = WEBHOOK_SIGNATURE_HEADER
KEEP_FINISHED_MS = 24 * 3600 * 1000  # how long a finished delivery still dedupes its change
# Subscribed webhooks are read at most this often by the feed (this process's own changes to them
# are seen at once; another's within this time, and any process that knows queues the change).
HOOKS_TTL_MS = 5000
PRUNE_EVERY_MS = 60_000
SAVE_EVERY_MS = 1000  # how often the feed saves its position when it queued nothing
# A store error other than "the store is away" (ConnectionFailure), met queueing one change, is
# tried this many times in all before the change is taken for one that cannot be delivered.
FEED_TRIES = 3


class Undeliverable(Exception):
    """This change cannot be turned into a delivery: trying again would fail the same way."""


def event_type(change: Change) -> str:
    if change.collection == "messages":
        return "message.created" if change.operation == "insert" else "message.updated"
    return "conversation.updated" if change.collection == "conversations" else "channel.updated"


def body_of(delivery: Delivery) -> bytes:
    """The bytes posted, and signed: compact JSON."""
    document = {"type": delivery.type, "payload": delivery.payload,
                "timestamp": iso(delivery.created_at)}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def signature(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


class Outgoing:
    def __init__(self, store: Store, settings: Settings, conversations: Conversations,
                 signals: Signals, running: Running,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.store = store
        self.settings = settings
        self.conversations = conversations  # what a conversation's payload shows beside it
        self.signals = signals  # deliveries: set when one is queued; webhooks: when they change
        self.running = running
        # Receivers on public addresses only, unless WEBHOOK_ALLOW_PRIVATE=1; no proxy from
        # the environment (it would connect where the address check cannot see).
        self._http = httpx.AsyncClient(
            timeout=settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False,
            transport=transport or webhook_transport(settings.webhook_allow_private),
            headers={"User-Agent": "messenger-gateway"})
        self._tasks: list[asyncio.Task] = []
        self._seq = 0
        self._hooks: list[Webhook] = []
        self._hooks_at = -HOOKS_TTL_MS
        self._hooks_stale = True
        self._hooks_reading = asyncio.Lock()
        self._pruned_at = 0

    async def _subscribed(self) -> list[Webhook]:
        """The subscribed webhooks, read again after HOOKS_TTL_MS, or at once after a change.

        One read at a time, for every feed: a feed that asks while another reads waits for
        that read (or the next, if a change came meanwhile) instead of taking the list it had,
        and an older read never replaces a newer one."""
        if self.signals.webhooks.take() or now_ms() - self._hooks_at >= HOOKS_TTL_MS:
            self._hooks_stale = True
        if self._hooks_stale:
            async with self._hooks_reading:
                if self._hooks_stale:
                    self._hooks_stale = False  # a change during the read marks it again
                    try:
                        self._hooks = await self.store.webhooks.list(subscribed_only=True)
                    except BaseException:
                        self._hooks_stale = True
                        raise
                    self._hooks_at = now_ms()
        return self._hooks

    # --- the feed ---------------------------------------------------------------------------

    def start(self) -> None:
        for name in FEEDS:
            self._tasks.append(asyncio.create_task(self._follow(name), name=f"feed:{name}"))

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        await self._http.aclose()

    async def _follow(self, collection: str) -> None:
        positions = self.store.feed_positions
        failures = 0
        while True:
            try:
                token = await positions.get(collection)
                saved_at = 0
                async for change in changes(self.store, collection, token):
                    try:
                        queued = await self._queue_tried(change)
                    except Undeliverable as exc:
                        await self._skip(change, str(exc))
                        queued = True  # saved at once: a restart does not meet it again
                    if queued or now_ms() - saved_at >= SAVE_EVERY_MS:
                        await positions.save(collection, change.resume_token, now_ms())
                        saved_at = now_ms()
                    failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  # server away, cursor lost: resume from where it was saved
                if isinstance(exc, OperationFailure) and exc.code in HISTORY_LOST:
                    log.warning("webhook feed on %s: history lost, starting from now", collection)
                    with contextlib.suppress(Exception):
                        await positions.save(collection, None, now_ms())
                failures += 1
                log.warning("webhook feed on %s interrupted (%s); resuming", collection,
                            type(exc).__name__)
                await asyncio.sleep(retry.delay(self.settings.worker_poll_seconds, failures,
                                                RETRY_CAP))

    async def _queue_tried(self, change: Change) -> int:
        """`queue`, telling "the store is away" (raised as it is: the feed resumes from its
        saved position and meets this change again) from "this change cannot be delivered"
        (`Undeliverable`): an error converting or shaping it, a payload BSON cannot hold, or any
        other store error that comes back FEED_TRIES times."""
        for attempt in range(1, FEED_TRIES + 1):
            try:
                return await self.queue(change)
            except (asyncio.CancelledError, ConnectionFailure, Undeliverable):
                raise
            except PyMongoError as exc:
                if attempt == FEED_TRIES:
                    raise Undeliverable(f"the store refused its delivery "
                                        f"({type(exc).__name__})") from exc
                await asyncio.sleep(self.settings.worker_poll_seconds * attempt)
            except (BSONError, OverflowError, ValueError) as exc:
                # A payload BSON cannot carry (a key or string it refuses, an integer over 64
                # bits). Anything else is a defect, not a property of the change: it is raised,
                # and the feed logs it and meets the change again from its saved position.
                raise Undeliverable(f"it could not be made into a delivery "
                                    f"({type(exc).__name__})") from exc
        raise AssertionError("unreachable")

    async def _skip(self, change: Change, why: str) -> None:
        """Record on each webhook that wanted `change` that it was skipped, and why."""
        kind = event_type(change)
        error = f"a change to {change.collection} was skipped: {why}"[:1000]
        hooks = [w for w in await self._subscribed() if w.wants(kind)]
        log.warning("webhook feed on %s: skipped a change for %d webhook(s): %s",
                    change.collection, len(hooks), why)
        at = now_ms()
        for hook in hooks:
            await self.store.webhooks.record(hook.id, at, error)

    async def queue(self, change: Change) -> int:
        """Queue `change` for every subscribed webhook that wants it; returns how many.
        Raises `Undeliverable` for a change whose document cannot be read."""
        kind = event_type(change)
        hooks = [w for w in await self._subscribed() if w.wants(kind)]
        if not hooks:
            return 0
        if change.unreadable:
            raise Undeliverable(change.unreadable)
        payload = await self._payload(change)
        if payload is None:
            return 0
        key = change_key(change.collection, change.resume_token)
        at = now_ms()
        self._seq = (self._seq + 1) % 1000
        queued = 0
        for hook in hooks:
            queued += await self.store.deliveries.enqueue(hook.id, key, kind, payload, at,
                                                          at * 1000 + self._seq)
        if queued:
            self.signals.deliveries()
        return queued

    async def _payload(self, change: Change) -> Mapping[str, Any] | None:
        value = change.value
        if change.collection == "messages":
            return {"conversation_id": value.conversation_id, "channel_id": value.channel_id,
                    "message": message_json(value)}
        if change.collection == "channels":
            return channel_json(value)
        try:
            view = await self.conversations.get(value.id)
        except NotFound:  # gone since, or its channel is: nothing meaningful to send
            return None
        return {**conversation_json(view), "channel_id": value.channel_id}

    # --- the sender -------------------------------------------------------------------------

    async def deliver_due(self) -> int:
        """One pass: each subscribed webhook's due deliveries, oldest first, webhooks side by
        side so that one slow receiver holds up only its own queue. Returns how many were sent."""
        hooks = await self.store.webhooks.list(subscribed_only=True)
        sent = await asyncio.gather(*(self._drain(hook) for hook in hooks))
        if now_ms() - self._pruned_at > PRUNE_EVERY_MS:
            await self.store.deliveries.prune(now_ms() - KEEP_FINISHED_MS)
            self._pruned_at = now_ms()
        return sum(sent)

    async def _drain(self, hook: Webhook) -> int:
        async def dropped(why: str) -> None:
            error = f"a queued delivery could not be read and was dropped: {why}"
            await self.store.webhooks.record(hook.id, now_ms(), error[:1000])

        sent = 0
        lease_ms = int((self.settings.webhook_timeout_seconds * 2 + 5) * 1000)
        while not self.running.stopping:
            head = await self.store.deliveries.head(hook.id, now_ms(), dropped)
            if head is None or not await self.store.deliveries.claim(head.id, now_ms(), lease_ms):
                return sent  # empty, not due yet, or being sent by another process
            if not await self._send(hook, head):
                return sent  # retried later; what follows waits for it
            sent += 1
        return sent

    async def _send(self, hook: Webhook, delivery: Delivery) -> bool:
        """Post one delivery. True when it left the queue (taken, or given up)."""
        error = None
        try:
            check_webhook_headers(hook.headers)  # a webhook stored before they were checked
            body = body_of(delivery)
            headers = {**hook.headers, "Content-Type": "application/json"}
            if hook.signature_key:
                headers[SIGNATURE_HEADER] = signature(hook.signature_key, body)
            response = await self._http.post(hook.url, content=body, headers=headers)
            if not 200 <= response.status_code < 300:
                error = f"the receiver answered {response.status_code}"
        except asyncio.CancelledError:
            raise
        except InvalidInput as exc:
            error = f"the webhook's {exc.message}"
        except httpx.TransportError as exc:
            if isinstance(exc, httpx.LocalProtocolError):  # what we would send is not HTTP
                error = f"the delivery could not be sent ({type(exc).__name__})"
            elif isinstance(exc.__cause__, NotPublic):  # refused by gateway.egress: say why
                error = str(exc.__cause__)
            else:
                error = f"the receiver could not be reached ({type(exc).__name__})"
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, TypeError) as exc:
            # These fail this delivery too: a header HTTP cannot carry (a webhook
            # stored before headers were checked), a URL httpx refuses… Named by its type only:
            # its text may quote a header's value or the key.
            error = f"the delivery could not be sent ({type(exc).__name__})"
        now = now_ms()
        await self.store.webhooks.record(hook.id, now, error)
        if error is None:
            await self.store.deliveries.finish(delivery.id, DELIVERED, now)
            return True
        attempts = delivery.attempts + 1
        if now - delivery.created_at >= self.settings.webhook_retry_seconds * 1000:
            log.warning("webhook %s: gave up on a %s after %d attempts: %s", hook.id,
                        delivery.type, attempts, error)
            await self.store.deliveries.finish(delivery.id, FAILED, now)
            return True
        delay = backoff(self.settings, attempts)
        log.info("webhook %s: attempt %d failed (%s), retrying in %.1fs", hook.id, attempts,
                 error, delay)
        await self.store.deliveries.retry_at(delivery.id, now + int(delay * 1000), attempts)
        return False
