"""Requests of a service type with slot roles (a village clinic): the slots are the sum of the
roles' counts, given or not; another number is a 422; the roles' slots are kept."""

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
VILLAGE = PlaceRecord(
    id="pl_longxun_v1",
    kind="village",
    name_zh="村",
    name_en="Village",
    township_id="pl_longxun",
    location=GeoPoint(lat=25.5, lon=118.25),
    version=1,
)
ROLES = [
    SlotRole(
        role="barber", name_zh="理发师", name_en="Barber", required_skills=["haircut"], count=2
    ),
    SlotRole(role="dentist", name_zh="牙医", name_en="Dentist", count=1),
]


class Catalog:
    def service_type(self, id: str) -> ServiceTypeRecord | None:
        return ServiceTypeRecord(
            id=id,
            name_zh="服务",
            name_en=id,
            category="health",
            default_duration_min=60,
            target_claim_min=180,
            version=1,
            matching_mode="team",
            slot_roles=ROLES if id == "village_clinic" else [],
        )

    def place(self, id: str) -> PlaceRecord | None:
        return VILLAGE if id == VILLAGE.id else None


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
        "service_type_id": "village_clinic",
        "place_id": VILLAGE.id,
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


@pytest.mark.parametrize("given", [{}, {"slots": 3}])
async def test_the_roles_set_the_slots(given: dict[str, Any]) -> None:
    posted = await service().post(RESIDENT, body(**given), "k1", now=NOW)
    event = json.loads(posted.doc["outbox"][1]["body"])
    assert event["slots"] == 3 and posted.doc["slots"] == 3
    assert [(r["role"], r["slots"]) for r in posted.doc["slot_roles"]] == [
        ("barber", [1, 2]),
        ("dentist", [3]),
    ]


async def test_another_number_of_slots_is_refused() -> None:
    with pytest.raises(Unprocessable, match="3 slots"):
        await service().post(RESIDENT, body(slots=2), "k1", now=NOW)


async def test_a_service_without_roles_keeps_the_requested_slots() -> None:
    posted = await service().post(
        RESIDENT, body(service_type_id="health_check", slots=5), "k1", now=NOW
    )
    assert posted.doc["slots"] == 5 and "slot_roles" not in posted.doc
