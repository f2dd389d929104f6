"""The matcher on the index's best-first search: a refused reservation (stale load cache, a
volunteer who cannot take it after all) moves on to the next candidate in `rank` order, and the
reasons of an unmatched request come from the full pass."""

import pytest

from zhumeng_contracts.events import ServiceTypeRecord
from zhumeng_kit.views import View
from zhumeng_matching.app.matcher import Matcher
from zhumeng_matching.app.ports import Reservation
from zhumeng_matching.domain.index import VolunteerIndex
from zhumeng_matching.domain.policy import Load, VolunteerStats, rank
from zhumeng_matching.examples import request, service, volunteer
from zhumeng_matching.fakes import FakeDecisions

pytestmark = pytest.mark.unit


class RefusingLoads:
    """The cache says everyone is free; the store refuses the volunteers in `refuse`."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.attempts: list[str] = []
        self.held: dict[str, str] = {}

    def cached(self) -> dict[str, Load]:
        return {}

    async def reserve(self, volunteer_id: str, request_id: str, capacity: int) -> Reservation:
        self.attempts.append(volunteer_id)
        if volunteer_id in self.refuse:
            return Reservation.FULL
        self.held[request_id] = volunteer_id
        return Reservation.TAKEN

    async def holders_of(self, request_id: str) -> list[str]:
        return [self.held[request_id]] if request_id in self.held else []

    async def release(self, volunteer_id: str, request_id: str) -> bool:
        return self.held.pop(request_id, None) == volunteer_id


def town(n: int) -> VolunteerIndex:
    index = VolunteerIndex()
    for i in range(n):
        index.put(volunteer(f"v{i:02d}", lon=118.24 + i * 0.003, radius_km=5 + i % 4))
    return index


def matcher(index: VolunteerIndex, loads: RefusingLoads) -> tuple[Matcher, FakeDecisions]:
    types: View[ServiceTypeRecord] = View(ServiceTypeRecord)
    types.apply("haircut", service())
    decisions = FakeDecisions()
    return Matcher(index, types, loads, decisions), decisions


async def test_refused_reservations_move_on_in_rank_order() -> None:
    index = town(30)
    r = request(request_id="r1")
    order = [c.volunteer.id for c in rank(r, service(), index.all(), {}).candidates]
    # more refusals than the first batch of candidates: the search is asked for more
    loads = RefusingLoads(set(order[:7]))
    m, decisions = matcher(index, loads)
    assert await m.on_request_posted("e1", r) == "assigned"
    assert loads.attempts == order[:8]
    assert decisions.docs["r1"]["volunteer_id"] == order[7]


async def test_everyone_refused_gives_the_reasons_of_the_full_pass() -> None:
    index = town(12)
    index.put(
        volunteer("far", lat=25.55, radius_km=5)
    )  # in the 0.1° cells searched, out of its radius
    r = request(request_id="r1")
    loads = RefusingLoads({v.id for v in index.all()})
    m, decisions = matcher(index, loads)
    assert await m.on_request_posted("e1", r) == "unmatched"
    assert sorted(loads.attempts) == sorted(f"v{i:02d}" for i in range(12))  # each once
    assert decisions.docs["r1"]["reasons"] == {"no_capacity": 12, "out_of_radius": 1}


class CapacityRecordingLoads(RefusingLoads):
    def __init__(self) -> None:
        super().__init__(set())
        self.capacities: list[int] = []

    async def reserve(self, volunteer_id: str, request_id: str, capacity: int) -> Reservation:
        """The store's guard: refused at the capacity given (the cache stays empty)."""
        self.capacities.append(capacity)
        if sum(v == volunteer_id for v in self.held.values()) >= capacity:
            self.attempts.append(volunteer_id)
            return Reservation.FULL
        return await super().reserve(volunteer_id, request_id, capacity)


async def test_a_newcomer_is_reserved_with_the_newcomer_capacity() -> None:
    index = VolunteerIndex()
    index.put(volunteer("new", capacity=3))
    index.put(volunteer("old", capacity=3, lon=118.30))
    index.set_stats("old", VolunteerStats(completed=3))
    loads = CapacityRecordingLoads()
    m, _ = matcher(index, loads)
    for rid in ("r1", "r2"):
        assert await m.on_request_posted(f"e_{rid}", request(request_id=rid)) == "assigned"
    # the atomic guard gets the capacity the policy allows: one at a time for the newcomer,
    # so a stale cache cannot give a newcomer a second assignment
    assert list(zip(loads.attempts, loads.capacities, strict=True)) == [
        ("new", 1),
        ("new", 1),
        ("old", 3),
    ]
    assert loads.held == {"r1": "new", "r2": "old"}
