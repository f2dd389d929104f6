"""Volunteers' announced trips in matching's database (collection `trips`).

One document per trip: the trip itself, its committed load (seats, cargo, ordered stops) and
what each request on it takes. The load only changes by a compare-and-set on the document's
version `_v`, so two requests racing for the last seat cannot both get it (ADR 0010)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from ..app.ports import Doc
from ..domain.trips import Trip, TripLoad

TRIPS = "trips"


def trip_of(doc: Doc) -> Trip:
    return Trip.model_validate(doc["trip"])


def load_of(doc: Doc) -> TripLoad:
    return TripLoad.model_validate(doc.get("load") or {})


class MongoTripStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._coll = db[TRIPS]

    async def ensure_indexes(self) -> None:
        await self._coll.create_index(
            [("status", ASCENDING), ("departure_end", ASCENDING)], name="active_by_departure"
        )
        await self._coll.create_index([("carried_ids", ASCENDING)], name="by_request")
        await self._coll.create_index([("volunteer_id", ASCENDING)], name="by_volunteer")

    async def insert(self, trip: Trip, places: Doc, now: datetime) -> Doc:
        doc: Doc = {
            "_id": trip.id,
            "trip": trip.model_dump(mode="json"),
            "volunteer_id": trip.volunteer_id,
            "departure_start": trip.departure.start,
            "departure_end": trip.departure.end,
            "status": "active",
            "load": TripLoad().model_dump(mode="json"),
            "carried": {},  # request id -> {seats, cargo_kg}
            "carried_ids": [],
            "created_at": now,
            "_v": 1,
            **places,
        }
        await self._coll.insert_one(doc)
        return doc

    async def get(self, trip_id: str) -> Doc | None:
        return await self._coll.find_one({"_id": trip_id})

    async def of_volunteer(self, volunteer_id: str, limit: int) -> list[Doc]:
        cursor = self._coll.find({"volunteer_id": volunteer_id}).sort("_id", DESCENDING)
        return await cursor.limit(limit).to_list()

    async def departing(self, earliest_end: datetime, latest_start: datetime) -> list[Doc]:
        """Active trips whose departure window ends after `earliest_end` and starts before
        `latest_start` (a driver leaving after a pickup window closed cannot make it)."""
        query: dict[str, Any] = {
            "status": "active",
            "departure_end": {"$gte": earliest_end},
            "departure_start": {"$lte": latest_start},
        }
        return await self._coll.find(query).sort("_id", ASCENDING).to_list()

    async def carrying(self, request_id: str) -> list[Doc]:
        return await self._coll.find({"carried_ids": request_id}).to_list()

    async def save_load(
        self,
        trip_id: str,
        version: int,
        load: TripLoad,
        carried: dict[str, Doc],
        active_only: bool = True,
    ) -> bool:
        """Compare-and-set of the trip's load: False when another request (or a cancellation)
        changed the trip since it was read at `version`. Taking room needs an active trip;
        giving it back (`active_only=False`) works on a cancelled one too."""
        guard: Doc = {"_id": trip_id, "_v": version}
        if active_only:
            guard["status"] = "active"
        res = await self._coll.update_one(
            guard,
            {
                "$set": {
                    "load": load.model_dump(mode="json"),
                    "carried": carried,
                    "carried_ids": sorted(carried),
                },
                "$inc": {"_v": 1},
            },
        )
        return res.modified_count == 1

    async def cancel(self, trip_id: str, volunteer_id: str, now: datetime) -> Doc | None:
        """Cancel an active trip of this volunteer; returns it as it was, or None."""
        return await self._coll.find_one_and_update(
            {"_id": trip_id, "volunteer_id": volunteer_id, "status": "active"},
            {"$set": {"status": "cancelled", "cancelled_at": now}, "$inc": {"_v": 1}},
        )
