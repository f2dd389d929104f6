"""Review, escalation rungs and reassignment as pure transitions of a match, and the lines
of the coordinators' queue."""

from datetime import timedelta

import pytest

from zhumeng_contracts.events import (
    AssignmentCancelled,
    RequestEscalated,
    RequestReviewed,
    RequestUnfulfilled,
    ReviewRequired,
    VolunteerAssigned,
)
from zhumeng_matching.app.lifecycle_service import encode
from zhumeng_matching.app.review import _over, queue_item
from zhumeng_matching.domain import lifecycle as lc
from zhumeng_matching.domain.policy import Candidate, Load, score
from zhumeng_matching.examples import WINDOW, request, volunteer

pytestmark = pytest.mark.unit
NOW = WINDOW.start - timedelta(days=1)


def cand(vid: str) -> Candidate:
    vol = volunteer(vid)
    total, parts = score(vol, request(), Load(), 1.0)
    return Candidate(vol, 1.0, total, parts)


def held(slots: int = 1) -> lc.Match:
    m = lc.new_match("req_1", "doctor_visit", WINDOW, slots, "auto_offer")
    m, events = lc.hold_for_review(m, "t", NOW)
    assert [type(e) for e in events] == [ReviewRequired]
    return m


def test_a_held_request_offers_nothing_until_approved() -> None:
    m = held()
    assert m.state is lc.State.IN_REVIEW
    assert lc.hold_for_review(m, "t", NOW) == (m, [])  # held once
    with pytest.raises(lc.LifecycleError):
        lc.make_offer(m, cand("v1"), NOW, timedelta(minutes=5))
    m, (event,) = lc.review(m, "approved", "coord_1", "ok", NOW)
    assert isinstance(event, RequestReviewed) and event.decision == "approved"
    assert m.state is lc.State.MATCHING
    m, _ = lc.make_offer(m, cand("v1"), NOW, timedelta(minutes=5))
    assert m.state is lc.State.OFFERED


def test_rejection_is_final_and_reviewed_once() -> None:
    m, (event,) = lc.review(held(), "rejected", "coord_1", None, NOW)
    assert isinstance(event, RequestReviewed) and m.state is lc.State.REJECTED
    assert m.state in lc.FINAL
    with pytest.raises(lc.LifecycleError) as err:
        lc.review(m, "approved", "coord_1", None, NOW)
    assert err.value.code == "not_in_review"


def test_a_request_in_review_can_end_unfulfilled_when_its_window_passes() -> None:
    m, (event,) = lc.give_up(held(), "window_passed", WINDOW.start)
    assert isinstance(event, RequestUnfulfilled) and m.state is lc.State.UNFULFILLED


def test_escalation_climbs_only_to_the_next_rung_of_an_open_request() -> None:
    m = lc.new_match("req_1", "haircut", WINDOW, 2, "auto_offer")
    m, (event,) = lc.escalate(m, 1, "wider_radius", 1.5, "t", NOW + timedelta(hours=1), NOW)
    assert isinstance(event, RequestEscalated)
    assert (event.step, event.level, event.radius_factor, event.open_slots) == (
        1,
        "wider_radius",
        1.5,
        2,
    )
    assert (m.escalation_step, m.radius_factor) == (1, 1.5)
    assert lc.escalate(m, 1, "wider_radius", 1.5, "t", None, NOW) == (m, [])  # a repeat
    m, (event,) = lc.escalate(m, 3, "township_liaison", 1.0, "t", None, NOW)
    assert m.radius_factor == 1.5 and m.escalation_level == "township_liaison"  # never narrower
    filled, _ = lc.assign(m, cand("v1"), NOW)
    filled, _ = lc.assign(filled, cand("v2"), NOW)
    assert lc.escalate(filled, 4, "county_centre", 2.0, "t", None, NOW) == (filled, [])
    cancelled, _ = lc.cancel(m, "requester", NOW)
    assert lc.escalate(cancelled, 4, "county_centre", 2.0, "t", None, NOW) == (cancelled, [])


def test_reassignment_moves_the_slot_to_another_volunteer() -> None:
    m = lc.new_match("req_1", "haircut", WINDOW, 1, "direct")
    m, _ = lc.assign(m, cand("v1"), NOW)
    old = m.assignments[0]
    m, (cancelled, assigned) = lc.reassign(m, old.assignment_id, cand("v2"), NOW)
    assert isinstance(cancelled, AssignmentCancelled) and cancelled.reason == "reassigned"
    assert cancelled.by == "coordinator" and cancelled.volunteer_id == "v1"
    assert isinstance(assigned, VolunteerAssigned)
    assert (assigned.volunteer_id, assigned.slot, assigned.mode) == ("v2", 1, "coordinator")
    assert m.state is lc.State.ASSIGNED and [a.volunteer_id for a in m.live_assignments] == ["v2"]
    with pytest.raises(lc.LifecycleError) as err:
        lc.reassign(m, m.live_assignments[0].assignment_id, cand("v2"), NOW)
    assert err.value.code == "already_assigned"


def test_queue_items_say_why_a_request_waits() -> None:
    posted = request().model_dump(mode="json")
    in_review = {"_id": "req_1", "posted": posted, "lifecycle": encode(held())}
    item = queue_item(in_review)
    assert (item["kind"], item["township_id"], item["state"]) == ("in_review", "t", "in_review")
    climbed, _ = lc.escalate(
        lc.new_match("req_1", "haircut", WINDOW, 1, "auto_offer"),
        3,
        "township_liaison",
        2.0,
        "t",
        None,
        NOW,
    )
    item = queue_item({"_id": "req_1", "posted": posted, "lifecycle": encode(climbed)})
    assert item["kind"] == "escalated" and item["escalation"]["level"] == "township_liaison"
    unmatched = {"_id": "req_2", "posted": posted, "state": "unmatched", "reasons": {"x": 1}}
    assert queue_item(unmatched)["kind"] == "unmatched"
    assert not _over(unmatched, NOW) and _over(unmatched, WINDOW.end)
