"""MongoDB repository of requests. One document per request; its outbox lives inside it."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from zhumeng_kit.consumer import mark_applied, not_applied
from zhumeng_kit.outbox import ensure_outbox_index

from ..app.ports import Doc, Page

COLLECTION = "requests"


class MongoRequestRepository:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._coll = db[COLLECTION]

    async def ensure_indexes(self) -> None:
        await self._coll.create_index(
            [("idempotency_key", ASCENDING)], unique=True, name="idempotency_key"
        )
        await self._coll.create_index(
            [("requester_id", ASCENDING), ("_id", DESCENDING)], name="by_requester"
        )
        await self._coll.create_index(
            [("status", ASCENDING), ("_id", DESCENDING)], name="by_status"
        )
        await ensure_outbox_index(self._coll)

    async def insert(self, doc: Doc) -> bool:
        try:
            await self._coll.insert_one(doc)
            return True
        except DuplicateKeyError:
            return False

    async def by_idempotency_key(self, key: str) -> Doc | None:
        return await self._coll.find_one({"idempotency_key": key})

    async def get(self, request_id: str) -> Doc | None:
        return await self._coll.find_one({"_id": request_id})

    async def exists(self, request_id: str) -> bool:
        return await self._coll.find_one({"_id": request_id}, {"_id": 1}) is not None

    async def list(self, filters: Doc, limit: int, after: str | None) -> Page:
        query: dict[str, Any] = dict(filters)
        if after:
            query["_id"] = {"$lt": after}
        docs = await self._coll.find(query).sort("_id", DESCENDING).limit(limit + 1).to_list()
        more = len(docs) > limit
        docs = docs[:limit]
        return Page(docs, docs[-1]["_id"] if more and docs else None)

    async def apply_event(
        self, request_id: str, event_id: str, version: int, change: Doc | None
    ) -> bool:
        update: Doc = {"$inc": {"_v": 1}}
        if change:
            update["$set"] = change
        res = await self._coll.update_one(
            {"_id": request_id, "_v": version, **not_applied(event_id)},
            mark_applied(update, event_id),
        )
        return res.modified_count == 1

    async def update_if(self, request_id: str, guard: Doc, update: Doc) -> Doc | None:
        return await self._coll.find_one_and_update(
            {"_id": request_id, **guard}, update, return_document=ReturnDocument.AFTER
        )
