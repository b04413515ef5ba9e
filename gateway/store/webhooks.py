"""Outgoing webhooks in MongoDB: the subscriptions, their durable delivery queue, and how far the
change streams that feed the queue have been read.

The queue is the durability: a delivery is stored before it is tried and leaves the queue only once
the receiver took it (or its retry time ran out), so a restart loses nothing. Each delivery's id is
derived from the change that caused it, so the same change queued twice (by two processes, or by
one re-reading after a restart) is one delivery.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from gateway.domain import Webhook
from gateway.store.documents import Unreadable, convert, read, read_all, validate
from gateway.store.ports import DELIVERED, FAILED, QUEUED, Delivery
from gateway.store.queries import count, eq


class WebhookRepo:
    def __init__(self, collection) -> None:
        self.c = collection

    async def insert(self, webhook: Webhook) -> bool:
        """False when a webhook with that id exists."""
        try:
            await self.c.insert_one(_webhook_doc(webhook))
        except DuplicateKeyError:
            return False
        return True

    async def get(self, webhook_id: str) -> Webhook | None:
        return _webhook(await self.c.find_one({"_id": webhook_id}))

    async def many(self, ids: list[str]) -> dict[str, Webhook]:
        docs = await self.c.find({"_id": {"$in": list(set(ids))}}).to_list()
        return {w.id: w for w in read_all("webhooks", docs, to_webhook)}

    async def list(self, subscribed_only: bool = False) -> list[Webhook]:
        query = {"subscribed": eq(True)} if subscribed_only else {}
        docs = await self.c.find(query).sort("created_at", ASCENDING).to_list()
        return read_all("webhooks", docs, to_webhook)

    async def exists(self, webhook_id: str) -> bool:
        """Whether a webhook of that id is stored (readable or not)."""
        return await self.c.find_one({"_id": webhook_id}, {"_id": 1}) is not None

    async def update(self, webhook_id: str, changes: dict[str, Any]) -> Webhook | None:
        doc = await self.c.find_one_and_update(
            {"_id": webhook_id}, {"$set": changes}, return_document=ReturnDocument.AFTER
        )
        return _webhook(doc)

    async def record(self, webhook_id: str, at: int, error: str | None) -> None:
        """What the last try told: a success, or the error a receiver gave."""
        if error is None:
            values: dict[str, Any] = {"last_success_at": at}
        else:
            values = {"last_error": error, "last_error_at": at}
        await self.c.update_one({"_id": webhook_id}, {"$set": values})


def _webhook_doc(webhook: Webhook) -> dict[str, Any]:
    return {
        "_id": webhook.id, "url": webhook.url, "name": webhook.name, "events": webhook.events,
        "headers": webhook.headers, "signature_key": webhook.signature_key,
        "subscribed": webhook.subscribed, "created_at": webhook.created_at,
        "updated_at": webhook.updated_at, "last_success_at": None, "last_error": None,
        "last_error_at": None,
    }


def _webhook(doc: Mapping[str, Any] | None) -> Webhook | None:
    """The webhook a document holds; None: none, or unreadable (skipped with a warning)."""
    return read("webhooks", doc, to_webhook)


def to_webhook(doc: Mapping[str, Any]) -> Webhook:
    return validate(Webhook, {
        "id": doc["_id"], "url": doc.get("url"), "name": doc.get("name"),
        "events": doc.get("events") or [], "headers": doc.get("headers") or {},
        # nx-27017 may hand back 0 and 1 for booleans: pydantic reads those as bools.
        "subscribed": doc.get("subscribed") or False,
        "created_at": doc.get("created_at", 0), "updated_at": doc.get("updated_at", 0),
        "signature_key": doc.get("signature_key") or "",
        "last_success_at": doc.get("last_success_at"), "last_error": doc.get("last_error"),
        "last_error_at": doc.get("last_error_at"),
    })


class DeliveryRepo:
    """The queue. A webhook's deliveries go out oldest first, one at a time, in any process."""

    def __init__(self, collection) -> None:
        self.c = collection

    async def enqueue(self, webhook_id: str, change_key: str, event_type: str, payload: Any,
                      at: int, seq: int) -> bool:
        """Queue once per webhook and change; False when it was queued already."""
        try:
            await self.c.insert_one({
                "_id": f"{webhook_id}:{change_key}", "webhook_id": webhook_id,
                "type": event_type, "payload": payload, "state": QUEUED, "seq": seq,
                "created_at": at, "next_at": at, "attempts": 0, "finished_at": 0,
            })
        except DuplicateKeyError:
            return False
        return True

    async def head(self, webhook_id: str, at: int,
                   dropped: Callable[[str], Awaitable[None]] | None = None) -> Delivery | None:
        """The oldest delivery still queued: nothing after it goes out before it does.

        A queued delivery that cannot be read would hold the queue up for good: it leaves the
        queue as failed, saying why (`invalid`), and `dropped` is told why."""
        while True:
            docs = await self.c.find({"webhook_id": eq(webhook_id), "state": eq(QUEUED)}).sort(
                "seq", ASCENDING).limit(1).to_list()
            if not docs:
                return None
            try:
                return convert("webhook_deliveries", docs[0], _to_delivery)
            except Unreadable as exc:
                await self.c.update_one({"_id": docs[0]["_id"]}, {"$set": {
                    "state": FAILED, "finished_at": at, "invalid": exc.reason}})
                if dropped:
                    await dropped(exc.reason)

    async def claim(self, delivery_id: str, now: int, lease_ms: int) -> bool:
        """Take a due delivery for `lease_ms`; False when another process has it, or it is
        not due. It comes back if the taker dies."""
        result = await self.c.update_one(
            {"_id": delivery_id, "state": eq(QUEUED), "next_at": {"$lte": now}},
            {"$set": {"next_at": now + lease_ms}},
        )
        return result.modified_count == 1

    async def retry_at(self, delivery_id: str, at: int, attempts: int) -> None:
        await self.c.update_one({"_id": delivery_id},
                                {"$set": {"next_at": at, "attempts": attempts}})

    async def finish(self, delivery_id: str, state: str, at: int) -> None:
        """Out of the queue; kept a while, so the same change queued again stays one delivery."""
        await self.c.update_one({"_id": delivery_id},
                                {"$set": {"state": state, "finished_at": at}})

    async def queued(self, webhook_id: str) -> int:
        return await count(self.c, {"webhook_id": eq(webhook_id), "state": eq(QUEUED)})

    async def drop_queued(self, webhook_id: str) -> None:
        """An unsubscribed webhook is sent nothing more, not even what was waiting."""
        await self.c.delete_many({"webhook_id": eq(webhook_id), "state": eq(QUEUED)})

    async def prune(self, finished_before: int) -> None:
        for state in (DELIVERED, FAILED):
            await self.c.delete_many({"state": eq(state),
                                      "finished_at": {"$lt": finished_before}})


def _to_delivery(doc: Mapping[str, Any]) -> Delivery:
    return validate(Delivery, {
        "id": doc["_id"], "webhook_id": doc.get("webhook_id"), "type": doc.get("type"),
        "payload": doc.get("payload"), "created_at": doc.get("created_at", 0),
        "next_at": doc.get("next_at", 0), "attempts": doc.get("attempts", 0),
    })


class FeedPositions:
    """Where each collection's change stream was last read, so a restart resumes there."""

    def __init__(self, collection) -> None:
        self.c = collection

    async def get(self, name: str) -> Any:
        doc = await self.c.find_one({"_id": name})
        return doc.get("token") if doc else None

    async def save(self, name: str, token: Any, at: int) -> None:
        await self.c.update_one({"_id": name}, {"$set": {"token": token, "at": at}}, upsert=True)


def change_key(collection: str, token: Any) -> str:
    """The same change, read by any process, gives the same key."""
    raw = json.dumps(token, sort_keys=True, default=str)
    return f"{collection}:{hashlib.sha256(raw.encode()).hexdigest()[:32]}"
