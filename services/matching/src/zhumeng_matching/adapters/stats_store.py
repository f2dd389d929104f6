"""MongoDB store of volunteers' histories (ADR 0008): one document per volunteer, changed by
single-document conditional updates that record what they applied, so that a redelivered
event changes nothing.

    volunteer_stats: {_id: volunteer, completed, by_type: {type: n}, hours_total,
                      recent: [{at, h}] (the last RECENT_KEPT completions), stars_sum, stars_n,
                      rated: [request ids], applied: [event ids], updated_at}
    request_completers: {_id: request, volunteers: [ids], stars}
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ..app.ports import Doc

STATS = "volunteer_stats"
COMPLETERS = "request_completers"
RECENT_KEPT = 100  # completions kept for the recent hours: far more than fit in 30 days


def type_key(service_type_id: str) -> str:
    """A service type id as a field name (ids may hold dots, field paths may not; read back
    by `app.volunteer_stats.stats_of`)."""
    return service_type_id.replace(".", "\uff0e")


class MongoStatsStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._stats = db[STATS]
        self._completers = db[COMPLETERS]

    async def ensure_indexes(self) -> None:
        await self._stats.create_index([("updated_at", ASCENDING)], name="by_updated_at")

    async def _guarded(self, volunteer_id: str, guard: Doc, update: Doc) -> Doc | None:
        """Apply `update` unless `guard` says it was applied; the document after, or the
        current one when it was applied before."""
        update.setdefault("$set", {})["updated_at"] = datetime.now(UTC)
        try:
            doc: Doc | None = await self._stats.find_one_and_update(
                {"_id": volunteer_id, **guard},
                update,
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            doc = None  # the document exists and the guard failed: applied before
        return doc or await self._stats.find_one({"_id": volunteer_id})

    async def add_completion(
        self,
        event_id: str,
        volunteer_id: str,
        service_type_id: str,
        hours: float,
        checked_out_at: datetime,
    ) -> Doc | None:
        update: Doc = {
            "$inc": {
                "completed": 1,
                f"by_type.{type_key(service_type_id)}": 1,
                "hours_total": hours,
            },
            "$push": {
                "recent": {"$each": [{"at": checked_out_at, "h": hours}], "$slice": -RECENT_KEPT},
                "applied": event_id,
            },
        }
        return await self._guarded(volunteer_id, {"applied": {"$ne": event_id}}, update)

    async def add_rating(self, volunteer_id: str, request_id: str, stars: int) -> Doc | None:
        """Count a request's stars for one volunteer who completed it, once per request."""
        update: Doc = {
            "$inc": {"stars_sum": stars, "stars_n": 1},
            "$push": {"rated": request_id},
        }
        return await self._guarded(volunteer_id, {"rated": {"$ne": request_id}}, update)

    async def add_completer(self, request_id: str, volunteer_id: str) -> int | None:
        """Remember who completed the request; its stars if it was rated already."""
        doc = await self._completers.find_one_and_update(
            {"_id": request_id},
            {"$addToSet": {"volunteers": volunteer_id}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        stars = (doc or {}).get("stars")
        return int(stars) if stars is not None else None

    async def rate(self, request_id: str, stars: int) -> tuple[int, list[str]]:
        """Record the request's stars (the first rating stands): (the stars that stand, who
        completed the request so far)."""
        try:
            doc = await self._completers.find_one_and_update(
                {"_id": request_id, "stars": {"$exists": False}},
                {"$set": {"stars": stars}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            doc = None  # rated before
        doc = doc or await self._completers.find_one({"_id": request_id}) or {}
        return int(doc.get("stars", stars)), [str(v) for v in doc.get("volunteers", [])]

    async def changed_since(self, since: datetime | None) -> list[Doc]:
        """Histories changed at or after `since` (all of them for None)."""
        query: dict[str, Any] = {} if since is None else {"updated_at": {"$gte": since}}
        projection = {"applied": 0, "rated": 0}
        return await self._stats.find(query, projection).to_list()
