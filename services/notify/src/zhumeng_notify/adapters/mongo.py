"""The deliveries collection: the delivery log and its outbox (one document per delivery).

Writes come in bulk where the dispatcher works in batches: one `insert_many` claims every
delivery of a batch, one `bulk_write` completes them; the rare paths (a duplicate, a retry,
a takeover) are single conditional updates. The lease (`lease_until`, fenced by `attempts`)
says who may send: a pending delivery whose lease ran out, or a deferred one whose time has
come, may be taken as the next attempt.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from zhumeng_contracts.events import NotificationDelivered
from zhumeng_kit.ids import new_id
from zhumeng_kit.mongo import Doc
from zhumeng_kit.outbox import append_events, ensure_outbox_index, new_document, outbox_entry

from ..app.ports import Completion, NewDelivery
from ..domain.model import FINAL, Claim, Delivery, Final, Receipt

SOURCE = "zhumeng/notify"
COLLECTION = "deliveries"
DUPLICATE = 11000
LEASE_MARGIN = timedelta(seconds=5)  # clock skew between replicas, well inside the lease
ReceiptResult = Literal["recorded", "duplicate", "unknown"]


def _is_duplicate(exc: Exception) -> bool:
    if isinstance(exc, DuplicateKeyError):
        return True
    return isinstance(exc, OperationFailure) and exc.code == DUPLICATE


class MongoDeliveryRepository:
    def __init__(
        self, collection: AsyncCollection[Doc], on_events: Callable[[], None] | None = None
    ) -> None:
        self._coll = collection
        self._on_events = on_events or (lambda: None)

    async def ensure_indexes(self) -> None:
        await ensure_outbox_index(self._coll)
        await self._coll.create_index([("seq", DESCENDING)], name="seq")
        await self._coll.create_index(
            [("recipient_id", ASCENDING), ("seq", DESCENDING)], name="recipient_seq"
        )
        await self._coll.create_index(
            [("request_id", ASCENDING), ("seq", DESCENDING)], name="request_seq"
        )
        await self._coll.create_index([("provider_message_id", ASCENDING)], name="receipt_ref")

    # ---- claiming ---------------------------------------------------------------------------

    @staticmethod
    def _new_doc(item: NewDelivery, now: datetime, lease: timedelta) -> Doc:
        d = item.delivery
        deferred = item.due_at is not None
        entries = [outbox_entry(item.deferred_event, source=SOURCE)] if item.deferred_event else []
        return new_document(
            {
                "_id": d.id,
                "seq": new_id("dlv"),  # time-ordered: the listing's sort key and cursor
                "recipient_id": d.recipient_id,
                "role": d.role,
                "channel": d.channel,
                "address": d.masked_address,
                "locale": d.locale,
                "subject": d.subject,
                "body": d.body,
                "short": d.short,
                "urgent": d.urgent,
                "cause_event_id": d.cause.event_id,
                "cause_event_type": d.cause.event_type,
                "request_id": d.cause.request_id,
                "status": "deferred" if deferred else "pending",
                "attempts": 0 if deferred else 1,
                "lease_until": item.due_at if deferred else now + lease,
                "deferred_until": item.due_at,
                "created_at": now,
                "updated_at": now,
                "sent_at": None,
                "provider_message_id": None,
                "error": None,
                "attempt_log": [],
                "receipts": [],
                "receipt_status": None,
            },
            entries,
        )

    async def claim(self, delivery: Delivery, now: datetime, lease: timedelta) -> Claim:
        return (await self.claim_many([NewDelivery(delivery)], now, lease))[0]

    async def claim_many(
        self, items: list[NewDelivery], now: datetime, lease: timedelta
    ) -> list[Claim]:
        if not items:
            return []
        docs = [self._new_doc(item, now, lease) for item in items]
        duplicates: set[int] = set()
        try:
            await self._coll.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE for e in errors):
                raise
            duplicates = {int(e["index"]) for e in errors}
        if any(item.deferred_event for item in items):
            self._on_events()
        claims: list[Claim] = []
        for i, (item, doc) in enumerate(zip(items, docs, strict=True)):
            if i in duplicates:
                claims.append(await self._existing(item.delivery, now, lease))
            elif item.due_at is not None:
                claims.append(Claim("deferred", 0, "deferred", item.due_at))
            else:
                claims.append(Claim("send", 1, "pending", doc["lease_until"]))
        return claims

    async def _existing(self, delivery: Delivery, now: datetime, lease: timedelta) -> Claim:
        """A delivery inserted before (a redelivered event): take it over if its lease ran
        out (a crash mid-send) - unless it was deferred, which its timer resumes."""
        taken = await self._coll.find_one_and_update(
            {"_id": delivery.id, "status": "pending", "lease_until": {"$lte": now}},
            {
                "$set": {"lease_until": now + lease, "updated_at": now},
                "$inc": {"attempts": 1},
            },
            return_document=ReturnDocument.AFTER,
        )
        if taken is not None:
            return Claim("send", int(taken["attempts"]), "pending", now + lease)
        current = await self.state(delivery.id)
        if current is None:  # removed meanwhile (not done by this service): start afresh
            return await self.claim(delivery, now, lease)
        if current["status"] in FINAL:
            return Claim("done", int(current["attempts"]), current["status"])
        return Claim(
            "busy", int(current["attempts"]), current["status"], current.get("lease_until")
        )

    async def take(self, delivery_id: str, now: datetime, lease: timedelta) -> Doc | None:
        # (no projection: FerretDB v1 does not implement findAndModify's "fields")
        return await self._coll.find_one_and_update(
            {
                "_id": delivery_id,
                "status": {"$in": ["pending", "deferred"]},
                "lease_until": {"$lte": now},
            },
            {
                "$set": {"status": "pending", "lease_until": now + lease, "updated_at": now},
                "$inc": {"attempts": 1},
            },
            projection=None,
            return_document=ReturnDocument.AFTER,
        )

    async def state(self, delivery_id: str) -> Doc | None:
        return await self._coll.find_one(
            {"_id": delivery_id},
            {"status": 1, "attempts": 1, "lease_until": 1, "last_attempt": 1},
        )

    # ---- outcomes ---------------------------------------------------------------------------

    @staticmethod
    def _completion_update(c: Completion) -> Doc:
        return append_events(
            {
                "$set": {
                    "status": c.status,
                    "updated_at": c.at,
                    "sent_at": c.at if c.status == "sent" else None,
                    "provider_message_id": c.receipt.reference if c.receipt else None,
                    "error": c.error,
                    "lease_until": None,
                },
                "$push": {
                    "attempt_log": {
                        "n": c.attempt,
                        "at": c.at,
                        "outcome": c.status,
                        "error": c.error,
                    }
                },
            },
            [outbox_entry(c.event, source=SOURCE)],
        )

    @staticmethod
    def _held(c: Completion) -> Doc:
        """The filter of a completion: fenced by the attempt number - unless the sender's
        lease has clearly not run out, when nobody else can hold the delivery and `_id`
        alone will do (SecantusDB updates by `_id` alone about twice as fast)."""
        if c.lease_until is not None and c.at + LEASE_MARGIN < c.lease_until:
            return {"_id": c.delivery_id}
        return {"_id": c.delivery_id, "status": "pending", "attempts": c.attempt}

    async def complete_many(self, items: list[Completion]) -> int:
        if not items:
            return 0
        ops = [UpdateOne(self._held(c), self._completion_update(c)) for c in items]
        res = await self._coll.bulk_write(ops, ordered=False)
        if res.matched_count:
            self._on_events()
        return int(res.matched_count)

    async def complete(
        self,
        delivery_id: str,
        attempt: int,
        status: Final,
        now: datetime,
        receipt: Receipt | None,
        error: str | None,
        event: NotificationDelivered,
    ) -> bool:
        done = await self.complete_many(
            [Completion(delivery_id, attempt, status, now, event, receipt, error)]
        )
        return done == 1

    async def retry_later(
        self, delivery_id: str, attempt: int, now: datetime, retry_at: datetime, error: str
    ) -> bool:
        res = await self._coll.update_one(
            {"_id": delivery_id, "status": "pending", "attempts": attempt},
            {
                "$set": {"lease_until": retry_at, "updated_at": now, "error": error},
                "$push": {
                    "attempt_log": {"n": attempt, "at": now, "outcome": "retry", "error": error}
                },
            },
        )
        return bool(res.matched_count)

    async def replay(self, delivery_id: str, now: datetime, budget: int) -> Doc | None:
        """A dead-lettered delivery back to pending with `budget` more attempts (admin)."""
        current = await self.state(delivery_id)
        if current is None or current["status"] != "dead_lettered":
            return None
        return await self._coll.find_one_and_update(
            {"_id": delivery_id, "status": "dead_lettered"},
            {
                "$set": {
                    "status": "pending",
                    "lease_until": now,
                    "updated_at": now,
                    "last_attempt": int(current["attempts"]) + budget,
                },
                "$push": {
                    "attempt_log": {"n": current["attempts"], "at": now, "outcome": "replay"}
                },
            },
            return_document=ReturnDocument.AFTER,
        )

    async def record_receipt(self, provider: str, reference: str, entry: Doc) -> ReceiptResult:
        """A provider's delivery report, once: matched by the provider's message id."""
        key = f"{provider}:{reference}:{entry['status']}"
        res = await self._coll.update_one(
            {"provider_message_id": reference, "receipts.key": {"$ne": key}},
            {
                "$push": {"receipts": {**entry, "key": key, "provider": provider}},
                "$set": {"receipt_status": entry["status"]},
            },
        )
        if res.matched_count:
            return "recorded"
        known = await self._coll.find_one({"provider_message_id": reference}, {"_id": 1})
        return "duplicate" if known is not None else "unknown"

    # ---- queries for the HTTP API -----------------------------------------------------------

    async def get(self, delivery_id: str) -> Doc | None:
        return await self._coll.find_one({"_id": delivery_id}, {"outbox": 0})

    async def page(
        self,
        recipient_id: str | None,
        request_id: str | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[Doc], str | None]:
        query: dict[str, Any] = {}
        if recipient_id is not None:
            query["recipient_id"] = recipient_id
        if request_id is not None:
            query["request_id"] = request_id
        if cursor:
            query["seq"] = {"$lt": cursor}
        docs = (
            await self._coll.find(query, {"outbox": 0})
            .sort("seq", DESCENDING)
            .limit(limit + 1)
            .to_list()
        )
        next_cursor = docs[limit - 1]["seq"] if len(docs) > limit else None
        return docs[:limit], next_cursor
