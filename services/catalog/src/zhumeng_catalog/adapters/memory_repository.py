"""An in-memory CatalogRepository: the same contract as the MongoDB adapter, no I/O.

Used by the unit tests (as the fake for the repository port) and handy for demos; it also
records what the outbox would publish, in write order.
"""

from __future__ import annotations

import copy
from typing import Any

from zhumeng_contracts.events import Event

from ..app.ports import KINDS, Kind, Stored
from ..domain.rules import Query


class InMemoryCatalogRepository:
    def __init__(self) -> None:
        self.docs: dict[Kind, dict[str, dict[str, Any]]] = {k: {} for k in KINDS}
        self.revs: dict[Kind, dict[str, int]] = {k: {} for k in KINDS}
        self.published: list[Event] = []  # what the outbox would carry, in write order
        self.lose_next_races = 0  # simulate concurrent writers winning the CAS

    async def get(self, kind: Kind, entity_id: str) -> Stored | None:
        doc = self.docs[kind].get(entity_id)
        return None if doc is None else Stored(copy.deepcopy(doc), self.revs[kind][entity_id])

    async def get_many(self, kind: Kind, ids: list[str]) -> dict[str, Stored]:
        out = {}
        for i in ids:
            got = await self.get(kind, i)
            if got is not None:
                out[i] = got
        return out

    async def insert(self, kind: Kind, state: dict[str, Any], events: list[Event]) -> bool:
        if state["id"] in self.docs[kind]:
            return False
        self.docs[kind][state["id"]] = copy.deepcopy(state)
        self.revs[kind][state["id"]] = 1
        self.published.extend(events)
        return True

    async def update(
        self, kind: Kind, entity_id: str, rev: int, state: dict[str, Any], events: list[Event]
    ) -> bool:
        if self.lose_next_races:
            self.lose_next_races -= 1
            self.revs[kind][entity_id] += 1  # someone else wrote meanwhile
            return False
        if self.revs[kind].get(entity_id) != rev:
            return False
        self.docs[kind][entity_id] = copy.deepcopy(state)
        self.revs[kind][entity_id] = rev + 1
        self.published.extend(events)
        return True

    async def find(
        self, kind: Kind, query: Query, after: str | None, limit: int
    ) -> list[dict[str, Any]]:
        rows = [
            copy.deepcopy(d)
            for i, d in sorted(self.docs[kind].items())
            if (after is None or i > after) and query.matches(d)
        ]
        return rows[:limit]

    def of_type(self, model: type[Event]) -> list[Any]:
        return [e for e in self.published if isinstance(e, model)]
