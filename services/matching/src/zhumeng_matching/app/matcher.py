"""Match a posted request to one volunteer, exactly once, even across crashes.

1. begin: the decision document for the request is created (or found) — if it already holds
   an outcome this is a redelivery and nothing happens;
2. a volunteer already holding capacity for this request (a crash after step 3) is reused;
3. otherwise the index's best-first search gives the few best candidates (more if needed) and
   the best one whose capacity can be taken atomically wins (a stale cache only costs a failed
   attempt, never an over-commitment); only when none can, the catalog view reads up to now
   (a volunteer registered a moment ago counts, ADR 0015) and the full pass over every nearby
   volunteer (`VolunteerIndex.full_rank`) gives the reasons of the "unmatched" outcome;
4. finish: outcome and its event go into the decision document in one write (outbox).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from zhumeng_contracts.events import (
    Event,
    RequestPosted,
    RequestUnmatched,
    ServiceTypeRecord,
    VolunteerRecord,
)
from zhumeng_contracts.events.matching import MatchMode
from zhumeng_kit.consumer import PermanentError
from zhumeng_kit.outbox import outbox_entry
from zhumeng_kit.views import View

from ..adapters.match_codec import encode as encode_match
from ..domain import lifecycle as lc
from ..domain.geo import haversine_km
from ..domain.index import VolunteerIndex
from ..domain.policy import Candidate, Load
from .escalation import EscalationService
from .lifecycle_service import encode as encode_with_review
from .ports import DecisionStore, LoadStore, OfferCascade

SOURCE = "zhumeng/matching"
FIRST_K = 5  # candidates asked of the index at first; more only when reservations fail
log = logging.getLogger("zhumeng.matching")


class PooledMode(Protocol):
    """Where requests of a pooled mode (team, batch, trip) wait after their match opened:
    `state` is the decision document's state meanwhile."""

    state: str

    def takes(self, request: RequestPosted) -> bool:
        """False: this request is decided directly instead (e.g. several slots in batch)."""
        ...

    async def opened(self, request: RequestPosted) -> None:
        """The request joined the pool (called again on a redelivery: idempotent)."""
        ...


class Matcher:
    def __init__(
        self,
        index: VolunteerIndex,
        service_types: View[ServiceTypeRecord],
        loads: LoadStore,
        decisions: DecisionStore,
        on_events: object = None,
        offers: OfferCascade | None = None,
        escalation: EscalationService | None = None,
        pooled: Mapping[str, PooledMode] | None = None,
        catch_up: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        # reads a catalog topic up to now (CompactedTopicsReader.caught_up); raises on timeout
        self._catch_up = catch_up
        self._offers = offers
        self._escalation = escalation
        self._pooled = dict(pooled or {})  # matching mode -> where its requests wait
        self._index = index
        self._service_types = service_types
        self._loads = loads
        self._decisions = decisions
        self._on_events = on_events if callable(on_events) else (lambda: None)

    async def on_request_posted(self, event_id: str, request: RequestPosted) -> str:
        """Returns the outcome state: 'assigned' or 'unmatched'."""
        decision, created = await self._decisions.begin(
            request.request_id, event_id, request.model_dump(mode="json")
        )
        if decision["state"] == "offering" and self._offers is not None:
            await self._offers.offer_next(request.request_id)  # a crash before the first offer
        if decision["state"] == "claiming" and self._offers is not None:
            await self._offers.invite(request.request_id)  # a crash before the invitation
        for waiting in self._pooled.values():
            if decision["state"] == waiting.state:
                await waiting.opened(request)  # a crash before the request joined its pool
        if decision["state"] != "deciding":
            return str(decision["state"])  # redelivered: decided before
        service = self._service_types.get(request.service_type_id)
        if service is None and self._catch_up is not None:
            # created a moment before the request: the view may not have read it yet
            await self._catch_up(ServiceTypeRecord.TOPIC)
            service = self._service_types.get(request.service_type_id)
        if service is None:
            raise PermanentError(f"unknown service type {request.service_type_id}")
        if service.needs_review and self._escalation is not None:
            return await self._hold_for_review(request, service)
        if service.matching_mode == "auto_offer" and self._offers is not None:
            return await self._start_offers(request, "offering", "auto_offer")
        if service.matching_mode == "open_claim" and self._offers is not None:
            return await self._start_offers(request, "claiming", "open_claim")
        pooled = self._pooled.get(service.matching_mode)
        if pooled is not None and pooled.takes(request):
            return await self._start_pooled(request, service.matching_mode, pooled)

        # after a crash, volunteers who already hold capacity for this request keep it
        chosen = (
            [] if created else self._held(request, await self._loads.holders_of(request.request_id))
        )
        considered = len(chosen)
        rejected: Counter[str] = Counter()
        tried = {c.volunteer.id for c in chosen}
        if len(chosen) < request.slots:
            # best first, a few at a time; a failed reservation (stale load cache) moves on
            k = FIRST_K + request.slots
            while len(chosen) < request.slots:
                best = self._index.best(request, service, self._loads.cached(), k)
                considered = max(considered, best.considered)
                for candidate in best.candidates:
                    vid = candidate.volunteer.id
                    if vid in tried:
                        continue
                    tried.add(vid)
                    if await self._loads.reserve(
                        vid, request.request_id, candidate.volunteer.capacity
                    ):
                        chosen.append(candidate)
                        if len(chosen) == request.slots:
                            break
                if len(best.candidates) < k:
                    break  # no other eligible volunteer
                k *= 4
        if chosen:
            return await self._assign(request, chosen, max(1, considered))
        # nobody could take it: the full pass over every nearby volunteer gives the reasons
        # (computed only now; the best-first search does not look at everyone), on a view
        # that has read every volunteer registered before now
        if self._catch_up is not None:
            await self._catch_up(VolunteerRecord.TOPIC)
        ranking = self._index.full_rank(request, service, self._loads.cached())
        # (a volunteer the cache still shows free but whose reservation failed: no capacity)
        for candidate in ranking.candidates:
            vid = candidate.volunteer.id
            if vid not in tried and await self._loads.reserve(
                vid, request.request_id, candidate.volunteer.capacity
            ):
                chosen.append(candidate)
                if len(chosen) == request.slots:
                    break
            else:
                rejected["no_capacity"] += 1
        if chosen:
            return await self._assign(request, chosen, max(1, ranking.considered))
        reasons = (ranking.rejected + rejected) or Counter({"no_volunteer_nearby": 1})
        return await self._unmatched(request, dict(reasons), ranking.considered)

    async def _start_offers(self, request: RequestPosted, state: str, mode: MatchMode) -> str:
        """Auto-offer and open-claim modes: the match opens empty; then offers go out one
        volunteer per slot, or the best volunteers are invited to claim."""
        match = lc.new_match(
            request.request_id, request.service_type_id, request.window, request.slots, mode
        )
        fields: dict[str, object] = {
            "township_id": request.township_id,
            "lifecycle": encode_match(match),
        }
        await self._arm_escalation(request)
        await self._finish(request, state, fields, [])
        assert self._offers is not None
        if mode == "open_claim":
            await self._offers.invite(request.request_id)
        else:
            await self._offers.offer_next(request.request_id)
        return state

    async def _start_pooled(self, request: RequestPosted, mode: MatchMode, pool: PooledMode) -> str:
        """Team, batch and trip modes: the match opens empty and the request joins its pool
        (open to teams, the next batch window, or the trips)."""
        match = lc.new_match(
            request.request_id, request.service_type_id, request.window, request.slots, mode
        )
        fields: dict[str, object] = {
            "township_id": request.township_id,
            "lifecycle": encode_match(match),
        }
        await self._finish(request, pool.state, fields, [])
        await pool.opened(request)
        return pool.state

    def _held(self, request: RequestPosted, volunteer_ids: list[str]) -> list[Candidate]:
        """Candidates for the volunteers already holding capacity for this request."""
        held = []
        for vid in volunteer_ids:
            vol = self._index.get(vid)
            if vol is None:
                continue
            d = haversine_km(request.location.lat, request.location.lon, vol.home.lat, vol.home.lon)
            held.append(self._index.candidate(vol, request, Load(), d))
        return held

    async def _assign(
        self, request: RequestPosted, chosen: list[Candidate], considered: int
    ) -> str:
        """Direct mode: every chosen volunteer gets a slot; the match starts its lifecycle."""
        now = datetime.now(UTC)
        match = lc.new_match(
            request.request_id, request.service_type_id, request.window, request.slots, "direct"
        )
        events: list[Event] = []
        for candidate in chosen:
            match, produced = lc.assign(match, candidate, now, considered)
            events += produced
        if len(chosen) < request.slots:
            await self._arm_escalation(request)  # slots left open: the ladder's clock runs
        first = chosen[0]
        fields = {
            # the first volunteer at the top level: what the decision API has always shown
            "volunteer_id": first.volunteer.id,
            "assignment_id": match.assignments[0].assignment_id,
            "score": first.score,
            "distance_km": round(first.distance_km, 3),
            "explanation": [p.model_dump() for p in first.parts],
            "decided_at": now,
            "township_id": request.township_id,
            "lifecycle": encode_match(match),
        }
        await self._finish(request, "assigned", fields, [outbox_entry(e, SOURCE) for e in events])
        return "assigned"

    # ---- review and escalation (ADR 0009) ---------------------------------------------------

    async def _hold_for_review(self, request: RequestPosted, service: ServiceTypeRecord) -> str:
        """A service type that needs review: the match opens held (ReviewRequired) and waits
        for a coordinator; if the appointment starts first, it ends unfulfilled."""
        now = datetime.now(UTC)
        match = lc.new_match(
            request.request_id,
            request.service_type_id,
            request.window,
            request.slots,
            service.matching_mode,
        )
        match, events = lc.hold_for_review(match, request.township_id, now)
        assert self._escalation is not None
        await self._escalation.arm_window(request)
        fields: dict[str, object] = {
            "township_id": request.township_id,
            "lifecycle": encode_with_review(match),
        }
        await self._finish(request, "in_review", fields, [outbox_entry(e, SOURCE) for e in events])
        return "in_review"

    async def _arm_escalation(self, request: RequestPosted) -> None:
        if self._escalation is not None:
            await self._escalation.arm(request, request.posted_at)

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
