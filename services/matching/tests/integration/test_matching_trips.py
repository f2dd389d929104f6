"""Trip pooling on the real stack: a volunteer announces a trip; a parcel (posted through the
requests API with a drop-off place) and a ride along the route get onto it within its seats
and cargo, a request off the route does not; a new trip picks up requests already waiting;
concurrent requests never overbook a trip."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from zhumeng_contracts.events import RequestPosted
from zhumeng_contracts.events.common import GeoPoint, TimeWindow
from zhumeng_devstack.stack import Platform
from zhumeng_devstack.testing import (
    LOCAL,
    bearer,
    catalog_read,
    eventually,
    publish_request,
    read_topic,
    request_body,
    window_tomorrow,
)

pytestmark = pytest.mark.integration
ADMIN = bearer("admin_trips", "admin")
# the demo's Longxun village 1 and Shuikou township, 25 km apart to the north-north-east
LONGXUN_V1, SHUIKOU = "pl_longxun_v1", "pl_shuikou"


@pytest.fixture(scope="module")
async def setup(
    platform: Platform,
    pooled_service_type: Callable[..., Awaitable[str]],
    catalog_volunteer: Callable[..., Awaitable[None]],
) -> dict[str, Any]:
    tag = secrets.token_hex(3)
    skill = f"drive_{tag}"
    driver = f"vol_drv_{tag}"
    await catalog_volunteer(driver, [skill])
    parcel = await pooled_service_type(
        "parcel_trip", matching_mode="trip", category="logistics", required_skills=[skill]
    )
    ride = await pooled_service_type(
        "ride_trip", matching_mode="trip", category="transport", required_skills=[skill]
    )
    await catalog_read(platform.url("matching"), platform.kafka.bootstrap, [driver])
    async with httpx.AsyncClient(base_url=platform.url("catalog"), timeout=10) as api:
        places = {
            p: (await api.get(f"/v1/places/{p}", headers=ADMIN)).json()["location"]
            for p in (LONGXUN_V1, SHUIKOU)
        }
    return {"driver": driver, "parcel": parcel, "ride": ride, "places": places}


def along(places: dict[str, Any], at: float) -> GeoPoint:
    """A point `at` (0..1) of the way from Longxun village 1 to Shuikou."""
    a, b = places[LONGXUN_V1], places[SHUIKOU]
    return GeoPoint(
        lat=a["lat"] + at * (b["lat"] - a["lat"]), lon=a["lon"] + at * (b["lon"] - a["lon"])
    )


def carry(
    service: str, pickup: GeoPoint, dropoff: GeoPoint, window: TimeWindow, **need: Any
) -> RequestPosted:
    return RequestPosted(
        request_id=f"req_trip_{secrets.token_hex(6)}",
        service_type_id=service,
        place_id="pl_test",
        township_id="pl_longxun",
        location=pickup,
        window=window,
        posted_at=datetime.now(UTC),
        dropoff=dropoff,
        **need,
    )


def day_window(days: int, start_hour: int, hours: int) -> TimeWindow:
    day = (datetime.now(LOCAL) + timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    start = day.replace(hour=start_hour)
    return TimeWindow(start=start, end=start + timedelta(hours=hours))


async def announce(platform: Platform, driver: str, **body: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=platform.url("matching"), timeout=60) as api:
        made = await api.post("/v1/trips", json=body, headers=bearer(driver, "volunteer"))
    assert made.status_code == 201, made.text
    return dict(made.json())


async def trip_of(platform: Platform, driver: str, trip_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=platform.url("matching"), timeout=30) as api:
        mine = (await api.get("/v1/trips", headers=bearer(driver, "volunteer"))).json()
    return next(t for t in mine["items"] if t["trip_id"] == trip_id)


async def decision(platform: Platform, request_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=platform.url("matching"), timeout=30) as api:
        got = await api.get(f"/v1/decisions/{request_id}", headers=ADMIN)
    return dict(got.json()) if got.status_code == 200 else {}


async def settled(platform: Platform, request_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Every request decided: waiting for a trip or on one."""

    async def all_decided() -> dict[str, dict[str, Any]] | None:
        docs = {rid: await decision(platform, rid) for rid in request_ids}
        return docs if all(d.get("state") == "tripping" for d in docs.values()) else None

    return await eventually(all_decided, within=90, what="the trip requests to be decided")


def on_trip(doc: dict[str, Any]) -> str | None:
    live = [a for a in doc["lifecycle"]["assignments"] if a["status"] != "cancelled"]
    return live[0]["trip_id"] if live else None


async def assigned_events(platform: Platform, request_ids: set[str]) -> list[dict[str, Any]]:
    out = []
    for r in await read_topic(platform.kafka.bootstrap, "matching.events.v1"):
        h = dict(r.headers)
        if h.get("ce_type") == b"zhumeng.volunteer.assigned.v1":
            body = json.loads(r.value)
            if body["request_id"] in request_ids:
                out.append(body)
    return out


async def test_a_parcel_and_a_ride_along_the_route_ride_on_the_trip(
    platform: Platform, setup: dict[str, Any]
) -> None:
    places, driver = setup["places"], setup["driver"]
    trip = await announce(
        platform,
        driver,
        **{"from": {"place_id": LONGXUN_V1}, "to": {"place_id": SHUIKOU}},
        departure=window_tomorrow(start_hour=8, hours=2),
        seats=1,
        cargo_kg=20,
    )
    assert trip["status"] == "active" and trip["request_ids"] == []
    tomorrow = day_window(1, 9, 3)
    # a parcel posted by a resident: the requests service turns the drop-off place into a point
    resident = bearer("res_trip", "resident")
    async with httpx.AsyncClient(base_url=platform.url("requests"), timeout=30) as api:
        no_dropoff = await api.post(
            "/v1/requests",
            json=request_body(setup["parcel"], LONGXUN_V1, cargo_kg=10),
            headers={**resident, "Idempotency-Key": secrets.token_hex(8)},
        )
        posted = await api.post(
            "/v1/requests",
            json=request_body(setup["parcel"], LONGXUN_V1, dropoff_place_id=SHUIKOU, cargo_kg=10),
            headers={**resident, "Idempotency-Key": secrets.token_hex(8)},
        )
    assert no_dropoff.status_code == 422, no_dropoff.text
    assert no_dropoff.json()["field"] == "dropoff_place_id"
    assert posted.status_code == 201, posted.text
    parcel_id = posted.json()["id"]
    ride = carry(setup["ride"], along(places, 0.3), along(places, 0.9), tomorrow, seats=1)
    two_seats = carry(setup["ride"], along(places, 0.2), along(places, 0.8), tomorrow, seats=2)
    heavy = carry(setup["parcel"], along(places, 0.1), along(places, 0.5), tomorrow, cargo_kg=15)
    gaide, guobao = GeoPoint(lat=25.432, lon=118.198), GeoPoint(lat=25.585, lon=117.995)
    off_route = carry(setup["parcel"], gaide, guobao, tomorrow, cargo_kg=1)
    for event in (ride, two_seats, heavy, off_route):
        await publish_request(platform.kafka.bootstrap, event)

    ids = [parcel_id, ride.request_id, two_seats.request_id, heavy.request_id]
    ids.append(off_route.request_id)

    async def placed() -> dict[str, dict[str, Any]] | None:
        docs = await settled(platform, ids)
        return docs if on_trip(docs[parcel_id]) and on_trip(docs[ride.request_id]) else None

    docs = await eventually(placed, within=90, what="the parcel and the ride on the trip")
    assert on_trip(docs[parcel_id]) == on_trip(docs[ride.request_id]) == trip["trip_id"]
    assert on_trip(docs[two_seats.request_id]) is None  # one seat offered
    assert on_trip(docs[heavy.request_id]) is None  # 10 of 20 kg left, 15 asked for
    assert on_trip(docs[off_route.request_id]) is None
    after = await trip_of(platform, driver, trip["trip_id"])
    assert after["committed"] == {"seats": 1, "cargo_kg": 10.0}
    assert sorted(after["request_ids"]) == sorted([parcel_id, ride.request_id])
    assert [s["kind"] for s in after["stops"]] == ["pickup", "pickup", "dropoff", "dropoff"]

    async def both_published() -> list[dict[str, Any]] | None:
        got = await assigned_events(platform, {parcel_id, ride.request_id})
        return got if len(got) == 2 else None

    events = await eventually(both_published, within=60, what="VolunteerAssigned of both")
    assert {(e["mode"], e["trip_id"], e["volunteer_id"]) for e in events} == {
        ("trip", trip["trip_id"], driver)
    }

    async def requester_sees_it() -> dict[str, Any] | None:
        async with httpx.AsyncClient(base_url=platform.url("requests"), timeout=30) as api:
            got = (await api.get(f"/v1/requests/{parcel_id}", headers=resident)).json()
        return got if got["status"] == "assigned" else None

    seen = await eventually(requester_sees_it, within=60, what="the parcel assigned")
    assert seen["dropoff_place_id"] == SHUIKOU and seen["cargo_kg"] == 10

    # the resident cancels the parcel: the trip gets its cargo room back, the ride stays
    async with httpx.AsyncClient(base_url=platform.url("requests"), timeout=30) as api:
        cancelled = await api.post(f"/v1/requests/{parcel_id}/cancel", headers=resident)
    assert cancelled.status_code == 200, cancelled.text

    async def room_back() -> dict[str, Any] | None:
        t = await trip_of(platform, driver, trip["trip_id"])
        return t if t["request_ids"] == [ride.request_id] else None

    freed = await eventually(room_back, within=90, what="the parcel's room given back")
    assert freed["committed"] == {"seats": 1, "cargo_kg": 0.0}
    assert [s["kind"] for s in freed["stops"]] == ["pickup", "dropoff"]


async def test_a_new_trip_picks_up_waiting_requests_and_concurrent_ones_never_overbook(
    platform: Platform, setup: dict[str, Any]
) -> None:
    places, driver = setup["places"], setup["driver"]
    later = day_window(2, 9, 3)  # another day: the first test's trip cannot take these
    waiting = [
        carry(setup["ride"], along(places, 0.1 * i), along(places, 0.95), later, seats=1)
        for i in range(1, 5)
    ]
    for event in waiting:
        await publish_request(platform.kafka.bootstrap, event)
    await settled(platform, [e.request_id for e in waiting])  # no trip yet: they wait
    departure = {
        "start": later.start.replace(hour=8).isoformat(),
        "end": later.start.replace(hour=10).isoformat(),
    }
    trip = await announce(
        platform,
        driver,
        **{"from": {"place_id": LONGXUN_V1}, "to": {"place_id": SHUIKOU}},
        departure=departure,
        seats=2,
    )
    assert len(trip["request_ids"]) == 2  # picked up at once, within its two seats

    # eight concurrent rides for a three-seat trip on the third day
    third = day_window(3, 9, 3)
    crowded = await announce(
        platform,
        driver,
        **{"from": {"point": places[LONGXUN_V1]}, "to": {"point": places[SHUIKOU]}},
        departure={
            "start": third.start.replace(hour=8).isoformat(),
            "end": third.start.replace(hour=10).isoformat(),
        },
        seats=3,
    )
    rush = [
        carry(setup["ride"], along(places, 0.05 * i), along(places, 0.9), third, seats=1)
        for i in range(1, 9)
    ]
    await asyncio.gather(*(publish_request(platform.kafka.bootstrap, e) for e in rush))
    docs = await settled(platform, [e.request_id for e in rush])

    async def full() -> dict[str, Any] | None:
        t = await trip_of(platform, driver, crowded["trip_id"])
        return t if len(t["request_ids"]) >= 3 else None

    after = await eventually(full, within=60, what="the crowded trip to fill")
    docs = {rid: await decision(platform, rid) for rid in docs}
    riders = sorted(rid for rid, d in docs.items() if on_trip(d) == crowded["trip_id"])
    assert after["committed"]["seats"] == 3 and sorted(after["request_ids"]) == riders
    assert len(riders) == 3  # never more than the seats, however many arrived at once
    first = await trip_of(platform, driver, trip["trip_id"])
    assert first["committed"]["seats"] == 2 and len(first["request_ids"]) == 2

    # the volunteer cancels the two-seat trip: its riders are withdrawn and wait again
    async with httpx.AsyncClient(base_url=platform.url("matching"), timeout=60) as api:
        cancelled = await api.post(
            f"/v1/trips/{trip['trip_id']}/cancel", headers=bearer(driver, "volunteer")
        )
        again = await api.post(
            f"/v1/trips/{trip['trip_id']}/cancel", headers=bearer(driver, "volunteer")
        )
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["request_ids"] == [] and again.status_code == 404
    for rid in first["request_ids"]:
        assert on_trip(await decision(platform, rid)) is None
