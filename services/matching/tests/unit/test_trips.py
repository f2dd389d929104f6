"""Trip pooling on Dehua geometry: a Saturday-morning drive from Longxun (the county town) north
to Shangyong, and parcels, rides and produce that may go along."""

import itertools
import math
import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from zhumeng_contracts.events.common import GeoPoint, TimeWindow
from zhumeng_matching.domain.geo import haversine_km
from zhumeng_matching.domain.trips import (
    CarryRequest,
    Fit,
    PoolingPolicy,
    Rejection,
    Stop,
    Trip,
    TripLoad,
    fits,
    match_onto_trips,
    plan_onto_trips,
    planned_route,
    progress_km,
    route_km,
)

pytestmark = pytest.mark.unit

CST = timezone(timedelta(hours=8))  # Asia/Shanghai
SAT_0730 = datetime(2026, 12, 5, 7, 30, tzinfo=CST)  # a Saturday
LONGXUN = GeoPoint(lat=25.492, lon=118.243)  # county town
SHANGYONG = GeoPoint(lat=25.72, lon=118.19)  # township to the north
TRIP_KM = haversine_km(LONGXUN.lat, LONGXUN.lon, SHANGYONG.lat, SHANGYONG.lon)  # ≈ 25.9 km
KM_PER_DEG_LAT = 111.195
KM_PER_DEG_LON = KM_PER_DEG_LAT * math.cos(math.radians(25.606))  # about 100 km here


def km(a: GeoPoint, b: GeoPoint) -> float:
    return haversine_km(a.lat, a.lon, b.lat, b.lon)


def along(t: float, right_km: float = 0.0) -> GeoPoint:
    """A point a fraction t of the way from Longxun to Shangyong, `right_km` off the straight
    line to the right of the direction of travel (roughly east; negative: to the left)."""
    dx = (SHANGYONG.lon - LONGXUN.lon) * KM_PER_DEG_LON
    dy = (SHANGYONG.lat - LONGXUN.lat) * KM_PER_DEG_LAT
    length = math.hypot(dx, dy)
    right_x, right_y = dy / length, -dx / length
    return GeoPoint(
        lat=LONGXUN.lat + t * (SHANGYONG.lat - LONGXUN.lat) + right_km * right_y / KM_PER_DEG_LAT,
        lon=LONGXUN.lon + t * (SHANGYONG.lon - LONGXUN.lon) + right_km * right_x / KM_PER_DEG_LON,
    )


def window(start: datetime = SAT_0730, minutes: int = 30) -> TimeWindow:
    return TimeWindow(start=start, end=start + timedelta(minutes=minutes))


MORNING = window(SAT_0730 - timedelta(minutes=30), 180)  # 07:00-10:00


def trip(tid: str = "trip_1", **kw: object) -> Trip:
    base: dict[str, object] = dict(
        id=tid,
        volunteer_id=f"vol_{tid}",
        origin=LONGXUN,
        destination=SHANGYONG,
        departure=window(),  # leaves 07:30-08:00
        seats=3,
        cargo_kg=100,
    )
    base.update(kw)
    return Trip.model_validate(base)


def parcel(
    rid: str = "req_1", *, pickup: GeoPoint, dropoff: GeoPoint, **kw: object
) -> CarryRequest:
    base: dict[str, object] = dict(
        request_id=rid, kind="parcel", pickup=pickup, dropoff=dropoff, window=MORNING, cargo_kg=5
    )
    base.update(kw)
    return CarryRequest.model_validate(base)


def ride(rid: str = "req_1", *, pickup: GeoPoint, dropoff: GeoPoint, **kw: object) -> CarryRequest:
    base: dict[str, object] = dict(
        request_id=rid, kind="ride", pickup=pickup, dropoff=dropoff, window=MORNING
    )
    base.update(kw)
    return CarryRequest.model_validate(base)


def fit_of(answer: Fit | Rejection) -> Fit:
    assert isinstance(answer, Fit), answer
    return answer


def reason_of(answer: Fit | Rejection) -> str:
    assert isinstance(answer, Rejection), answer
    return answer.reason


# ---------------------------------------------------------------------------------------------
# One request onto an empty trip
# ---------------------------------------------------------------------------------------------


def test_parcel_from_town_to_village_near_road_fits_with_explanation() -> None:
    pickup, dropoff = along(0.01), along(0.5, right_km=1.0)
    f = fit_of(fits(trip(), TripLoad(), parcel(pickup=pickup, dropoff=dropoff, cargo_kg=12)))

    expected = km(LONGXUN, pickup) + km(pickup, dropoff) + km(dropoff, SHANGYONG) - TRIP_KM
    assert f.detour_km == pytest.approx(expected, abs=1e-9)
    assert f.total_detour_km == pytest.approx(expected, abs=1e-9)
    assert f.detour_km < 0.2  # a village 1 km off the middle of a 26 km drive
    assert f.limit_km == pytest.approx(0.2 * TRIP_KM)  # 5.2 km: more than the 3 km minimum
    assert (f.pickup_index, f.dropoff_index) == (0, 1)
    assert (f.trip_id, f.volunteer_id, f.request_id) == ("trip_1", "vol_trip_1", "req_1")
    # leaves at 07:30 sharp, pickup after the first few hundred metres at 35 km/h
    assert f.departure == SAT_0730
    assert f.pickup_eta == SAT_0730 + timedelta(hours=km(LONGXUN, pickup) / 35)
    assert f.dropoff_eta == f.pickup_eta + timedelta(hours=km(pickup, dropoff) / 35)
    assert (f.seats_left, f.cargo_left_kg) == (3, 88)
    assert f.load.cargo_kg == 12 and f.load.seats == 0
    assert [(s.kind, s.request_id) for s in f.load.stops] == [
        ("pickup", "req_1"),
        ("dropoff", "req_1"),
    ]


def test_parcel_to_village_15_km_off_the_road_is_too_far() -> None:
    answer = fits(trip(), TripLoad(), parcel(pickup=along(0.01), dropoff=along(0.5, right_km=15.0)))
    assert reason_of(answer) == "too_far_from_route"
    assert isinstance(answer, Rejection) and "limit 5.2 km" in answer.detail


def test_detour_limit_is_the_larger_of_minimum_and_fraction() -> None:
    policy = PoolingPolicy()
    assert policy.detour_limit_km(5.0) == 3.0  # a short hop still allows 3 km
    assert policy.detour_limit_km(40.0) == pytest.approx(8.0)
    # a village 9 km off the middle of the road: a 5.6 km detour, over the 5.2 km allowed
    dropoff = along(0.5, right_km=9.0)
    detour = km(LONGXUN, dropoff) + km(dropoff, SHANGYONG) - TRIP_KM
    assert 5.2 < detour < 6.0
    request = parcel(pickup=LONGXUN, dropoff=dropoff)
    assert reason_of(fits(trip(), TripLoad(), request)) == "too_far_from_route"
    loose = PoolingPolicy(detour_fraction=0.25)  # 6.5 km on this trip
    assert fit_of(fits(trip(), TripLoad(), request, loose)).detour_km == pytest.approx(detour)
    huge_minimum = PoolingPolicy(min_detour_km=6.0, detour_fraction=0.0)
    assert fit_of(fits(trip(), TripLoad(), request, huge_minimum)).limit_km == 6.0


def test_short_trip_gets_the_absolute_minimum() -> None:
    short = trip(destination=along(0.2))  # ≈ 5 km: 20% would be ~1 km, the minimum gives 3 km
    request = parcel(pickup=LONGXUN, dropoff=along(0.1, right_km=2.0))
    f = fit_of(fits(short, TripLoad(), request))
    assert f.limit_km == 3.0
    assert 1.0 < f.detour_km < 3.0


@pytest.mark.parametrize(
    ("pickup", "dropoff"),
    [
        (along(0.6), along(0.1)),  # a village up the road back to town
        (SHANGYONG, LONGXUN),  # the whole trip the other way round
        (along(0.5, right_km=0.5), along(0.499, right_km=-0.5)),  # across the road, a bit back
    ],
)
def test_request_against_the_trip_is_wrong_direction(pickup: GeoPoint, dropoff: GeoPoint) -> None:
    assert reason_of(fits(trip(), TripLoad(), parcel(pickup=pickup, dropoff=dropoff))) == (
        "wrong_direction"
    )


def test_backtrack_tolerance_lets_a_short_step_back_through() -> None:
    request = parcel(pickup=along(0.5), dropoff=along(0.49))  # 260 m back towards town
    assert reason_of(fits(trip(), TripLoad(), request)) == "wrong_direction"
    f = fit_of(fits(trip(), TripLoad(), request, PoolingPolicy(backtrack_tolerance_km=0.5)))
    assert f.detour_km == pytest.approx(2 * km(along(0.5), along(0.49)), abs=1e-6)


def test_ride_in_the_afternoon_is_outside_the_departure_window() -> None:
    afternoon = window(SAT_0730.replace(hour=14), 120)
    answer = fits(trip(), TripLoad(), ride(pickup=LONGXUN, dropoff=along(0.7), window=afternoon))
    assert reason_of(answer) == "outside_window"


def test_pickup_time_is_departure_plus_driving_time() -> None:
    # 13 km up the road takes ~22 min at 35 km/h: leaving 07:30-08:00 reaches it 07:52-08:22
    pickup = along(0.5)
    drive = timedelta(hours=km(LONGXUN, pickup) / 35)
    too_late = window(SAT_0730 + timedelta(minutes=55), 60)  # 08:25-09:25
    assert reason_of(
        fits(trip(), TripLoad(), ride(pickup=pickup, dropoff=along(0.9), window=too_late))
    ) == ("outside_window")
    too_early = window(SAT_0730 - timedelta(minutes=30), 45)  # 07:00-07:45
    assert reason_of(
        fits(trip(), TripLoad(), ride(pickup=pickup, dropoff=along(0.9), window=too_early))
    ) == ("outside_window")
    # a window from 08:10: the volunteer leaves later in the departure window to be there at 08:10
    from_0810 = window(SAT_0730 + timedelta(minutes=40), 30)
    f = fit_of(fits(trip(), TripLoad(), ride(pickup=pickup, dropoff=along(0.9), window=from_0810)))
    assert f.pickup_eta == from_0810.start
    assert f.departure == from_0810.start - drive
    assert SAT_0730 < f.departure < SAT_0730 + timedelta(minutes=30)
    # a slower average speed moves the same pickup out of reach
    slow = PoolingPolicy(speed_kmh=15)  # 13 km takes 52 min: 08:22 at the earliest
    r = ride(pickup=pickup, dropoff=along(0.9), window=window(SAT_0730, 45))
    assert fit_of(fits(trip(), TripLoad(), r))
    assert reason_of(fits(trip(), TripLoad(), r, slow)) == "outside_window"


def test_capacity_seats_and_cargo_against_what_is_committed() -> None:
    t = trip(seats=2, cargo_kg=80)
    family = ride(pickup=LONGXUN, dropoff=along(0.6), seats=3)
    assert reason_of(fits(t, TripLoad(), family)) == "no_seats"
    assert reason_of(
        fits(t, TripLoad(seats=1), ride(pickup=LONGXUN, dropoff=along(0.6), seats=2))
    ) == ("no_seats")
    assert (
        fit_of(fits(t, TripLoad(seats=1), ride(pickup=LONGXUN, dropoff=along(0.6)))).seats_left == 0
    )
    tea = CarryRequest(
        request_id="tea",
        kind="produce",
        pickup=along(0.8),
        dropoff=SHANGYONG,
        window=MORNING,
        cargo_kg=50,
    )
    assert fit_of(fits(t, TripLoad(cargo_kg=30), tea)).cargo_left_kg == 0
    answer = fits(t, TripLoad(cargo_kg=30.5), tea)
    assert reason_of(answer) == "no_cargo_room"
    assert isinstance(answer, Rejection) and "49.5 kg free" in answer.detail
    # capacity is checked first: a full trip says so even for a request it could not reach
    assert (
        reason_of(fits(t, TripLoad(seats=2), ride(pickup=SHANGYONG, dropoff=LONGXUN))) == "no_seats"
    )


def test_request_validation() -> None:
    r = ride(pickup=LONGXUN, dropoff=SHANGYONG)
    assert (r.seats, r.cargo_kg) == (1, 0)  # a ride needs one seat unless told otherwise
    with pytest.raises(ValidationError):
        ride(pickup=LONGXUN, dropoff=SHANGYONG, seats=0)
    with pytest.raises(ValidationError):
        parcel(pickup=LONGXUN, dropoff=SHANGYONG, cargo_kg=0)
    with pytest.raises(ValidationError):  # naive times are refused
        parcel(
            pickup=LONGXUN,
            dropoff=SHANGYONG,
            window={"start": datetime(2026, 12, 5, 7), "end": datetime(2026, 12, 5, 9)},
        )
    with pytest.raises(ValidationError):
        parcel(pickup=LONGXUN, dropoff=SHANGYONG, kind="livestock")
    # a produce seller riding along with the crates asks for both
    both = CarryRequest(
        request_id="p",
        kind="produce",
        pickup=LONGXUN,
        dropoff=SHANGYONG,
        window=MORNING,
        seats=1,
        cargo_kg=40,
    )
    assert (both.seats, both.cargo_kg) == (1, 40)
    with pytest.raises(ValueError):
        PoolingPolicy(speed_kmh=0)
    with pytest.raises(ValidationError):  # a drop-off without its pickup
        TripLoad(stops=(Stop(kind="dropoff", point=LONGXUN, request_id="x"),))
    with pytest.raises(ValidationError):  # a pickup without its drop-off
        TripLoad(stops=(Stop(kind="pickup", point=LONGXUN, request_id="x", window=MORNING),))


def test_times_in_other_offsets_compare_as_instants() -> None:
    utc_window = TimeWindow(
        start=datetime(2026, 12, 4, 23, 0, tzinfo=UTC), end=datetime(2026, 12, 5, 2, tzinfo=UTC)
    )  # 07:00-10:00 in Dehua
    f = fit_of(
        fits(trip(), TripLoad(), ride(pickup=LONGXUN, dropoff=along(0.5), window=utc_window))
    )
    assert f.departure == SAT_0730


# ---------------------------------------------------------------------------------------------
# Several stops on one trip
# ---------------------------------------------------------------------------------------------


def accepted(t: Trip, *requests: CarryRequest) -> TripLoad:
    load = TripLoad()
    for r in requests:
        load = fit_of(fits(t, load, r)).load
    return load


def order(load: TripLoad) -> list[str]:
    return [f"{s.kind}:{s.request_id}" for s in load.stops]


def test_multi_stop_insertion_keeps_route_order() -> None:
    t = trip()
    a = parcel("a", pickup=along(0.0), dropoff=along(0.8, right_km=0.5))
    load = accepted(t, a)
    inner = parcel("b", pickup=along(0.3, right_km=-0.3), dropoff=along(0.5, right_km=0.4))
    f = fit_of(fits(t, load, inner))
    assert order(f.load) == ["pickup:a", "pickup:b", "dropoff:b", "dropoff:a"]
    assert (f.pickup_index, f.dropoff_index) == (1, 2)
    overlapping = parcel("c", pickup=along(0.6), dropoff=along(0.95))
    f2 = fit_of(fits(t, f.load, overlapping))
    assert order(f2.load) == [
        "pickup:a",
        "pickup:b",
        "dropoff:b",
        "pickup:c",
        "dropoff:a",
        "dropoff:c",
    ]
    assert (f2.pickup_index, f2.dropoff_index) == (3, 5)
    # the pickup ETA follows the route through the stops before it
    points = [LONGXUN, *(s.point for s in f2.load.stops[:4])]
    assert f2.pickup_eta == f2.departure + timedelta(hours=route_km(points) / 35)
    # cumulative and added detour are consistent
    route = route_km([LONGXUN, *(s.point for s in f2.load.stops), SHANGYONG])
    assert f2.total_detour_km == pytest.approx(route - TRIP_KM)
    assert f2.total_detour_km == pytest.approx(f.total_detour_km + f2.detour_km)


def test_insertion_is_the_cheapest_over_all_valid_positions() -> None:
    rng = random.Random(7)
    t = trip(seats=6, cargo_kg=500)
    policy = PoolingPolicy(detour_fraction=0.5, max_stops=8)
    for _ in range(30):
        load = TripLoad()
        for k in range(3):
            p, q = sorted(rng.uniform(0, 1) for _ in range(2))
            r = parcel(
                f"r{k}",
                pickup=along(p, rng.uniform(-2, 2)),
                dropoff=along(q + 0.01, rng.uniform(-2, 2)),
            )
            answer = fits(t, load, r, policy)
            if not isinstance(answer, Fit):
                continue
            # brute force: every interleaving of the new pair into the existing stops
            best = min(
                route_km([LONGXUN, *(s.point for s in new), SHANGYONG])
                for new in interleavings(load.stops, answer.load.stops, r.request_id)
            )
            assert route_km(
                [LONGXUN, *(s.point for s in answer.load.stops), SHANGYONG]
            ) == pytest.approx(best, abs=1e-9)
            load = answer.load


def interleavings(old: tuple[Stop, ...], new: tuple[Stop, ...], rid: str) -> list[list[Stop]]:
    pick = next(s for s in new if s.request_id == rid and s.kind == "pickup")
    drop = next(s for s in new if s.request_id == rid and s.kind == "dropoff")
    out = []
    for i, j in itertools.combinations(range(len(old) + 2), 2):
        rest = iter(old)
        out.append(
            [pick if k == i else drop if k == j else next(rest) for k in range(len(old) + 2)]
        )
    return out


def test_cumulative_detour_is_held_to_the_limit() -> None:
    t = trip()
    # two hamlets 6 km either side of the road: each alone costs 2.7 km of the 5.2 allowed
    east = parcel("east", pickup=LONGXUN, dropoff=along(0.4, right_km=6.0))
    west = parcel("west", pickup=LONGXUN, dropoff=along(0.6, right_km=-6.0))
    alone_e, alone_w = fit_of(fits(t, TripLoad(), east)), fit_of(fits(t, TripLoad(), west))
    assert alone_e.detour_km < alone_e.limit_km and alone_w.detour_km < alone_w.limit_km
    assert alone_e.detour_km + alone_w.detour_km > alone_e.limit_km
    answer = fits(t, alone_e.load, west)
    assert reason_of(answer) == "too_far_from_route"


def test_new_stop_must_not_push_an_accepted_pickup_out_of_its_window() -> None:
    t = trip()
    pickup_a = along(0.5)
    drive = timedelta(hours=km(LONGXUN, pickup_a) / 35)
    # A must be picked up within 4 minutes of the earliest possible moment
    a = ride("a", pickup=pickup_a, dropoff=along(0.9), window=window(SAT_0730 + drive, 4))
    load = accepted(t, a)
    # B: a parcel to a hamlet 6 km off the road before A (detour ~3.3 km ≈ 5.6 min of driving)
    b = parcel("b", pickup=LONGXUN, dropoff=along(0.25, right_km=6.0))
    alone = fit_of(fits(t, TripLoad(), b))
    assert alone.detour_km / 35 * 60 > 4  # more than A's slack, in minutes
    assert alone.detour_km < alone.limit_km
    assert reason_of(fits(t, load, b)) == "outside_window"
    # with a generous window for A it goes through and A's pickup is simply later
    relaxed = accepted(t, a.model_copy(update={"window": MORNING}))
    f = fit_of(fits(t, relaxed, b))
    assert order(f.load) == ["pickup:b", "dropoff:b", "pickup:a", "dropoff:a"]


def test_stop_cap() -> None:
    t = trip(seats=8)
    load = accepted(
        t, *(ride(f"r{k}", pickup=along(0.1 * k), dropoff=along(0.1 * k + 0.05)) for k in range(3))
    )
    assert len(load.stops) == 6
    answer = fits(t, load, ride("r9", pickup=along(0.5), dropoff=along(0.6)))
    assert reason_of(answer) == "too_many_stops"
    assert fit_of(
        fits(t, load, ride("r9", pickup=along(0.5), dropoff=along(0.6)), PoolingPolicy(max_stops=8))
    )


def test_request_already_on_the_trip_is_a_caller_error() -> None:
    r = parcel(pickup=LONGXUN, dropoff=along(0.5))
    load = accepted(trip(), r)
    with pytest.raises(ValueError, match="already on trip"):
        fits(trip(), load, r)


# ---------------------------------------------------------------------------------------------
# Waypoints
# ---------------------------------------------------------------------------------------------

EAST_STOP = GeoPoint(lat=25.60, lon=118.30)  # the volunteer's own stop, east of the line


def test_waypoints_shape_the_route_direction_and_detour() -> None:
    t = trip(waypoints=(EAST_STOP,))
    planned = planned_route(t)
    assert planned == [LONGXUN, EAST_STOP, SHANGYONG]
    planned_km = route_km(planned)
    # a village beside the first leg, towards Gaide: on the way, although off the straight line
    beside = GeoPoint(lat=25.55, lon=118.275)
    f = fit_of(fits(t, TripLoad(), parcel(pickup=LONGXUN, dropoff=beside)))
    assert f.detour_km < 0.5
    assert f.limit_km == pytest.approx(0.2 * planned_km)
    assert order(f.load) == ["pickup:req_1", "dropoff:req_1", "waypoint:None"]
    # progress follows the legs: the second leg comes after Gaide
    assert progress_km(planned, EAST_STOP) == pytest.approx(
        progress_km(planned, LONGXUN) + km(LONGXUN, EAST_STOP), rel=0.01
    )
    assert reason_of(fits(t, TripLoad(), parcel(pickup=EAST_STOP, dropoff=beside))) == (
        "wrong_direction"
    )


def test_load_that_loses_a_waypoint_is_refused() -> None:
    t = trip(waypoints=(EAST_STOP,))
    r = parcel(pickup=LONGXUN, dropoff=along(0.3))
    broken = TripLoad(
        stops=(
            Stop(kind="pickup", point=LONGXUN, request_id="x", window=MORNING),
            Stop(kind="dropoff", point=along(0.2), request_id="x"),
        )
    )
    with pytest.raises(ValueError, match="waypoints"):
        fits(t, broken, r)


def test_round_trip_has_no_direction_but_keeps_pickup_before_dropoff() -> None:
    loop = trip(destination=LONGXUN)  # errands in town and back home
    r = parcel(pickup=GeoPoint(lat=25.495, lon=118.245), dropoff=GeoPoint(lat=25.49, lon=118.24))
    f = fit_of(fits(loop, TripLoad(), r))
    assert f.limit_km == 3.0
    assert order(f.load) == ["pickup:req_1", "dropoff:req_1"]


# ---------------------------------------------------------------------------------------------
# match_onto_trips
# ---------------------------------------------------------------------------------------------


def test_seats_fill_across_placements() -> None:
    t = trip(seats=2)
    rides = [
        ride(f"r{k}", pickup=along(0.1 * k), dropoff=along(0.9), window=window(SAT_0730, 60 + k))
        for k in range(3)
    ]
    result = plan_onto_trips(rides, [t])
    assert [p.request_id for p in result.placements] == ["r0", "r1"]
    assert [p.seats_left for p in result.placements] == [1, 0]
    assert result.unplaced["r2"]["trip_1"].reason == "no_seats"
    assert result.loads["trip_1"].seats == 2
    assert match_onto_trips(rides, [t]) == result.placements


def test_cargo_fills_and_overflows_onto_the_next_trip() -> None:
    small = trip("a_small", cargo_kg=60)
    big = trip("b_big", cargo_kg=200, departure=window(SAT_0730 + timedelta(minutes=15)))
    crates = [
        CarryRequest(
            request_id=f"tea_{k}",
            kind="produce",
            pickup=along(0.05 * k),
            dropoff=SHANGYONG,
            window=MORNING,
            cargo_kg=40,
        )
        for k in range(4)
    ]
    result = plan_onto_trips(crates, [small, big])
    assert [(p.request_id, p.trip_id, p.cargo_left_kg) for p in result.placements] == [
        ("tea_0", "a_small", 20),  # same detour (none): the earlier pickup wins
        ("tea_1", "b_big", 160),  # 40 kg no longer fit in the small car
        ("tea_2", "b_big", 120),
        ("tea_3", "b_big", 80),
    ]
    assert [p.candidates for p in result.placements] == [2, 1, 1, 1]
    assert not result.unplaced


def test_earliest_window_is_served_first() -> None:
    t = trip(seats=1)
    late = ride("late", pickup=LONGXUN, dropoff=along(0.5), window=window(SAT_0730, 120))
    early = ride("early", pickup=LONGXUN, dropoff=along(0.5), window=window(SAT_0730, 60))
    result = plan_onto_trips([late, early], [t])
    assert [p.request_id for p in result.placements] == ["early"]
    assert result.unplaced["late"]["trip_1"].reason == "no_seats"


def test_trip_with_smallest_added_detour_wins() -> None:
    north = trip("a_north")
    # another volunteer drives north-east, right past the village
    east = trip("b_east", destination=GeoPoint(lat=25.70, lon=118.30))
    r = parcel(pickup=LONGXUN, dropoff=GeoPoint(lat=25.64, lon=118.27))
    via_north = fit_of(fits(north, TripLoad(), r))
    via_east = fit_of(fits(east, TripLoad(), r))
    assert via_east.detour_km < 0.5 < 2.0 < via_north.detour_km
    result = plan_onto_trips([r], [north, east])
    (p,) = result.placements
    assert (p.trip_id, p.volunteer_id) == ("b_east", "vol_b_east")  # not the first id
    assert p.candidates == 2
    assert p.detour_km == pytest.approx(via_east.detour_km)
    assert p.pickup_eta == SAT_0730
    assert p.fit == via_east


def test_exact_tie_goes_to_the_trip_id() -> None:
    twins = [trip("t_b"), trip("t_a")]
    r = parcel(pickup=LONGXUN, dropoff=along(0.5))
    assert match_onto_trips([r], twins)[0].trip_id == "t_a"


def test_existing_loads_are_respected() -> None:
    t = trip(seats=1)
    first = ride("first", pickup=LONGXUN, dropoff=along(0.5))
    load = accepted(t, first)
    result = plan_onto_trips(
        [ride("second", pickup=LONGXUN, dropoff=along(0.5))], [t], {t.id: load}
    )
    assert not result.placements
    assert result.unplaced["second"]["trip_1"].reason == "no_seats"


def test_duplicate_ids_are_refused() -> None:
    r = parcel(pickup=LONGXUN, dropoff=along(0.5))
    with pytest.raises(ValueError, match="duplicate request"):
        match_onto_trips([r, r], [trip()])
    with pytest.raises(ValueError, match="duplicate trip"):
        match_onto_trips([r], [trip(), trip()])


def random_case(seed: int) -> tuple[list[CarryRequest], list[Trip]]:
    rng = random.Random(seed)
    towns = [SHANGYONG, GeoPoint(lat=25.70, lon=118.33), GeoPoint(lat=25.60, lon=118.05)]
    trips = [
        Trip(
            id=f"t{k}",
            volunteer_id=f"v{k}",
            origin=LONGXUN,
            destination=towns[k % 3],
            departure=window(SAT_0730 + timedelta(minutes=rng.choice([0, 15, 30])), 30),
            seats=rng.randint(0, 3),
            cargo_kg=rng.choice([0, 50, 150]),
        )
        for k in range(6)
    ]
    requests = []
    for k in range(25):
        dest = towns[rng.randrange(3)]
        p, q = sorted(rng.uniform(0, 1) for _ in range(2))

        def at(f: float, dest: GeoPoint = dest) -> GeoPoint:
            return GeoPoint(
                lat=LONGXUN.lat + f * (dest.lat - LONGXUN.lat) + rng.uniform(-0.02, 0.02),
                lon=LONGXUN.lon + f * (dest.lon - LONGXUN.lon) + rng.uniform(-0.02, 0.02),
            )

        kind = rng.choice(["ride", "parcel", "produce"])
        requests.append(
            CarryRequest(
                request_id=f"r{k:02d}",
                kind=kind,
                pickup=at(p),
                dropoff=at(q),
                window=window(SAT_0730 + timedelta(minutes=rng.randint(-30, 60)), 90),
                seats=1 if kind == "ride" else 0,
                cargo_kg=0 if kind == "ride" else rng.choice([5, 20, 60]),
            )
        )
    return requests, trips


@pytest.mark.parametrize("seed", range(20))
def test_random_batches_keep_every_rule(seed: int) -> None:
    requests, trips = random_case(seed)
    policy = PoolingPolicy()
    result = plan_onto_trips(requests, trips, {}, policy)
    by_id = {r.request_id: r for r in requests}
    by_trip = {t.id: t for t in trips}
    placed = [p.request_id for p in result.placements]
    assert len(placed) == len(set(placed))
    assert set(placed) | set(result.unplaced) == set(by_id)
    assert not set(placed) & set(result.unplaced)
    for tid, load in result.loads.items():
        t = by_trip[tid]
        on_board = [by_id[i] for i in load.request_ids()]
        assert sum(r.seats for r in on_board) == load.seats <= t.seats
        assert sum(r.cargo_kg for r in on_board) == pytest.approx(load.cargo_kg)
        assert load.cargo_kg <= t.cargo_kg + 1e-9
        assert len(load.stops) <= policy.max_stops
        planned = route_km(planned_route(t))
        route = route_km([t.origin, *(s.point for s in load.stops), t.destination])
        assert route - planned <= policy.detour_limit_km(planned) + 1e-9
    for p in result.placements:
        r, f = by_id[p.request_id], p.fit
        assert r.window.start <= p.pickup_eta <= r.window.end
        assert f.pickup_eta <= f.dropoff_eta
        assert by_trip[p.trip_id].departure.start <= f.departure <= by_trip[p.trip_id].departure.end
    # every request left over was refused by every trip with a known reason
    for rejections in result.unplaced.values():
        assert set(rejections) == set(by_trip)


@pytest.mark.parametrize("seed", range(5))
def test_answer_does_not_depend_on_input_order(seed: int) -> None:
    requests, trips = random_case(seed)
    reference = plan_onto_trips(requests, trips)
    rng = random.Random(seed)
    for _ in range(5):
        rng.shuffle(requests)
        rng.shuffle(trips)
        again = plan_onto_trips(requests, trips)
        assert again.placements == reference.placements
        assert again.loads == reference.loads
        assert again.unplaced == reference.unplaced
