"""Volunteers' histories, the figures of the policy's fairness, experience, rating and newcomer
criteria (ADR 0008), from matching's own events:

* `AssignmentCompleted` (matching.events.v1): one more completion of that service type, its
  hours (recent hours count those checked out in the last 30 days), and the volunteer as one
  who completed the request;
* `RequestRated` (requests.events.v1): the stars go to every volunteer who completed it. The
  two topics are not ordered with each other: whichever of a rating and a completion is
  applied second applies the stars (once per volunteer and request).

Each change is one guarded single-document update (`adapters.stats_store`), so redelivery is
harmless. The index gets the new history at once; other replicas pick it up by polling the
changed documents (`run`), which also lets old hours fall out of the recent window.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from zhumeng_contracts.events import AssignmentCompleted, RequestRated

from ..domain.index import VolunteerIndex
from ..domain.policy import RECENT_DAYS, VolunteerStats
from .ports import Doc

log = logging.getLogger("zhumeng.matching.stats")


class StatsStore(Protocol):
    async def add_completion(
        self,
        event_id: str,
        volunteer_id: str,
        service_type_id: str,
        hours: float,
        checked_out_at: datetime,
    ) -> Doc | None: ...

    async def add_rating(self, volunteer_id: str, request_id: str, stars: int) -> Doc | None: ...

    async def add_completer(self, request_id: str, volunteer_id: str) -> int | None: ...

    async def rate(self, request_id: str, stars: int) -> tuple[int, list[str]]: ...

    async def changed_since(self, since: datetime | None) -> list[Doc]: ...


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def stats_of(doc: Doc, now: datetime) -> VolunteerStats:
    """A stored history as the policy sees it at `now`."""
    since = now - timedelta(days=RECENT_DAYS)
    recent = sum(float(c["h"]) for c in doc.get("recent", []) if _aware(c["at"]) > since)
    return VolunteerStats(
        completed=int(doc.get("completed", 0)),
        recent_hours=round(recent, 4),
        by_type={k.replace("\uff0e", "."): int(n) for k, n in (doc.get("by_type") or {}).items()},
        stars_sum=float(doc.get("stars_sum", 0)),
        stars_n=int(doc.get("stars_n", 0)),
    )


class VolunteerStatsService:
    POLL_S = 5.0  # how soon another replica's changes reach this index
    OVERLAP = timedelta(seconds=30)  # re-read a little: clocks and in-flight writes
    DECAY_EVERY = timedelta(hours=1)  # recompute recent hours of everyone

    def __init__(
        self,
        store: StatsStore,
        index: VolunteerIndex,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._index = index
        self._clock = clock
        self._docs: dict[str, Doc] = {}
        self._polled: datetime | None = None
        self._decayed = clock()

    def _apply(self, doc: Doc | None) -> None:
        if doc is not None:
            vid = str(doc["_id"])
            self._docs[vid] = doc
            self._index.set_stats(vid, stats_of(doc, self._clock()))

    async def on_completed(self, event_id: str, event: AssignmentCompleted) -> None:
        doc = await self._store.add_completion(
            event_id,
            event.volunteer_id,
            event.service_type_id,
            event.hours,
            event.checked_out_at,
        )
        stars = await self._store.add_completer(event.request_id, event.volunteer_id)
        if stars is not None:  # rated before this completion was applied
            doc = await self._store.add_rating(event.volunteer_id, event.request_id, stars)
        self._apply(doc)

    async def on_rated(self, event_id: str, event: RequestRated) -> None:
        stars, volunteers = await self._store.rate(event.request_id, event.stars)
        for vid in volunteers:
            self._apply(await self._store.add_rating(vid, event.request_id, stars))

    async def refresh(self) -> None:
        """Read the histories changed since the last call (all at the first); every
        DECAY_EVERY, recompute everyone's recent hours."""
        now = self._clock()
        since = None if self._polled is None else self._polled - self.OVERLAP
        docs = await self._store.changed_since(since)
        self._polled = now
        for doc in docs:
            self._apply(doc)
        if now - self._decayed >= self.DECAY_EVERY:
            self._decayed = now
            for vid, doc in self._docs.items():
                self._index.set_stats(vid, stats_of(doc, now))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.POLL_S)
            try:
                await self.refresh()
            except Exception:  # the database may be away for a while: try again later
                log.exception("refreshing volunteers' histories failed")
