"""The demo catalog: shape, determinism, and idempotent loading through the use cases."""

from __future__ import annotations

from collections import Counter

import pytest

from zhumeng_catalog.adapters.demo_data import COUNTY_SEAT, demo_catalog, load_demo
from zhumeng_catalog.adapters.memory_repository import InMemoryCatalogRepository as FakeRepository
from zhumeng_catalog.app.use_cases import Catalog
from zhumeng_catalog.domain.rules import haversine_km
from zhumeng_contracts.events import (
    ContactRecord,
    PlaceRecord,
    ServiceTypeRecord,
    TeamRecord,
    VolunteerRecord,
)

pytestmark = pytest.mark.unit

MISSION_TYPES = {
    "haircut",
    "hearing_test",
    "dental_clinic",
    "parcel_delivery",
    "doctor_visit",
    "ride_to_relatives",
    "produce_sale",
    "neighbour_help",
    "care_visit",
    "culture_event",
    "health_check",
    "resource_sharing",
    "village_clinic",
}


def test_demo_is_deterministic() -> None:
    assert demo_catalog() == demo_catalog()


def test_demo_shape() -> None:
    demo = demo_catalog()
    kinds = Counter(p.kind for p in demo.places)
    assert kinds["county"] == 1 and kinds["township"] == 18
    assert 36 <= kinds["village"] <= 54
    for p in demo.places:
        assert haversine_km(*COUNTY_SEAT, p.location.lat, p.location.lon) < 40, p.id
    ids = {p.id for p in demo.places}
    assert {"pl_county", "pl_longxun", "pl_longxun_v1", "pl_guiyang"} <= ids

    assert {s.id for s in demo.service_types} == MISSION_TYPES
    by_id = {s.id: s for s in demo.service_types}
    assert by_id["hearing_test"].required_certifications == ["audiology"]
    assert by_id["dental_clinic"].required_certifications == ["dentist_license"]
    assert by_id["doctor_visit"].required_certifications == ["medical_license"]
    assert by_id["health_check"].required_certifications == ["nursing"]
    assert "driving" in by_id["parcel_delivery"].required_skills
    assert "driving" in by_id["ride_to_relatives"].required_skills
    assert "ecommerce" in by_id["produce_sale"].required_skills
    modes = {s.id: s.matching_mode for s in demo.service_types if s.matching_mode != "direct"}
    assert modes == {
        "doctor_visit": "auto_offer",
        "hearing_test": "open_claim",
        "health_check": "team",
        "village_clinic": "team",
        "ride_to_relatives": "trip",
        "produce_sale": "batch",
    }
    assert [s.id for s in demo.service_types if s.needs_review] == ["doctor_visit"]
    clinic = by_id["village_clinic"].slot_roles
    roles = [(r.role, r.count) for r in clinic]
    assert roles == [("barber", 2), ("audiologist", 1), ("dentist", 1)]
    assert clinic[0].required_skills == ["haircut"]
    assert clinic[1].required_certifications == ["audiology"]
    assert clinic[2].required_certifications == ["dentist_license"]
    assert all(not by_id[s].slot_roles for s in MISSION_TYPES - {"village_clinic"})

    vols = demo.volunteers
    assert len(vols) == 200 and vols[0].id == "vol_0001" and vols[-1].id == "vol_0200"
    certs = Counter(c for v in vols for c in v.certifications)
    for cert in ("audiology", "dentist_license", "medical_license", "nursing"):
        assert certs[cert] >= 3, cert
    skills = Counter(s for v in vols for s in v.skills)
    assert skills["driving"] >= 30 and skills["haircut"] >= 10 and skills["ecommerce"] >= 5
    assert all(5 <= v.radius_km <= 40 and 1 <= v.capacity <= 3 for v in vols)
    assert all(v.availability for v in vols)
    assert sum("minnan" in v.languages for v in vols) > 100
    locales = Counter(v.locale for v in vols)
    assert locales["zh-CN"] > 150 and locales["en"] >= 1
    assert vols[11].phone == "13800000012" and vols[11].email.startswith("vol0012@")  # type: ignore[union-attr]

    assert {t.id for t in demo.teams} == {
        "team_barbers",
        "team_medical",
        "team_drivers",
        "team_youth",
    }
    assert all(len(t.member_ids) >= 5 for t in demo.teams)


async def test_load_goes_through_use_cases_and_is_idempotent() -> None:
    repo = FakeRepository()
    catalog = Catalog(repo)
    demo = demo_catalog()
    created = await load_demo(catalog, demo)
    assert created == {
        "places": len(demo.places),
        "service_types": 13,
        "volunteers": 200,
        "teams": 4,
    }
    assert len(repo.of_type(PlaceRecord)) == len(demo.places)
    assert len(repo.of_type(ServiceTypeRecord)) == 13
    assert len(repo.of_type(ContactRecord)) == 200
    assert len(repo.of_type(TeamRecord)) == 4
    members = {m for t in demo.teams for m in t.member_ids}
    assert len(repo.of_type(VolunteerRecord)) >= 200 + len(members)  # team sync bumped them
    barber = await catalog.get_volunteer(demo.teams[0].member_ids[0])
    assert "team_barbers" in barber.team_ids

    published = len(repo.published)
    again = await load_demo(catalog, demo)
    assert again == {"places": 0, "service_types": 0, "volunteers": 0, "teams": 0}
    assert len(repo.published) == published

    dentists = await catalog.search_volunteers(certification="dentist_license")
    assert len(dentists.items) == 5
