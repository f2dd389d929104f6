"""How matching's lifecycle events move a request (DESIGN §5). Pure: no I/O.

`transition(state, event)` returns the change an event makes to a request, or None when the
event does not fit where the request stands (a late event for a cancelled request, a
duplicate): the caller records such an event as applied and moves on — normal races are never
dead-lettered.

    posted | matching | partially_assigned --VolunteerAssigned--> assigned | partially_assigned
    posted | matching --RequestUnmatched--> unmatched
    assigned | partially_assigned | in_progress --CheckedIn--> in_progress
    ... --AssignmentCompleted--> (assignment completed, hours)   --RequestCompleted--> completed
    ... --AssignmentCancelled(no_show | withdrawn | reassigned)--> the slot re-opens: matching
        (or partially_assigned / in_progress while other volunteers still serve)
    cancelled --AssignmentCancelled(request_cancelled)--> (assignment cancelled)
    posted | matching | partially_assigned | unmatched | in_review --RequestUnfulfilled-->
        unfulfilled
    posted --ReviewRequired--> in_review --RequestReviewed--> matching (approved) | rejected
    any open status --RequestEscalated--> (the same status; the escalation rung is recorded)
    TeamClaimed: no change (each member's VolunteerAssigned follows, with the team's id)

The request's status after an assignment changes is derived from its assignments the way
matching derives its own state, so both services agree: any volunteer checked in or done ->
in_progress; every slot filled -> assigned; some -> partially_assigned; none -> matching.
The number of slots is the request's own (what the requester asked for); an event's `slot`
says which one an assignment fills.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

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

from .model import Status

LifecycleEvent = (
    VolunteerAssigned
    | RequestUnmatched
    | CheckedIn
    | AssignmentCompleted
    | AssignmentCancelled
    | RequestCompleted
    | RequestUnfulfilled
    | ReviewRequired
    | RequestReviewed
    | RequestEscalated
    | TeamClaimed
)
#: The event types the requests service follows on `matching.events.v1`.
LIFECYCLE_EVENTS: tuple[type[LifecycleEvent], ...] = (
    VolunteerAssigned,
    RequestUnmatched,
    CheckedIn,
    AssignmentCompleted,
    AssignmentCancelled,
    RequestCompleted,
    RequestUnfulfilled,
    ReviewRequired,
    RequestReviewed,
    RequestEscalated,
    TeamClaimed,
)


class AssignmentStatus(StrEnum):
    ASSIGNED = "assigned"
    CHECKED_IN = "checked_in"
    COMPLETED = "completed"
    NO_SHOW = "no_show"
    WITHDRAWN = "withdrawn"
    REASSIGNED = "reassigned"
    CANCELLED = "cancelled"


#: Assignments that hold their slot.
LIVE = frozenset(
    {AssignmentStatus.ASSIGNED, AssignmentStatus.CHECKED_IN, AssignmentStatus.COMPLETED}
)

ASSIGNABLE_FROM = frozenset({Status.POSTED, Status.MATCHING, Status.PARTIALLY_ASSIGNED})
UNMATCHABLE_FROM = frozenset({Status.POSTED, Status.MATCHING})
SERVING = frozenset({Status.ASSIGNED, Status.PARTIALLY_ASSIGNED, Status.IN_PROGRESS})
REOPENABLE_FROM = SERVING | {Status.MATCHING}
UNFULFILLABLE_FROM = frozenset(
    {Status.POSTED, Status.MATCHING, Status.PARTIALLY_ASSIGNED, Status.UNMATCHED, Status.IN_REVIEW}
)
#: Where an escalation rung is recorded (the request is still waiting for volunteers).
ESCALATABLE = frozenset(
    {Status.POSTED, Status.MATCHING, Status.PARTIALLY_ASSIGNED, Status.UNMATCHED}
)


class Assignment(BaseModel):
    """One volunteer on one slot of the request, as stored in the request's `assignments`."""

    model_config = ConfigDict(use_enum_values=True, validate_default=True)  # plain strings

    assignment_id: str
    volunteer_id: str
    volunteer_display_name: str
    slot: int
    checkin_code: str | None = None  # shown to the requester only
    status: AssignmentStatus = AssignmentStatus.ASSIGNED
    mode: str = "direct"
    distance_km: float = 0.0
    score: float = 0.0
    explanation: list[dict[str, Any]] = []
    assigned_at: datetime
    checked_in_at: datetime | None = None
    checked_out_at: datetime | None = None
    hours: float | None = None
    ended_at: datetime | None = None
    team_id: str | None = None  # a slot a team claimed for this member
    trip_id: str | None = None  # a slot filled on the volunteer's planned trip
    role: str | None = None  # the slot's role (a clinic's barber, dentist, ...)

    @property
    def live(self) -> bool:
        return self.status in LIVE


@dataclass(frozen=True)
class RequestState:
    """What the transition rules need of a request."""

    status: Status
    slots: int
    assignments: tuple[Assignment, ...] = ()

    @classmethod
    def of(cls, doc: dict[str, Any]) -> RequestState:
        return cls(
            Status(doc["status"]),
            int(doc.get("slots", 1)),
            tuple(Assignment.model_validate(a) for a in doc.get("assignments") or []),
        )

    def find(self, assignment_id: str) -> Assignment | None:
        return next((a for a in self.assignments if a.assignment_id == assignment_id), None)


@dataclass(frozen=True)
class Change:
    """The new status, the new assignments (when they changed) and other fields to set."""

    status: Status
    assignments: tuple[Assignment, ...] | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def to_set(self) -> dict[str, Any]:
        """The `$set` of a MongoDB update."""
        out: dict[str, Any] = {"status": self.status.value, **self.fields}
        if self.assignments is not None:
            out["assignments"] = [a.model_dump(mode="python") for a in self.assignments]
        return out


def derived_status(assignments: tuple[Assignment, ...], slots: int) -> Status:
    """The status of an open request from its assignments (matching's `Match.state`)."""
    live = [a for a in assignments if a.live]
    if any(a.status in (AssignmentStatus.CHECKED_IN, AssignmentStatus.COMPLETED) for a in live):
        return Status.IN_PROGRESS
    if len({a.slot for a in live}) >= slots:
        return Status.ASSIGNED
    if live:
        return Status.PARTIALLY_ASSIGNED
    return Status.MATCHING


def _updated(found: Assignment, changes: dict[str, Any]) -> Assignment:
    return Assignment.model_validate({**found.model_dump(), **changes})  # validated: plain str


def _replace(assignments: tuple[Assignment, ...], updated: Assignment) -> tuple[Assignment, ...]:
    return tuple(updated if a.assignment_id == updated.assignment_id else a for a in assignments)


def transition(state: RequestState, event: LifecycleEvent) -> Change | None:
    """The change `event` makes to a request in `state`, or None if it does not fit."""
    match event:
        case VolunteerAssigned():
            return _assigned(state, event)
        case RequestUnmatched():
            if state.status not in UNMATCHABLE_FROM:
                return None
            unmatched = {
                "reasons": event.reasons,
                "candidates_considered": event.candidates_considered,
                "decided_at": event.decided_at,
            }
            return Change(Status.UNMATCHED, fields={"unmatched": unmatched})
        case CheckedIn():
            return _checked_in(state, event)
        case AssignmentCompleted():
            return _assignment_completed(state, event)
        case AssignmentCancelled():
            return _assignment_cancelled(state, event)
        case RequestCompleted():
            if state.status not in SERVING:
                return None
            fields = {"hours_total": event.hours_total, "completed_at": event.completed_at}
            return Change(Status.COMPLETED, fields=fields)
        case RequestUnfulfilled():
            if state.status not in UNFULFILLABLE_FROM:
                return None
            unfulfilled = {
                "reason": event.reason,
                "filled_slots": event.filled_slots,
                "slots": event.slots,
                "decided_at": event.decided_at,
            }
            return Change(Status.UNFULFILLED, fields={"unfulfilled": unfulfilled})
        case ReviewRequired() | RequestReviewed() | RequestEscalated() | TeamClaimed():
            return _review_or_escalation(state, event)
    return None  # pragma: no cover - the union is exhaustive


def _assigned(state: RequestState, event: VolunteerAssigned) -> Change | None:
    if state.find(event.assignment_id) is not None:
        return None  # the same assignment again
    live_slots = {a.slot for a in state.assignments if a.live}
    # in progress with a slot still open (one volunteer already there, the other slot being
    # filled): the assignment is taken, the request stays in progress
    open_in_progress = state.status is Status.IN_PROGRESS and len(live_slots) < state.slots
    if state.status not in ASSIGNABLE_FROM and not open_in_progress:
        return None
    new = Assignment(
        assignment_id=event.assignment_id,
        volunteer_id=event.volunteer_id,
        volunteer_display_name=event.volunteer_display_name,
        slot=event.slot,
        checkin_code=event.checkin_code,
        mode=event.mode,
        distance_km=round(event.distance_km, 2),
        score=event.score,
        explanation=[p.model_dump() for p in event.explanation],
        assigned_at=event.assigned_at,
        team_id=event.team_id,
        trip_id=event.trip_id,
        role=event.role,
    )
    assignments = (*state.assignments, new)
    return Change(derived_status(assignments, state.slots), assignments)


def _checked_in(state: RequestState, event: CheckedIn) -> Change | None:
    found = state.find(event.assignment_id)
    if state.status not in SERVING or found is None or found.status != AssignmentStatus.ASSIGNED:
        return None
    updated = _updated(
        found, {"status": AssignmentStatus.CHECKED_IN, "checked_in_at": event.checked_in_at}
    )
    assignments = _replace(state.assignments, updated)
    return Change(derived_status(assignments, state.slots), assignments)


def _assignment_completed(state: RequestState, event: AssignmentCompleted) -> Change | None:
    found = state.find(event.assignment_id)
    if (
        state.status not in SERVING
        or found is None
        or found.status not in (AssignmentStatus.ASSIGNED, AssignmentStatus.CHECKED_IN)
    ):
        return None
    updated = _updated(
        found,
        {
            "status": AssignmentStatus.COMPLETED,
            "checked_in_at": event.checked_in_at,
            "checked_out_at": event.checked_out_at,
            "hours": event.hours,
        },
    )
    assignments = _replace(state.assignments, updated)
    return Change(derived_status(assignments, state.slots), assignments)


def _assignment_cancelled(state: RequestState, event: AssignmentCancelled) -> Change | None:
    found = state.find(event.assignment_id)
    if found is None or found.status not in (
        AssignmentStatus.ASSIGNED,
        AssignmentStatus.CHECKED_IN,
    ):
        return None
    if event.reason == "request_cancelled":
        if state.status is not Status.CANCELLED:
            return None
        updated = _updated(
            found, {"status": AssignmentStatus.CANCELLED, "ended_at": event.cancelled_at}
        )
        return Change(Status.CANCELLED, _replace(state.assignments, updated))
    # no_show, withdrawn, reassigned: the slot re-opens and matching fills it again
    if state.status not in REOPENABLE_FROM:
        return None
    updated = _updated(
        found, {"status": AssignmentStatus(event.reason), "ended_at": event.cancelled_at}
    )
    assignments = _replace(state.assignments, updated)
    return Change(derived_status(assignments, state.slots), assignments)


def _review_or_escalation(
    state: RequestState, event: ReviewRequired | RequestReviewed | RequestEscalated | TeamClaimed
) -> Change | None:
    """Review holds and releases (or ends) a request; an escalation rung is recorded."""
    match event:
        case ReviewRequired():
            if state.status is not Status.POSTED:
                return None
            return Change(Status.IN_REVIEW, fields={"review": {"required_at": event.held_at}})
        case RequestReviewed():
            if state.status is not Status.IN_REVIEW:
                return None
            review = {
                "decision": event.decision,
                "coordinator_id": event.coordinator_id,
                "note": event.note,
                "reviewed_at": event.reviewed_at,
            }
            after = Status.MATCHING if event.decision == "approved" else Status.REJECTED
            return Change(after, fields={"review": review})
        case RequestEscalated():
            if state.status not in ESCALATABLE:
                return None
            escalation = {
                "step": event.step,
                "level": event.level,
                "radius_factor": event.radius_factor,
                "open_slots": event.open_slots,
                "escalated_at": event.escalated_at,
                "next_step_at": event.next_step_at,
            }
            return Change(state.status, fields={"escalation": escalation})
    return None  # a team's claim: its members' VolunteerAssigned change the request
