"""The matcher hands requests of the pooled modes (team, batch, trip) to their pool: the match
opens empty in the pool's state and the pool hears of it, again after a crash; a multi-slot
request of a batch-mode service is decided directly."""

import pytest

from zhumeng_contracts.events import RequestPosted, ServiceTypeRecord
from zhumeng_kit.views import View
from zhumeng_matching.app.matcher import Matcher
from zhumeng_matching.domain.index import VolunteerIndex
from zhumeng_matching.examples import request, service, volunteer
from zhumeng_matching.fakes import FakeDecisions, FakeLoads

pytestmark = pytest.mark.unit


class Pool:
    state = "batching"

    def __init__(self) -> None:
        self.heard: list[str] = []

    def takes(self, request: RequestPosted) -> bool:
        return request.slots == 1

    async def opened(self, request: RequestPosted) -> None:
        self.heard.append(request.request_id)


def make() -> tuple[Matcher, Pool, FakeDecisions, FakeLoads]:
    index = VolunteerIndex()
    for i in range(3):
        index.put(volunteer(f"v{i}", lon=118.24 + i * 0.01))
    types: View[ServiceTypeRecord] = View(ServiceTypeRecord)
    types.apply("haircut", service(matching_mode="batch"))
    pool, decisions, loads = Pool(), FakeDecisions(), FakeLoads()
    matcher = Matcher(index, types, loads, decisions, pooled={"batch": pool})
    return matcher, pool, decisions, loads


async def test_a_batch_request_waits_in_its_pool_and_a_redelivery_tells_the_pool_again() -> None:
    matcher, pool, decisions, loads = make()
    assert await matcher.on_request_posted("e1", request(request_id="r1")) == "batching"
    doc = decisions.docs["r1"]
    assert doc["lifecycle"]["mode"] == "batch" and doc["lifecycle"]["state"] == "matching"
    assert doc["outbox"] == [] and loads.active == {}  # nobody assigned yet
    assert await matcher.on_request_posted("e1", request(request_id="r1")) == "batching"
    assert pool.heard == ["r1", "r1"]  # idempotent pools are told again after a crash


async def test_a_multi_slot_request_of_a_batch_service_is_decided_directly() -> None:
    matcher, pool, decisions, _ = make()
    assert await matcher.on_request_posted("e1", request(request_id="r2", slots=2)) == "assigned"
    assert decisions.docs["r2"]["lifecycle"]["mode"] == "direct" and pool.heard == []
