"""The index's best-first search against the straightforward `policy.rank` over `nearby`: the
same candidates, scores, distances, explanations and order, on a seeded county."""

import random
from datetime import time, timedelta

import pytest

from zhumeng_contracts.events import RequestPosted, VolunteerRecord
from zhumeng_contracts.events.common import TimeWindow, WeeklySlot
from zhumeng_matching.domain.index import VolunteerIndex
from zhumeng_matching.domain.policy import (
    Candidate,
    Load,
    VolunteerStats,
    rank,
    score,
    score_total,
)
from zhumeng_matching.examples import EVERY_DAY, WINDOW, request, service, volunteer

pytestmark = pytest.mark.unit

SERVICES = {
    s.id: s
    for s in [
        service(),
        service(id="care_visit", required_skills=["care_visit"], default_duration_min=90),
        service(id="ride", required_skills=["driving"], required_certifications=["driver_license"]),
        service(id="two_skills", required_skills=["care_visit", "cooking"]),
        service(id="anyone", required_skills=[], default_duration_min=30),
        service(
            id="dental",
            required_skills=["dental"],
            required_certifications=["dentist_license"],
            default_duration_min=180,
        ),
    ]
}
TOWNS = [(25.49, 118.24), (25.47, 118.29), (25.64, 118.25), (25.82, 118.20)]
SCHEDULES = [
    EVERY_DAY,
    [WeeklySlot(weekday=d, start=time(18), end=time(21)) for d in range(5)],
    [WeeklySlot(weekday=d, start=time(8), end=time(12)) for d in range(7)],
    [WeeklySlot(weekday=d, start=time(9), end=time(17)) for d in (5, 6)],
    [],
]
WINDOWS = [
    TimeWindow(
        start=WINDOW.start + timedelta(days=d, hours=h), end=WINDOW.end + timedelta(days=d, hours=h)
    )
    for d in (0, 2, 5)
    for h in (0, 10)
]


Stats = dict[str, VolunteerStats]


def county(
    n_vols: int, n_reqs: int, seed: int
) -> tuple[list[VolunteerRecord], dict[str, Load], list[RequestPosted], Stats]:
    """Seeded volunteers around a few towns (some on the same spot, to exercise ties), some on
    leave, with loads that leave some at full capacity, histories from newcomers to veterans,
    and requests of every kind."""
    rng = random.Random(seed)

    def place() -> tuple[float, float]:
        if rng.random() < 0.2:
            return rng.uniform(25.38, 25.95), rng.uniform(118.0, 118.55)
        lat, lon = rng.choice(TOWNS)
        return lat + rng.gauss(0, 0.03), lon + rng.gauss(0, 0.03)

    vols = []
    spots: list[tuple[float, float]] = []
    for i in range(n_vols):
        lat, lon = rng.choice(spots) if spots and rng.random() < 0.05 else place()
        spots.append((lat, lon))
        skills = [
            s
            for s, p in [
                ("haircut", 0.3),
                ("care_visit", 0.3),
                ("driving", 0.2),
                ("cooking", 0.2),
                ("dental", 0.01),
            ]
            if rng.random() < p
        ]
        certs = []
        if "driving" in skills and rng.random() < 0.8:
            certs.append("driver_license")
        if "dental" in skills:
            certs.append("dentist_license")
        away = rng.choice(WINDOWS)
        leave = [
            TimeWindow(
                start=away.start - timedelta(hours=rng.choice([0, 1, 24])),
                end=away.start + timedelta(minutes=rng.choice([30, 90, 600])),
            )
        ]
        vols.append(
            volunteer(
                f"v{i:05d}",
                lat=lat,
                lon=lon,
                skills=skills,
                certifications=certs,
                radius_km=rng.choice([1.5, 3, 5, 8, 10, 12.5, 20, 30, 45]),
                availability=rng.choice(SCHEDULES),
                capacity=rng.choice([1, 1, 2, 3]),
                languages=["mandarin", "minnan"] if rng.random() < 0.5 else ["mandarin"],
                unavailable=leave if rng.random() < 0.15 else [],
            )
        )
    stats: Stats = {}
    for v in vols:
        if rng.random() < 0.6:
            done = rng.choice([1, 2, 3, 4, 10, 40])
            rated = rng.randint(0, done)
            stats[v.id] = VolunteerStats(
                completed=done,
                recent_hours=rng.choice([0.0, 1.5, 6.0, 12.25, 30.0]),
                by_type={t: rng.randint(0, done) for t in rng.sample(list(SERVICES), 2)},
                stars_sum=float(sum(rng.randint(3, 5) for _ in range(rated))),
                stars_n=rated,
            )
    loads = {}
    for v in vols:
        x = rng.random()
        if x < 0.15:  # full: like a volunteer who cannot take more (or just declined)
            loads[v.id] = Load(active=v.capacity, total=v.capacity + rng.randint(0, 5))
        elif x < 0.35:
            loads[v.id] = Load(active=rng.randint(0, v.capacity - 1), total=rng.randint(1, 9))
    reqs = []
    for i in range(n_reqs):
        lat, lon = place()
        reqs.append(
            request(
                lat=lat,
                lon=lon,
                request_id=f"r{i:04d}",
                service_type_id=rng.choice(list(SERVICES)),
                window=rng.choice(WINDOWS),
                language="minnan" if rng.random() < 0.2 else None,
            )
        )
    return vols, loads, reqs, stats


def index_of(vols: list[VolunteerRecord], stats: Stats | None = None) -> VolunteerIndex:
    index = VolunteerIndex()
    for vid, st in (stats or {}).items():  # histories may be known before the record
        if vid[-1] in "13579":
            index.set_stats(vid, st)
    for v in vols:
        index.put(v)
    for vid, st in (stats or {}).items():
        index.set_stats(vid, st)
    return index


def full(index: VolunteerIndex, r: RequestPosted, loads: dict[str, Load]):  # type: ignore[no-untyped-def]
    svc = SERVICES[r.service_type_id]
    near = index.nearby(r.location.lat, r.location.lon, svc.required_skills)
    return rank(r, svc, near, loads, index.stats())


def same(a: list[Candidate], b: list[Candidate]) -> None:
    assert [(c.volunteer.id, c.score, c.distance_km, c.parts) for c in a] == [
        (c.volunteer.id, c.score, c.distance_km, c.parts) for c in b
    ]


@pytest.fixture(scope="module")
def seeded() -> tuple[list[VolunteerRecord], dict[str, Load], list[RequestPosted], VolunteerIndex]:
    vols, loads, reqs, stats = county(3000, 400, seed=17)
    return vols, loads, reqs, index_of(vols, stats)


def test_best_is_what_rank_puts_first(seeded) -> None:  # type: ignore[no-untyped-def]
    _vols, loads, reqs, index = seeded
    matched = 0
    for r in reqs:
        expected = full(index, r, loads).candidates
        for k in (1, 5):
            same(index.best(r, SERVICES[r.service_type_id], loads, k).candidates, expected[:k])
        matched += bool(expected)
    assert 0.5 * len(reqs) < matched < len(reqs)  # both outcomes are exercised


def test_search_all_and_with_load_columns_match_rank(seeded) -> None:  # type: ignore[no-untyped-def]
    _vols, loads, reqs, index = seeded
    columns = index.load_columns(loads)
    for r in reqs[:150]:
        svc = SERVICES[r.service_type_id]
        expected = [
            (c.volunteer.id, c.score, c.distance_km) for c in full(index, r, loads).candidates
        ]
        everyone = index.search(r, svc, loads, None)
        assert everyone.complete
        assert [(h.vol.id, h.score, h.distance_km) for h in everyone.found] == expected
        for k in (3, 24):
            hits = index.search(r, svc, loads, k, columns)
            assert [(h.vol.id, h.score, h.distance_km) for h in hits.found] == expected[:k]
            assert hits.complete == (len(expected) < k)


def test_full_rank_counts_the_same_reasons(seeded) -> None:  # type: ignore[no-untyped-def]
    _vols, loads, reqs, index = seeded
    reasons: set[str] = set()
    for r in reqs[:120]:
        expected = full(index, r, loads)
        got = index.full_rank(r, SERVICES[r.service_type_id], loads)
        assert dict(got.rejected) == dict(expected.rejected)
        assert got.considered == expected.considered
        same(got.candidates, expected.candidates)
        reasons |= set(got.rejected)
    assert {"no_capacity", "not_available", "unavailable", "out_of_radius"} <= reasons


def test_the_index_own_load_table_and_history_follow_changes() -> None:
    vols, loads, reqs, stats = county(800, 60, seed=8)
    index = index_of(vols, stats)
    index.loads.update(loads)  # the load cache the service shares with the index
    rng = random.Random(4)
    for v in rng.sample(vols, 150):
        x = rng.random()
        if x < 0.3:
            index.loads[v.id] = Load(active=rng.randint(0, v.capacity), total=9)
        elif x < 0.4:
            index.loads.pop(v.id, None)
        elif x < 0.7:
            index.set_stats(v.id, VolunteerStats(completed=rng.randint(0, 9), recent_hours=3.0))
        else:
            index.set_stats(v.id, VolunteerStats(by_type={"haircut": 4}, stars_sum=5, stars_n=1))
    own = dict(index.loads)
    for r in reqs:
        svc = SERVICES[r.service_type_id]
        expected = full(index, r, own)
        same(index.best(r, svc, index.loads, 5).candidates, expected.candidates[:5])
        got = index.full_rank(r, svc, index.loads)
        assert dict(got.rejected) == dict(expected.rejected)
        same(got.candidates, expected.candidates)


@pytest.mark.parametrize("searched_before", [False, True])
def test_index_follows_changes(searched_before: bool) -> None:
    """Changes before the first search (grids built afterwards) and after it (grids kept
    sorted by inserting and deleting)."""
    vols, loads, reqs, stats = county(800, 80, seed=5)
    index = index_of(vols, stats)
    if searched_before:
        for r in reqs:
            index.best(r, SERVICES[r.service_type_id], loads, 5)
            index.full_rank(r, SERVICES[r.service_type_id], loads)
    rng = random.Random(9)
    for v in rng.sample(vols, 200):  # move, change radius band, skills; or leave
        if rng.random() < 0.3:
            index.on_change(v.id, None)
            continue
        moved = v.model_copy(
            update={
                "home": v.home.model_copy(update={"lat": v.home.lat + rng.uniform(-0.1, 0.1)}),
                "radius_km": rng.choice([2, 7, 25]),
                "skills": rng.choice([["haircut"], ["care_visit", "cooking"], []]),
                "version": v.version + 1,
            }
        )
        index.on_change(v.id, moved)
    index.on_change("new", volunteer("new", radius_km=4))
    for r in reqs:
        svc = SERVICES[r.service_type_id]
        expected = full(index, r, loads)
        same(index.best(r, svc, loads, 5).candidates, expected.candidates[:5])
        got = index.full_rank(r, svc, loads)
        assert dict(got.rejected) == dict(expected.rejected)
        assert got.considered == expected.considered
        same(got.candidates, expected.candidates)
    assert len(index) == len(index.all())


def test_score_total_is_score_without_parts() -> None:
    vols, loads, reqs, stats = county(300, 40, seed=3)
    for r in reqs:
        for v in vols:
            load = loads.get(v.id, Load())
            d = random.Random(v.id).uniform(0, v.radius_km)
            st = stats.get(v.id, VolunteerStats())
            assert score_total(v, r, load, d, st) == score(v, r, load, d, st)[0]


def test_no_candidate_when_a_skill_or_language_is_unknown() -> None:
    index = index_of([volunteer("a")])
    r = request()
    assert index.best(r, service(required_skills=["juggling"]), {}).candidates == []
    assert index.best(r, service(required_certifications=["pilot"]), {}).candidates == []
    assert [c.volunteer.id for c in index.best(r, service(), {}).candidates] == ["a"]
    assert index.best(request(language="english"), service(), {}).candidates == []


def test_a_window_no_schedule_covers_has_no_candidate_and_its_reasons() -> None:
    mornings = [WeeklySlot(weekday=d, start=time(8), end=time(12)) for d in range(7)]
    vols = [volunteer(f"v{i}", availability=mornings) for i in range(3)]
    vols.append(volunteer("far", lat=26.5, availability=mornings))
    index = index_of(vols)
    evening = TimeWindow(
        start=WINDOW.start + timedelta(hours=10), end=WINDOW.end + timedelta(hours=10)
    )
    r = request(window=evening)
    assert index.best(r, service(), {}).candidates == []
    got = index.full_rank(r, service(), {})
    assert (got.candidates, dict(got.rejected)) == ([], {"not_available": 3})
    assert [c.volunteer.id for c in index.best(request(), service(), {}).candidates] == [
        "v0",
        "v1",
        "v2",
    ]


def test_a_pool_gives_each_request_the_hits_of_its_search(seeded) -> None:  # type: ignore[no-untyped-def]
    _vols, loads, reqs, index = seeded
    columns = index.load_columns(loads)
    pools = {}
    for r in reqs[:200]:
        svc = SERVICES[r.service_type_id]
        key = (r.service_type_id, r.window.start, r.language)
        if key not in pools:
            pools[key] = index.pool(r, svc, loads, columns)
        pool = pools[key]
        for k in (1, 12, None):
            want = index.search(r, svc, loads, k, columns)
            got = index.search_pool(pool, r, k) if pool is not None else None
            if got is None:
                assert want.found == []
                continue
            assert [(h.vol.id, h.score, h.distance_km, h.values) for h in got.found] == [
                (h.vol.id, h.score, h.distance_km, h.values) for h in want.found
            ]
            assert got.complete == want.complete
    assert len(pools) < 150  # requests did share pools


def test_a_class_first_seen_after_searches_is_found() -> None:
    """The memoised table of (schedule, languages, certifications) classes grows with a
    volunteer whose combination is new."""
    vols, loads, reqs, stats = county(300, 60, seed=23)
    index = index_of(vols, stats)
    saturday_window = TimeWindow(
        start=WINDOW.start + timedelta(days=5), end=WINDOW.end + timedelta(days=5)
    )
    asked = [
        request(window=saturday_window, language=lang, service_type_id="ride")
        for lang in (None, "english")
    ]
    for r in [*reqs, *asked]:  # fills the class table of every window and mask asked
        index.best(r, SERVICES[r.service_type_id], loads, 5)
    newcomer = volunteer(
        "zz_new",
        skills=["driving"],
        certifications=["driver_license", "first_aid"],
        languages=["mandarin", "english"],
        availability=[WeeklySlot(weekday=5, start=time(6), end=time(23))],  # nobody's
    )
    index.on_change(newcomer.id, newcomer)
    for r in asked:
        expected = full(index, r, loads).candidates
        same(index.best(r, SERVICES["ride"], loads, 5).candidates, expected[:5])
        assert "zz_new" in [c.volunteer.id for c in expected[:5]]
