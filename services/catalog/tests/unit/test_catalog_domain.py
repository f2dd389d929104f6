"""Pure domain rules: tags, geography, queries, place lineage, masking, records."""

from __future__ import annotations

from datetime import time

import pytest
from pydantic import ValidationError

from zhumeng_catalog.app.pagination import BadCursor, decode_cursor, encode_cursor
from zhumeng_catalog.domain.models import (
    Place,
    ServiceType,
    Team,
    Volunteer,
    VolunteerCreate,
    changed,
    next_version,
    place_lineage,
    present_volunteer,
    records_of,
)
from zhumeng_catalog.domain.rules import Query, bounding_box, haversine_km, parse_point
from zhumeng_contracts.events import ContactRecord, VolunteerRecord
from zhumeng_kit.problems import Unprocessable

pytestmark = pytest.mark.unit


def volunteer(**over: object) -> Volunteer:
    data: dict[str, object] = {
        "id": "vol_0001",
        "name": "林美华",
        "display_name": "美华",
        "phone": "13800000001",
        "email": "vol0001@volunteers.zhumeng.example",
        "skills": ["Driving", "driving", "first aid"],
        "home_place_id": "pl_longxun_v1",
        "township_id": "pl_longxun",
        "home": {"lat": 25.5, "lon": 118.2},
        "radius_km": 10,
        "capacity": 2,
        "availability": [{"weekday": 0, "start": "08:00", "end": "20:00"}],
        "languages": ["mandarin", "minnan", "mandarin"],
    }
    data.update(over)
    return Volunteer.model_validate(data)


def test_tags_are_normalised_and_deduplicated() -> None:
    v = volunteer()
    assert v.skills == ["driving", "first_aid"]
    assert v.languages == ["mandarin", "minnan"]
    with pytest.raises(ValidationError):
        volunteer(skills=["drive!"])


def test_phone_is_cleaned_and_checked() -> None:
    assert volunteer(phone="138 0000-0001").phone == "13800000001"
    with pytest.raises(ValidationError):
        volunteer(phone="call me")


def test_haversine_and_bounding_box() -> None:
    assert haversine_km(25.0, 118.0, 25.0, 118.0) == 0
    one_degree_lat = haversine_km(25.0, 118.0, 26.0, 118.0)
    assert 110 < one_degree_lat < 112
    lat_lo, lat_hi, lon_lo, lon_hi = bounding_box(25.49, 118.24, 10)
    for lat, lon in ((lat_lo, 118.24), (lat_hi, 118.24), (25.49, lon_lo), (25.49, lon_hi)):
        assert haversine_km(25.49, 118.24, lat, lon) == pytest.approx(10, rel=1e-3)


@pytest.mark.parametrize("text", ["", "25.4", "a,b", "91,0", "0,181", "nan,1", "1,2,3"])
def test_parse_point_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_point(text)


def test_parse_point() -> None:
    assert parse_point(" 25.49 , 118.24") == (25.49, 118.24)


def test_query_matches_equality_lists_text_ranges_and_activity() -> None:
    doc = {
        "id": "a",
        "name_en": "Free Haircut",
        "name_zh": "义务理发",
        "skills": ["haircut"],
        "home": {"lat": 25.5, "lon": 118.0},
        "active": True,
    }
    assert Query.build(equals=[("skills", "haircut")]).matches(doc)
    assert not Query.build(equals=[("skills", "driving")]).matches(doc)
    assert Query.build(equals=[("skills", None)]).matches(doc)  # None = no filter
    assert Query.build(text=(("name_en", "name_zh"), "HAIR")).matches(doc)
    assert Query.build(text=(("name_en", "name_zh"), "理发")).matches(doc)
    assert not Query.build(text=(("name_en",), "dental")).matches(doc)
    assert Query.build(ranges=[("home.lat", 25, 26)]).matches(doc)
    assert not Query.build(ranges=[("home.lon", 118.1, 119)]).matches(doc)
    inactive = {**doc, "active": False}
    assert not Query.build().matches(inactive)
    assert Query.build(active_only=False).matches(inactive)


def _place(pid: str, kind: str, active: bool = True) -> Place:
    return Place(
        id=pid,
        kind=kind,
        name_zh="x",
        name_en="x",
        active=active,
        location={"lat": 25.5, "lon": 118.2},
    )


def test_place_lineage() -> None:
    county, town = _place("pl_county", "county"), _place("pl_t", "township")
    assert place_lineage("pl_county", "county", None) == {"parent_id": None, "township_id": None}
    assert place_lineage("pl_t", "township", county) == {
        "parent_id": "pl_county",
        "township_id": "pl_t",
    }
    assert place_lineage("pl_v", "village", town) == {"parent_id": "pl_t", "township_id": "pl_t"}
    with pytest.raises(Unprocessable):
        place_lineage("pl_v", "village", None)
    with pytest.raises(Unprocessable):
        place_lineage("pl_v", "village", _place("pl_v0", "village"))
    with pytest.raises(Unprocessable):
        place_lineage("pl_v", "village", _place("pl_t", "township", active=False))
    with pytest.raises(Unprocessable):
        place_lineage("pl_t", "township", town)
    with pytest.raises(Unprocessable):
        place_lineage("pl_c", "county", county)


def test_volunteer_record_carries_no_contact_details() -> None:
    v = volunteer()
    rec = v.to_record()
    assert isinstance(rec, VolunteerRecord)
    dumped = rec.model_dump_json()
    assert "1380000" not in dumped and "@" not in dumped and "林美华" not in dumped
    contact = v.to_contact()
    assert isinstance(contact, ContactRecord)
    assert (contact.phone, contact.name, contact.version) == ("13800000001", "林美华", 1)


def test_records_of_volunteer_includes_contact_only_when_it_changed() -> None:
    v1 = volunteer()
    assert [type(r) for r in records_of(v1)] == [VolunteerRecord, ContactRecord]
    v2 = next_version(v1, {"radius_km": 20})
    assert v2.version == 2
    assert [type(r) for r in records_of(v2, v1)] == [VolunteerRecord]
    v3 = next_version(v2, {"phone": "13800000002"})
    assert [type(r) for r in records_of(v3, v2)] == [VolunteerRecord, ContactRecord]
    v4 = next_version(v3, {"active": False})
    recs = records_of(v4, v3)
    assert all(not r.active for r in recs) and len(recs) == 2  # type: ignore[attr-defined]


def test_version_bump_and_change_detection() -> None:
    st = ServiceType(
        id="haircut",
        name_zh="义务理发",
        name_en="Haircut",
        category="care",
        default_duration_min=45,
        target_claim_min=60,
    )
    same = next_version(st, {"name_en": "Haircut"})
    assert same.version == 2 and not changed(st, same)
    other = next_version(st, {"target_claim_min": 30})
    assert changed(st, other) and other.to_record().version == 2
    with pytest.raises(Unprocessable):
        next_version(st, {"default_duration_min": 1})


def test_masking_depends_on_the_caller() -> None:
    v = volunteer()
    admin = present_volunteer(v, "adm_1", frozenset({"admin"}))
    assert admin["phone"] == "13800000001" and admin["name"] == "林美华"
    me = present_volunteer(v, "vol_0001", frozenset({"volunteer"}))
    assert me["phone"] == "13800000001" and me["email"].startswith("vol0001@")
    coord = present_volunteer(v, "co_1", frozenset({"coordinator"}))
    assert coord["phone"] == "138****0001" and coord["email"] == "v***@volunteers.zhumeng.example"
    assert coord["name"] == "林美华"
    other = present_volunteer(v, "vol_0002", frozenset({"volunteer"}))
    assert other["phone"] == "138****0001" and other["name"] is None
    assert other["display_name"] == "美华"
    assert "home_from_place" not in other


def test_team_lead_is_a_member() -> None:
    t = Team(id="team_x", name="X", lead_volunteer_id="vol_0003", member_ids=["vol_0001"])
    assert t.member_ids == ["vol_0003", "vol_0001"]
    assert t.to_record().lead_volunteer_id == "vol_0003"


def test_inputs_reject_unknown_fields_and_bad_ids() -> None:
    base = {"name": "A B", "display_name": "B", "home_place_id": "pl_x"}
    VolunteerCreate.model_validate(base)
    with pytest.raises(ValidationError):
        VolunteerCreate.model_validate({**base, "favourite_colour": "red"})
    with pytest.raises(ValidationError):
        VolunteerCreate.model_validate({**base, "id": "Bad Id!"})
    with pytest.raises(ValidationError):
        VolunteerCreate.model_validate(
            {**base, "availability": [{"weekday": 1, "start": "20:00", "end": "08:00"}]}
        )


def test_weekly_slots_round_trip_through_state() -> None:
    v = volunteer()
    assert v.availability[0].start == time(8)
    again = Volunteer.model_validate(v.model_dump(mode="json"))
    assert again == v


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor(encode_cursor({"a": "vol_0001", "d": 1.5})) == {"a": "vol_0001", "d": 1.5}
    assert decode_cursor(None) == {}
    for bad in ("!!!", "e30", encode_cursor({"a": 3}), encode_cursor({"a": "x", "d": "y"})):
        with pytest.raises(BadCursor):
            decode_cursor(bad)
