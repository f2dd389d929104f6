"""The batch window's run on fakes: batch and greedy on the same data, the batch's pairs
assigned (mode "batch"), a pair whose capacity went elsewhere meanwhile skipped, its request
left pending, and the next window armed for it. Requests with several slots: every slot
written by the match's compare-and-set (three different volunteers on a three-slot request),
a partially assigned request completed by the next window, roles pinned and respected, two
runs of one window (a replay racing the original) never filling a slot twice. Then a
coordinator's assignment and reassignment with slot roles."""

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from zhumeng_contracts.events import RequestCancelled, ServiceTypeRecord
from zhumeng_kit.auth import Principal
from zhumeng_kit.problems import Conflict, Unprocessable
from zhumeng_kit.views import View
from zhumeng_matching.app.batch_runner import BATCH_STATE, BATCH_TIMER, BatchRunner
from zhumeng_matching.app.lifecycle_service import LifecycleService, decode, encode
from zhumeng_matching.app.ports import Reservation
from zhumeng_matching.domain import lifecycle as lc
from zhumeng_matching.domain.index import VolunteerIndex
from zhumeng_matching.domain.policy import NEWCOMER_COMPLETIONS, VolunteerStats
from zhumeng_matching.examples import BARBERS_AND_DENTIST, WINDOW, request, service, volunteer
from zhumeng_matching.fakes import FakeLoads

pytestmark = pytest.mark.unit
Doc = dict[str, Any]
NOW = WINDOW.start - timedelta(days=1)
ROLES = BARBERS_AND_DENTIST
COORDINATOR = Principal("coord", frozenset({"coordinator"}))


class Loads(FakeLoads):
    """Another replica took `taken`'s last unit after the run's snapshot."""

    def __init__(self, taken: str) -> None:
        super().__init__()
        self.taken = taken

    async def warm(self) -> None:
        pass

    async def reserve(self, volunteer_id: str, request_id: str, capacity: int) -> Reservation:
        await asyncio.sleep(0)  # a round trip: racing attempts interleave here too
        if volunteer_id == self.taken:
            return Reservation.FULL
        return await super().reserve(volunteer_id, request_id, capacity)


class Decisions:
    """Decision documents with the compare-and-set on `_v`; an await inside it lets two runs
    interleave."""

    def __init__(self) -> None:
        self.docs: dict[str, Doc] = {}

    async def get(self, request_id: str) -> Doc | None:
        return self.docs.get(request_id)

    async def save_lifecycle(
        self, request_id: str, version: int, lifecycle: Doc, entries: list[Doc]
    ) -> bool:
        await asyncio.sleep(0)
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
            if d["state"] == state
            and d["lifecycle"]["state"] in ("matching", "partially_assigned")
            and d["posted"]["service_type_id"] == service_type_id
        ]

    def add(self, rid: str, sid: str, slots: int, state: str = BATCH_STATE, **kw: Any) -> None:
        posted = request(request_id=rid, service_type_id=sid, slots=slots, **kw)
        match = lc.new_match(rid, sid, WINDOW, slots, "batch")
        self.docs[rid] = {
            "_id": rid,
            "_v": 1,
            "state": state,
            "posted": posted.model_dump(mode="json"),
            "lifecycle": encode(match),
            "outbox": [],
        }

    def assigned(self, rid: str) -> list[Doc]:
        """The VolunteerAssigned bodies of the request's outbox."""
        return [json.loads(e["body"]) for e in self.docs[rid]["outbox"]]


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


class Setup:
    def __init__(self, vols: list[Any], *types: ServiceTypeRecord) -> None:
        self.index = VolunteerIndex()
        for v in vols:
            self.add_volunteer(v)
        self.types: View[ServiceTypeRecord] = View(ServiceTypeRecord)
        for t in types:
            self.types.apply(t.id, t)
        self.decisions, self.windows, self.timers = Decisions(), Windows(), Timers()
        self.loads = Loads(taken="")
        self.lifecycle = LifecycleService(self.decisions, self.loads, self.index, self.types)
        self.runner = BatchRunner(
            self.windows,  # type: ignore[arg-type]
            self.decisions,  # type: ignore[arg-type]
            self.index,
            self.types,
            self.loads,
            self.lifecycle,
            self.timers,
            window_s=5,
            clock=lambda: NOW,
        )

    def add_volunteer(self, v: Any) -> None:
        self.index.put(v)
        self.index.set_stats(v.id, VolunteerStats(completed=NEWCOMER_COMPLETIONS))

    def match(self, rid: str) -> lc.Match:
        return decode(self.decisions.docs[rid]["lifecycle"])


def haircuts(n: int, capacity: int = 2) -> list[Any]:
    return [volunteer(f"v{i}", lat=25.49 + 0.004 * i, capacity=capacity) for i in range(n)]


async def test_one_run_puts_three_different_volunteers_on_a_three_slot_request() -> None:
    s = Setup(haircuts(4), service(matching_mode="batch"))
    s.decisions.add("big", "haircut", 3)
    s.decisions.add("one", "haircut", 1, lat=25.50)
    s.decisions.add("two", "haircut", 1, lat=25.48)
    assert s.runner.takes(request(slots=3))
    record = await s.runner.run("haircut", 1)
    assert record["open_slots"] == 5 and len(record["assigned"]) == 5
    assert record["skipped"] == [] and record["unassigned"] == []
    assert record["batch_assigned"] >= record["greedy_assigned"]
    big = s.match("big")
    assert big.state is lc.State.ASSIGNED
    assert sorted(a.slot for a in big.live_assignments) == [1, 2, 3]
    assert len({a.volunteer_id for a in big.live_assignments}) == 3
    bodies = s.decisions.assigned("big")
    assert [(b["mode"], b["slots"]) for b in bodies] == [("batch", 3)] * 3
    for vid, held in s.loads.active.items():  # capacity held exactly by the assignments
        assert sorted(held) == sorted(
            rid
            for rid in ("big", "one", "two")
            if vid in {a.volunteer_id for a in s.match(rid).live_assignments}
        )
    assert s.timers.armed == []  # nothing left open: no next window


async def test_a_partially_assigned_request_waits_and_the_next_window_fills_it() -> None:
    s = Setup(haircuts(2, capacity=3), service(matching_mode="batch"))
    s.decisions.add("big", "haircut", 3)
    first = await s.runner.run("haircut", 1)
    assert len(first["assigned"]) == 2 and first["unassigned"] == ["big"]
    assert s.match("big").state is lc.State.PARTIALLY_ASSIGNED
    assert s.timers.armed == [(BATCH_TIMER, "haircut:1")]  # the next window, for the open slot
    # replayed (a crash after the writes): the filled slots are no longer rows
    again = await s.runner.run("haircut", 1)
    assert again["requests"] == ["big"] and again["open_slots"] == 1 and again["assigned"] == []
    assert len(s.match("big").live_assignments) == 2
    s.add_volunteer(volunteer("late", lat=25.51))
    second = await s.runner.run("haircut", 2)
    assert second["assigned"] == [{"request_id": "big", "volunteer_id": "late", "slot": 3}]
    big = s.match("big")
    assert big.state is lc.State.ASSIGNED
    assert sorted(a.volunteer_id for a in big.live_assignments) == ["late", "v0", "v1"]


async def test_roles_are_pinned_and_each_slot_filled_by_someone_qualified() -> None:
    clinic = service(id="clinic", required_skills=[], matching_mode="batch", slot_roles=ROLES)
    vols = [
        volunteer("both", skills=["haircut"], certifications=["dentist_license"]),
        volunteer("barb", lat=25.50),
        volunteer("barb2", lat=25.51),
        volunteer("cook", skills=["cooking"], lat=25.492),
    ]
    s = Setup(vols, clinic)
    s.decisions.add("c", "clinic", 3)
    record = await s.runner.run("clinic", 1)
    done = sorted((a["role"], a["volunteer_id"], a["slot"]) for a in record["assigned"])
    assert [(role, vid) for role, vid, _ in done] == [
        ("barber", "barb"),
        ("barber", "barb2"),
        ("dentist", "both"),
    ]
    assert sorted(slot for *_, slot in done[:2]) == [1, 2] and done[2][2] == 3
    m = s.match("c")
    assert m.slot_roles == ("barber", "barber", "dentist")
    assert {a.volunteer_id: a.role for a in m.live_assignments}["both"] == "dentist"
    assert {b["role"] for b in s.decisions.assigned("c")} == {"barber", "dentist"}


async def test_two_runs_of_one_window_never_fill_a_slot_twice() -> None:
    s = Setup(haircuts(6, capacity=3), service(matching_mode="batch"))
    for rid, slots in (("a", 3), ("b", 2), ("c", 1)):
        s.decisions.add(rid, "haircut", slots)
    await asyncio.gather(s.runner.run("haircut", 1), s.runner.run("haircut", 1))
    for rid, slots in (("a", 3), ("b", 2), ("c", 1)):
        live = s.match(rid).live_assignments
        assert len(live) == slots
        assert len({a.volunteer_id for a in live}) == slots
        assert sorted(a.slot for a in live) == list(range(1, slots + 1))
        assert len(s.decisions.assigned(rid)) == slots  # one event per slot, none doubled
    held = sorted((vid, rid) for vid, rids in s.loads.active.items() for rid in rids)
    live_pairs = sorted(
        (a.volunteer_id, rid) for rid in "abc" for a in s.match(rid).live_assignments
    )
    assert held == live_pairs  # no capacity held by a losing write


async def test_a_coordinator_assigns_a_free_slot_of_a_role_the_volunteer_fits() -> None:
    clinic = service(id="clinic", required_skills=[], matching_mode="team", slot_roles=ROLES)
    vols = [
        volunteer("dent", skills=[], certifications=["dentist_license"]),
        volunteer("dent2", skills=[], certifications=["dentist_license"]),
        volunteer("barb"),
        volunteer("cook", skills=["cooking"]),
    ]
    s = Setup(vols, clinic)
    s.decisions.add("c", "clinic", 3, state="claiming")
    m = await s.lifecycle.assign_by_coordinator(COORDINATOR, "c", "dent")
    assert [(a.volunteer_id, a.slot, a.role) for a in m.live_assignments] == [
        ("dent", 3, "dentist")
    ]
    with pytest.raises(Unprocessable) as refused:
        await s.lifecycle.assign_by_coordinator(COORDINATOR, "c", "cook")
    assert refused.value.extensions.get("code") == "ineligible"
    with pytest.raises(Conflict):  # the only dentist slot is taken
        await s.lifecycle.assign_by_coordinator(COORDINATOR, "c", "dent2")
    m = await s.lifecycle.assign_by_coordinator(COORDINATOR, "c", "barb")
    assert (m.live_assignments[-1].slot, m.live_assignments[-1].role) == (1, "barber")
    assert s.loads.active.get("cook", []) == [] and s.loads.active.get("dent2", []) == []
    # reassigning the barber's slot: a dentist does not fit it, another barber would
    barber_slot = m.live_assignments[-1].assignment_id
    with pytest.raises(Unprocessable):
        await s.lifecycle.reassign(COORDINATOR, "c", barber_slot, "dent2")
    s.add_volunteer(volunteer("barb2", lat=25.50))
    m = await s.lifecycle.reassign(COORDINATOR, "c", barber_slot, "barb2")
    assert {(a.volunteer_id, a.slot) for a in m.live_assignments} == {("dent", 3), ("barb2", 1)}


async def test_a_coordinator_without_roles_still_takes_the_lowest_free_slot() -> None:
    s = Setup(haircuts(2), service(matching_mode="batch"))
    s.decisions.add("r", "haircut", 2)
    m = await s.lifecycle.assign_by_coordinator(COORDINATOR, "r", "v1")
    assert [(a.volunteer_id, a.slot, a.role) for a in m.live_assignments] == [("v1", 1, None)]


async def test_a_double_tapped_assignment_keeps_its_capacity_hold() -> None:
    """Two attempts of one pair at once share one hold: the losing one must not give back
    the unit the winner holds (it did, when a failure released whatever it had reserved)."""
    s = Setup(haircuts(1), service(matching_mode="batch"))
    s.decisions.add("r", "haircut", 2)
    results = await asyncio.gather(
        s.lifecycle.assign_by_coordinator(COORDINATOR, "r", "v0"),
        s.lifecycle.assign_by_coordinator(COORDINATOR, "r", "v0"),
        return_exceptions=True,
    )
    assert sum(isinstance(r, lc.Match) for r in results) == 1
    assert [a.volunteer_id for a in s.match("r").live_assignments] == ["v0"]
    assert s.loads.active["v0"] == ["r"]


async def test_a_cancelled_request_frees_a_unit_left_by_a_crashed_attempt() -> None:
    """A unit reserved by an attempt that died before its transition is held by nobody on
    the match; once the request ends, it is given back (and a live assignee's with it)."""
    s = Setup(haircuts(2), service(matching_mode="batch"))
    s.decisions.add("r", "haircut", 2)
    await s.lifecycle.assign_by_coordinator(COORDINATOR, "r", "v0")
    assert await s.loads.reserve("v1", "r", 2)  # the crashed attempt's reservation
    await s.lifecycle.on_request_cancelled(
        RequestCancelled(request_id="r", by="requester", cancelled_at=NOW)
    )
    assert s.match("r").state is lc.State.CANCELLED
    assert s.loads.active == {"v0": [], "v1": []}


async def test_a_request_ending_unfulfilled_frees_a_crashed_attempts_unit() -> None:
    s = Setup(haircuts(1), service(matching_mode="batch"))
    s.decisions.add("r", "haircut", 1)
    assert await s.loads.reserve("v0", "r", 2)  # reserved, then the attempt died
    await s.lifecycle.apply("r", lambda m: lc.give_up(m, "window_passed", NOW))
    assert s.match("r").state is lc.State.UNFULFILLED
    assert s.loads.active == {"v0": []}
