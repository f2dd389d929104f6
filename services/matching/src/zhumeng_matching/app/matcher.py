"""Match a posted request to one volunteer, exactly once, even across crashes.

1. begin: the decision document for the request is created (or found) — if it already holds
   an outcome this is a redelivery and nothing happens;
2. a volunteer already holding capacity for this request (a crash after step 3) is reused;
3. otherwise candidates are ranked from the in-memory index and the best one whose capacity
   can be taken atomically wins (a stale cache only costs a failed attempt, never an
   over-commitment);
4. finish: outcome and its event go into the decision document in one write (outbox).
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime

from zhumeng_contracts.events import (
    RequestPosted,
    RequestUnmatched,
    ServiceTypeRecord,
    VolunteerAssigned,
)
from zhumeng_kit.consumer import PermanentError
from zhumeng_kit.ids import new_id
from zhumeng_kit.outbox import outbox_entry
from zhumeng_kit.views import View

from ..domain.geo import haversine_km
from ..domain.index import VolunteerIndex
from ..domain.policy import Candidate, Load, rank, score
from .ports import DecisionStore, LoadStore

SOURCE = "zhumeng/matching"
log = logging.getLogger("zhumeng.matching")


class Matcher:
    def __init__(
        self,
        index: VolunteerIndex,
        service_types: View[ServiceTypeRecord],
        loads: LoadStore,
        decisions: DecisionStore,
        on_events: object = None,
    ) -> None:
        self._index = index
        self._service_types = service_types
        self._loads = loads
        self._decisions = decisions
        self._on_events = on_events if callable(on_events) else (lambda: None)

    async def on_request_posted(self, event_id: str, request: RequestPosted) -> str:
        """Returns the outcome state: 'assigned' or 'unmatched'."""
        decision, created = await self._decisions.begin(request.request_id, event_id)
        if decision["state"] != "deciding":
            return str(decision["state"])  # redelivered: decided before
        service = self._service_types.get(request.service_type_id)
        if service is None:
            raise PermanentError(f"unknown service type {request.service_type_id}")

        held = None if created else await self._loads.holder_of(request.request_id)
        if held is not None and (vol := self._index.get(held)) is not None:
            d = haversine_km(request.location.lat, request.location.lon, vol.home.lat, vol.home.lon)
            total, parts = score(vol, request, Load(), d)
            return await self._assign(request, Candidate(vol, d, total, parts), 1)

        nearby = self._index.nearby(
            request.location.lat, request.location.lon, service.required_skills
        )
        ranking = rank(request, service, nearby, self._loads.cached())
        for candidate in ranking.candidates:
            if await self._loads.reserve(
                candidate.volunteer.id, request.request_id, candidate.volunteer.capacity
            ):
                return await self._assign(request, candidate, ranking.considered)
            ranking.rejected["no_capacity"] += 1
        reasons = ranking.rejected or Counter({"no_volunteer_nearby": 1})
        return await self._unmatched(request, dict(reasons), ranking.considered)

    async def _assign(self, request: RequestPosted, c: Candidate, considered: int) -> str:
        now = datetime.now(UTC)
        event = VolunteerAssigned(
            request_id=request.request_id,
            assignment_id=new_id("asg"),
            volunteer_id=c.volunteer.id,
            volunteer_display_name=c.volunteer.display_name,
            service_type_id=request.service_type_id,
            window=request.window,
            distance_km=round(c.distance_km, 3),
            score=c.score,
            explanation=list(c.parts),
            candidates_considered=max(1, considered),
            assigned_at=now,
        )
        fields = {
            "volunteer_id": c.volunteer.id,
            "assignment_id": event.assignment_id,
            "score": c.score,
            "distance_km": event.distance_km,
            "explanation": [p.model_dump() for p in c.parts],
            "decided_at": now,
        }
        await self._finish(request, "assigned", fields, [outbox_entry(event, SOURCE)])
        return "assigned"

    async def _unmatched(
        self, request: RequestPosted, reasons: dict[str, int], considered: int
    ) -> str:
        now = datetime.now(UTC)
        event = RequestUnmatched(
            request_id=request.request_id,
            service_type_id=request.service_type_id,
            reasons=reasons,
            candidates_considered=considered,
            decided_at=now,
        )
        fields = {"reasons": reasons, "decided_at": now}
        await self._finish(request, "unmatched", fields, [outbox_entry(event, SOURCE)])
        return "unmatched"

    async def _finish(
        self,
        request: RequestPosted,
        state: str,
        fields: dict[str, object],
        entries: list[dict[str, object]],
    ) -> None:
        if await self._decisions.finish(request.request_id, state, fields, entries):
            self._on_events()
        log.info("request %s %s", request.request_id, state)
