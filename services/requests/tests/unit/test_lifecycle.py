"""The pure transition rules: which lifecycle event moves a request from which status, and how
its assignments and status follow (every status x every event, then whole stories)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from zhumeng_contracts.events import (
    AssignmentCancelled,
    AssignmentCompleted,
    CheckedIn,
    RequestCompleted,
    RequestEscalated,
    RequestReviewed,
    RequestUnfulfilled,
    RequestUnmatched,
    ReviewRequired,
    TeamClaimed,
    VolunteerAssigned,
)
from zhumeng_contracts.events.common import TimeWindow
from zhumeng_requests.domain.lifecycle import (
    Assignment,
    LifecycleEvent,
    RequestState,
    derived_status,
    transition,
)
from zhumeng_requests.domain.model import Status, can_cancel, cancellable_statuses

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
REQ = "req_1"
WINDOW = TimeWindow(start=NOW + timedelta(days=1), end=NOW + timedelta(days=1, hours=3))


def assigned(asg: str = "asg_2", slot: int = 2, slots: int = 2, **kw: Any) -> VolunteerAssigned:
    return VolunteerAssigned(
        request_id=REQ,
        assignment_id=asg,
        volunteer_id=f"vol_{asg}",
        volunteer_display_name="小王",
        service_type_id="haircut",
        window=WINDOW,
        distance_km=1.234,
        score=0.9,
        explanation=[],
        candidates_considered=3,
        assigned_at=NOW,
        slot=slot,
        slots=slots,
        checkin_code="123456",
        **kw,
    )


def checked_in(asg: str = "asg_1") -> CheckedIn:
    return CheckedIn(
        request_id=REQ, assignment_id=asg, volunteer_id=f"vol_{asg}", checked_in_at=NOW
    )


def assignment_completed(asg: str = "asg_1", hours: float = 2.5) -> AssignmentCompleted:
    return AssignmentCompleted(
        request_id=REQ,
        assignment_id=asg,
        volunteer_id=f"vol_{asg}",
        service_type_id="haircut",
        checked_in_at=NOW,
        checked_out_at=NOW + timedelta(hours=hours),
        hours=hours,
    )


def assignment_cancelled(asg: str = "asg_1", reason: str = "no_show") -> AssignmentCancelled:
    return AssignmentCancelled(
        request_id=REQ,
        assignment_id=asg,
        volunteer_id=f"vol_{asg}",
        by="requester",
        reason=reason,
        cancelled_at=NOW,
    )


UNMATCHED = RequestUnmatched(
    request_id=REQ,
    service_type_id="haircut",
    reasons={"too_far": 3},
    candidates_considered=3,
    decided_at=NOW,
)
COMPLETED = RequestCompleted(request_id=REQ, hours_total=2.5, completed_at=NOW)
UNFULFILLED = RequestUnfulfilled(
    request_id=REQ, reason="window_passed", filled_slots=1, slots=2, decided_at=NOW
)


def asg(asg_id: str = "asg_1", slot: int = 1, status: str = "assigned") -> Assignment:
    return Assignment.model_validate(
        {
            "assignment_id": asg_id,
            "volunteer_id": f"vol_{asg_id}",
            "volunteer_display_name": "小李",
            "slot": slot,
            "checkin_code": "654321",
            "status": status,
            "assigned_at": NOW,
        }
    )


REVIEW_REQUIRED = ReviewRequired(
    request_id=REQ, service_type_id="doctor_visit", township_id="pl_longxun", held_at=NOW
)
ESCALATED = RequestEscalated(
    request_id=REQ,
    step=3,
    level="township_liaison",
    township_id="pl_longxun",
    radius_factor=2.0,
    open_slots=1,
    escalated_at=NOW,
    next_step_at=NOW + timedelta(hours=1),
)
TEAM_CLAIMED = TeamClaimed(
    request_id=REQ,
    team_id="team_barbers",
    lead_volunteer_id="vol_1",
    member_ids=["vol_1", "vol_2"],
    slots=[1, 2],
    claimed_at=NOW,
)


def reviewed(decision: str) -> RequestReviewed:
    return RequestReviewed.model_validate(
        {
            "request_id": REQ,
            "decision": decision,
            "coordinator_id": "co_1",
            "note": "checked by phone",
            "reviewed_at": NOW,
        }
    )


# Every event against every status, on a request of two slots whose slot 1 holds asg_1:
# the statuses from which it applies (all others: None, i.e. ignored).
ALLOWED: list[tuple[str, LifecycleEvent, set[Status]]] = [
    (
        "VolunteerAssigned",
        assigned(),
        {Status.POSTED, Status.MATCHING, Status.PARTIALLY_ASSIGNED, Status.IN_PROGRESS},
    ),
    ("RequestUnmatched", UNMATCHED, {Status.POSTED, Status.MATCHING}),
    ("CheckedIn", checked_in(), {Status.ASSIGNED, Status.PARTIALLY_ASSIGNED, Status.IN_PROGRESS}),
    (
        "AssignmentCompleted",
        assignment_completed(),
        {Status.ASSIGNED, Status.PARTIALLY_ASSIGNED, Status.IN_PROGRESS},
    ),
    (
        "RequestCompleted",
        COMPLETED,
        {Status.ASSIGNED, Status.PARTIALLY_ASSIGNED, Status.IN_PROGRESS},
    ),
    *[
        (
            f"AssignmentCancelled({reason})",
            assignment_cancelled(reason=reason),
            {Status.MATCHING, Status.ASSIGNED, Status.PARTIALLY_ASSIGNED, Status.IN_PROGRESS},
        )
        for reason in ("no_show", "withdrawn", "reassigned")
    ],
    (
        "AssignmentCancelled(request_cancelled)",
        assignment_cancelled(reason="request_cancelled"),
        {Status.CANCELLED},
    ),
    (
        "RequestUnfulfilled",
        UNFULFILLED,
        {
            Status.POSTED,
            Status.MATCHING,
            Status.PARTIALLY_ASSIGNED,
            Status.UNMATCHED,
            Status.IN_REVIEW,
        },
    ),
    ("ReviewRequired", REVIEW_REQUIRED, {Status.POSTED}),
    ("RequestReviewed(approved)", reviewed("approved"), {Status.IN_REVIEW}),
    ("RequestReviewed(rejected)", reviewed("rejected"), {Status.IN_REVIEW}),
    (
        "RequestEscalated",
        ESCALATED,
        {Status.POSTED, Status.MATCHING, Status.PARTIALLY_ASSIGNED, Status.UNMATCHED},
    ),
    ("TeamClaimed", TEAM_CLAIMED, set()),
]


@pytest.mark.parametrize("status", list(Status))
@pytest.mark.parametrize(("name", "event", "allowed"), ALLOWED, ids=[a[0] for a in ALLOWED])
def test_every_event_from_every_status(
    status: Status, name: str, event: LifecycleEvent, allowed: set[Status]
) -> None:
    state = RequestState(status, slots=2, assignments=(asg(),))
    change = transition(state, event)
    assert (change is not None) == (status in allowed), (name, status)


EXPECTED_STATUS: list[tuple[str, LifecycleEvent, Status, Status]] = [
    ("first of two slots", assigned(), Status.POSTED, Status.ASSIGNED),
    ("unmatched", UNMATCHED, Status.POSTED, Status.UNMATCHED),
    ("check-in", checked_in(), Status.ASSIGNED, Status.IN_PROGRESS),
    ("check-out", assignment_completed(), Status.IN_PROGRESS, Status.IN_PROGRESS),
    ("check-out without check-in", assignment_completed(), Status.ASSIGNED, Status.IN_PROGRESS),
    ("completed", COMPLETED, Status.IN_PROGRESS, Status.COMPLETED),
    ("no-show", assignment_cancelled(), Status.PARTIALLY_ASSIGNED, Status.MATCHING),
    ("unfulfilled", UNFULFILLED, Status.PARTIALLY_ASSIGNED, Status.UNFULFILLED),
    ("held for review", REVIEW_REQUIRED, Status.POSTED, Status.IN_REVIEW),
    ("approved", reviewed("approved"), Status.IN_REVIEW, Status.MATCHING),
    ("rejected", reviewed("rejected"), Status.IN_REVIEW, Status.REJECTED),
    ("unfulfilled in review", UNFULFILLED, Status.IN_REVIEW, Status.UNFULFILLED),
    ("escalated", ESCALATED, Status.PARTIALLY_ASSIGNED, Status.PARTIALLY_ASSIGNED),
    (
        "request cancelled",
        assignment_cancelled(reason="request_cancelled"),
        Status.CANCELLED,
        Status.CANCELLED,
    ),
]


@pytest.mark.parametrize(
    ("name", "event", "before", "after"), EXPECTED_STATUS, ids=[e[0] for e in EXPECTED_STATUS]
)
def test_resulting_status(name: str, event: LifecycleEvent, before: Status, after: Status) -> None:
    change = transition(RequestState(before, slots=2, assignments=(asg(),)), event)
    assert change is not None and change.status is after


def apply(state: RequestState, event: LifecycleEvent) -> RequestState:
    change = transition(state, event)
    assert change is not None, f"{type(event).__name__} ignored in {state.status}"
    return RequestState(change.status, state.slots, change.assignments or state.assignments)


def test_one_slot_from_assignment_to_completion() -> None:
    state = RequestState(Status.POSTED, slots=1)
    state = apply(state, assigned("asg_1", slot=1, slots=1))
    assert state.status is Status.ASSIGNED
    (a,) = state.assignments
    assert (a.volunteer_id, a.slot, a.checkin_code, a.status) == (
        "vol_asg_1",
        1,
        "123456",
        "assigned",
    )
    assert a.distance_km == 1.23
    state = apply(state, checked_in("asg_1"))
    assert state.status is Status.IN_PROGRESS and state.assignments[0].status == "checked_in"
    assert state.assignments[0].checked_in_at == NOW
    state = apply(state, assignment_completed("asg_1", hours=2.5))
    assert state.status is Status.IN_PROGRESS
    assert state.assignments[0].status == "completed" and state.assignments[0].hours == 2.5
    change = transition(state, COMPLETED)
    assert change is not None and change.status is Status.COMPLETED
    assert change.fields == {"hours_total": 2.5, "completed_at": NOW}


def test_slots_fill_one_by_one() -> None:
    state = RequestState(Status.POSTED, slots=3)
    state = apply(state, assigned("asg_1", slot=1, slots=3))
    assert state.status is Status.PARTIALLY_ASSIGNED
    state = apply(state, assigned("asg_2", slot=2, slots=3))
    assert state.status is Status.PARTIALLY_ASSIGNED
    state = apply(state, checked_in("asg_1"))
    assert state.status is Status.IN_PROGRESS
    # the last slot is filled while the first volunteer is already there
    state = apply(state, assigned("asg_3", slot=3, slots=3))
    assert state.status is Status.IN_PROGRESS and len(state.assignments) == 3
    # every slot taken and someone on site: a further assignment does not fit
    assert transition(state, assigned("asg_4", slot=3, slots=3)) is None


def test_no_show_reopens_the_slot_and_a_new_volunteer_fills_it() -> None:
    state = apply(RequestState(Status.POSTED, slots=1), assigned("asg_1", slot=1, slots=1))
    state = apply(state, assignment_cancelled("asg_1", "no_show"))
    assert state.status is Status.MATCHING
    assert state.assignments[0].status == "no_show" and state.assignments[0].ended_at == NOW
    assert transition(state, checked_in("asg_1")) is None  # the no-show cannot check in
    state = apply(state, assigned("asg_2", slot=1, slots=1))
    assert state.status is Status.ASSIGNED
    assert [a.status for a in state.assignments] == ["no_show", "assigned"]


def test_no_show_while_another_volunteer_serves() -> None:
    state = RequestState(Status.IN_PROGRESS, 2, (asg("asg_1", 1, "checked_in"), asg("asg_2", 2)))
    state = apply(state, assignment_cancelled("asg_2", "no_show"))
    assert state.status is Status.IN_PROGRESS  # the volunteer on site is still there
    state = apply(state, assigned("asg_3", slot=2, slots=2))
    assert state.status is Status.IN_PROGRESS


def test_duplicates_and_unknown_assignments_are_ignored() -> None:
    state = apply(RequestState(Status.POSTED, slots=2), assigned("asg_1", slot=1))
    assert transition(state, assigned("asg_1", slot=1)) is None  # same assignment again
    assert transition(state, checked_in("asg_nope")) is None
    assert transition(state, assignment_completed("asg_nope")) is None
    assert transition(state, assignment_cancelled("asg_nope")) is None
    state = apply(state, checked_in("asg_1"))
    assert transition(state, checked_in("asg_1")) is None  # checked in once
    state = apply(state, assignment_completed("asg_1"))
    assert transition(state, assignment_completed("asg_1")) is None  # completed once
    assert transition(state, assignment_cancelled("asg_1")) is None  # done is done


def test_request_cancelled_closes_live_assignments_only() -> None:
    state = RequestState(Status.CANCELLED, 2, (asg("asg_1", 1, "checked_in"), asg("asg_2", 2)))
    state = apply(state, assignment_cancelled("asg_1", "request_cancelled"))
    state = apply(state, assignment_cancelled("asg_2", "request_cancelled"))
    assert state.status is Status.CANCELLED
    assert [a.status for a in state.assignments] == ["cancelled", "cancelled"]
    assert transition(state, assignment_cancelled("asg_1", "request_cancelled")) is None


@pytest.mark.parametrize(
    "event",
    [assigned("asg_9", slot=1), checked_in(), assignment_completed(), COMPLETED, UNMATCHED],
)
def test_late_events_for_a_cancelled_request_are_ignored(event: LifecycleEvent) -> None:
    assert transition(RequestState(Status.CANCELLED, 2, (asg(),)), event) is None


def test_change_is_stored_as_plain_values() -> None:
    change = transition(RequestState(Status.POSTED, slots=1), assigned("asg_1", slot=1, slots=1))
    assert change is not None
    stored = change.to_set()
    assert stored["status"] == "assigned" and type(stored["status"]) is str
    (a,) = stored["assignments"]
    assert type(a["status"]) is str and a["checkin_code"] == "123456"
    assert a["assigned_at"] == NOW  # a date, not a string
    # and read back from the stored form
    again = RequestState.of({"status": "assigned", "slots": 1, "assignments": [a]})
    assert again.assignments[0].assignment_id == "asg_1"


def test_derived_status() -> None:
    assert derived_status((), 1) is Status.MATCHING
    assert derived_status((asg(status="no_show"),), 1) is Status.MATCHING
    assert derived_status((asg(),), 2) is Status.PARTIALLY_ASSIGNED
    assert derived_status((asg(), asg("asg_2", 2)), 2) is Status.ASSIGNED
    assert derived_status((asg(status="completed"), asg("asg_2", 2)), 2) is Status.IN_PROGRESS


def test_which_statuses_can_be_cancelled() -> None:
    closed = {
        Status.COMPLETED,
        Status.RATED,
        Status.CANCELLED,
        Status.UNFULFILLED,
        Status.REJECTED,
    }
    for status in Status:
        assert can_cancel(status) == (status not in closed)
    assert set(cancellable_statuses()) == {s.value for s in Status} - {s.value for s in closed}


def test_review_and_escalation_are_recorded_on_the_request() -> None:
    state = RequestState(Status.POSTED, slots=1)
    held = transition(state, REVIEW_REQUIRED)
    assert held is not None and held.to_set()["review"] == {"required_at": NOW}
    approved = transition(RequestState(Status.IN_REVIEW, 1), reviewed("approved"))
    assert approved is not None
    review = approved.to_set()["review"]
    assert (review["decision"], review["coordinator_id"]) == ("approved", "co_1")
    climbed = transition(RequestState(Status.MATCHING, 1), ESCALATED)
    assert climbed is not None and climbed.status is Status.MATCHING
    escalation = climbed.to_set()["escalation"]
    assert (escalation["step"], escalation["level"], escalation["radius_factor"]) == (
        3,
        "township_liaison",
        2.0,
    )


def test_team_and_trip_of_an_assignment_are_kept() -> None:
    change = transition(
        RequestState(Status.MATCHING, slots=2),
        assigned(team_id="team_barbers", trip_id="trip_1"),
    )
    assert change is not None and change.assignments is not None
    (kept,) = change.assignments
    assert (kept.team_id, kept.trip_id) == ("team_barbers", "trip_1")
