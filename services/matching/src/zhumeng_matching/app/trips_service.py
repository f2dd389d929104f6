"""Trip pooling (DESIGN §6): volunteers announce trips they already plan; rides, parcels and
produce whose pickup and drop-off lie near the route and inside the departure window ride
along (`domain.trips`).

* A trip-mode request (pickup = the request's place, drop-off = `RequestPosted.dropoff`) is
  placed on the trip where it adds the least detour; a newly announced trip picks up the
  requests still waiting; with no trip the request stays in matching (escalation watches it).
* Room on a trip is taken by a compare-and-set on the trip's version, *then* the request's
  match is written (its own compare-and-set). If the match refuses (cancelled, or placed on
  another trip meanwhile) the room is given back. A crash in between leaves the request on
  the trip and not in the match: the redelivered `RequestPosted` finds that trip first and
  finishes the assignment there, exactly as ADR 0006 reuses held capacity.
* Capacity rule: a trip's seats, cargo and stops are its capacity. Trip assignments do not
  take the volunteer's capacity units (`loads`): the volunteer drives anyway, and a parcel on
  the way is not another appointment (ADR 0010).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from zhumeng_contracts.events import (
    PlaceRecord,
    RequestPosted,
    ServiceTypeRecord,
)
from zhumeng_contracts.events.common import GeoPoint, TimeWindow
from zhumeng_contracts.events.matching import ScorePart
from zhumeng_kit.auth import Principal
from zhumeng_kit.ids import new_id
from zhumeng_kit.problems import Conflict, NotFound, Unprocessable
from zhumeng_kit.views import View

from ..adapters.batch_store import PendingDecisions
from ..adapters.match_codec import decode
from ..adapters.trip_store import MongoTripStore, load_of, trip_of
from ..domain import lifecycle as lc
from ..domain.index import VolunteerIndex
from ..domain.policy import Candidate
from ..domain.trips import CarryRequest, Fit, PoolingPolicy, Trip, fits, unload
from .lifecycle_service import LifecycleService, Transition
from .ports import DecisionStore, Doc

TRIP_STATE = "tripping"  # the decision document's state while a request waits for a trip
MAX_RACES = 10
log = logging.getLogger("zhumeng.matching.trips")


@dataclass(frozen=True)
class Waypoint:
    """A place of the catalog, or a point."""

    place_id: str | None = None
    point: GeoPoint | None = None


@dataclass(frozen=True)
class TripPlan:
    origin: Waypoint
    destination: Waypoint
    departure: TimeWindow
    seats: int
    cargo_kg: float
    waypoints: Sequence[Waypoint] = ()


def carry_of(request: RequestPosted, service: ServiceTypeRecord) -> CarryRequest | None:
    """The request as something to carry, or None when it names no drop-off or nothing to
    carry (the requests service refuses those for trip-mode services)."""
    if request.dropoff is None or (request.seats < 1 and request.cargo_kg <= 0):
        return None
    if request.cargo_kg <= 0:
        kind = "ride"
    else:
        kind = "produce" if "produce" in (service.id, service.category) else "parcel"
    return CarryRequest.model_validate(
        {
            "request_id": request.request_id,
            "kind": kind,
            "pickup": request.location,
            "dropoff": request.dropoff,
            "window": request.window,
            "seats": request.seats,
            "cargo_kg": request.cargo_kg,
        }
    )


def trip_candidate(trip: Doc, fit: Fit, index: VolunteerIndex) -> Candidate | None:
    """The trip's volunteer as the request's candidate; the score is the detour budget left."""
    vol = index.get(trip["volunteer_id"])
    if vol is None:
        return None
    left = 1.0 if fit.limit_km <= 0 else max(0.0, 1.0 - fit.total_detour_km / fit.limit_km)
    value = round(min(1.0, left), 4)
    part = ScorePart(criterion="detour", value=value, weight=1.0, contribution=value)
    return Candidate(vol, max(0.0, fit.detour_km), value, (part,))


class TripsService:
    state = TRIP_STATE

    def __init__(
        self,
        trips: MongoTripStore,
        pending: PendingDecisions,
        decisions: DecisionStore,
        index: VolunteerIndex,
        service_types: View[ServiceTypeRecord],
        places: View[PlaceRecord],
        lifecycle: LifecycleService,
        policy: PoolingPolicy | None = None,
    ) -> None:
        self._trips = trips
        self._pending = pending
        self._decisions = decisions
        self._index = index
        self._service_types = service_types
        self._places = places
        self._lifecycle = lifecycle
        self._policy = policy or PoolingPolicy()

    # ---- the matcher's hook for trip-mode requests ----------------------------------------

    def takes(self, request: RequestPosted) -> bool:
        return True

    async def opened(self, request: RequestPosted) -> None:
        await self.place(request)

    # ---- volunteers' trips -----------------------------------------------------------------

    async def announce(self, who: Principal, plan: TripPlan) -> Doc:
        if self._index.get(who.subject) is None:
            raise Unprocessable("only a volunteer of the catalog announces trips")
        now = datetime.now(UTC)
        if plan.departure.end <= now:
            raise Unprocessable("the departure window has passed", field="departure")
        if plan.seats < 1 and plan.cargo_kg <= 0:
            raise Unprocessable("offer at least one seat or some cargo room", field="seats")
        origin, from_id = self._resolve(plan.origin, "from")
        destination, to_id = self._resolve(plan.destination, "to")
        waypoints = [self._resolve(w, "waypoints")[0] for w in plan.waypoints]
        trip = Trip(
            id=new_id("trip"),
            volunteer_id=who.subject,
            origin=origin,
            destination=destination,
            departure=plan.departure,
            seats=plan.seats,
            cargo_kg=plan.cargo_kg,
            waypoints=tuple(waypoints),
        )
        await self._trips.insert(trip, {"from_place_id": from_id, "to_place_id": to_id}, now)
        await self.fill(trip.id)
        doc = await self._trips.get(trip.id)
        assert doc is not None
        return doc

    def _resolve(self, w: Waypoint, field: str) -> tuple[GeoPoint, str | None]:
        if w.place_id is not None:
            place = self._places.get(w.place_id)
            if place is None or place.kind == "county":
                raise Unprocessable(f"unknown village or township {w.place_id!r}", field=field)
            return place.location, place.id
        if w.point is None:
            raise Unprocessable("give a place id or a point", field=field)
        return w.point, None

    async def mine(self, who: Principal, limit: int) -> list[Doc]:
        return await self._trips.of_volunteer(who.subject, limit)

    async def cancel(self, who: Principal, trip_id: str) -> Doc:
        """The volunteer no longer drives: the requests on the trip are withdrawn from it and
        placed on other trips if they fit (else they wait in matching)."""
        now = datetime.now(UTC)
        before = await self._trips.cancel(trip_id, who.subject, now)
        if before is None:
            raise NotFound(f"no active trip {trip_id!r} of yours")
        for request_id in before.get("carried_ids", []):
            await self._withdraw(request_id, trip_id, who.subject, now)
            await self._unload(trip_id, request_id)
            doc = await self._decisions.get(request_id)
            if doc is not None and "posted" in doc:
                await self.place(RequestPosted.model_validate(doc["posted"]))
        after = await self._trips.get(trip_id)
        assert after is not None
        return after

    async def _withdraw(
        self, request_id: str, trip_id: str, volunteer_id: str, now: datetime
    ) -> None:
        doc = await self._decisions.get(request_id)
        if doc is None or "lifecycle" not in doc:
            return
        for a in decode(doc["lifecycle"]).live_assignments:
            if a.trip_id == trip_id and a.status == "active":
                try:
                    await self._lifecycle.apply(
                        request_id, _withdraw_from(a.assignment_id, volunteer_id, now)
                    )
                except (Conflict, NotFound):
                    log.info("request %s changed while its trip was cancelled", request_id)

    # ---- placing requests onto trips -------------------------------------------------------

    async def fill(self, trip_id: str) -> int:
        """A new trip picks up the trip-mode requests still waiting, earliest window first."""
        now = datetime.now(UTC)
        waiting = [
            RequestPosted.model_validate(d["posted"])
            for d in await self._pending.waiting(TRIP_STATE)
        ]
        placed = 0
        for request in sorted(waiting, key=lambda r: (r.window.start, r.request_id)):
            if request.window.end > now and await self._onto(request, only=trip_id):
                placed += 1
        return placed

    async def place(self, request: RequestPosted) -> str | None:
        """Put the request on the best trip it fits; returns the trip id, or None."""
        # a crash after a trip took the request but before its match was written: finish there
        for doc in await self._trips.carrying(request.request_id):
            if doc["status"] == "active" and await self._assign(request, doc, None):
                return str(doc["_id"])
        return await self._onto(request, only=None)

    async def _onto(self, request: RequestPosted, only: str | None) -> str | None:
        service = self._service_types.get(request.service_type_id)
        carry = None if service is None else carry_of(request, service)
        if service is None or carry is None:
            return None
        now = datetime.now(UTC)
        docs = {
            d["_id"]: d
            for d in await self._trips.departing(now, request.window.end)
            if (only is None or d["_id"] == only) and self._may_drive(d, service)
        }
        for _ in range(MAX_RACES):
            best: tuple[Fit, Doc] | None = None
            for doc in docs.values():
                if request.request_id in doc.get("carried", {}):
                    continue
                fit = fits(trip_of(doc), load_of(doc), carry, self._policy)
                if isinstance(fit, Fit) and (best is None or _better(fit, best[0])):
                    best = (fit, doc)
            if best is None:
                return None
            fit, doc = best
            carried = {
                **doc.get("carried", {}),
                request.request_id: {
                    "seats": carry.seats,
                    "cargo_kg": carry.cargo_kg,
                    "placed_at": now.isoformat(),
                },
            }
            if await self._trips.save_load(doc["_id"], doc["_v"], fit.load, carried):
                return str(doc["_id"]) if await self._assign(request, doc, fit) else None
            fresh = await self._trips.get(doc["_id"])  # another request got there first
            if fresh is None or fresh["status"] != "active":
                docs.pop(doc["_id"])
            else:
                docs[doc["_id"]] = fresh
        raise Conflict(f"trips for request {request.request_id} are changing too fast; retry")

    def _may_drive(self, trip: Doc, service: ServiceTypeRecord) -> bool:
        """The trip's volunteer has the service's skills and certifications (e.g. a licence
        for rides); radius, weekly availability and capacity units are the trip's own."""
        vol = self._index.get(trip["volunteer_id"])
        return (
            vol is not None
            and set(service.required_skills) <= set(vol.skills)
            and set(service.required_certifications) <= set(vol.certifications)
        )

    async def _assign(self, request: RequestPosted, trip: Doc, fit: Fit | None) -> bool:
        """Write the assignment into the request's match; give the trip's room back if the
        match refuses it."""
        if fit is None:  # recovering: score it as it stands
            fit = _refit(
                trip, request, self._service_types.get(request.service_type_id), self._policy
            )
        candidate = None if fit is None else trip_candidate(trip, fit, self._index)
        if candidate is not None:
            try:
                await self._lifecycle.apply(
                    request.request_id, _onto_trip(candidate, trip["_id"], datetime.now(UTC))
                )
                return True
            except (Conflict, NotFound):
                pass  # cancelled, or on another trip meanwhile
        await self._unload(trip["_id"], request.request_id)
        return False

    async def _unload(self, trip_id: str, request_id: str) -> None:
        for _ in range(MAX_RACES):
            doc = await self._trips.get(trip_id)
            carried = dict((doc or {}).get("carried", {}))
            if doc is None or request_id not in carried:
                return
            took = carried.pop(request_id)
            load = unload(load_of(doc), request_id, took["seats"], took["cargo_kg"])
            if await self._trips.save_load(trip_id, doc["_v"], load, carried, active_only=False):
                return
        log.warning("could not give back room of request %s on trip %s", request_id, trip_id)

    async def release_stale(self, request_id: str, cancelled_at: datetime) -> None:
        """After an assignment of the request was cancelled: trips that took the request
        before that moment and that no live assignment names give its room back (a trip
        that took it since is a new placement in progress, and keeps it)."""
        doc = await self._decisions.get(request_id)
        if doc is None or "lifecycle" not in doc:
            return
        match = decode(doc["lifecycle"])
        final = match.state in lc.FINAL
        named = {a.trip_id for a in match.live_assignments}
        for trip in await self._trips.carrying(request_id):
            entry = trip.get("carried", {}).get(request_id, {})
            placed = datetime.fromisoformat(entry.get("placed_at", cancelled_at.isoformat()))
            if final or (trip["_id"] not in named and placed < cancelled_at):
                await self._unload(trip["_id"], request_id)


def _better(a: Fit, b: Fit) -> bool:
    return (round(a.detour_km, 3), a.pickup_eta, a.trip_id) < (
        round(b.detour_km, 3),
        b.pickup_eta,
        b.trip_id,
    )


def _refit(
    trip: Doc, request: RequestPosted, service: ServiceTypeRecord | None, policy: PoolingPolicy
) -> Fit | None:
    """The fit of a request already on the trip, computed against the trip without it."""
    carried = trip.get("carried", {}).get(request.request_id)
    carry = None if service is None else carry_of(request, service)
    if carried is None or carry is None:
        return None
    without = unload(load_of(trip), request.request_id, carried["seats"], carried["cargo_kg"])
    fit = fits(trip_of(trip), without, carry, policy)
    return fit if isinstance(fit, Fit) else None


def _onto_trip(candidate: Candidate, trip_id: str, now: datetime) -> Transition:
    def transition(match: lc.Match) -> lc.Result:
        if any(a.trip_id == trip_id for a in match.live_assignments):
            return match, []  # written before a crash: nothing to do
        return lc.assign_on_trip(match, candidate, trip_id, now)

    return transition


def _withdraw_from(assignment_id: str, volunteer_id: str, now: datetime) -> Transition:
    def transition(match: lc.Match) -> lc.Result:
        return lc.withdraw(match, assignment_id, volunteer_id, now)

    return transition
