"""MongoDB stores of matching: volunteer loads and decisions, each change one atomic
single-document update."""

from __future__ import annotations

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from zhumeng_kit.outbox import append_events, ensure_outbox_index

from ..app.ports import Doc, Reservation
from ..app.review import HUMAN_LEVELS
from ..domain.policy import Load

LOADS = "loads"
OPEN_STATES = ["matching", "partially_assigned"]  # a claim can still be made
DECISIONS = "decisions"


class MongoLoadStore:
    def __init__(self, db: AsyncDatabase[Doc], cache: dict[str, Load] | None = None) -> None:
        """`cache`: where the known loads are kept — the index's load table, which mirrors
        them into its numpy columns (ADR 0008)."""
        self._coll = db[LOADS]
        self._cache: dict[str, Load] = {} if cache is None else cache

    async def ensure_indexes(self) -> None:
        await self._coll.create_index([("active", ASCENDING)], name="by_active_request")

    async def warm(self) -> None:
        async for doc in self._coll.find({}, {"n": 1, "total": 1}):
            self._cache[doc["_id"]] = Load(doc.get("n", 0), doc.get("total", 0))

    def cached(self) -> dict[str, Load]:
        return self._cache

    async def reserve(self, volunteer_id: str, request_id: str, capacity: int) -> Reservation:
        try:
            doc = await self._coll.find_one_and_update(
                # the filter is the guard: below capacity and not already holding this request;
                # upsert creates the document on a volunteer's first assignment
                {"_id": volunteer_id, "n": {"$lt": capacity}, "active": {"$ne": request_id}},
                {"$inc": {"n": 1, "total": 1}, "$push": {"active": request_id}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            doc = None  # the document exists but the guard failed: full, or holds it already
        if doc is not None:
            self._cache[volunteer_id] = Load(doc["n"], doc["total"])
            return Reservation.TAKEN
        current = await self._coll.find_one({"_id": volunteer_id})
        if current is None:
            return Reservation.FULL
        self._cache[volunteer_id] = Load(current.get("n", 0), current.get("total", 0))
        held = request_id in current.get("active", [])
        return Reservation.HELD if held else Reservation.FULL

    async def holders_of(self, request_id: str) -> list[str]:
        docs = await self._coll.find({"active": request_id}, {"_id": 1}).to_list()
        return sorted(str(d["_id"]) for d in docs)

    async def release(self, volunteer_id: str, request_id: str) -> bool:
        """Give back the capacity this request held; a no-op if already given back."""
        doc = await self._coll.find_one_and_update(
            {"_id": volunteer_id, "active": request_id},
            {"$pull": {"active": request_id}, "$inc": {"n": -1}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            return False
        self._cache[volunteer_id] = Load(doc["n"], doc.get("total", 0))
        return True

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
        await self._coll.create_index(
            [("lifecycle.assignments.volunteer_id", ASCENDING)], name="by_volunteer"
        )

    async def begin(self, request_id: str, event_id: str, posted: Doc) -> tuple[Doc, bool]:
        doc: Doc = {
            "_id": request_id,
            "posted": posted,
            "state": "deciding",
            "cause_event_id": event_id,
            "_v": 1,
            "outbox": [],
            "has_outbox": False,
        }
        try:
            await self._coll.insert_one(doc)
            return doc, True
        except DuplicateKeyError:
            pass  # a redelivery, or another replica got here first
        found = await self._coll.find_one({"_id": request_id}, {"outbox": 0})
        if found is None:
            raise RuntimeError(f"decision {request_id} vanished")
        return found, False

    async def finish(self, request_id: str, state: str, fields: Doc, entries: list[Doc]) -> bool:
        res = await self._coll.update_one(
            {"_id": request_id, "state": "deciding"},
            append_events({"$set": {"state": state, **fields}}, entries),
        )
        return res.modified_count == 1

    async def get(self, request_id: str) -> Doc | None:
        return await self._coll.find_one({"_id": request_id}, {"outbox": 0})

    async def save_lifecycle(
        self, request_id: str, version: int, lifecycle: Doc, entries: list[Doc]
    ) -> bool:
        """Compare-and-set on `_v`: False when another command changed the match meanwhile."""
        res = await self._coll.update_one(
            {"_id": request_id, "_v": version},
            append_events({"$set": {"lifecycle": lifecycle}}, entries),
        )
        return res.modified_count == 1

    async def of_volunteer(self, volunteer_id: str, limit: int) -> list[Doc]:
        cursor = self._coll.find(
            {"lifecycle.assignments.volunteer_id": volunteer_id}, {"outbox": 0}
        ).sort("_id", -1)
        return await cursor.limit(limit).to_list()

    async def with_open_offer_for(self, volunteer_id: str) -> list[Doc]:
        query = {
            "lifecycle.offers": {"$elemMatch": {"volunteer_id": volunteer_id, "status": "open"}}
        }
        return await self._coll.find(query, {"outbox": 0}).to_list()

    async def invited(self, volunteer_id: str) -> list[Doc]:
        query = {"lifecycle.invited": volunteer_id, "lifecycle.state": {"$in": OPEN_STATES}}
        return await self._coll.find(query, {"outbox": 0}).to_list()

    async def with_completed_work(self) -> list[Doc]:
        """Decisions with a completed assignment (the hours ledger's source)."""
        query = {"lifecycle.assignments.status": "completed"}
        fields = {"lifecycle": 1, "township_id": 1}
        return await self._coll.find(query, fields).to_list()


class MongoOfferCounts:
    """Offers per volunteer and local day: one guarded upsert each, so two replicas never
    count past the cap (the reservation pattern of ADR 0006)."""

    def __init__(self, db: AsyncDatabase[Doc], cap: int) -> None:
        self._coll = db["offer_counts"]
        self._cap = cap

    async def take(self, volunteer_id: str, day: str) -> bool:
        try:
            await self._coll.find_one_and_update(
                {"_id": f"{volunteer_id}:{day}", "n": {"$lt": self._cap}},
                {"$inc": {"n": 1}, "$setOnInsert": {"volunteer_id": volunteer_id, "day": day}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False  # the document exists and the guard failed: the cap is reached
        return True


class MongoQueue:
    """The coordinators' queue over matching's decisions (a query; the state is theirs)."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._coll = db[DECISIONS]

    async def queue(self, township_id: str | None, limit: int) -> list[Doc]:
        open_states = ["matching", "offered", "partially_assigned"]
        query: Doc = {
            "$or": [
                {"lifecycle.state": "in_review"},
                {"state": "unmatched"},
                {
                    "lifecycle.escalation_level": {"$in": list(HUMAN_LEVELS)},
                    "lifecycle.state": {"$in": open_states},
                },
            ]
        }
        if township_id is not None:
            query["posted.township_id"] = township_id
        cursor = self._coll.find(query, {"outbox": 0}).sort("_id", 1).limit(limit)
        return await cursor.to_list()
