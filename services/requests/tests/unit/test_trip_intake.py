"""Intake of trip-pooled requests (rides, parcels, produce): the drop-off place becomes a point
on RequestPosted with the seats and cargo; a trip-mode service without them is refused.
Intake of team requests with slot roles (a village clinic): the slots are the sum of the
roles' counts, given or not; another number is a 422; the roles' slots are kept."""

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from zhumeng_contracts.events import PlaceRecord, ServiceTypeRecord, SlotRole
from zhumeng_contracts.events.common import GeoPoint
from zhumeng_kit.auth import Principal
from zhumeng_kit.problems import Unprocessable
from zhumeng_requests.app.use_cases import RequestService
from zhumeng_requests.domain.model import NewRequest

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
RESIDENT = Principal("res_1", frozenset({"resident"}))


def _place(id: str, kind: Any, lat: float, lon: float) -> PlaceRecord:
    return PlaceRecord(
        id=id,
        kind=kind,
        name_zh="地",
        name_en=id,
        township_id=None if kind != "village" else "pl_longxun",
        location=GeoPoint(lat=lat, lon=lon),
        version=1,
    )


PLACES = {
    "pl_dehua": _place("pl_dehua", "county", 25.49, 118.24),
    "pl_longxun": _place("pl_longxun", "township", 25.49, 118.24),
    "pl_longxun_v1": _place("pl_longxun_v1", "village", 25.5, 118.25),
    "pl_gaide": _place("pl_gaide", "township", 25.6, 118.2),
}


ROLES = [
    SlotRole(
        role="barber", name_zh="理发师", name_en="Barber", required_skills=["haircut"], count=2
    ),
    SlotRole(role="dentist", name_zh="牙医", name_en="Dentist", count=1),
]
MODES: dict[str, Any] = {"parcel": "trip", "village_clinic": "team"}


class Catalog:
    def service_type(self, id: str) -> ServiceTypeRecord | None:
        mode: Any = MODES.get(id, "direct")
        return ServiceTypeRecord(
            id=id,
            name_zh="服务",
            name_en=id,
            category="transport",
            default_duration_min=60,
            target_claim_min=180,
            version=1,
            matching_mode=mode,
            slot_roles=ROLES if id == "village_clinic" else [],
        )

    def place(self, id: str) -> PlaceRecord | None:
        return PLACES.get(id)

    async def catch_up(self) -> None:
        """Every record is read already."""


class Repo:
    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []

    async def insert(self, doc: dict[str, Any]) -> bool:
        self.docs.append(doc)
        return True

    async def by_idempotency_key(self, key: str) -> dict[str, Any] | None:
        return None


def body(**kw: Any) -> NewRequest:
    data: dict[str, Any] = {
        "service_type_id": "parcel",
        "place_id": "pl_longxun_v1",
        "window": {
            "start": (NOW + timedelta(days=1)).isoformat(),
            "end": (NOW + timedelta(days=1, hours=3)).isoformat(),
        },
        "requester": {"name": "林阿姨", "phone": "13800001111"},
        **kw,
    }
    return NewRequest.model_validate(data)


def service() -> RequestService:
    return RequestService(Repo(), Catalog())  # type: ignore[arg-type]


async def test_a_parcel_carries_its_dropoff_point_seats_and_cargo() -> None:
    posted = await service().post(
        RESIDENT, body(dropoff_place_id="pl_gaide", cargo_kg=12.5), "k1", now=NOW
    )
    event = json.loads(posted.doc["outbox"][1]["body"])
    assert event["dropoff_place_id"] == "pl_gaide"
    assert event["dropoff"] == {"lat": 25.6, "lon": 118.2}
    assert (event["seats"], event["cargo_kg"]) == (0, 12.5)
    assert posted.doc["dropoff_place_id"] == "pl_gaide" and posted.doc["cargo_kg"] == 12.5


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"cargo_kg": 3}, "dropoff_place_id"),  # no drop-off
        ({"dropoff_place_id": "pl_gaide"}, "seats"),  # nothing to carry
        ({"dropoff_place_id": "pl_longxun_v1", "seats": 1}, "another place"),
        ({"dropoff_place_id": "pl_nowhere", "seats": 1}, "unknown"),
        ({"dropoff_place_id": "pl_dehua", "seats": 1}, "unknown"),  # the county is no place
    ],
)
async def test_a_trip_request_without_a_usable_dropoff_is_refused(
    extra: dict[str, Any], why: str
) -> None:
    with pytest.raises(Unprocessable, match=why) as caught:
        await service().post(RESIDENT, body(**extra), "k1", now=NOW)
    assert caught.value.extensions["field"] == "dropoff_place_id"


async def test_other_services_need_no_dropoff_and_keep_their_fingerprint() -> None:
    plain = body(service_type_id="haircut")
    posted = await service().post(RESIDENT, plain, "k1", now=NOW)
    event = json.loads(posted.doc["outbox"][1]["body"])
    assert event["dropoff"] is None and "dropoff_place_id" not in posted.doc
    # a body without the new fields hashes as it did before they existed
    before = plain.model_dump(mode="json", exclude={"dropoff_place_id", "seats", "cargo_kg"})
    canonical = json.dumps(before, sort_keys=True, ensure_ascii=False).encode()
    assert plain.fingerprint() == hashlib.sha256(canonical).hexdigest()
    assert plain.fingerprint() == body(service_type_id="haircut", seats=0).fingerprint()
    assert plain.fingerprint() != body(service_type_id="haircut", seats=1).fingerprint()


def test_seats_and_cargo_are_bounded() -> None:
    with pytest.raises(ValueError):
        body(seats=13)
    with pytest.raises(ValueError):
        body(cargo_kg=-1)


@pytest.mark.parametrize("given", [{}, {"slots": 3}])
async def test_the_roles_set_the_slots(given: dict[str, Any]) -> None:
    posted = await service().post(
        RESIDENT, body(service_type_id="village_clinic", **given), "k1", now=NOW
    )
    event = json.loads(posted.doc["outbox"][1]["body"])
    assert event["slots"] == 3 and posted.doc["slots"] == 3
    assert [(r["role"], r["slots"]) for r in posted.doc["slot_roles"]] == [
        ("barber", [1, 2]),
        ("dentist", [3]),
    ]


async def test_another_number_of_slots_is_refused() -> None:
    with pytest.raises(Unprocessable, match="3 slots"):
        await service().post(
            RESIDENT, body(service_type_id="village_clinic", slots=2), "k1", now=NOW
        )


async def test_a_service_without_roles_keeps_the_requested_slots() -> None:
    posted = await service().post(RESIDENT, body(service_type_id="haircut", slots=5), "k1", now=NOW)
    assert posted.doc["slots"] == 5 and "slot_roles" not in posted.doc
