import math
import random
from datetime import time, timedelta

import pytest

from zhumeng_contracts.events.common import TimeWindow, WeeklySlot
from zhumeng_matching.domain.availability import covers, covers_despite, longest_overlap_min
from zhumeng_matching.domain.geo import cells_within, haversine_km
from zhumeng_matching.domain.index import VolunteerIndex
from zhumeng_matching.domain.policy import (
    WEIGHTS,
    Load,
    VolunteerStats,
    effective_capacity,
    experience_figure,
    explain,
    ineligibility,
    newcomer_figure,
    rank,
    rating_figure,
    recent_hours_figure,
    round4,
    score,
    shrunk_stars,
    total_of,
    workload_figure,
)
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
        ({"unavailable": [WINDOW]}, {}, {}, Load(), "unavailable"),
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
    seasoned = VolunteerStats(completed=3)
    stats = {v: seasoned for v in ("near_busy", "near_free", "far_free")}
    ranking = rank(request(), service(), [far_free, near_busy, near_free], loads, stats)
    # near_free 0.77 > near_busy 0.70 (half its capacity used) > far_free 0.49 (16 km away)
    assert [c.volunteer.id for c in ranking.candidates] == ["near_free", "near_busy", "far_free"]
    best = ranking.candidates[0]
    assert [p.criterion for p in best.parts] == list(WEIGHTS)
    assert best.score == pytest.approx(sum(p.contribution for p in best.parts), abs=1e-3)
    for p in best.parts:
        assert 0 <= p.value <= 1 and p.contribution == pytest.approx(p.value * p.weight, abs=1e-4)


def test_weights_sum_to_one() -> None:
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)
    assert all(w > 0 for w in WEIGHTS.values())


def test_schedule_exceptions_remove_only_what_they_cover() -> None:
    hour = timedelta(hours=1)
    start = WINDOW.start  # Monday 09:00-11:00 local, every-day schedule 08:00-20:00
    first_hour = TimeWindow(start=start, end=start + hour)
    middle = TimeWindow(start=start + 0.5 * hour, end=start + 1.5 * hour)
    assert covers_despite(EVERY_DAY, [], WINDOW, 60)
    assert covers_despite(EVERY_DAY, [first_hour], WINDOW, 60)  # 10:00-11:00 is free
    assert not covers_despite(EVERY_DAY, [first_hour], WINDOW, 90)
    assert not covers_despite(EVERY_DAY, [middle], WINDOW, 60)  # 30 min free either side
    assert covers_despite(EVERY_DAY, [middle], WINDOW, 30)
    last_week = TimeWindow(start=start - 7 * 24 * hour, end=start - 6 * 24 * hour)
    assert covers_despite(EVERY_DAY, [last_week], WINDOW, 120)


def test_workload_spread() -> None:
    assert workload_figure(0, 2) == 1.0
    assert workload_figure(1, 2) == 0.5
    assert workload_figure(2, 2) == 0.0


def test_recent_hours_fewer_is_better_and_saturates() -> None:
    assert recent_hours_figure(0) == 1.0
    assert recent_hours_figure(5) == 0.75
    assert recent_hours_figure(10) > recent_hours_figure(15) > recent_hours_figure(19)
    assert recent_hours_figure(20) == recent_hours_figure(80) == 0.0


def test_experience_with_the_service_type_saturates() -> None:
    assert experience_figure(0) == 0.0
    assert experience_figure(1) == 0.2
    assert experience_figure(5) == experience_figure(50) == 1.0
    st = VolunteerStats(completed=7, by_type={"haircut": 6, "ride": 1})
    assert st.experience("haircut") == 6 and st.experience("care_visit") == 0


def test_rating_is_shrunk_towards_the_prior() -> None:
    assert shrunk_stars(0, 0) == 4.0  # nobody rated yet: the prior
    assert rating_figure(0, 0) == 0.75
    one_five = rating_figure(5, 1)
    forty_good = rating_figure(40 * 4.8, 40)
    assert one_five < forty_good  # one 5-star is not better than forty 4.8s
    assert rating_figure(1, 1) < rating_figure(0, 0) < one_five
    assert rating_figure(5 * 1000, 1000) == pytest.approx(1.0, abs=1e-2)
    assert 0 <= rating_figure(1 * 1000, 1000) < 0.01


def test_newcomers_get_a_boost_and_are_protected_from_overload() -> None:
    assert [newcomer_figure(n) for n in (0, 3, 9)] == [1.0, 0.0, 0.0]
    assert newcomer_figure(0) > newcomer_figure(1) > newcomer_figure(2) > 0
    assert [effective_capacity(3, n) for n in (0, 1, 2, 3, 10)] == [1, 1, 1, 3, 3]
    vol, req = volunteer("v", capacity=3), request()
    busy = Load(active=1, total=1)
    assert ineligibility(vol, req, service(), busy, 0.0) == "no_capacity"
    assert ineligibility(vol, req, service(), busy, 0.0, VolunteerStats(completed=3)) is None
    # the candidate's record carries the effective capacity: reservations enforce the rule
    (c,) = rank(req, service(), [vol], {}).candidates
    assert c.volunteer.capacity == 1


def test_each_criterion_moves_the_score_and_is_explained() -> None:
    vol, req = volunteer("v", capacity=3), request()
    base = VolunteerStats(completed=3, recent_hours=10, stars_sum=8.0, stars_n=2)

    def value(stats: VolunteerStats, criterion: str) -> float:
        _, parts = score(vol, req, Load(), 1.0, stats)
        return next(p.value for p in parts if p.criterion == criterion)

    total = score(vol, req, Load(), 1.0, base)[0]
    better = [
        (VolunteerStats(completed=3, recent_hours=2, stars_sum=8.0, stars_n=2), "recent_hours"),
        (
            VolunteerStats(
                completed=3, recent_hours=10, stars_sum=8.0, stars_n=2, by_type={"haircut": 2}
            ),
            "experience",
        ),
        (VolunteerStats(completed=3, recent_hours=10, stars_sum=10.0, stars_n=2), "rating"),
    ]
    for stats, criterion in better:
        assert value(stats, criterion) > value(base, criterion)
        assert score(vol, req, Load(), 1.0, stats)[0] > total


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


def test_explain_is_the_rounded_figures_and_their_sum() -> None:
    """`explain` inlines the rounding: the same floats as `round4` and `total_of`, ties too."""
    rng = random.Random(11)
    weights = list(WEIGHTS.values())
    ties = [0.00005, 0.00015, 0.12345, 0.99995, 1 / 3, 2 / 3, 0.0, 1.0]
    for _ in range(3000):
        values = [rng.choice(ties) if rng.random() < 0.3 else rng.random() for _ in weights]
        total, parts = explain(values)
        assert total == total_of(values)
        assert [(p.criterion, p.value, p.weight, p.contribution) for p in parts] == [
            (c, round4(v), w, round4(v * w))
            for c, v, w in zip(WEIGHTS, values, weights, strict=True)
        ]
        assert all(math.copysign(1.0, p.value) == 1.0 for p in parts)  # never -0.0
