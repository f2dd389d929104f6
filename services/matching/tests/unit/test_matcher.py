"""The matcher's use case on fake stores: exactly one outcome per request, across redelivery
and a crash between taking capacity and recording the decision."""

import pytest

from zhumeng_contracts.events import ServiceTypeRecord, VolunteerRecord
from zhumeng_kit.consumer import PermanentError
from zhumeng_kit.views import View
from zhumeng_matching.app.matcher import Matcher
from zhumeng_matching.domain.index import VolunteerIndex
from zhumeng_matching.examples import request, service, volunteer
from zhumeng_matching.fakes import FakeDecisions, FakeLoads

pytestmark = pytest.mark.unit


def make(capacity: int = 1, n: int = 2) -> tuple[Matcher, FakeLoads, FakeDecisions]:
    index = VolunteerIndex()
    for i in range(n):
        index.put(volunteer(f"v{i}", lon=118.24 + i * 0.01, capacity=capacity))
    types: View[ServiceTypeRecord] = View(ServiceTypeRecord)
    types.apply("haircut", service())
    loads, decisions = FakeLoads(), FakeDecisions()
    return Matcher(index, types, loads, decisions), loads, decisions


async def test_assigns_best_and_records_event() -> None:
    matcher, loads, decisions = make()
    assert await matcher.on_request_posted("e1", request(request_id="r1")) == "assigned"
    doc = decisions.docs["r1"]
    assert doc["volunteer_id"] == "v0"
    assert [e["topic"] for e in doc["outbox"]] == ["matching.events.v1"]
    assert loads.active == {"v0": ["r1"]}


async def test_redelivery_changes_nothing() -> None:
    matcher, loads, decisions = make()
    await matcher.on_request_posted("e1", request(request_id="r1"))
    await matcher.on_request_posted("e1", request(request_id="r1"))
    assert len(decisions.docs["r1"]["outbox"]) == 1
    assert sum(len(v) for v in loads.active.values()) == 1


async def test_crash_after_reserving_reuses_the_same_volunteer() -> None:
    matcher, loads, decisions = make()
    decisions.fail_next_finish = True
    with pytest.raises(ConnectionError):
        await matcher.on_request_posted("e1", request(request_id="r1"))
    assert loads.active == {"v0": ["r1"]}
    assert await matcher.on_request_posted("e1", request(request_id="r1")) == "assigned"
    assert decisions.docs["r1"]["volunteer_id"] == "v0"
    assert sum(len(v) for v in loads.active.values()) == 1


async def test_capacity_is_never_exceeded_then_unmatched_with_reasons() -> None:
    matcher, loads, decisions = make(capacity=1, n=2)
    outcomes = [
        await matcher.on_request_posted(f"e{i}", request(request_id=f"r{i}")) for i in range(3)
    ]
    assert outcomes == ["assigned", "assigned", "unmatched"]
    assert all(len(v) <= 1 for v in loads.active.values())
    assert decisions.docs["r2"]["reasons"] == {"no_capacity": 2}


async def test_no_volunteer_nearby_is_a_reason() -> None:
    matcher, _, decisions = make()
    await matcher.on_request_posted("e1", request(request_id="r1", lat=30.0))
    assert decisions.docs["r1"]["state"] == "unmatched"
    assert decisions.docs["r1"]["reasons"] == {"no_volunteer_nearby": 1}


async def test_unknown_service_type_is_permanent() -> None:
    matcher, _, _ = make()
    with pytest.raises(PermanentError):
        await matcher.on_request_posted("e1", request(request_id="r1", service_type_id="nope"))


class Catalog:
    """The topics as written; the matcher's views read them only on a catch-up."""

    def __init__(self, index: VolunteerIndex, types: View[ServiceTypeRecord]) -> None:
        self.index, self.types = index, types
        self.written: dict[str, list[ServiceTypeRecord | VolunteerRecord]] = {}
        self.caught_up: list[str] = []

    async def catch_up(self, topic: str) -> None:
        self.caught_up.append(topic)
        for record in self.written.pop(topic, []):
            if isinstance(record, ServiceTypeRecord):
                self.types.apply(record.id, record)
            else:
                self.index.put(record)


def with_catalog(n: int) -> tuple[Matcher, Catalog, FakeDecisions]:
    index = VolunteerIndex()
    for i in range(n):
        index.put(volunteer(f"v{i}", lon=118.24 + i * 0.01))
    types: View[ServiceTypeRecord] = View(ServiceTypeRecord)
    catalog, decisions = Catalog(index, types), FakeDecisions()
    matcher = Matcher(index, types, FakeLoads(), decisions, catch_up=catalog.catch_up)
    return matcher, catalog, decisions


async def test_a_service_type_written_just_before_the_request_is_read_not_dead_lettered() -> None:
    matcher, catalog, _ = with_catalog(n=1)
    catalog.written[ServiceTypeRecord.TOPIC] = [service()]
    assert await matcher.on_request_posted("e1", request(request_id="r1")) == "assigned"
    assert catalog.caught_up == [ServiceTypeRecord.TOPIC]
    with pytest.raises(PermanentError):  # still unknown once read up to now
        await matcher.on_request_posted("e2", request(request_id="r2", service_type_id="nope"))


async def test_a_volunteer_registered_just_before_is_read_before_calling_it_unmatched() -> None:
    matcher, catalog, decisions = with_catalog(n=0)
    await catalog.catch_up(ServiceTypeRecord.TOPIC)
    catalog.types.apply("haircut", service())
    catalog.written[VolunteerRecord.TOPIC] = [volunteer("v_new")]
    assert await matcher.on_request_posted("e1", request(request_id="r1")) == "assigned"
    assert decisions.docs["r1"]["volunteer_id"] == "v_new"
    # a request somebody can take right away asks nothing of the catalog
    catalog.caught_up.clear()
    catalog.index.put(volunteer("v_other", lon=118.25))
    assert await matcher.on_request_posted("e2", request(request_id="r2")) == "assigned"
    assert catalog.caught_up == []


async def test_every_slot_is_filled_by_a_different_volunteer() -> None:
    matcher, loads, decisions = make(capacity=1, n=3)
    assert await matcher.on_request_posted("e1", request(request_id="r1", slots=2)) == "assigned"
    doc = decisions.docs["r1"]
    assert [e["headers"]["ce_type"] for e in doc["outbox"]] == [
        "zhumeng.volunteer.assigned.v1",
        "zhumeng.volunteer.assigned.v1",
    ]
    slots = sorted(a["slot"] for a in doc["lifecycle"]["assignments"])
    volunteers = {a["volunteer_id"] for a in doc["lifecycle"]["assignments"]}
    assert slots == [1, 2] and len(volunteers) == 2
    assert doc["lifecycle"]["state"] == "assigned"
    assert sum(len(v) for v in loads.active.values()) == 2


async def test_a_partly_filled_request_is_assigned_with_the_slots_it_got() -> None:
    matcher, _, decisions = make(capacity=1, n=1)
    await matcher.on_request_posted("e1", request(request_id="r1", slots=3))
    assert decisions.docs["r1"]["lifecycle"]["state"] == "partially_assigned"
