"""Use cases on the in-memory fake repository."""

from __future__ import annotations

from typing import Any

import pytest

from zhumeng_catalog.adapters.memory_repository import InMemoryCatalogRepository as FakeRepository
from zhumeng_catalog.app.use_cases import Catalog
from zhumeng_catalog.domain.models import (
    PlaceCreate,
    PlacePatch,
    ServiceTypeCreate,
    ServiceTypePatch,
    TeamCreate,
    TeamPatch,
    VolunteerCreate,
    VolunteerPatch,
)
from zhumeng_catalog.domain.rules import haversine_km
from zhumeng_contracts.events import (
    ContactRecord,
    PlaceRecord,
    ServiceTypeRecord,
    TeamRecord,
    VolunteerRecord,
)
from zhumeng_kit.auth import Principal
from zhumeng_kit.problems import Conflict, NotFound, Unprocessable

pytestmark = pytest.mark.unit

ADMIN = Principal("adm_1", frozenset({"admin"}))


@pytest.fixture
def repo() -> FakeRepository:
    return FakeRepository()


@pytest.fixture
def catalog(repo: FakeRepository) -> Catalog:
    return Catalog(repo)


def st(**over: Any) -> ServiceTypeCreate:
    data: dict[str, Any] = {
        "id": "haircut",
        "name_zh": "义务理发",
        "name_en": "Free haircut",
        "category": "personal_care",
        "required_skills": ["haircut"],
        "default_duration_min": 45,
        "target_claim_min": 60,
    }
    data.update(over)
    return ServiceTypeCreate.model_validate(data)


async def places(catalog: Catalog) -> None:
    await catalog.create_place(
        PlaceCreate(
            id="pl_county",
            kind="county",
            name_zh="德化县",
            name_en="Dehua",
            location={"lat": 25.49, "lon": 118.24},
        ),
        by=ADMIN,
    )
    for tid, lat, lon in (("pl_a", 25.49, 118.24), ("pl_b", 25.70, 118.33)):
        await catalog.create_place(
            PlaceCreate.model_validate(
                {
                    "id": tid,
                    "kind": "township",
                    "name_zh": tid,
                    "name_en": tid,
                    "parent_id": "pl_county",
                    "location": {"lat": lat, "lon": lon},
                }
            ),
            by=ADMIN,
        )
        await catalog.create_place(
            PlaceCreate.model_validate(
                {
                    "id": f"{tid}_v1",
                    "kind": "village",
                    "name_zh": "村",
                    "name_en": f"{tid} village",
                    "parent_id": tid,
                    "location": {"lat": round(lat + 0.02, 4), "lon": round(lon + 0.02, 4)},
                }
            ),
            by=ADMIN,
        )


def vol(vid: str, **over: Any) -> VolunteerCreate:
    data: dict[str, Any] = {
        "id": vid,
        "name": "林美华",
        "display_name": "美华",
        "phone": "13800000001",
        "email": f"{vid}@x.example",
        "home_place_id": "pl_a_v1",
        "skills": ["companionship"],
    }
    data.update(over)
    return VolunteerCreate.model_validate(data)


# ------------------------------------------------------------------ service types


async def test_create_publishes_version_1_and_duplicates_conflict(
    catalog: Catalog, repo: FakeRepository
) -> None:
    created = await catalog.create_service_type(st(), by=ADMIN)
    assert created.version == 1 and created.active
    [rec] = repo.of_type(ServiceTypeRecord)
    assert (rec.id, rec.version, rec.required_skills) == ("haircut", 1, ["haircut"])
    with pytest.raises(Conflict):
        await catalog.create_service_type(st(), by=ADMIN)


async def test_generated_id_when_absent(catalog: Catalog) -> None:
    created = await catalog.create_service_type(st(id=None), by=ADMIN)
    assert created.id.startswith("st_")


async def test_patch_bumps_version_and_noop_publishes_nothing(
    catalog: Catalog, repo: FakeRepository
) -> None:
    await catalog.create_service_type(st(), by=ADMIN)
    new = await catalog.update_service_type(
        "haircut", ServiceTypePatch(target_claim_min=30), by=ADMIN
    )
    assert (new.version, new.target_claim_min, new.name_en) == (2, 30, "Free haircut")
    again = await catalog.update_service_type(
        "haircut", ServiceTypePatch(target_claim_min=30), by=ADMIN
    )
    assert again.version == 2
    assert [r.version for r in repo.of_type(ServiceTypeRecord)] == [1, 2]
    with pytest.raises(NotFound):
        await catalog.update_service_type("nope", ServiceTypePatch(target_claim_min=30), by=ADMIN)
    with pytest.raises(Unprocessable):  # explicit null on a required field
        await catalog.update_service_type(
            "haircut", ServiceTypePatch.model_validate({"name_en": None}), by=ADMIN
        )


async def test_deactivate_publishes_inactive_record_and_hides_from_lists(
    catalog: Catalog, repo: FakeRepository
) -> None:
    await catalog.create_service_type(st(), by=ADMIN)
    gone = await catalog.deactivate_service_type("haircut", by=ADMIN)
    assert not gone.active and gone.version == 2
    assert repo.of_type(ServiceTypeRecord)[-1].active is False
    assert (await catalog.list_service_types()).items == []
    assert len((await catalog.list_service_types(include_inactive=True)).items) == 1
    await catalog.deactivate_service_type("haircut", by=ADMIN)  # idempotent: no new record
    assert len(repo.of_type(ServiceTypeRecord)) == 2


async def test_service_type_filters_and_pagination(catalog: Catalog) -> None:
    await catalog.create_service_type(st(), by=ADMIN)
    await catalog.create_service_type(
        st(
            id="dental_clinic",
            name_zh="口腔义诊",
            name_en="Dental clinic",
            category="health",
            required_skills=[],
            required_certifications=["dentist_license"],
        ),
        by=ADMIN,
    )
    await catalog.create_service_type(
        st(
            id="parcel_delivery",
            name_zh="包裹代送",
            name_en="Parcel delivery",
            category="logistics",
            required_skills=["driving"],
        ),
        by=ADMIN,
    )
    assert [s.id for s in (await catalog.list_service_types(q="dental")).items] == ["dental_clinic"]
    assert [s.id for s in (await catalog.list_service_types(q="理发")).items] == ["haircut"]
    assert [s.id for s in (await catalog.list_service_types(category="health")).items] == [
        "dental_clinic"
    ]
    assert [s.id for s in (await catalog.list_service_types(skill="Driving")).items] == [
        "parcel_delivery"
    ]
    page1 = await catalog.list_service_types(limit=2)
    assert [s.id for s in page1.items] == ["dental_clinic", "haircut"]
    assert page1.next_cursor
    page2 = await catalog.list_service_types(limit=2, cursor=page1.next_cursor)
    assert [s.id for s in page2.items] == ["parcel_delivery"] and page2.next_cursor is None


async def test_lost_races_are_retried_then_conflict(catalog: Catalog, repo: FakeRepository) -> None:
    await catalog.create_service_type(st(), by=ADMIN)
    repo.lose_next_races = 2
    new = await catalog.update_service_type(
        "haircut", ServiceTypePatch(target_claim_min=20), by=ADMIN
    )
    assert new.version == 2
    repo.lose_next_races = 1000
    with pytest.raises(Conflict):
        await catalog.update_service_type(
            "haircut", ServiceTypePatch(target_claim_min=25), by=ADMIN
        )


# ------------------------------------------------------------------ places


async def test_places_lineage_and_filters(catalog: Catalog, repo: FakeRepository) -> None:
    await places(catalog)
    village = await catalog.get_place("pl_a_v1")
    assert (village.parent_id, village.township_id) == ("pl_a", "pl_a")
    town = await catalog.get_place("pl_a")
    assert (town.parent_id, town.township_id) == ("pl_county", "pl_a")
    villages = await catalog.list_places(kind="village", township_id="pl_b")
    assert [p.id for p in villages.items] == ["pl_b_v1"]
    assert len(repo.of_type(PlaceRecord)) == 5


async def test_village_needs_an_existing_township(catalog: Catalog) -> None:
    await places(catalog)
    body = {
        "id": "pl_x",
        "kind": "village",
        "name_zh": "x",
        "name_en": "x",
        "location": {"lat": 25.5, "lon": 118.2},
    }
    with pytest.raises(Unprocessable):
        await catalog.create_place(PlaceCreate.model_validate(body), by=ADMIN)
    with pytest.raises(Unprocessable):
        await catalog.create_place(
            PlaceCreate.model_validate({**body, "parent_id": "pl_nope"}), by=ADMIN
        )
    with pytest.raises(Unprocessable):
        await catalog.create_place(
            PlaceCreate.model_validate({**body, "parent_id": "pl_a_v1"}), by=ADMIN
        )
    moved = await catalog.update_place("pl_a_v1", PlacePatch(parent_id="pl_b"), by=ADMIN)
    assert (moved.township_id, moved.version) == ("pl_b", 2)


# ------------------------------------------------------------------ volunteers


async def test_volunteer_home_comes_from_place_unless_given(
    catalog: Catalog, repo: FakeRepository
) -> None:
    await places(catalog)
    v = await catalog.create_volunteer(vol("vol_0001"), by=ADMIN)
    assert (v.township_id, v.home.lat, v.home_from_place) == ("pl_a", 25.51, True)
    w = await catalog.create_volunteer(vol("vol_0002", home={"lat": 25.6, "lon": 118.3}), by=ADMIN)
    assert (w.township_id, w.home.lat, w.home_from_place) == ("pl_a", 25.6, False)
    moved = await catalog.update_volunteer(
        "vol_0001", VolunteerPatch(home_place_id="pl_b"), by=ADMIN
    )
    assert (moved.township_id, moved.home.lat) == ("pl_b", 25.70)
    with pytest.raises(Unprocessable):
        await catalog.create_volunteer(vol("vol_0003", home_place_id="pl_nope"), by=ADMIN)
    with pytest.raises(Unprocessable):
        await catalog.create_volunteer(vol("vol_0003", home_place_id="pl_county"), by=ADMIN)
    with pytest.raises(Unprocessable):
        await catalog.create_volunteer(vol("vol_0003", team_ids=["team_nope"]), by=ADMIN)


async def test_contacts_only_on_the_contact_record(catalog: Catalog, repo: FakeRepository) -> None:
    await places(catalog)
    await catalog.create_volunteer(vol("vol_0001"), by=ADMIN)
    await catalog.update_volunteer("vol_0001", VolunteerPatch(radius_km=25), by=ADMIN)
    await catalog.update_volunteer("vol_0001", VolunteerPatch(phone="13800009999"), by=ADMIN)
    records = repo.of_type(VolunteerRecord)
    assert [r.version for r in records] == [1, 2, 3]
    for r in records:
        assert not {"phone", "email", "name"} & set(r.model_dump())
    contacts = repo.of_type(ContactRecord)
    assert [(c.version, c.phone) for c in contacts] == [(1, "13800000001"), (3, "13800009999")]


async def test_volunteer_search(catalog: Catalog) -> None:
    await places(catalog)
    await catalog.create_volunteer(vol("vol_0001", skills=["driving"]), by=ADMIN)
    await catalog.create_volunteer(
        vol("vol_0002", skills=["haircut"], home_place_id="pl_b"), by=ADMIN
    )
    await catalog.create_volunteer(
        vol(
            "vol_0003",
            skills=["driving"],
            home_place_id="pl_b_v1",
            certifications=["nursing"],
            languages=["minnan"],
        ),
        by=ADMIN,
    )
    await catalog.create_volunteer(vol("vol_0004", skills=["driving"]), by=ADMIN)
    await catalog.deactivate_volunteer("vol_0004", by=ADMIN)

    async def ids(**kw: Any) -> list[str]:
        return [v.id for v in (await catalog.search_volunteers(**kw)).items]

    assert await ids(skill="driving") == ["vol_0001", "vol_0003"]
    assert await ids(township_id="pl_b") == ["vol_0002", "vol_0003"]
    assert await ids(certification="nursing") == ["vol_0003"]
    assert await ids(language="minnan") == ["vol_0003"]
    assert await ids(skill="driving", include_inactive=True) == ["vol_0001", "vol_0003", "vol_0004"]
    near = (25.70, 118.33)  # pl_b
    assert await ids(near=near) == ["vol_0002", "vol_0003", "vol_0001"]
    assert await ids(near=near, within_km=5) == ["vol_0002", "vol_0003"]
    page = await catalog.search_volunteers(near=near, within_km=50, limit=1)
    assert [v.id for v in page.items] == ["vol_0002"] and page.distances["vol_0002"] == 0
    page2 = await catalog.search_volunteers(
        near=near, within_km=50, limit=1, cursor=page.next_cursor
    )
    assert [v.id for v in page2.items] == ["vol_0003"]
    assert page2.distances["vol_0003"] == pytest.approx(
        haversine_km(*near, 25.72, 118.35),
        abs=1e-4,
    )
    with pytest.raises(Unprocessable):
        await catalog.search_volunteers(within_km=5)


# ------------------------------------------------------------------ teams


async def test_team_members_must_exist_and_membership_is_synced(
    catalog: Catalog, repo: FakeRepository
) -> None:
    await places(catalog)
    for i in (1, 2, 3):
        await catalog.create_volunteer(vol(f"vol_000{i}"), by=ADMIN)
    with pytest.raises(Unprocessable):
        await catalog.create_team(
            TeamCreate(id="team_x", name="X", member_ids=["vol_0009"]), by=ADMIN
        )
    with pytest.raises(Unprocessable):
        await catalog.create_team(
            TeamCreate(id="team_x", name="X", township_id="pl_a_v1"), by=ADMIN
        )
    team = await catalog.create_team(
        TeamCreate(
            id="team_x",
            name="X",
            township_id="pl_a",
            lead_volunteer_id="vol_0001",
            member_ids=["vol_0002"],
        ),
        by=ADMIN,
    )
    assert team.member_ids == ["vol_0001", "vol_0002"]
    assert (await catalog.get_volunteer("vol_0001")).team_ids == ["team_x"]
    assert (await catalog.get_volunteer("vol_0002")).team_ids == ["team_x"]
    await catalog.update_team("team_x", TeamPatch(member_ids=["vol_0001", "vol_0003"]), by=ADMIN)
    assert (await catalog.get_volunteer("vol_0002")).team_ids == []
    assert (await catalog.get_volunteer("vol_0003")).team_ids == ["team_x"]
    # the other direction: a volunteer joining a team through their own record
    await catalog.update_volunteer("vol_0002", VolunteerPatch(team_ids=["team_x"]), by=ADMIN)
    assert set((await catalog.get_team("team_x")).member_ids) == {
        "vol_0001",
        "vol_0002",
        "vol_0003",
    }
    teams = repo.of_type(TeamRecord)
    assert [t.version for t in teams] == [1, 2, 3]
    assert [t.id for t in (await catalog.list_teams(member_id="vol_0002")).items] == ["team_x"]
