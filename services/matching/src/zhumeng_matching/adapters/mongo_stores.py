"""MongoDB stores of matching: volunteer loads and decisions, each change one atomic
single-document update."""

from __future__ import annotations

from contextlib import suppress

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from zhumeng_kit.outbox import append_events, ensure_outbox_index

from ..app.ports import Doc
from ..domain.policy import Load

LOADS = "loads"
DECISIONS = "decisions"


class MongoLoadStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._coll = db[LOADS]
        self._cache: dict[str, Load] = {}

    async def ensure_indexes(self) -> None:
        await self._coll.create_index([("active", ASCENDING)], name="by_active_request")

    async def warm(self) -> None:
        async for doc in self._coll.find({}, {"n": 1, "total": 1}):
            self._cache[doc["_id"]] = Load(doc.get("n", 0), doc.get("total", 0))

    def cached(self) -> dict[str, Load]:
        return self._cache

    async def reserve(self, volunteer_id: str, request_id: str, capacity: int) -> bool:
        for _ in range(2):
            doc = await self._coll.find_one_and_update(
                # the filter is the guard: below capacity and not already holding this request
                {"_id": volunteer_id, "n": {"$lt": capacity}, "active": {"$ne": request_id}},
                {"$inc": {"n": 1, "total": 1}, "$push": {"active": request_id}},
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                self._cache[volunteer_id] = Load(doc["n"], doc["total"])
                return True
            current = await self._coll.find_one({"_id": volunteer_id})
            if current is not None:
                self._cache[volunteer_id] = Load(current.get("n", 0), current.get("total", 0))
                return bool(request_id in current.get("active", []))
            # first assignment ever for this volunteer (another replica may create it too)
            with suppress(DuplicateKeyError):
                await self._coll.insert_one({"_id": volunteer_id, "n": 0, "total": 0, "active": []})
        return False

    async def holder_of(self, request_id: str) -> str | None:
        doc = await self._coll.find_one({"active": request_id}, {"_id": 1})
        return None if doc is None else str(doc["_id"])

    async def over_capacity(self, capacities: dict[str, int]) -> list[str]:
        """Volunteers holding more than their capacity (for checks and tests)."""
        over = []
        async for doc in self._coll.find({}, {"n": 1, "active": 1}):
            cap = capacities.get(doc["_id"])
            if cap is not None and (doc["n"] > cap or len(doc["active"]) != doc["n"]):
                over.append(str(doc["_id"]))
        return over


class MongoDecisionStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._coll = db[DECISIONS]

    async def ensure_indexes(self) -> None:
        await ensure_outbox_index(self._coll)

    async def begin(self, request_id: str, event_id: str) -> Doc:
        # a redelivery, or another replica got here first, finds the document already there
        with suppress(DuplicateKeyError):
            await self._coll.insert_one(
                {
                    "_id": request_id,
                    "state": "deciding",
                    "cause_event_id": event_id,
                    "_v": 1,
                    "outbox": [],
                    "has_outbox": False,
                }
            )
        doc = await self._coll.find_one({"_id": request_id}, {"outbox": 0})
        if doc is None:
            raise RuntimeError(f"decision {request_id} vanished")
        return doc

    async def finish(self, request_id: str, state: str, fields: Doc, entries: list[Doc]) -> bool:
        res = await self._coll.update_one(
            {"_id": request_id, "state": "deciding"},
            append_events({"$set": {"state": state, **fields}}, entries),
        )
        return res.modified_count == 1

    async def get(self, request_id: str) -> Doc | None:
        return await self._coll.find_one({"_id": request_id}, {"outbox": 0})
