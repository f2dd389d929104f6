"""MongoDB store of agency subscriptions, their webhook deliveries and replays.

Every write is a single-document operation: a delivery is inserted once under its
deterministic `_id` (event id | subscription [| replay]) and finished by an update guarded on
`status: pending`, so two senders can never both record it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.fernet import InvalidToken
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from zhumeng_kit.ids import new_id
from zhumeng_kit.mongo import Doc
from zhumeng_kit.timers import Scheduler, get_timer, purge, timer_id

from ..domain.subscriptions import Subscription
from .secret_box import SecretBox

log = logging.getLogger(__name__)

WEBHOOK_TIMERS = "webhook_timers"
SUBSCRIPTIONS = "agency_subscriptions"
DELIVERIES = "webhook_deliveries"
REPLAYS = "feed_replays"


class MongoSubscriptionStore:
    """Subscriptions keep their signing secret sealed (`SecretBox`), never in plain text."""

    def __init__(self, db: AsyncDatabase[Doc], box: SecretBox) -> None:
        self._box = box
        self._subs = db[SUBSCRIPTIONS]
        self._deliveries = db[DELIVERIES]
        self._replays = db[REPLAYS]

    async def ensure_indexes(self) -> None:
        await self._subs.create_index([("owner", ASCENDING), ("_id", ASCENDING)], name="by_owner")
        await self._deliveries.create_index(
            [("subscription_id", ASCENDING), ("seq", DESCENDING)], name="by_subscription"
        )
        await self._replays.create_index([("state", ASCENDING)], name="by_state")

    async def seal_secrets(self) -> None:
        """At start-up: seal secrets stored in plain text or under a retired key, and fail at
        once (not at the first delivery) when no configured key opens one."""
        sealed = 0
        async for doc in self._subs.find({}, {"secret": 1}):
            try:
                secret = self._box.open(doc["secret"])
            except InvalidToken:
                raise RuntimeError(
                    f"ZHUMENG_AGENCY_SECRETS_KEYS opens no key of subscription {doc['_id']}"
                ) from None
            if self._box.needs_sealing(doc["secret"]):
                await self._subs.update_one(
                    {"_id": doc["_id"], "secret": doc["secret"]},
                    {"$set": {"secret": self._box.seal(secret)}},
                )
                sealed += 1
        if sealed:
            log.info("sealed %d subscription secrets under the first key", sealed)

    def _subscription(self, doc: Doc) -> Subscription:
        return Subscription(
            id=doc["_id"],
            owner=doc["owner"],
            url=doc["url"],
            event_types=tuple(doc.get("event_types") or ()),
            townships=tuple(doc.get("townships") or ()),
            secret=self._box.open(doc["secret"]),
            created_at=doc["created_at"],
            description=doc.get("description", ""),
        )

    # -- subscriptions --

    async def add(self, sub: Subscription) -> None:
        await self._subs.insert_one(
            {
                "_id": sub.id,
                "owner": sub.owner,
                "url": sub.url,
                "event_types": list(sub.event_types),
                "townships": list(sub.townships),
                "secret": self._box.seal(sub.secret),
                "description": sub.description,
                "created_at": sub.created_at,
                "deleted_at": None,
            }
        )

    async def get(self, sub_id: str) -> Subscription | None:
        doc = await self._subs.find_one({"_id": sub_id, "deleted_at": None})
        return None if doc is None else self._subscription(doc)

    async def of_owner(self, owner: str | None) -> list[Subscription]:
        query: Doc = {"deleted_at": None}
        if owner is not None:
            query["owner"] = owner
        docs = await self._subs.find(query).sort("_id", ASCENDING).to_list()
        return [self._subscription(d) for d in docs]

    async def active(self) -> list[Subscription]:
        return await self.of_owner(None)

    async def delete(self, sub_id: str, now: datetime) -> bool:
        res = await self._subs.update_one(
            {"_id": sub_id, "deleted_at": None}, {"$set": {"deleted_at": now}}
        )
        return res.modified_count == 1

    # -- deliveries --

    async def add_delivery(self, doc: Doc) -> bool:
        """Insert a new pending delivery; False when it exists (a redelivered event)."""
        try:
            await self._deliveries.insert_one({**doc, "seq": new_id("dlv")})
            return True
        except DuplicateKeyError:
            return False

    async def delivery(self, delivery_id: str) -> Doc | None:
        return await self._deliveries.find_one({"_id": delivery_id})

    async def update_pending(self, delivery_id: str, fields: Doc) -> bool:
        """Change a delivery that is still pending; False when it is final already."""
        res = await self._deliveries.update_one(
            {"_id": delivery_id, "status": "pending"}, {"$set": fields}
        )
        return res.modified_count == 1

    async def deliveries(
        self, sub_id: str, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[Doc], str | None]:
        query: Doc = {"subscription_id": sub_id}
        if status:
            query["status"] = status
        if cursor:
            query["seq"] = {"$lt": cursor}
        docs = (
            await self._deliveries.find(query, {"body": 0})
            .sort("seq", DESCENDING)
            .limit(limit + 1)
            .to_list()
        )
        more = len(docs) > limit
        docs = docs[:limit]
        return docs, (docs[-1]["seq"] if more and docs else None)

    # -- replays --

    async def add_replay(self, doc: Doc) -> None:
        await self._replays.insert_one(doc)

    async def replay(self, replay_id: str) -> Doc | None:
        return await self._replays.find_one({"_id": replay_id})

    async def running_replays(self) -> list[Doc]:
        return await self._replays.find({"state": "running"}).to_list()

    async def finish_replay(self, replay_id: str, fields: dict[str, Any]) -> None:
        await self._replays.update_one(
            {"_id": replay_id, "state": "running"}, {"$set": {"state": "done", **fields}}
        )


class ScheduledDeliveries:
    """Delivery timers on the kit's durable scheduler, in their own collection. Timers of
    delivered events are deleted rather than kept as tombstones: the local document server
    scans the collection to find due timers, so it must stay small."""

    def __init__(self, scheduler: Scheduler, db: AsyncDatabase[Doc], kind: str) -> None:
        self._scheduler = scheduler
        self._coll = db[WEBHOOK_TIMERS]
        self._db = db
        self._kind = kind

    async def arm(self, key: str, due_at: datetime, new: bool) -> None:
        # an existing timer is left alone: rescheduling it would cut its retry backoff short
        exists = not new and await get_timer(self._db, self._kind, key, collection=WEBHOOK_TIMERS)
        if not exists:
            await self._scheduler.schedule(self._kind, key, due_at)

    async def retry_at(self, key: str, due_at: datetime) -> None:
        await self._scheduler.schedule(self._kind, key, due_at)

    async def drop(self, key: str) -> None:
        await self._coll.delete_one({"_id": timer_id(self._kind, key), "state": "pending"})

    async def purge_loop(self, every_s: float = 60.0, keep_s: float = 600.0) -> None:
        """Delete fired and cancelled delivery timers after a while (kept for inspection)."""
        while True:
            await purge(
                self._db, datetime.now(UTC) - timedelta(seconds=keep_s), collection=WEBHOOK_TIMERS
            )
            await asyncio.sleep(every_s)
