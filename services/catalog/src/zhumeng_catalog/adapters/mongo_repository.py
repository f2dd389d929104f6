"""The catalog's MongoDB repository: one collection per entity kind, one document per entity.

A document is the entity's state (`_id` = entity id) plus the kit's outbox fields; every write
is a single-document insert or a compare-and-set `update_one` on `_v` that replaces the state
and appends the records announcing it, so state and events can never diverge.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from zhumeng_contracts.events import Event
from zhumeng_kit.mongo import Doc
from zhumeng_kit.outbox import append_events, ensure_outbox_index, new_document, outbox_entry

from ..app.ports import KINDS, Kind, Stored
from ..domain.rules import Query

SOURCE = "zhumeng/catalog"
COLLECTIONS: list[str] = list(KINDS)
_INTERNAL = ("_id", "_v", "outbox", "has_outbox")
_INDEXES: dict[str, list[str]] = {
    "service_types": ["category", "required_skills"],
    "places": ["kind", "township_id"],
    "volunteers": ["township_id", "skills", "certifications"],
    "teams": ["township_id", "member_ids"],
}


def to_mongo(query: Query) -> Doc:
    """Translate the store-independent query (equality on a list field means 'contains')."""
    clauses: list[Doc] = []
    if query.active_only:
        clauses.append({"active": True})
    for name, value in query.equals:
        clauses.append({name: value})
    if query.text is not None:
        fields, needle = query.text
        pattern = re.escape(needle)
        clauses.append({"$or": [{f: {"$regex": pattern, "$options": "i"}} for f in fields]})
    for name, lo, hi in query.ranges:
        clauses.append({name: {"$gte": lo, "$lte": hi}})
    if not clauses:
        return {}
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _state(doc: Doc) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in _INTERNAL}


class MongoCatalogRepository:
    def __init__(self, db: AsyncDatabase[Doc], on_write: Callable[[], None] | None = None) -> None:
        self._db = db
        self._on_write = on_write or (lambda: None)

    async def ensure_indexes(self) -> None:
        for kind in COLLECTIONS:
            coll = self._db[kind]
            await ensure_outbox_index(coll)
            for name in _INDEXES.get(kind, []):
                await coll.create_index([(name, ASCENDING)], name=f"by_{name}")

    async def pending_outbox(self) -> int:
        """How many documents still hold events the relay has not published yet."""
        total = 0
        for kind in COLLECTIONS:
            total += await self._db[kind].count_documents({"has_outbox": True})
        return total

    def _entries(self, events: list[Event]) -> list[Doc]:
        return [outbox_entry(e, source=SOURCE) for e in events]

    async def get(self, kind: Kind, entity_id: str) -> Stored | None:
        doc = await self._db[kind].find_one({"_id": entity_id}, {"outbox": 0})
        return None if doc is None else Stored(_state(doc), int(doc["_v"]))

    async def get_many(self, kind: Kind, ids: list[str]) -> dict[str, Stored]:
        if not ids:
            return {}
        cursor = self._db[kind].find({"_id": {"$in": list(ids)}}, {"outbox": 0})
        return {d["_id"]: Stored(_state(d), int(d["_v"])) async for d in cursor}

    async def insert(self, kind: Kind, state: dict[str, Any], events: list[Event]) -> bool:
        doc = new_document({"_id": state["id"], **state}, self._entries(events))
        try:
            await self._db[kind].insert_one(doc)
        except DuplicateKeyError:
            return False
        self._on_write()
        return True

    async def update(
        self, kind: Kind, entity_id: str, rev: int, state: dict[str, Any], events: list[Event]
    ) -> bool:
        fields = {k: v for k, v in state.items() if k != "id"}
        update = append_events({"$set": fields}, self._entries(events))
        res = await self._db[kind].update_one({"_id": entity_id, "_v": rev}, update)
        if res.matched_count:
            self._on_write()
            return True
        return False

    async def find(
        self, kind: Kind, query: Query, after: str | None, limit: int
    ) -> list[dict[str, Any]]:
        flt = to_mongo(query)
        if after is not None:
            flt = {"$and": [flt, {"_id": {"$gt": after}}]} if flt else {"_id": {"$gt": after}}
        cursor = self._db[kind].find(flt, {"outbox": 0}).sort("_id", ASCENDING).limit(limit)
        return [_state(d) async for d in cursor]
