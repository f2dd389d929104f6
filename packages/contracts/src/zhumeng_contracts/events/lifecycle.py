"""Lifecycle events of a request's match (DESIGN §5), on `matching.events.v1`, key = request id.

posted -> [review] -> matching -> offered <-> (declined | expired -> next candidate)
       -> assigned (all slots) | partially_assigned -> in_progress (check-in)
       -> completed (check-out, hours credited); cancelled; unfulfilled; a no-show re-opens
       the slot.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .base import Event
from .common import AwareDatetime, Id, TimeWindow
from .matching import ScorePart

Actor = Literal["requester", "volunteer", "coordinator", "system"]


class _MatchEvent(Event):
    TOPIC: ClassVar[str] = "matching.events.v1"

    request_id: Id

    def key(self) -> str:
        return self.request_id


class OfferMade(_MatchEvent):
    """A volunteer is offered one slot of a request, until `expires_at`."""

    TYPE: ClassVar[str] = "zhumeng.offer.made.v1"

    offer_id: Id
    volunteer_id: Id
    volunteer_display_name: str
    service_type_id: Id
    window: TimeWindow
    slot: int = Field(ge=1)
    expires_at: AwareDatetime
    distance_km: float = Field(ge=0)
    score: float
    explanation: list[ScorePart]
    made_at: AwareDatetime


class OfferDeclined(_MatchEvent):
    TYPE: ClassVar[str] = "zhumeng.offer.declined.v1"

    offer_id: Id
    volunteer_id: Id
    declined_at: AwareDatetime


class OfferExpired(_MatchEvent):
    TYPE: ClassVar[str] = "zhumeng.offer.expired.v1"

    offer_id: Id
    volunteer_id: Id
    expired_at: AwareDatetime


class ClaimOpened(_MatchEvent):
    """Open claim (抢单): the best eligible volunteers are invited; the first claims win."""

    TYPE: ClassVar[str] = "zhumeng.claim.opened.v1"

    service_type_id: Id
    window: TimeWindow
    open_slots: int = Field(ge=1)
    invited_volunteer_ids: list[Id] = Field(min_length=1)
    opened_at: AwareDatetime


class CheckedIn(_MatchEvent):
    TYPE: ClassVar[str] = "zhumeng.assignment.checked-in.v1"

    assignment_id: Id
    volunteer_id: Id
    checked_in_at: AwareDatetime


class AssignmentCompleted(_MatchEvent):
    """Checked out: the hours are credited to the volunteer."""

    TYPE: ClassVar[str] = "zhumeng.assignment.completed.v1"

    assignment_id: Id
    volunteer_id: Id
    service_type_id: Id
    checked_in_at: AwareDatetime
    checked_out_at: AwareDatetime
    hours: float = Field(ge=0, le=24)


class AssignmentCancelled(_MatchEvent):
    """An assignment ends without service: capacity is released."""

    TYPE: ClassVar[str] = "zhumeng.assignment.cancelled.v1"

    assignment_id: Id
    volunteer_id: Id
    by: Actor
    reason: Literal["request_cancelled", "withdrawn", "no_show", "reassigned"]
    cancelled_at: AwareDatetime


class RequestCompleted(_MatchEvent):
    TYPE: ClassVar[str] = "zhumeng.request.completed.v1"

    hours_total: float = Field(ge=0)
    completed_at: AwareDatetime


class RequestUnfulfilled(_MatchEvent):
    TYPE: ClassVar[str] = "zhumeng.request.unfulfilled.v1"

    reason: Literal["window_passed", "escalation_exhausted", "no_candidates"]
    filled_slots: int = Field(ge=0)
    slots: int = Field(ge=1)
    decided_at: AwareDatetime


class ReviewRequired(_MatchEvent):
    """The service type needs a coordinator's review before matching starts."""

    TYPE: ClassVar[str] = "zhumeng.request.review-required.v1"

    service_type_id: Id
    township_id: Id
    held_at: AwareDatetime


class RequestReviewed(_MatchEvent):
    """A coordinator approved the request (matching starts) or rejected it (terminal)."""

    TYPE: ClassVar[str] = "zhumeng.request.reviewed.v1"

    decision: Literal["approved", "rejected"]
    coordinator_id: Id
    note: str | None = Field(default=None, max_length=500)
    reviewed_at: AwareDatetime


EscalationLevel = Literal["wider_radius", "township_liaison", "county_centre"]


class RequestEscalated(_MatchEvent):
    """Open slots were not claimed within the service type's target: one rung up the ladder
    (wider radius -> township liaison -> county centre)."""

    TYPE: ClassVar[str] = "zhumeng.request.escalated.v1"

    step: int = Field(ge=1)
    level: EscalationLevel
    township_id: Id
    radius_factor: float = Field(default=1.0, ge=1, description="volunteers' radius multiplied")
    open_slots: int = Field(ge=0)
    escalated_at: AwareDatetime
    next_step_at: AwareDatetime | None = None


class TeamClaimed(_MatchEvent):
    """A team's lead took open slots of a request for named members of the team; each member's
    slot follows as a VolunteerAssigned with the team's id."""

    TYPE: ClassVar[str] = "zhumeng.team.claimed.v1"

    team_id: Id
    lead_volunteer_id: Id
    member_ids: list[Id] = Field(min_length=1)
    slots: list[int] = Field(min_length=1)
    claimed_at: AwareDatetime
