"""Batch mode over requests with several slots: one row per open slot, a volunteer never on
two slots of one request, capacity and slot roles respected, the exact optimum on small cases
(checked by enumeration), and never worse than greedy on a seeded town."""

import itertools
import random

import pytest

from zhumeng_contracts.events import RequestPosted, ServiceTypeRecord, VolunteerRecord
from zhumeng_matching.domain.batch import (
    BatchResult,
    Opening,
    assign_batch,
    assign_greedy,
    cost_matrix,
)
from zhumeng_matching.domain.geo import haversine_km
from zhumeng_matching.domain.index import VolunteerIndex
from zhumeng_matching.domain.policy import (
    NEWCOMER_COMPLETIONS,
    Load,
    VolunteerStats,
    ineligibility,
    score,
)
from zhumeng_matching.domain.teams import role_service
from zhumeng_matching.examples import BARBERS_AND_DENTIST, request, service, volunteer

pytestmark = pytest.mark.unit
VETERAN = VolunteerStats(completed=NEWCOMER_COMPLETIONS)  # their own capacity, not 1
ROLES = BARBERS_AND_DENTIST
SERVICES = {
    "haircut": service(matching_mode="batch"),
    "clinic": service(id="clinic", required_skills=[], matching_mode="batch", slot_roles=ROLES),
}
BOTH = ["batch", "greedy"]


def run(kind: str, reqs: list[RequestPosted], index: VolunteerIndex, **kw: object) -> BatchResult:
    loads: dict[str, Load] = kw.pop("loads", {})  # type: ignore[assignment]
    if kind == "batch":
        return assign_batch(reqs, SERVICES, index, loads, **kw)  # type: ignore[arg-type]
    return assign_greedy(reqs, SERVICES, index, loads, **kw)  # type: ignore[arg-type]


def index_of(vols: list[VolunteerRecord]) -> VolunteerIndex:
    index = VolunteerIndex()
    for v in vols:
        index.put(v)
        index.set_stats(v.id, VETERAN)
    return index


def slot_service(req: RequestPosted, role: str | None) -> ServiceTypeRecord:
    svc = SERVICES[req.service_type_id]
    return svc if role is None else role_service(svc, next(r for r in ROLES if r.role == role))


def check_valid(
    result: BatchResult,
    reqs: list[RequestPosted],
    vols: list[VolunteerRecord],
    loads: dict[str, Load],
    openings: dict[str, Opening] | None = None,
) -> None:
    """Each open slot answered once; every pair eligible for its slot's role; nobody twice on
    one request nor on an excluded one; capacity never exceeded; the figures add up."""
    by_id, by_req = {v.id: v for v in vols}, {r.request_id: r for r in reqs}
    openings = openings or {}
    want = sorted(
        (r.request_id, s)
        for r in reqs
        for s in range(1, r.slots + 1)
        if r.request_id not in openings
    ) + sorted((rid, s) for rid, o in openings.items() for s, _ in o.slots)
    filled = [(a.request_id, a.slot) for a in result.assignments]
    assert len(filled) == len(set(filled))
    assert len(filled) + len(result.unassigned) == len(want)
    assert set(filled) <= set(want)
    per_request = [(a.request_id, a.volunteer_id) for a in result.assignments]
    assert len(per_request) == len(set(per_request))  # one volunteer, one slot of a request
    taken: dict[str, int] = {}
    for a in result.assignments:
        vol, req = by_id[a.volunteer_id], by_req[a.request_id]
        if a.request_id in openings:
            assert a.volunteer_id not in openings[a.request_id].excluded
            assert (a.slot, a.role) in openings[a.request_id].slots
        d = haversine_km(req.location.lat, req.location.lon, vol.home.lat, vol.home.lon)
        load = loads.get(vol.id, Load())
        assert ineligibility(vol, req, slot_service(req, a.role), load, d, VETERAN) is None
        assert a.cost == pytest.approx(1 - a.score)
        taken[vol.id] = taken.get(vol.id, 0) + 1
    for vid, n in taken.items():
        assert loads.get(vid, Load()).active + n <= by_id[vid].capacity
    assert result.total_cost == pytest.approx(sum(a.cost for a in result.assignments), abs=1e-3)


@pytest.mark.parametrize("kind", BOTH)
def test_a_volunteer_never_takes_two_slots_of_one_request(kind: str) -> None:
    # V could take all three slots by capacity, W one: only two slots can be filled
    vols = [volunteer("V", capacity=3), volunteer("W", lat=25.50, capacity=1)]
    reqs = [request(request_id="r3", slots=3)]
    result = run(kind, reqs, index_of(vols))
    check_valid(result, reqs, vols, {})
    assert sorted(result.volunteers_of()["r3"]) == ["V", "W"]
    assert result.unassigned == ["r3"]
    assert len({a.slot for a in result.assignments}) == 2  # slots of one role are alike


@pytest.mark.parametrize("kind", BOTH)
def test_capacity_is_shared_between_multi_slot_and_single_slot_requests(kind: str) -> None:
    vols = [volunteer(f"v{i}", lat=25.49 + 0.005 * i, capacity=2) for i in range(3)]
    reqs = [request(request_id="big", slots=3)] + [
        request(request_id=f"s{i}", lat=25.48 + 0.01 * i) for i in range(4)
    ]
    result = run(kind, reqs, index_of(vols), loads={"v0": Load(1, 4)})
    check_valid(result, reqs, vols, {"v0": Load(1, 4)})
    assert result.assigned == 5  # 3 volunteers x 2 - 1 held already
    assert len(result.volunteers_of().get("big", [])) <= 3


def test_each_slot_goes_to_someone_qualified_for_its_role() -> None:
    vols = [
        volunteer("barb1"),
        volunteer("barb2", lat=25.50),
        volunteer("both", skills=["haircut"], certifications=["dentist_license"], lat=25.495),
        volunteer("cook", skills=["cooking"]),
    ]
    reqs = [request(request_id="clinic_1", service_type_id="clinic", slots=3)]
    index = index_of(vols)
    greedy = run("greedy", reqs, index)
    batch = run("batch", reqs, index)
    for result in (greedy, batch):
        check_valid(result, reqs, vols, {})
    roles = sorted((a.role or "", a.volunteer_id) for a in batch.assignments)
    # the only dentist is "both": the barbers' slots go to the two barbers
    assert roles == [("barber", "barb1"), ("barber", "barb2"), ("dentist", "both")]
    assert "cook" not in greedy.volunteers_of().get("clinic_1", [])


def test_the_batch_moves_a_versatile_volunteer_where_only_they_fit() -> None:
    """Greedy fills slots in order: the barber slot takes "both", who is also the only
    dentist. The batch gives the barber slot to the barber and the dentist slot to "both"."""
    vols = [
        volunteer("both", skills=["haircut"], certifications=["dentist_license"]),
        volunteer("barb", lat=25.52),
    ]
    reqs = [request(request_id="c", service_type_id="clinic", slots=3)]
    opening = {"c": Opening(((2, "barber"), (3, "dentist")))}  # slot 1 filled before
    index = index_of(vols)
    greedy = run("greedy", reqs, index, openings=opening)
    batch = run("batch", reqs, index, openings=opening)
    for result in (greedy, batch):
        check_valid(result, reqs, vols, {}, opening)
    assert {(a.slot, a.volunteer_id) for a in greedy.assignments} == {(2, "both")}
    assert {(a.slot, a.volunteer_id) for a in batch.assignments} == {(2, "barb"), (3, "both")}


@pytest.mark.parametrize("kind", BOTH)
def test_an_opening_leaves_out_filled_slots_and_who_serves_already(kind: str) -> None:
    vols = [volunteer(f"v{i}", lat=25.49 + 0.002 * i) for i in range(4)]
    reqs = [request(request_id="r", slots=4)]
    opening = {"r": Opening(((2, None), (4, None)), frozenset({"v0", "v1"}))}
    result = run(kind, reqs, index_of(vols), openings=opening)
    check_valid(result, reqs, vols, {}, opening)
    assert sorted((a.slot, a.volunteer_id) for a in result.assignments) == [(2, "v2"), (4, "v3")]
    costs, _ = cost_matrix(reqs, SERVICES, index_of(vols), {}, openings=opening)
    assert costs.shape[0] == 2  # one row per open slot


def plan_cost(
    plan: dict[tuple[str, int], str],
    reqs: dict[str, RequestPosted],
    vols: dict[str, VolunteerRecord],
) -> float:
    """The cost of a plan made one assignment after another (units in order)."""
    k: dict[str, int] = {}
    total = 0.0
    for (rid, _), vid in sorted(plan.items()):
        r, v = reqs[rid], vols[vid]
        d = haversine_km(r.location.lat, r.location.lon, v.home.lat, v.home.lon)
        n = k.get(vid, 0)
        total += 1 - score(v, r, Load(n, n), d, VETERAN)[0]
        k[vid] = n + 1
    return total


def best_by_enumeration(
    reqs: list[RequestPosted], vols: list[VolunteerRecord]
) -> tuple[int, float]:
    """(slots filled, cost) of the best plan, by trying every plan."""
    slots = [(r, s) for r in reqs for s in range(1, r.slots + 1)]
    options: list[list[str | None]] = []
    for r, s in slots:
        role = SERVICES[r.service_type_id].slot_roles
        role_of = [x.role for x in role for _ in range(x.count)]
        svc = slot_service(r, role_of[s - 1] if s <= len(role_of) else None)
        ok: list[str | None] = [None]
        for v in vols:
            d = haversine_km(r.location.lat, r.location.lon, v.home.lat, v.home.lon)
            if ineligibility(v, r, svc, Load(), d, VETERAN) is None:
                ok.append(v.id)
        options.append(ok)
    best = (0, 0.0)
    for choice in itertools.product(*options):
        plan = {(r.request_id, s): v for (r, s), v in zip(slots, choice, strict=True) if v}
        pairs = [(rid, v) for (rid, _), v in plan.items()]
        per_vol = [v for _, v in pairs]
        if len(set(pairs)) < len(pairs) or any(per_vol.count(v.id) > v.capacity for v in vols):
            continue
        cost = plan_cost(plan, {r.request_id: r for r in reqs}, {v.id: v for v in vols})
        if (len(plan), -cost) > (best[0], -best[1]):
            best = (len(plan), cost)
    return best


@pytest.mark.parametrize("seed", range(12))
def test_the_batch_is_the_exact_optimum_on_small_cases(seed: int) -> None:
    rng = random.Random(seed)
    vols = [
        volunteer(
            f"v{i}",
            lat=25.49 + rng.uniform(-0.05, 0.05),
            skills=["haircut"] if rng.random() < 0.8 else [],
            certifications=["dentist_license"] if rng.random() < 0.4 else [],
            radius_km=rng.choice([4, 8, 15]),
            capacity=rng.choice([1, 2, 3]),
        )
        for i in range(4)
    ]
    reqs = [
        request(request_id="c", service_type_id="clinic", slots=3, lat=25.49),
        request(request_id="m", slots=2, lat=25.49 + rng.uniform(-0.04, 0.04)),
        request(request_id="s", lat=25.49 + rng.uniform(-0.04, 0.04)),
    ]
    index = index_of(vols)
    batch = assign_batch(reqs, SERVICES, index, {}, max_candidates=None)
    greedy = assign_greedy(reqs, SERVICES, index, {})
    check_valid(batch, reqs, vols, {})
    check_valid(greedy, reqs, vols, {})
    filled, cost = best_by_enumeration(reqs, vols)
    assert batch.assigned == filled
    assert batch.total_cost == pytest.approx(cost, abs=1e-3)
    assert (batch.assigned, -batch.total_cost) >= (greedy.assigned, -greedy.total_cost - 1e-9)


def town(
    seed: int, n_requests: int = 80, n_vols: int = 120
) -> tuple[list[RequestPosted], list[VolunteerRecord], dict[str, Load]]:
    """A seeded town: a fifth of the requests need 2-4 people, some of them a clinic."""
    rng = random.Random(seed)
    vols = [
        volunteer(
            f"v{i:03d}",
            lat=25.49 + rng.uniform(-0.06, 0.06),
            lon=118.24 + rng.uniform(-0.06, 0.06),
            skills=["haircut"] if rng.random() < 0.85 else ["cooking"],
            certifications=["dentist_license"] if rng.random() < 0.15 else [],
            radius_km=rng.choice([4, 6, 10, 15]),
            capacity=rng.choice([1, 1, 2, 3]),
        )
        for i in range(n_vols)
    ]
    loads = {v.id: Load(1, 3) for v in rng.sample(vols, 20)}
    reqs = []
    for i in range(n_requests):
        multi = rng.random() < 0.2
        clinic = multi and rng.random() < 0.3
        reqs.append(
            request(
                request_id=f"r{i:03d}",
                lat=25.49 + rng.uniform(-0.05, 0.05),
                lon=118.24 + rng.uniform(-0.05, 0.05),
                service_type_id="clinic" if clinic else "haircut",
                slots=3 if clinic else (rng.randint(2, 4) if multi else 1),
            )
        )
    return reqs, vols, loads


def test_batch_is_never_worse_than_greedy_with_multi_slot_requests() -> None:
    reqs, vols, loads = town(seed=5)
    index = index_of(vols)
    batch = assign_batch(reqs, SERVICES, index, loads)
    greedy = assign_greedy(reqs, SERVICES, index, loads)
    exact = assign_batch(reqs, SERVICES, index, loads, max_candidates=None)
    for result in (batch, greedy, exact):
        check_valid(result, reqs, vols, loads)
    slots = sum(r.slots for r in reqs)
    print(
        f"\n{len(reqs)} requests ({sum(r.slots > 1 for r in reqs)} with 2-4 slots), {slots} "
        f"slots, {len(vols)} volunteers: batch {batch.assigned} filled, cost "
        f"{batch.total_cost:.4f}; greedy {greedy.assigned} filled, cost {greedy.total_cost:.4f}; "
        f"unpruned {exact.assigned} filled, cost {exact.total_cost:.4f}"
    )
    assert batch.assigned >= greedy.assigned
    if batch.assigned == greedy.assigned:
        assert batch.total_cost <= greedy.total_cost + 1e-9
    assert (batch.assigned, -batch.total_cost) > (greedy.assigned, -greedy.total_cost)
    assert exact.assigned == batch.assigned
    assert exact.total_cost <= batch.total_cost + 1e-9
    assert batch == assign_batch(reqs, SERVICES, index_of(list(reversed(vols))), dict(loads))
