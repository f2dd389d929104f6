"""Trip pooling (DESIGN §6): rides, parcels and produce carried along on trips volunteers already
plan, e.g. a Saturday-morning drive from the county town to a township. Pure: no I/O.

A trip is a route origin → (waypoints) → destination with a departure window and a capacity
(free seats, cargo kg). A trip's `TripLoad` is what it has already accepted: the committed
seats and cargo and the ordered stops of the accepted requests, interleaved with the trip's own
waypoints. `fits` decides whether one more request can join a trip and, when it can, where its
pickup and drop-off go; `match_onto_trips` places a batch of requests onto a set of trips.

Rules (each a `Rejection.reason` when it fails, checked in this order):

* **Capacity** (`no_seats`, `no_cargo_room`): the request's seats and cargo kg against the
  trip's capacity minus what is already committed. Committed capacity is counted for the whole
  trip (a seat freed at a drop-off is not handed out again): simple and on the safe side.
* **Stops** (`too_many_stops`): at most `PoolingPolicy.max_stops` pickups and drop-offs of
  accepted requests per trip, which also bounds the brute-force insertion below.
* **Direction** (`wrong_direction`): the drop-off lies further along the trip than the pickup.
  Progress is the position of a point's projection onto the planned route origin → waypoints →
  destination (a local flat projection; the county is small). A trip that starts where it ends
  has no direction: for it the check is skipped and only the stop order counts.
* **Detour** (`too_far_from_route`): the route through the stops, with the new pickup and drop-off
  inserted at the cheapest positions that keep every pickup before its drop-off, is compared with
  the planned route. The *cumulative* detour, length(route with all stops) − length(planned
  route), must stay within `max(min_detour_km, detour_fraction × planned length)`. For a trip
  without waypoints or stops this is d(o→p) + d(p→d) + d(d→dest) − d(o→dest). Distances are
  haversine (straight line), so the limits are in straight-line km.
* **Time** (`outside_window`): the driver leaves at some moment of the departure window and drives
  at `speed_kmh` without waiting, so the stop k is reached at departure + route distance to k /
  speed. There must be one departure time that gets every pickup (the new one and those already
  accepted, which a new stop may delay) inside its request's window. The earliest such departure
  is the one reported.

Among the insertions that pass, the shortest route wins (ties: earlier pickup position, then
earlier drop-off position), so answers are repeatable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any, Literal

from pydantic import Field, model_validator

from zhumeng_contracts.events.common import Frozen, GeoPoint, Id, TimeWindow

from .geo import EARTH_RADIUS_KM, haversine_km

CarryKind = Literal["ride", "parcel", "produce"]
StopKind = Literal["waypoint", "pickup", "dropoff"]
Reason = Literal[
    "no_seats",
    "no_cargo_room",
    "too_many_stops",
    "wrong_direction",
    "too_far_from_route",
    "outside_window",
]

_EPS_KM = 1e-9


# ---------------------------------------------------------------------------------------------
# Value types
# ---------------------------------------------------------------------------------------------


class Trip(Frozen):
    """A trip a volunteer already plans. `seats` are the seats offered to passengers (the driver
    not counted), `cargo_kg` the load the vehicle takes besides them. `waypoints` are the
    volunteer's own intermediate stops, visited in this order."""

    id: Id
    volunteer_id: Id
    origin: GeoPoint
    destination: GeoPoint
    departure: TimeWindow
    seats: int = Field(default=0, ge=0, le=12)
    cargo_kg: float = Field(default=0.0, ge=0, le=5000)
    waypoints: tuple[GeoPoint, ...] = Field(default=(), max_length=8)


class Stop(Frozen):
    """One intermediate point of a trip's route: a waypoint of the trip itself, or the pickup or
    drop-off of an accepted request. A pickup carries its request's window."""

    kind: StopKind
    point: GeoPoint
    request_id: Id | None = None
    window: TimeWindow | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Stop:
        if self.kind == "waypoint":
            if self.request_id is not None or self.window is not None:
                raise ValueError("a waypoint has no request and no window")
        elif self.request_id is None:
            raise ValueError("a pickup or drop-off names its request")
        if self.kind == "pickup" and self.window is None:
            raise ValueError("a pickup carries its request's window")
        return self


class TripLoad(Frozen):
    """What a trip has already accepted. `stops` is the whole ordered list of intermediate stops,
    the trip's waypoints included; left empty, the route is the trip's own (its waypoints)."""

    seats: int = Field(default=0, ge=0)
    cargo_kg: float = Field(default=0.0, ge=0)
    stops: tuple[Stop, ...] = ()

    @model_validator(mode="after")
    def _paired(self) -> TripLoad:
        picked: set[str] = set()
        dropped: set[str] = set()
        for stop in self.stops:
            rid = stop.request_id
            if rid is None:
                continue
            if stop.kind == "pickup":
                if rid in picked:
                    raise ValueError(f"request {rid} is picked up twice")
                picked.add(rid)
            else:
                if rid not in picked or rid in dropped:
                    raise ValueError(f"request {rid} is dropped off before its pickup or twice")
                dropped.add(rid)
        if picked != dropped:
            raise ValueError(f"requests without a drop-off: {sorted(picked - dropped)}")
        return self

    def request_ids(self) -> set[str]:
        return {s.request_id for s in self.stops if s.request_id is not None}


class CarryRequest(Frozen):
    """Something to carry from `pickup` to `dropoff`, picked up inside `window`: a person (ride),
    a parcel, or produce going to market. A ride needs at least one seat (the default); a parcel
    or produce needs its weight. A produce seller riding along with the goods asks for both."""

    request_id: Id
    kind: CarryKind
    pickup: GeoPoint
    dropoff: GeoPoint
    window: TimeWindow
    seats: int = Field(default=0, ge=0, le=12)
    cargo_kg: float = Field(default=0.0, ge=0, le=5000)

    @model_validator(mode="before")
    @classmethod
    def _default_seat(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kind") == "ride" and "seats" not in data:
            return {**data, "seats": 1}
        return data

    @model_validator(mode="after")
    def _needs(self) -> CarryRequest:
        if self.kind == "ride" and self.seats < 1:
            raise ValueError("a ride needs at least one seat")
        if self.kind != "ride" and self.cargo_kg <= 0:
            raise ValueError(f"a {self.kind} request gives its weight in kg")
        return self


@dataclass(frozen=True)
class PoolingPolicy:
    """The knobs of trip pooling.

    * `min_detour_km` (3.0): the detour always allowed, however short the trip: a few km to a
      village beside the road is fine even on a 5 km hop.
    * `detour_fraction` (0.20): on longer trips the allowed detour grows with the planned length:
      20% of a 26 km drive is 5.2 km.
    * `speed_kmh` (35.0): average speed on rural roads, applied to straight-line distances, for
      the estimated time at each stop (Dehua's mountain roads wind: keep it modest).
    * `max_stops` (6): pickups plus drop-offs of accepted requests per trip (3 requests).
    * `backtrack_tolerance_km` (0.0): how far the drop-off may lie *behind* the pickup along the
      route before the request counts as going the wrong way. 0 means progress must increase.
    """

    min_detour_km: float = 3.0
    detour_fraction: float = 0.20
    speed_kmh: float = 35.0
    max_stops: int = 6
    backtrack_tolerance_km: float = 0.0

    def __post_init__(self) -> None:
        if self.min_detour_km < 0 or self.detour_fraction < 0:
            raise ValueError("detour limits cannot be negative")
        if self.speed_kmh <= 0:
            raise ValueError("speed must be positive")
        if self.max_stops < 2:
            raise ValueError("max_stops must allow at least one request (2 stops)")
        if self.backtrack_tolerance_km < 0:
            raise ValueError("backtrack tolerance cannot be negative")

    def detour_limit_km(self, planned_km: float) -> float:
        return max(self.min_detour_km, self.detour_fraction * planned_km)


@dataclass(frozen=True)
class Rejection:
    """Why a request cannot join a trip: a reason code and a human-readable detail."""

    trip_id: str
    request_id: str
    reason: Reason
    detail: str


@dataclass(frozen=True)
class Fit:
    """How a request would join a trip.

    `detour_km` is what this request adds to the route, `total_detour_km` the trip's cumulative
    detour over its planned route afterwards (both straight-line km), `limit_km` the limit the
    latter is held to. `departure` is the earliest departure that keeps every pickup in its
    window; `pickup_eta` / `dropoff_eta` follow from it. `seats_left` / `cargo_left_kg` are the
    trip's free capacity after accepting; `load` is the trip's load after accepting (store it)."""

    trip_id: str
    volunteer_id: str
    request_id: str
    detour_km: float
    total_detour_km: float
    limit_km: float
    pickup_index: int
    dropoff_index: int
    departure: datetime
    pickup_eta: datetime
    dropoff_eta: datetime
    seats_left: int
    cargo_left_kg: float
    load: TripLoad


@dataclass(frozen=True)
class Placement:
    """A request assigned to a trip by `match_onto_trips`: the chosen `fit` (detour, ETAs,
    capacity left) and how many trips could have taken the request at that point."""

    fit: Fit
    candidates: int

    @property
    def request_id(self) -> str:
        return self.fit.request_id

    @property
    def trip_id(self) -> str:
        return self.fit.trip_id

    @property
    def volunteer_id(self) -> str:
        return self.fit.volunteer_id

    @property
    def detour_km(self) -> float:
        return self.fit.detour_km

    @property
    def pickup_eta(self) -> datetime:
        return self.fit.pickup_eta

    @property
    def seats_left(self) -> int:
        return self.fit.seats_left

    @property
    def cargo_left_kg(self) -> float:
        return self.fit.cargo_left_kg


@dataclass
class PoolingResult:
    """The outcome of a batch: placements in the order they were made, the loads of every trip
    afterwards, and for each request left over the reason every trip gave."""

    placements: list[Placement]
    loads: dict[str, TripLoad]
    unplaced: dict[str, dict[str, Rejection]] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------


def _km(a: GeoPoint, b: GeoPoint) -> float:
    return haversine_km(a.lat, a.lon, b.lat, b.lon)


def route_km(points: Sequence[GeoPoint]) -> float:
    """Length of a route through the points in order (haversine legs)."""
    return sum(_km(a, b) for a, b in pairwise(points))


def _cumulative_km(points: Sequence[GeoPoint]) -> list[float]:
    out = [0.0]
    for a, b in pairwise(points):
        out.append(out[-1] + _km(a, b))
    return out


def planned_route(trip: Trip) -> list[GeoPoint]:
    return [trip.origin, *trip.waypoints, trip.destination]


def progress_km(route: Sequence[GeoPoint], point: GeoPoint) -> float:
    """How far along `route` the point's nearest projection lies, in km. A flat projection
    around the route's mean latitude: good to a fraction of a percent at county scale. A point
    before the start projects onto 0, one past the end onto the route's length."""
    lat0 = math.radians(sum(p.lat for p in route) / len(route))
    kx = EARTH_RADIUS_KM * math.cos(lat0) * math.pi / 180
    ky = EARTH_RADIUS_KM * math.pi / 180

    def xy(p: GeoPoint) -> tuple[float, float]:
        return (p.lon * kx, p.lat * ky)

    px, py = xy(point)
    best_d2 = math.inf
    best_progress = 0.0
    travelled = 0.0
    for a, b in pairwise(route):
        (ax, ay), (bx, by) = xy(a), xy(b)
        dx, dy = bx - ax, by - ay
        seg2 = dx * dx + dy * dy
        t = 0.0 if seg2 == 0 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / seg2))
        qx, qy = ax + t * dx, ay + t * dy
        d2 = (px - qx) ** 2 + (py - qy) ** 2
        seg = math.sqrt(seg2)
        if d2 < best_d2 - 1e-12:  # ties: the earlier segment
            best_d2, best_progress = d2, travelled + t * seg
        travelled += seg
    return best_progress


# ---------------------------------------------------------------------------------------------
# fits
# ---------------------------------------------------------------------------------------------


def _current_stops(trip: Trip, load: TripLoad) -> tuple[Stop, ...]:
    if not load.stops:
        return tuple(Stop(kind="waypoint", point=p) for p in trip.waypoints)
    waypoints = tuple(s.point for s in load.stops if s.kind == "waypoint")
    if waypoints != trip.waypoints:
        raise ValueError(f"the load of trip {trip.id} does not keep the trip's waypoints in order")
    return load.stops


def _departure_range(
    trip: Trip, stops: Sequence[Stop], at_km: Sequence[float], speed_kmh: float
) -> tuple[datetime, datetime] | None:
    """The departures (a closed range) that reach every pickup inside its window, or None.
    `at_km[k]` is the route distance from the origin to `stops[k]`."""
    lo, hi = trip.departure.start, trip.departure.end
    for stop, km in zip(stops, at_km, strict=True):
        if stop.kind != "pickup" or stop.window is None:
            continue
        drive = timedelta(hours=km / speed_kmh)
        lo = max(lo, stop.window.start - drive)
        hi = min(hi, stop.window.end - drive)
    return (lo, hi) if lo <= hi else None


def fits(
    trip: Trip, load: TripLoad, request: CarryRequest, policy: PoolingPolicy | None = None
) -> Fit | Rejection:
    """Can `request` join `trip`, given what the trip already carries? See the module docstring
    for the rules and their order. Raises ValueError when the request is already on the trip or
    the load contradicts the trip (its waypoints are missing or out of order)."""
    policy = policy or PoolingPolicy()
    rid = request.request_id

    def reject(reason: Reason, detail: str) -> Rejection:
        return Rejection(trip_id=trip.id, request_id=rid, reason=reason, detail=detail)

    if rid in load.request_ids():
        raise ValueError(f"request {rid} is already on trip {trip.id}")
    stops = _current_stops(trip, load)

    seats_free = trip.seats - load.seats
    if request.seats > seats_free:
        return reject("no_seats", f"needs {request.seats} seat(s), {max(0, seats_free)} free")
    cargo_free = trip.cargo_kg - load.cargo_kg
    if request.cargo_kg > cargo_free + 1e-9:
        return reject(
            "no_cargo_room", f"needs {request.cargo_kg:g} kg, {max(0.0, cargo_free):g} kg free"
        )

    request_stops = sum(1 for s in stops if s.kind != "waypoint")
    if request_stops + 2 > policy.max_stops:
        return reject("too_many_stops", f"{request_stops} stops taken of {policy.max_stops}")

    planned = planned_route(trip)
    planned_km = route_km(planned)
    if planned_km > _EPS_KM:
        p_from = progress_km(planned, request.pickup)
        p_to = progress_km(planned, request.dropoff)
        if p_to - p_from <= -policy.backtrack_tolerance_km:  # with 0: progress must increase
            return reject(
                "wrong_direction",
                f"pickup at {p_from:.1f} km, drop-off at {p_to:.1f} km along the route",
            )

    limit = policy.detour_limit_km(planned_km)
    current_km = route_km([trip.origin, *(s.point for s in stops), trip.destination])
    pickup = Stop(kind="pickup", point=request.pickup, request_id=rid, window=request.window)
    dropoff = Stop(kind="dropoff", point=request.dropoff, request_id=rid)

    best: tuple[float, int, int] | None = None
    best_plan: tuple[tuple[Stop, ...], list[float], tuple[datetime, datetime]] | None = None
    least_detour = math.inf
    n = len(stops)
    for i in range(n + 1):  # pickup goes before stops[i] (i == n: before the destination)
        for j in range(i, n + 1):  # drop-off goes before stops[j], after the pickup
            new_stops = (*stops[:i], pickup, *stops[i:j], dropoff, *stops[j:])
            points = [trip.origin, *(s.point for s in new_stops), trip.destination]
            cum = _cumulative_km(points)
            total_detour = cum[-1] - planned_km
            least_detour = min(least_detour, total_detour)
            if total_detour > limit + _EPS_KM:
                continue
            key = (cum[-1], i, j)
            if best is not None and key >= best:
                continue
            window = _departure_range(trip, new_stops, cum[1:-1], policy.speed_kmh)
            if window is None:
                continue
            best, best_plan = key, (new_stops, cum, window)

    if best is None or best_plan is None:
        if least_detour > limit + _EPS_KM:
            return reject(
                "too_far_from_route",
                f"detour at least {least_detour:.1f} km, limit {limit:.1f} km",
            )
        return reject(
            "outside_window",
            "no departure in the trip's window reaches every pickup inside its window "
            f"at {policy.speed_kmh:g} km/h",
        )

    new_stops, cum, (departure, _) = best_plan
    _, i, j = best
    pickup_at = i  # index in new_stops
    dropoff_at = j + 1
    speed = policy.speed_kmh
    seats_left = seats_free - request.seats
    cargo_left = max(0.0, cargo_free - request.cargo_kg)
    return Fit(
        trip_id=trip.id,
        volunteer_id=trip.volunteer_id,
        request_id=rid,
        detour_km=cum[-1] - current_km,
        total_detour_km=cum[-1] - planned_km,
        limit_km=limit,
        pickup_index=pickup_at,
        dropoff_index=dropoff_at,
        departure=departure,
        pickup_eta=departure + timedelta(hours=cum[pickup_at + 1] / speed),
        dropoff_eta=departure + timedelta(hours=cum[dropoff_at + 1] / speed),
        seats_left=seats_left,
        cargo_left_kg=cargo_left,
        load=TripLoad(
            seats=load.seats + request.seats,
            cargo_kg=load.cargo_kg + request.cargo_kg,
            stops=new_stops,
        ),
    )


# ---------------------------------------------------------------------------------------------
# match_onto_trips
# ---------------------------------------------------------------------------------------------


def _unique(ids: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"duplicate {what} id {i}")
        seen.add(i)


def plan_onto_trips(
    requests: Sequence[CarryRequest],
    trips: Sequence[Trip],
    loads: Mapping[str, TripLoad] | None = None,
    policy: PoolingPolicy | None = None,
) -> PoolingResult:
    """Greedy placement of a batch, with the reasons for what is left over.

    Requests are taken by earliest window (start, then end, then id); each goes to the trip where
    it adds the smallest detour (ties, at 1 m: earlier pickup, then trip id), and that trip's
    load is updated before the next request, so capacities and stops fill as placements are made.
    The answer does not depend on the order of the inputs. A trip missing from `loads` starts
    empty."""
    policy = policy or PoolingPolicy()
    _unique((r.request_id for r in requests), "request")
    _unique((t.id for t in trips), "trip")
    current = {t.id: (loads or {}).get(t.id, TripLoad()) for t in trips}
    ordered_trips = sorted(trips, key=lambda t: t.id)
    result = PoolingResult(placements=[], loads=current)
    for request in sorted(requests, key=lambda r: (r.window.start, r.window.end, r.request_id)):
        options: list[Fit] = []
        refused: dict[str, Rejection] = {}
        for trip in ordered_trips:
            answer = fits(trip, current[trip.id], request, policy)
            if isinstance(answer, Fit):
                options.append(answer)
            else:
                refused[trip.id] = answer
        if not options:
            result.unplaced[request.request_id] = refused
            continue
        chosen = min(options, key=lambda f: (round(f.detour_km, 3), f.pickup_eta, f.trip_id))
        current[chosen.trip_id] = chosen.load
        result.placements.append(Placement(fit=chosen, candidates=len(options)))
    return result


def match_onto_trips(
    requests: Sequence[CarryRequest],
    trips: Sequence[Trip],
    loads: Mapping[str, TripLoad] | None = None,
    policy: PoolingPolicy | None = None,
) -> list[Placement]:
    """Each request onto at most one trip; see `plan_onto_trips` for the order and the
    tie-breaks. The placements come in the order they were made."""
    return plan_onto_trips(requests, trips, loads, policy).placements


def unload(load: TripLoad, request_id: str, seats: int, cargo_kg: float) -> TripLoad:
    """The trip's load without one request (cancelled, or placed elsewhere): its seats, cargo
    and both stops go; every other stop keeps its order. A request not on it: no change."""
    if request_id not in load.request_ids():
        return load
    return TripLoad(
        seats=max(0, load.seats - seats),
        cargo_kg=max(0.0, load.cargo_kg - cargo_kg),
        stops=tuple(s for s in load.stops if s.request_id != request_id),
    )
