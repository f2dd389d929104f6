"""The escalation service on in-memory stores: rungs from timers, once; stale timers, filled
or cancelled requests do nothing; the cascade widens its radius before giving up."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from zhumeng_contracts.events import ServiceTypeRecord
from zhumeng_kit.views import View
from zhumeng_matching.app.escalation import EscalationService, ladder_factory
from zhumeng_matching.app.lifecycle_service import LifecycleService, encode
from zhumeng_matching.domain import lifecycle as lc
from zhumeng_matching.domain.index import VolunteerIndex
from zhumeng_matching.domain.office_hours import ALWAYS
from zhumeng_matching.examples import WINDOW, request, service, volunteer
from zhumeng_matching.fakes import FakeLoads

pytestmark = pytest.mark.unit
POSTED = WINDOW.start - timedelta(days=1)


class Decisions:
    """Decision documents with the compare-and-set of the real store."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}

    async def get(self, request_id: str) -> dict[str, Any] | None:
        doc = self.docs.get(request_id)
        return None if doc is None else dict(doc)

    async def save_lifecycle(
        self, request_id: str, version: int, lifecycle: dict[str, Any], entries: list[Any]
    ) -> bool:
        doc = self.docs[request_id]
        if doc["_v"] != version:
            return False
        doc.update(lifecycle=lifecycle, _v=version + 1)
        doc["outbox"] = [*doc["outbox"], *entries]
        return True

    async def begin(self, *a: Any) -> Any:
        raise NotImplementedError

    async def finish(self, *a: Any) -> Any:
        raise NotImplementedError

    def types(self, request_id: str) -> list[str]:
        return [e["headers"]["ce_type"] for e in self.docs[request_id]["outbox"]]

    def bodies(self, request_id: str) -> list[dict[str, Any]]:
        return [json.loads(e["body"]) for e in self.docs[request_id]["outbox"]]


class Timers:
    def __init__(self) -> None:
        self.armed: dict[str, tuple[datetime, dict[str, Any]]] = {}

    async def schedule(
        self, kind: str, key: str, due_at: datetime, payload: dict[str, Any] | None = None
    ) -> str:
        self.armed.setdefault(f"{kind}:{key}", (due_at, payload or {}))
        return "scheduled"


def setup(
    mode: str = "auto_offer", vols: int = 0, radius: float = 20
) -> tuple[EscalationService, LifecycleService, Decisions, Timers]:
    index = VolunteerIndex()
    for i in range(vols):  # ~28 km north: beyond a 20 km radius, within 1.5x
        index.put(volunteer(f"v{i}", lat=25.49 + 0.25, radius_km=radius))
    types: View[ServiceTypeRecord] = View(ServiceTypeRecord)
    types.apply("haircut", service(target_claim_min=60, matching_mode=mode, offer_ttl_min=5))
    decisions, timers = Decisions(), Timers()
    life = LifecycleService(decisions, FakeLoads(), index, types, timers=timers)
    esc = EscalationService(life, decisions, types, timers, ladder_factory(60, (1.5, 2.0), ALWAYS))
    life.widen = esc.widen_now
    match = lc.new_match("req_1", "haircut", WINDOW, 1, mode)
    decisions.docs["req_1"] = {
        "_id": "req_1",
        "_v": 1,
        "outbox": [],
        "posted": request(posted_at=POSTED).model_dump(mode="json"),
        "lifecycle": encode(match),
    }
    return esc, life, decisions, timers


async def test_each_timer_climbs_one_rung_and_a_repeat_or_stale_timer_does_nothing() -> None:
    esc, _, decisions, timers = setup(mode="direct")  # nobody to find: the ladder climbs
    now = POSTED + timedelta(hours=1)
    await esc.run("req_1", 0, now)
    await esc.run("req_1", 0, now)  # the same timer again (a crash before `fired`)
    assert decisions.types("req_1") == ["zhumeng.request.escalated.v1"]
    due = [v for k, v in timers.armed.items() if k.startswith("escalation:req_1:s1")]
    assert due == [(now + timedelta(hours=1), {"request_id": "req_1", "step": 1})]
    for step in range(1, 4):
        now += timedelta(hours=1)
        await esc.run("req_1", step, now)
    await esc.run("req_1", 4, now + timedelta(hours=1))
    body = decisions.bodies("req_1")
    assert [b.get("level") for b in body[:4]] == [
        "wider_radius",
        "wider_radius",
        "township_liaison",
        "county_centre",
    ]
    assert decisions.types("req_1")[-1] == "zhumeng.request.unfulfilled.v1"
    assert body[-1]["reason"] == "escalation_exhausted"
    await esc.run("req_1", 2, now + timedelta(hours=2))  # stale: nothing more
    assert len(decisions.docs["req_1"]["outbox"]) == 5


async def test_a_cancelled_request_is_not_escalated() -> None:
    esc, life, decisions, _ = setup()
    await life.apply("req_1", lambda m: lc.cancel(m, "requester", POSTED))
    await esc.run("req_1", 0, POSTED + timedelta(hours=1))
    assert "zhumeng.request.escalated.v1" not in decisions.types("req_1")


async def test_the_window_starting_unfilled_ends_the_request() -> None:
    esc, _, decisions, _ = setup()
    await esc.run("req_1", 0, WINDOW.start)
    assert decisions.types("req_1") == ["zhumeng.request.unfulfilled.v1"]
    assert decisions.bodies("req_1")[0]["reason"] == "window_passed"


async def test_the_cascade_widens_the_radius_before_giving_up() -> None:
    _, life, decisions, _ = setup(vols=1)
    await life.offer_next("req_1")
    assert decisions.types("req_1") == [
        "zhumeng.request.escalated.v1",
        "zhumeng.offer.made.v1",
    ]
    escalated = decisions.bodies("req_1")[0]
    assert (escalated["level"], escalated["radius_factor"]) == ("wider_radius", 1.5)


async def test_nobody_even_at_the_widest_radius_gives_up_after_every_radius_rung() -> None:
    _, life, decisions, _ = setup(vols=1, radius=5)  # 28 km away, 5 km x2 = 10 km: never
    await life.offer_next("req_1")
    assert decisions.types("req_1") == [
        "zhumeng.request.escalated.v1",
        "zhumeng.request.escalated.v1",
        "zhumeng.request.unfulfilled.v1",
    ]


async def test_open_claim_invites_the_newly_reachable_after_a_wider_radius() -> None:
    _, life, decisions, _ = setup(mode="open_claim", vols=2)
    await life.invite("req_1")  # nobody within the radius: widened at once, then invited
    assert decisions.types("req_1") == [
        "zhumeng.request.escalated.v1",
        "zhumeng.claim.opened.v1",
    ]
    assert decisions.bodies("req_1")[1]["invited_volunteer_ids"] == ["v0", "v1"]


class Cap:
    """At most `cap` offers per volunteer and day."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.counts: dict[tuple[str, str], int] = {}

    async def take(self, volunteer_id: str, day: str) -> bool:
        n = self.counts.get((volunteer_id, day), 0)
        if n >= self.cap:
            return False
        self.counts[(volunteer_id, day)] = n + 1
        return True


async def test_a_volunteer_at_the_daily_cap_is_skipped() -> None:
    _, life, decisions, _ = setup(vols=2)
    cap = Cap(1)
    life.offer_cap = cap
    await life.offer_next("req_1")  # widened first (nobody within the radius), then v0
    made = [b for b in decisions.bodies("req_1") if "offer_id" in b]
    assert [b["volunteer_id"] for b in made] == ["v0"]
    assert sum(cap.counts.values()) == 1  # only the offer made is counted

    _, other, others, _ = setup(vols=2)
    other.offer_cap = cap  # the same day: v0 has had its one offer
    await other.offer_next("req_1")
    assert [b["volunteer_id"] for b in others.bodies("req_1") if "offer_id" in b] == ["v1"]
