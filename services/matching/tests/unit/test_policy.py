from datetime import time

import pytest

from zhumeng_contracts.events.common import WeeklySlot
from zhumeng_matching.domain.availability import covers, longest_overlap_min
from zhumeng_matching.domain.geo import cells_within, haversine_km
from zhumeng_matching.domain.index import VolunteerIndex
from zhumeng_matching.domain.policy import WEIGHTS, Load, ineligibility, rank
from zhumeng_matching.examples import EVERY_DAY, WINDOW, request, service, volunteer

pytestmark = pytest.mark.unit


def test_haversine_known_distance() -> None:
    # one degree of latitude is about 111.2 km
    assert haversine_km(25.0, 118.0, 26.0, 118.0) == pytest.approx(111.2, abs=0.3)
    assert haversine_km(25.49, 118.24, 25.49, 118.24) == 0.0


def test_cells_within_cover_the_circle() -> None:
    cells = cells_within(25.49, 118.24, 20)
    assert (254, 1182) in cells  # the point's own cell
    assert 9 <= len(cells) <= 36


def test_availability_in_local_time() -> None:
    assert longest_overlap_min(EVERY_DAY, WINDOW) == pytest.approx(120)
    evenings = [WeeklySlot(weekday=0, start=time(18), end=time(21))]
    assert not covers(evenings, WINDOW, 60)
    monday_morning = [WeeklySlot(weekday=0, start=time(10), end=time(12))]
    assert covers(monday_morning, WINDOW, 60)  # 10:00-11:00 inside the window
    assert not covers(monday_morning, WINDOW, 90)


@pytest.mark.parametrize(
    ("vol_kw", "svc_kw", "req_kw", "load", "reason"),
    [
        ({"skills": ["driving"]}, {}, {}, Load(), "missing_skill"),
        ({}, {"required_certifications": ["dentist_license"]}, {}, Load(), "missing_certification"),
        ({"radius_km": 1}, {}, {"lat": 25.6}, Load(), "out_of_radius"),
        ({"capacity": 1}, {}, {}, Load(active=1), "no_capacity"),
        ({}, {}, {"language": "minnan"}, Load(), "language"),
        ({"availability": []}, {}, {}, Load(), "not_available"),
        ({}, {}, {}, Load(), None),
    ],
)
def test_ineligibility_reasons(
    vol_kw: dict[str, object],
    svc_kw: dict[str, object],
    req_kw: dict[str, object],
    load: Load,
    reason: str | None,
) -> None:
    req = request(**req_kw)
    vol = volunteer("v1", **vol_kw)
    d = haversine_km(req.location.lat, req.location.lon, vol.home.lat, vol.home.lon)
    assert ineligibility(vol, req, service(**svc_kw), load, d) == reason


def test_rank_prefers_near_and_free_and_explains() -> None:
    near_busy = volunteer("near_busy", lon=118.241)
    near_free = volunteer("near_free", lon=118.242)
    far_free = volunteer("far_free", lon=118.40)
    loads = {"near_busy": Load(active=1, total=5), "near_free": Load(total=3)}
    ranking = rank(request(), service(), [far_free, near_busy, near_free], loads)
    # near_free 0.90 > near_busy 0.75 (half its capacity used) > far_free 0.64 (16 km away)
    assert [c.volunteer.id for c in ranking.candidates] == ["near_free", "near_busy", "far_free"]
    best = ranking.candidates[0]
    assert {p.criterion for p in best.parts} == set(WEIGHTS)
    assert best.score == pytest.approx(sum(p.contribution for p in best.parts), abs=1e-3)


def test_rank_counts_rejections() -> None:
    ranking = rank(
        request(), service(), [volunteer("a", skills=[]), volunteer("b")], {"b": Load(active=2)}
    )
    assert ranking.candidates == []
    assert ranking.rejected == {"missing_skill": 1, "no_capacity": 1}
    assert ranking.considered == 2


def test_index_finds_only_nearby_skilled_and_follows_changes() -> None:
    index = VolunteerIndex()
    index.put(volunteer("here"))
    index.put(volunteer("far", lat=27.0))
    index.put(volunteer("driver", skills=["driving"]))
    found = {v.id for v in index.nearby(25.49, 118.24, ["haircut"])}
    assert found == {"here"}
    index.on_change("here", None)
    assert index.nearby(25.49, 118.24, ["haircut"]) == []
    index.on_change("driver", volunteer("driver", skills=["driving", "haircut"], version=2))
    assert [v.id for v in index.nearby(25.49, 118.24, ["haircut"])] == ["driver"]
    assert len(index) == 2
