"""Batch mode: one min-cost assignment over pending requests, compared with greedy."""

import itertools
import random
from datetime import time, timedelta

import pytest

from zhumeng_contracts.events import RequestPosted, VolunteerRecord
from zhumeng_contracts.events.common import TimeWindow, WeeklySlot
from zhumeng_matching.domain.batch import BatchResult, assign_batch, assign_greedy, cost_matrix
from zhumeng_matching.domain.geo import haversine_km
from zhumeng_matching.domain.index import VolunteerIndex
from zhumeng_matching.domain.policy import Load, VolunteerStats, ineligibility, score
from zhumeng_matching.examples import EVERY_DAY, WINDOW, request, service, volunteer

pytestmark = pytest.mark.unit

SERVICES = {
    "haircut": service(),
    "care_visit": service(id="care_visit", required_skills=["care_visit"], default_duration_min=90),
    "ride": service(
        id="ride", required_skills=["driving"], required_certifications=["driver_license"]
    ),
}
MORNINGS = [WeeklySlot(weekday=d, start=time(8), end=time(12)) for d in range(7)]
EVENINGS = [WeeklySlot(weekday=d, start=time(18), end=time(21)) for d in range(5)]
EVENING = TimeWindow(start=WINDOW.start + timedelta(hours=10), end=WINDOW.end + timedelta(hours=10))


def dehua(
    n_requests: int = 60, n_volunteers: int = 150, seed: int = 7
) -> tuple[list[RequestPosted], list[VolunteerRecord], dict[str, Load]]:
    """A fixed, seeded town around Longxun (Dehua, 25.49N 118.24E)."""
    rng = random.Random(seed)
    vols = []
    for i in range(n_volunteers):
        skills = rng.sample(["haircut", "care_visit", "driving"], rng.choice([1, 1, 2]))
        vols.append(
            volunteer(
                f"v{i:03d}",
                lat=25.49 + rng.uniform(-0.08, 0.08),
                lon=118.24 + rng.uniform(-0.08, 0.08),
                skills=skills,
                certifications=["driver_license"] if rng.random() < 0.7 else [],
                radius_km=rng.choice([5, 8, 10, 15, 20]),
                availability=rng.choice([EVERY_DAY, MORNINGS, EVENINGS, []]),
                capacity=rng.choice([1, 1, 2, 3]),
                languages=["mandarin", "minnan"] if rng.random() < 0.5 else ["mandarin"],
            )
        )
    loads = {
        v.id: Load(active=min(v.capacity, rng.choice([0, 1])), total=rng.choice([0, 2]))
        for v in rng.sample(vols, 40)
    }
    reqs = [
        request(
            lat=25.49 + rng.uniform(-0.07, 0.07),
            lon=118.24 + rng.uniform(-0.07, 0.07),
            request_id=f"r{i:03d}",
            service_type_id=rng.choice(list(SERVICES)),
            window=rng.choice([WINDOW, WINDOW, EVENING]),
            language="minnan" if rng.random() < 0.2 else None,
        )
        for i in range(n_requests)
    ]
    return reqs, vols, loads


def history(v: VolunteerRecord) -> VolunteerStats:
    """A seeded history per volunteer: newcomers (capacity 1) and experienced ones."""
    rng = random.Random(v.id)
    done = rng.choice([0, 1, 3, 8, 20])
    return VolunteerStats(
        completed=done,
        recent_hours=rng.uniform(0, 30) if done else 0.0,
        by_type={"haircut": done // 2} if done else {},
        stars_sum=4.5 * (done // 2),
        stars_n=done // 2,
    )


def index_of(
    vols: list[VolunteerRecord], stats: dict[str, VolunteerStats] | None = None
) -> VolunteerIndex:
    index = VolunteerIndex()
    for v in vols:
        index.put(v)
        index.set_stats(v.id, history(v) if stats is None else stats.get(v.id, VolunteerStats()))
    return index


def check_valid(
    result: BatchResult,
    reqs: list[RequestPosted],
    vols: list[VolunteerRecord],
    loads: dict[str, Load],
) -> None:
    """Every assignment eligible at the load before the batch; capacity never exceeded; every
    request answered exactly once; the figures add up."""
    by_id = {v.id: v for v in vols}
    by_req = {r.request_id: r for r in reqs}
    answered = [a.request_id for a in result.assignments] + result.unassigned
    assert sorted(answered) == sorted(by_req)
    taken: dict[str, int] = {}
    for a in result.assignments:
        vol, req = by_id[a.volunteer_id], by_req[a.request_id]
        d = haversine_km(req.location.lat, req.location.lon, vol.home.lat, vol.home.lon)
        load = loads.get(vol.id, Load())
        assert ineligibility(vol, req, SERVICES[req.service_type_id], load, d, history(vol)) is None
        assert a.cost == pytest.approx(1 - a.score)
        assert a.score == pytest.approx(sum(p.contribution for p in a.parts), abs=1e-4)
        taken[vol.id] = taken.get(vol.id, 0) + 1
    for vid, n in taken.items():
        cap = by_id[vid].capacity if history(by_id[vid]).completed >= 3 else 1
        assert loads.get(vid, Load()).active + n <= cap
    assert result.total_cost == pytest.approx(sum(a.cost for a in result.assignments), abs=1e-3)


def test_batch_is_never_worse_than_greedy_on_a_seeded_town() -> None:
    reqs, vols, loads = dehua()
    index = index_of(vols)
    batch = assign_batch(reqs, SERVICES, index, loads)
    greedy = assign_greedy(reqs, SERVICES, index, loads)
    check_valid(batch, reqs, vols, loads)
    check_valid(greedy, reqs, vols, loads)
    assert batch.assigned >= greedy.assigned
    assert batch.total_cost <= greedy.total_cost + 1e-9
    # requests compete for the same volunteers here, so batch does strictly better
    assert batch.assigned > greedy.assigned or batch.total_cost < greedy.total_cost
    # pruning to the best candidates loses nothing here: same as the unpruned optimum
    exact = assign_batch(reqs, SERVICES, index, loads, max_candidates=None)
    assert exact.assigned == batch.assigned
    assert exact.total_cost == pytest.approx(batch.total_cost, abs=1e-6)


def test_hand_made_two_by_two_where_greedy_is_worse() -> None:
    # A sits on r1; B is 1.1 km north of it. r2 lies 11 km south: A (radius 20) reaches it
    # well, B (radius 13) only just. Greedy lets r1 take A, leaving B for r2.
    a = volunteer("A", lat=25.49, radius_km=20, capacity=1)
    b = volunteer("B", lat=25.50, radius_km=13, capacity=1)
    r1 = request(request_id="r1", lat=25.49)
    r2 = request(request_id="r2", lat=25.39)
    reqs, vols = [r1, r2], [a, b]
    index = index_of(vols, {})

    def cost(r: RequestPosted, v: VolunteerRecord) -> float:
        d = haversine_km(r.location.lat, r.location.lon, v.home.lat, v.home.lon)
        assert ineligibility(v, r, SERVICES["haircut"], Load(), d) is None
        return 1 - score(v, r, Load(), d)[0]

    best = min((cost(r1, x) + cost(r2, y), x.id, y.id) for x, y in itertools.permutations(vols, 2))
    greedy = assign_greedy(reqs, SERVICES, index, {})
    batch = assign_batch(reqs, SERVICES, index, {})
    assert greedy.volunteer_of() == {"r1": "A", "r2": "B"}
    assert batch.volunteer_of() == {"r1": best[1], "r2": best[2]} == {"r1": "B", "r2": "A"}
    assert batch.total_cost == pytest.approx(best[0], abs=1e-4)
    assert batch.total_cost < greedy.total_cost - 0.1


def test_batch_assigns_more_when_greedy_blocks_the_only_candidate() -> None:
    a = volunteer("A", lat=25.49, radius_km=20, capacity=1)
    b = volunteer("B", lat=25.50, radius_km=5, capacity=1)  # cannot reach r2
    reqs = [request(request_id="r1", lat=25.49), request(request_id="r2", lat=25.39)]
    index = index_of([a, b], {})
    assert assign_greedy(reqs, SERVICES, index, {}).unassigned == ["r2"]
    batch = assign_batch(reqs, SERVICES, index, {})
    assert batch.volunteer_of() == {"r1": "B", "r2": "A"}
    assert batch.unassigned == []


def test_capacity_is_respected_and_each_unit_is_scored_at_its_load() -> None:
    v = volunteer("V", capacity=3)
    reqs = [request(request_id=f"r{i}") for i in range(4)]
    index = index_of([v], {"V": VolunteerStats(completed=3)})
    loads = {"V": Load(active=1, total=5)}  # two units free
    for result in (
        assign_batch(reqs, SERVICES, index, loads),
        assign_greedy(reqs, SERVICES, index, loads),
    ):
        assert result.assigned == 2
        assert len(result.unassigned) == 2
        fairness = [
            next(p.value for p in a.parts if p.criterion == "fairness") for a in result.assignments
        ]
        assert fairness == [pytest.approx(1 - 1 / 3, abs=1e-4), pytest.approx(1 - 2 / 3, abs=1e-4)]
    assert assign_greedy(reqs, SERVICES, index, loads).unassigned == ["r2", "r3"]
    # a full volunteer gets nothing
    full = assign_batch(reqs, SERVICES, index, {"V": Load(active=3, total=3)})
    assert full.assigned == 0


def test_a_newcomer_takes_one_request_of_a_batch() -> None:
    v = volunteer("V", capacity=3)  # no completion yet: one assignment at a time
    reqs = [request(request_id=f"r{i}") for i in range(3)]
    for stats, assigned in (({}, 1), ({"V": VolunteerStats(completed=2)}, 1)):
        index = index_of([v], stats)
        assert assign_batch(reqs, SERVICES, index, {}).assigned == assigned
        assert assign_greedy(reqs, SERVICES, index, {}).assigned == assigned


def test_ineligible_pairs_are_never_assigned_nor_in_the_matrix() -> None:
    reqs = [
        request(request_id="skill", service_type_id="care_visit"),
        request(request_id="lang", language="minnan"),
        request(request_id="far", lat=25.80),
        request(request_id="evening", window=EVENING),
        request(request_id="unknown_service", service_type_id="nope"),
    ]
    vols = [volunteer("V", capacity=5, availability=MORNINGS)]  # haircut, mandarin, mornings
    index = index_of(vols)
    costs, _ = cost_matrix(reqs, SERVICES, index, {})
    assert costs.nnz == 0
    for fn in (assign_batch, assign_greedy):
        result = fn(reqs, SERVICES, index, {})
        assert result.assigned == 0
        assert result.unassigned == [r.request_id for r in reqs]


def test_cost_matrix_holds_one_minus_score_for_eligible_pairs_only() -> None:
    reqs, vols, loads = dehua(20, 60, seed=3)
    index = index_of(vols)
    costs, pairs = cost_matrix(reqs, SERVICES, index, loads, max_candidates=None)
    by_id = {v.id: v for v in vols}
    coo = costs.tocoo()
    seen = set()
    for i, c, w in zip(coo.row, coo.col, coo.data, strict=True):
        req = reqs[i]
        vid, unit = pairs[c]
        vol = by_id[vid]
        base = loads.get(vid, Load())
        d = haversine_km(req.location.lat, req.location.lon, vol.home.lat, vol.home.lon)
        st = history(vol)
        assert ineligibility(vol, req, SERVICES[req.service_type_id], base, d, st) is None
        s, _ = score(vol, req, Load(base.active + unit, base.total + unit), d, st)
        assert w - 1 == pytest.approx(1 - s)
        seen.add((i, vid))
    # every eligible pair is there (unpruned)
    for i, req in enumerate(reqs):
        for vol in vols:
            d = haversine_km(req.location.lat, req.location.lon, vol.home.lat, vol.home.lon)
            load = loads.get(vol.id, Load())
            svc = SERVICES[req.service_type_id]
            eligible = ineligibility(vol, req, svc, load, d, history(vol)) is None
            assert eligible == ((i, vol.id) in seen)


def test_results_are_deterministic() -> None:
    reqs, vols, loads = dehua(seed=11)
    first = assign_batch(reqs, SERVICES, index_of(vols), loads)
    again = assign_batch(reqs, SERVICES, index_of(list(reversed(vols))), dict(loads))
    assert first == again
    g1 = assign_greedy(reqs, SERVICES, index_of(vols), loads)
    g2 = assign_greedy(reqs, SERVICES, index_of(list(reversed(vols))), loads)
    assert g1 == g2
