"""The batch window's run on fakes: batch and greedy on the same data, the batch's pairs
assigned (mode "batch"), a pair whose capacity went elsewhere meanwhile skipped, its request
left pending, and the next window armed for it."""

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from zhumeng_contracts.events import ServiceTypeRecord
from zhumeng_kit.views import View
from zhumeng_matching.adapters.match_codec import encode
from zhumeng_matching.app.batch_runner import BATCH_STATE, BATCH_TIMER, BatchRunner
from zhumeng_matching.app.lifecycle_service import LifecycleService
from zhumeng_matching.domain import lifecycle as lc
from zhumeng_matching.domain.index import VolunteerIndex
from zhumeng_matching.examples import WINDOW, request, service, volunteer
from zhumeng_matching.fakes import FakeLoads

pytestmark = pytest.mark.unit
Doc = dict[str, Any]
NOW = WINDOW.start - timedelta(days=1)


class Loads(FakeLoads):
    """Another replica took `taken`'s last unit after the run's snapshot."""

    def __init__(self, taken: str) -> None:
        super().__init__()
        self.taken = taken

    async def warm(self) -> None:
        pass

    async def reserve(self, volunteer_id: str, request_id: str, capacity: int) -> bool:
        if volunteer_id == self.taken:
            return False
        return await super().reserve(volunteer_id, request_id, capacity)


class Decisions:
    def __init__(self) -> None:
        self.docs: dict[str, Doc] = {}

    async def get(self, request_id: str) -> Doc | None:
        return self.docs.get(request_id)

    async def save_lifecycle(
        self, request_id: str, version: int, lifecycle: Doc, entries: list[Doc]
    ) -> bool:
        doc = self.docs[request_id]
        if doc["_v"] != version:
            return False
        doc.update(lifecycle=lifecycle, _v=version + 1)
        doc["outbox"] += entries
        return True

    async def unfilled(self, state: str, service_type_id: str) -> list[Doc]:
        return [
            d
            for _, d in sorted(self.docs.items())
            if d["state"] == state and d["lifecycle"]["state"] in ("matching", "partially_assigned")
        ]


class Windows:
    def __init__(self) -> None:
        self.no, self.open, self.runs = 0, False, dict[str, Doc]()

    async def open_window(self, sid: str, now: datetime, length: timedelta) -> Doc:
        if not self.open:
            self.no, self.open = self.no + 1, True
        return {"window_no": self.no, "due_at": now + length}

    async def close_window(self, sid: str, window_no: int) -> None:
        self.open = False

    async def record_run(self, run_id: str, fields: Doc) -> None:
        self.runs[run_id] = fields


class Timers:
    def __init__(self) -> None:
        self.armed: list[tuple[str, str]] = []

    async def schedule(self, kind: str, key: str, due_at: datetime, payload: Any = None) -> str:
        self.armed.append((kind, key))
        return "scheduled"


async def test_a_pair_whose_capacity_went_elsewhere_waits_for_the_next_window() -> None:
    index = VolunteerIndex()
    for vid, lat in (("v_near", 25.49), ("v_far", 25.55)):
        index.put(volunteer(vid, lat=lat, capacity=1))
    types: View[ServiceTypeRecord] = View(ServiceTypeRecord)
    types.apply("haircut", service(matching_mode="batch"))
    decisions, windows, timers = Decisions(), Windows(), Timers()
    for rid, lat in (("req_a", 25.49), ("req_b", 25.56)):
        posted = request(request_id=rid, lat=lat)
        match = lc.new_match(rid, "haircut", WINDOW, 1, "batch")
        decisions.docs[rid] = {
            "_id": rid,
            "_v": 1,
            "state": BATCH_STATE,
            "posted": posted.model_dump(mode="json"),
            "lifecycle": encode(match),
            "outbox": [],
        }
    loads = Loads(taken="v_near")
    lifecycle = LifecycleService(decisions, loads, index, types)  # type: ignore[arg-type]
    runner = BatchRunner(
        windows,  # type: ignore[arg-type]
        decisions,  # type: ignore[arg-type]
        index,
        types,
        loads,
        lifecycle,
        timers,
        window_s=5,
        clock=lambda: NOW,
    )
    await runner.opened(request(request_id="req_a"))
    assert timers.armed == [(BATCH_TIMER, "haircut:1")]
    record = await runner.run("haircut", 1)
    assert record["requests"] == ["req_a", "req_b"]
    assert record["batch_assigned"] == 2 and record["greedy_assigned"] == 2
    assert record["batch_cost"] <= record["greedy_cost"]
    assert record["assigned"] == [{"request_id": "req_b", "volunteer_id": "v_far", "slot": 1}]
    assert record["skipped"] == ["req_a"]  # v_near's unit was taken meanwhile
    a, b = decisions.docs["req_a"], decisions.docs["req_b"]
    assert a["lifecycle"]["state"] == "matching" and a["outbox"] == []  # still pending
    assert loads.active.get("v_near", []) == []  # nothing held for the skipped pair
    (entry,) = b["outbox"]
    assert json.loads(entry["body"])["mode"] == "batch"
    assert timers.armed[-1] == (BATCH_TIMER, "haircut:2")  # the next window, for req_a
    assert windows.runs["haircut:1"] is not None
