"""MongoDB side of the pooled modes: requests waiting in matching's decision documents (for a
batch window, a trip, or a team), batch windows per service type, and batch runs. Every change
is one atomic single-document update."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ..app.ports import Doc
from .mongo_stores import DECISIONS, OPEN_STATES

WINDOWS = "batch_windows"
RUNS = "batch_runs"


class PendingDecisions:
    """Queries over matching's decision documents for requests that wait in a pool."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._coll = db[DECISIONS]

    async def ensure_indexes(self) -> None:
        await self._coll.create_index(
            [("state", ASCENDING), ("lifecycle.state", ASCENDING)], name="pooled_by_state"
        )

    async def waiting(self, state: str, service_type_id: str | None = None) -> list[Doc]:
        """Requests in the given decision state with no volunteer yet, oldest first."""
        query: dict[str, Any] = {"state": state, "lifecycle.state": "matching"}
        if service_type_id is not None:
            query["posted.service_type_id"] = service_type_id
        return await self._coll.find(query, {"outbox": 0}).sort("_id", ASCENDING).to_list()

    async def unfilled(self, state: str, service_type_id: str) -> list[Doc]:
        """Requests in the given decision state with a slot still open (none filled yet, or
        some: partially assigned), oldest first."""
        query: dict[str, Any] = {
            "state": state,
            "lifecycle.state": {"$in": OPEN_STATES},
            "posted.service_type_id": service_type_id,
        }
        return await self._coll.find(query, {"outbox": 0}).sort("_id", ASCENDING).to_list()

    async def open_to_teams(self, township_id: str | None, limit: int) -> list[Doc]:
        query: dict[str, Any] = {
            "lifecycle.mode": {"$in": ["team", "open_claim"]},
            "lifecycle.state": {"$in": OPEN_STATES},
        }
        if township_id is not None:
            query["township_id"] = township_id
        cursor = self._coll.find(query, {"outbox": 0}).sort("_id", DESCENDING)
        return await cursor.limit(limit).to_list()


class MongoBatchStore:
    """Batch windows (one open window per service type at a time) and the record of runs."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._windows = db[WINDOWS]
        self._runs = db[RUNS]

    async def ensure_indexes(self) -> None:
        await self._runs.create_index(
            [("service_type_id", ASCENDING), ("started_at", DESCENDING)], name="runs_by_type"
        )

    async def open_window(self, service_type_id: str, now: datetime, length: timedelta) -> Doc:
        """The open window of this service type, opened now if none is: the first pending
        request of a window starts its clock. Returns {window_no, due_at}."""
        for _ in range(10):
            try:
                doc = await self._windows.find_one_and_update(
                    {"_id": service_type_id, "open": {"$ne": True}},
                    {
                        "$set": {"open": True, "opened_at": now, "due_at": now + length},
                        "$inc": {"window_no": 1},
                    },
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:
                doc = None  # it exists and is open: join that window
            if doc is None:
                doc = await self._windows.find_one({"_id": service_type_id, "open": True})
            if doc is not None:
                return doc
        raise RuntimeError(f"batch window of {service_type_id} kept changing")

    async def close_window(self, service_type_id: str, window_no: int) -> None:
        """The window's run starts: a request posted from now on opens the next window."""
        await self._windows.update_one(
            {"_id": service_type_id, "window_no": window_no, "open": True},
            {"$set": {"open": False}},
        )

    async def record_run(self, run_id: str, fields: Doc) -> None:
        """One document per window; a run repeated after a crash overwrites it and counts."""
        await self._runs.update_one(
            {"_id": run_id}, {"$set": fields, "$inc": {"executions": 1}}, upsert=True
        )

    async def runs(self, service_type_id: str | None, limit: int) -> list[Doc]:
        query = {} if service_type_id is None else {"service_type_id": service_type_id}
        cursor = self._runs.find(query).sort("started_at", DESCENDING)
        return await cursor.limit(limit).to_list()
