"""A coordinator's scope on writes (app/scope.py), on the in-memory fake repository.

County-wide coordinators and admins may change anything; a township coordinator only the
villages, volunteers and teams of their township; reads are unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import pytest

from zhumeng_catalog.adapters.memory_repository import InMemoryCatalogRepository as FakeRepository
from zhumeng_catalog.app.scope import (
    SYSTEM,
    check_county_level,
    check_place,
    check_team,
    check_volunteer,
    write_scope,
)
from zhumeng_catalog.app.use_cases import Catalog
from zhumeng_catalog.domain.models import (
    Place,
    PlaceCreate,
    PlacePatch,
    ServiceTypeCreate,
    ServiceTypePatch,
    Team,
    TeamCreate,
    TeamPatch,
    Volunteer,
    VolunteerCreate,
    VolunteerPatch,
)
from zhumeng_kit.auth import Principal
from zhumeng_kit.problems import Forbidden, NotFound

pytestmark = pytest.mark.unit

ADMIN = Principal("adm_1", frozenset({"admin"}))
ADMIN_OF_A = Principal("adm_2", frozenset({"admin"}), "pl_a")  # admins always pass
COUNTY = Principal("co_county", frozenset({"coordinator"}))
TOWN_A = Principal("co_a", frozenset({"coordinator"}), "pl_a")
RESIDENT = Principal("res_1", frozenset({"resident"}))
LEAD_OF_A = Principal("lead_1", frozenset({"team_lead"}), "pl_a")
EVERYWHERE = (ADMIN, ADMIN_OF_A, COUNTY, SYSTEM)


# ------------------------------------------------------------------ fixtures and helpers


@pytest.fixture
def repo() -> FakeRepository:
    return FakeRepository()


@pytest.fixture
async def catalog(repo: FakeRepository) -> Catalog:
    """The county, townships pl_a and pl_b with a village each, a volunteer in each township
    and a team in each township."""
    catalog = Catalog(repo)
    await catalog.create_place(place("pl_county", "county", None), by=ADMIN)
    for town in ("pl_a", "pl_b"):
        await catalog.create_place(place(town, "township", "pl_county"), by=ADMIN)
        await catalog.create_place(place(f"{town}_v1", "village", town), by=ADMIN)
    await catalog.create_volunteer(vol("vol_a", "pl_a_v1"), by=ADMIN)
    await catalog.create_volunteer(vol("vol_b", "pl_b_v1"), by=ADMIN)
    await catalog.create_team(TeamCreate(id="team_a", name="A", township_id="pl_a"), by=ADMIN)
    await catalog.create_team(TeamCreate(id="team_b", name="B", township_id="pl_b"), by=ADMIN)
    await catalog.create_team(TeamCreate(id="team_county", name="County"), by=ADMIN)
    return catalog


def place(pid: str, kind: str, parent: str | None) -> PlaceCreate:
    return PlaceCreate.model_validate(
        {
            "id": pid,
            "kind": kind,
            "name_zh": pid,
            "name_en": pid,
            "parent_id": parent,
            "location": {"lat": 25.5, "lon": 118.2},
        }
    )


def vol(vid: str, home: str, **over: Any) -> VolunteerCreate:
    data: dict[str, Any] = {
        "id": vid,
        "name": "林美华",
        "display_name": "美华",
        "home_place_id": home,
        "skills": ["companionship"],
    }
    data.update(over)
    return VolunteerCreate.model_validate(data)


def st(sid: str = "haircut") -> ServiceTypeCreate:
    return ServiceTypeCreate(
        id=sid,
        name_zh="义务理发",
        name_en="Free haircut",
        category="personal_care",
        default_duration_min=45,
        target_claim_min=60,
    )


async def refused(repo: FakeRepository, write: Awaitable[Any], *words: str) -> None:
    """The write is a 403 naming `words`, and publishes nothing."""
    before = len(repo.published)
    with pytest.raises(Forbidden) as caught:
        await write
    assert caught.value.status == 403
    for word in words:
        assert word in caught.value.detail, caught.value.detail
    assert len(repo.published) == before


# ------------------------------------------------------------------ the pure rules


def test_write_scope() -> None:
    assert write_scope(ADMIN) is None
    assert write_scope(ADMIN_OF_A) is None
    assert write_scope(COUNTY) is None
    assert write_scope(SYSTEM) is None
    assert write_scope(TOWN_A) == "pl_a"
    for nobody in (RESIDENT, LEAD_OF_A):
        with pytest.raises(Forbidden):
            write_scope(nobody)


def test_rules_on_states() -> None:
    loc = {"lat": 25.5, "lon": 118.2}
    village_a = Place(
        id="v", kind="village", name_zh="v", name_en="v", township_id="pl_a", location=loc
    )
    village_b = village_a.model_copy(update={"township_id": "pl_b"})
    town_a = village_a.model_copy(update={"kind": "township"})
    volunteer_a = Volunteer(
        id="vol_1",
        name="n",
        display_name="n",
        home_place_id="pl_a_v1",
        township_id="pl_a",
        home=loc,
        radius_km=5,
        capacity=1,
    )
    volunteer_b = volunteer_a.model_copy(update={"township_id": "pl_b"})
    team_a = Team(id="team_1", name="t", township_id="pl_a")
    team_b = team_a.model_copy(update={"township_id": "pl_b"})
    team_county = team_a.model_copy(update={"township_id": None})

    for anyone in EVERYWHERE:
        check_county_level(anyone, "service types")
        for p in (village_a, village_b, town_a):
            check_place(anyone, p)
        for v in (volunteer_a, volunteer_b):
            check_volunteer(anyone, v)
        for t in (team_a, team_b, team_county):
            check_team(anyone, t)

    check_place(TOWN_A, village_a)
    check_volunteer(TOWN_A, volunteer_a)
    check_team(TOWN_A, team_a)
    with pytest.raises(Forbidden, match="service types are county-level"):
        check_county_level(TOWN_A, "service types")
    with pytest.raises(Forbidden, match="is in pl_b"):
        check_place(TOWN_A, village_b)
    with pytest.raises(Forbidden, match="is a township, which is county-level"):
        check_place(TOWN_A, town_a)
    with pytest.raises(Forbidden, match="home is in pl_b"):
        check_volunteer(TOWN_A, volunteer_b)
    with pytest.raises(Forbidden, match="belongs to pl_b"):
        check_team(TOWN_A, team_b)
    with pytest.raises(Forbidden, match="is county-wide"):
        check_team(TOWN_A, team_county)
    with pytest.raises(Forbidden, match="only coordinators and admins"):
        check_volunteer(RESIDENT, volunteer_a)


# ------------------------------------------------------------------ service types


@pytest.mark.parametrize("who", EVERYWHERE, ids=lambda p: p.subject)
async def test_service_types_county_wide_and_admins(catalog: Catalog, who: Principal) -> None:
    await catalog.create_service_type(st(), by=who)
    new = await catalog.update_service_type(
        "haircut", ServiceTypePatch(target_claim_min=30), by=who
    )
    assert new.version == 2
    assert not (await catalog.deactivate_service_type("haircut", by=who)).active


async def test_service_types_refused_to_a_township_coordinator(
    catalog: Catalog, repo: FakeRepository
) -> None:
    await refused(repo, catalog.create_service_type(st("kite"), by=TOWN_A), "county-level")
    await catalog.create_service_type(st(), by=COUNTY)
    patch = ServiceTypePatch(target_claim_min=30)
    await refused(repo, catalog.update_service_type("haircut", patch, by=TOWN_A), "pl_a")
    await refused(repo, catalog.deactivate_service_type("haircut", by=TOWN_A), "county-level")
    await refused(repo, catalog.create_service_type(st("kite"), by=RESIDENT), "coordinators")
    assert (await catalog.get_service_type("haircut")).version == 1  # reads are unchanged
    assert await catalog.exists("service_types", "kite") is False


# ------------------------------------------------------------------ places


async def test_township_coordinator_manages_own_villages(catalog: Catalog) -> None:
    made = await catalog.create_place(place("pl_a_v2", "village", "pl_a"), by=TOWN_A)
    assert (made.township_id, made.version) == ("pl_a", 1)
    renamed = await catalog.update_place("pl_a_v1", PlacePatch(name_en="Upper"), by=TOWN_A)
    assert (renamed.name_en, renamed.version) == ("Upper", 2)
    assert not (await catalog.deactivate_place("pl_a_v2", by=TOWN_A)).active


async def test_township_coordinator_refused_other_places(
    catalog: Catalog, repo: FakeRepository
) -> None:
    rename = PlacePatch(name_en="Renamed")
    await refused(
        repo, catalog.create_place(place("pl_b_v2", "village", "pl_b"), by=TOWN_A), "pl_b"
    )
    await refused(
        repo, catalog.create_place(place("pl_c", "township", "pl_county"), by=TOWN_A), "township"
    )
    await refused(
        repo, catalog.create_place(place("pl_county2", "county", None), by=TOWN_A), "county"
    )
    await refused(repo, catalog.update_place("pl_b_v1", rename, by=TOWN_A), "pl_b_v1", "pl_b")
    await refused(repo, catalog.update_place("pl_a", rename, by=TOWN_A), "township")
    await refused(repo, catalog.update_place("pl_county", rename, by=TOWN_A), "county")
    await refused(repo, catalog.deactivate_place("pl_b_v1", by=TOWN_A), "pl_b_v1")
    await refused(repo, catalog.deactivate_place("pl_a", by=TOWN_A), "township")
    # moving an own village to another township: refused on the state it would have
    move = PlacePatch(parent_id="pl_b")
    await refused(repo, catalog.update_place("pl_a_v1", move, by=TOWN_A), "pl_a_v1", "pl_b")
    assert (await catalog.get_place("pl_a_v1")).township_id == "pl_a"
    # ... or pulling another township's village into one's own: refused on the state it has
    pull = PlacePatch(parent_id="pl_a")
    await refused(repo, catalog.update_place("pl_b_v1", pull, by=TOWN_A), "pl_b_v1", "pl_b")
    # ... both of which the county may do
    moved = await catalog.update_place("pl_a_v1", move, by=COUNTY)
    assert moved.township_id == "pl_b"
    with pytest.raises(NotFound):  # an unknown place is still a 404
        await catalog.update_place("pl_nope", rename, by=TOWN_A)


# ------------------------------------------------------------------ volunteers


async def test_township_coordinator_manages_own_volunteers(catalog: Catalog) -> None:
    made = await catalog.create_volunteer(vol("vol_a2", "pl_a"), by=TOWN_A)  # the township
    assert made.township_id == "pl_a"
    changed = await catalog.update_volunteer("vol_a", VolunteerPatch(radius_km=25), by=TOWN_A)
    assert (changed.radius_km, changed.version) == (25, 2)
    # moving within the township is fine
    moved = await catalog.update_volunteer("vol_a", VolunteerPatch(home_place_id="pl_a"), by=TOWN_A)
    assert moved.home_place_id == "pl_a"
    assert not (await catalog.deactivate_volunteer("vol_a2", by=TOWN_A)).active


async def test_township_coordinator_refused_other_volunteers(
    catalog: Catalog, repo: FakeRepository
) -> None:
    patch = VolunteerPatch(radius_km=25)
    await refused(repo, catalog.create_volunteer(vol("vol_b2", "pl_b_v1"), by=TOWN_A), "pl_b")
    await refused(repo, catalog.update_volunteer("vol_b", patch, by=TOWN_A), "vol_b", "pl_b")
    await refused(repo, catalog.deactivate_volunteer("vol_b", by=TOWN_A), "vol_b")
    noop = VolunteerPatch(radius_km=(await catalog.get_volunteer("vol_b")).radius_km)
    await refused(repo, catalog.update_volunteer("vol_b", noop, by=TOWN_A), "vol_b")
    # moving an own volunteer to another township is county-level
    move = VolunteerPatch(home_place_id="pl_b_v1")
    await refused(repo, catalog.update_volunteer("vol_a", move, by=TOWN_A), "county-level")
    assert (await catalog.get_volunteer("vol_a")).township_id == "pl_a"
    pull = VolunteerPatch(home_place_id="pl_a_v1")
    await refused(repo, catalog.update_volunteer("vol_b", pull, by=TOWN_A), "vol_b", "pl_b")
    assert (await catalog.update_volunteer("vol_a", move, by=COUNTY)).township_id == "pl_b"
    await refused(repo, catalog.update_volunteer("vol_a", patch, by=LEAD_OF_A), "coordinators")


# ------------------------------------------------------------------ teams


async def test_township_coordinator_manages_own_teams(catalog: Catalog) -> None:
    made = await catalog.create_team(
        TeamCreate(id="team_a2", name="A2", township_id="pl_a", member_ids=["vol_a"]),
        by=TOWN_A,
    )
    assert made.member_ids == ["vol_a"]
    renamed = await catalog.update_team("team_a", TeamPatch(name="A prime"), by=TOWN_A)
    assert (renamed.name, renamed.version) == ("A prime", 2)
    # membership is mirrored on the volunteer, wherever they live: the team is what is edited
    grown = await catalog.update_team("team_a", TeamPatch(member_ids=["vol_b"]), by=TOWN_A)
    assert grown.member_ids == ["vol_b"]
    assert (await catalog.get_volunteer("vol_b")).team_ids == ["team_a"]
    assert not (await catalog.deactivate_team("team_a2", by=TOWN_A)).active


async def test_township_coordinator_refused_other_teams(
    catalog: Catalog, repo: FakeRepository
) -> None:
    rename = TeamPatch(name="Renamed")
    await refused(
        repo,
        catalog.create_team(TeamCreate(id="team_b2", name="B2", township_id="pl_b"), by=TOWN_A),
        "pl_b",
    )
    await refused(
        repo, catalog.create_team(TeamCreate(id="team_c2", name="C2"), by=TOWN_A), "county-wide"
    )
    await refused(repo, catalog.update_team("team_b", rename, by=TOWN_A), "team_b", "pl_b")
    await refused(repo, catalog.update_team("team_county", rename, by=TOWN_A), "county-wide")
    await refused(repo, catalog.deactivate_team("team_b", by=TOWN_A), "team_b")
    # handing an own team to another township (or to the county) is refused too
    for elsewhere in (
        TeamPatch(township_id="pl_b"),
        TeamPatch.model_validate({"township_id": None}),
    ):
        await refused(repo, catalog.update_team("team_a", elsewhere, by=TOWN_A), "team_a")
    assert (await catalog.get_team("team_a")).township_id == "pl_a"
    pull = TeamPatch(township_id="pl_a")
    await refused(repo, catalog.update_team("team_b", pull, by=TOWN_A), "team_b", "pl_b")
    assert (
        await catalog.update_team("team_a", TeamPatch(township_id="pl_b"), by=COUNTY)
    ).version == 2
