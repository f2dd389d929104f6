"""The pure parts of wiring trip pooling: a posted request as something to carry, the trip's
volunteer as its candidate, and a request taken off a trip's load."""

from datetime import timedelta

import pytest

from zhumeng_contracts.events.common import GeoPoint, TimeWindow
from zhumeng_matching.app.trips_service import carry_of, trip_candidate
from zhumeng_matching.domain.index import VolunteerIndex
from zhumeng_matching.domain.trips import CarryRequest, Fit, Trip, TripLoad, fits, unload
from zhumeng_matching.examples import WINDOW, request, service, volunteer

pytestmark = pytest.mark.unit
TOWN, NORTH = GeoPoint(lat=25.49, lon=118.24), GeoPoint(lat=25.70, lon=118.32)
TRIP = Trip(
    id="trip_1",
    volunteer_id="v1",
    origin=TOWN,
    destination=NORTH,
    departure=TimeWindow(start=WINDOW.start - timedelta(minutes=30), end=WINDOW.end),
    seats=2,
    cargo_kg=30,
)


def along(at: float) -> GeoPoint:
    return GeoPoint(lat=25.49 + at * 0.21, lon=118.24 + at * 0.08)


def carried(rid: str, at: float, **need: float) -> CarryRequest:
    posted = request(request_id=rid, location=along(at), dropoff=along(0.9), **need)
    c = carry_of(posted, service(id="parcel_delivery", category="logistics"))
    assert c is not None
    return c


def test_a_request_becomes_a_ride_a_parcel_or_produce() -> None:
    parcel = service(id="parcel_delivery", category="logistics")
    assert carried("r1", 0.1, seats=1).kind == "ride"
    assert carried("r2", 0.1, cargo_kg=5).kind == "parcel"
    produce = request(dropoff=NORTH, cargo_kg=40, seats=1)
    c = carry_of(produce, service(id="produce_sale", category="produce"))
    assert c is not None and (c.kind, c.seats, c.cargo_kg) == ("produce", 1, 40)
    assert carry_of(request(dropoff=None, seats=1), parcel) is None  # nowhere to go
    assert carry_of(request(dropoff=NORTH), parcel) is None  # nothing to carry


def test_the_trips_volunteer_is_scored_by_the_detour_left() -> None:
    index = VolunteerIndex()
    index.put(volunteer("v1"))
    fit = fits(TRIP, TripLoad(), carried("r1", 0.2, seats=1))
    assert isinstance(fit, Fit)
    candidate = trip_candidate({"volunteer_id": "v1"}, fit, index)
    assert candidate is not None and candidate.volunteer.id == "v1"
    assert 0.0 <= candidate.score <= 1.0 and candidate.parts[0].criterion == "detour"
    assert candidate.distance_km == pytest.approx(max(0.0, fit.detour_km))
    assert trip_candidate({"volunteer_id": "gone"}, fit, index) is None


def test_unloading_gives_back_seats_cargo_and_stops_and_keeps_the_rest_in_order() -> None:
    a, b = carried("ra", 0.1, seats=1), carried("rb", 0.3, cargo_kg=20)
    first = fits(TRIP, TripLoad(), a)
    assert isinstance(first, Fit)
    both = fits(TRIP, first.load, b)
    assert isinstance(both, Fit)
    left = unload(both.load, "ra", 1, 0)
    assert (left.seats, left.cargo_kg) == (0, 20)
    assert [(s.kind, s.request_id) for s in left.stops] == [("pickup", "rb"), ("dropoff", "rb")]
    again = fits(TRIP, left, a)  # the room is there again
    assert isinstance(again, Fit) and again.load.seats == 1
    assert unload(left, "ra", 1, 0) == left  # not on it (any more): nothing to give back
