"""Review, batch window and volunteers' unavailability through the catalog's model, use cases
and records (what matching reads)."""

from __future__ import annotations

from typing import Any

import pytest

from zhumeng_catalog.adapters.demo_data import demo_catalog
from zhumeng_catalog.adapters.memory_repository import InMemoryCatalogRepository
from zhumeng_catalog.app.use_cases import Catalog
from zhumeng_catalog.domain.models import (
    PlaceCreate,
    ServiceTypeCreate,
    ServiceTypePatch,
    VolunteerCreate,
    VolunteerPatch,
)
from zhumeng_contracts.events import ServiceTypeRecord, VolunteerRecord
from zhumeng_kit.auth import Principal
from zhumeng_kit.problems import Unprocessable

pytestmark = pytest.mark.unit
ADMIN = Principal("adm_1", frozenset({"admin"}))
LEAVE = {"start": "2026-12-01T08:00:00+08:00", "end": "2026-12-03T18:00:00+08:00"}
ILL = {"start": "2026-11-28T00:00:00+08:00", "end": "2026-11-29T00:00:00+08:00"}


def service_type(**over: Any) -> ServiceTypeCreate:
    data: dict[str, Any] = {
        "id": "doctor_visit",
        "name_zh": "医生出诊",
        "name_en": "Doctor visit",
        "category": "health",
        "default_duration_min": 60,
        "target_claim_min": 240,
        **over,
    }
    return ServiceTypeCreate.model_validate(data)


async def test_service_type_review_and_batch_window_reach_the_record() -> None:
    repo = InMemoryCatalogRepository()
    catalog = Catalog(repo)
    created = await catalog.create_service_type(service_type(needs_review=True), by=ADMIN)
    assert (created.needs_review, created.batch_window_min) == (True, 10)
    await catalog.update_service_type(
        "doctor_visit", ServiceTypePatch(needs_review=False, batch_window_min=15), by=ADMIN
    )
    records = repo.of_type(ServiceTypeRecord)
    assert [(r.needs_review, r.batch_window_min, r.version) for r in records] == [
        (True, 10, 1),
        (False, 15, 2),
    ]
    with pytest.raises(ValueError):  # refused at the API's door (422)
        ServiceTypePatch.model_validate({"batch_window_min": 0})
    with pytest.raises(Unprocessable):  # an explicit null on a field that must have a value
        await catalog.update_service_type(
            "doctor_visit", ServiceTypePatch.model_validate({"needs_review": None}), by=ADMIN
        )


async def test_volunteer_unavailability_reaches_the_record_in_order() -> None:
    repo = InMemoryCatalogRepository()
    catalog = Catalog(repo)
    await catalog.create_place(
        PlaceCreate.model_validate(
            {
                "id": "pl_a",
                "kind": "township",
                "name_zh": "甲镇",
                "name_en": "A",
                "location": {"lat": 25.5, "lon": 118.2},
            }
        ),
        by=ADMIN,
    )
    body = {
        "id": "vol_0001",
        "name": "林美华",
        "display_name": "美华",
        "phone": "13800000001",
        "home_place_id": "pl_a",
        "unavailable": [LEAVE, ILL],
    }
    v = await catalog.create_volunteer(VolunteerCreate.model_validate(body), by=ADMIN)
    assert [w.start.day for w in v.unavailable] == [28, 1]  # earliest first
    await catalog.update_volunteer("vol_0001", VolunteerPatch(unavailable=[]), by=ADMIN)
    records = repo.of_type(VolunteerRecord)
    assert [len(r.unavailable) for r in records] == [2, 0]
    assert records[0].unavailable[0].start.isoformat() == "2026-11-28T00:00:00+08:00"
    with pytest.raises(ValueError):  # a window that ends before it starts
        VolunteerPatch.model_validate({"unavailable": [{"start": LEAVE["end"], "end": ILL["end"]}]})


def test_demo_doctor_visits_need_review_and_nothing_else_does() -> None:
    reviewed = {s.id for s in demo_catalog().service_types if s.needs_review}
    assert reviewed == {"doctor_visit"}


@pytest.mark.parametrize("mode", ["team", "batch", "trip"])
async def test_review_is_refused_for_pooled_modes(mode: str) -> None:
    """Pooled modes open their pool when the request is posted; a review before that would be
    skipped silently, so the catalog refuses the combination (422)."""
    catalog = Catalog(InMemoryCatalogRepository())
    with pytest.raises(Unprocessable):
        await catalog.create_service_type(
            service_type(matching_mode=mode, needs_review=True), by=ADMIN
        )
    ok = await catalog.create_service_type(service_type(matching_mode=mode), by=ADMIN)
    assert ok.matching_mode == mode and not ok.needs_review
