"""The deliveries collection: the delivery log and its outbox (one document per delivery)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, OperationFailure

from zhumeng_contracts.events import NotificationDelivered
from zhumeng_kit.ids import new_id
from zhumeng_kit.mongo import Doc
from zhumeng_kit.outbox import append_events, ensure_outbox_index, new_document, outbox_entry

from ..domain.model import Claim, Delivery, Final, Receipt

SOURCE = "zhumeng/notify"
COLLECTION = "deliveries"


def _is_duplicate(exc: Exception) -> bool:
    if isinstance(exc, DuplicateKeyError):
        return True
    return isinstance(exc, OperationFailure) and exc.code == 11000


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

    # ---- the DeliveryRepository port ------------------------------------------------------

    async def claim(self, delivery: Delivery, now: datetime, lease: timedelta) -> Claim:
        doc = new_document(
            {
                "_id": delivery.id,
                "seq": new_id("dlv"),  # time-ordered: the listing's sort key and cursor
                "recipient_id": delivery.recipient_id,
                "role": delivery.role,
                "channel": delivery.channel,
                "address": delivery.masked_address,
                "locale": delivery.locale,
                "subject": delivery.subject,
                "body": delivery.body,
                "cause_event_id": delivery.cause.event_id,
                "cause_event_type": delivery.cause.event_type,
                "request_id": delivery.cause.request_id,
                "status": "pending",
                "attempts": 1,
                "lease_until": now + lease,
                "created_at": now,
                "updated_at": now,
                "sent_at": None,
                "receipt": None,
                "error": None,
            },
            [],
        )
        try:
            await self._coll.insert_one(doc)
            return Claim("send", 1, "pending", now + lease)
        except Exception as exc:
            if not _is_duplicate(exc):
                raise
        # (no projection: FerretDB v1 does not implement findAndModify's "fields")
        taken = await self._coll.find_one_and_update(
            {"_id": delivery.id, "status": "pending", "lease_until": {"$lte": now}},
            {
                "$set": {
                    "lease_until": now + lease,
                    "updated_at": now,
                    "subject": delivery.subject,
                    "body": delivery.body,
                },
                "$inc": {"attempts": 1},
            },
            return_document=ReturnDocument.AFTER,
        )
        if taken is not None:
            return Claim("send", int(taken["attempts"]), "pending", now + lease)
        current = await self._coll.find_one(
            {"_id": delivery.id}, {"status": 1, "attempts": 1, "lease_until": 1}
        )
        if current is None:  # removed meanwhile (not done by this service): start afresh
            return await self.claim(delivery, now, lease)
        if current["status"] in ("sent", "failed"):
            return Claim("done", int(current["attempts"]), current["status"])
        return Claim("busy", int(current["attempts"]), "pending", current.get("lease_until"))

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
        update = append_events(
            {
                "$set": {
                    "status": status,
                    "updated_at": now,
                    "sent_at": now if status == "sent" else None,
                    "receipt": receipt.reference if receipt else None,
                    "error": error,
                    "lease_until": None,
                }
            },
            [outbox_entry(event, source=SOURCE)],
        )
        res = await self._coll.update_one(
            {"_id": delivery_id, "status": "pending", "attempts": attempt}, update
        )
        if res.matched_count:
            self._on_events()
        return bool(res.matched_count)

    async def release(self, delivery_id: str, attempt: int, now: datetime, error: str) -> None:
        await self._coll.update_one(
            {"_id": delivery_id, "status": "pending", "attempts": attempt},
            {"$set": {"lease_until": now, "updated_at": now, "error": error}},
        )

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
