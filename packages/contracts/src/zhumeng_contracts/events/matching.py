"""Events of matching decisions (key = request id, so they stay in order per request)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .base import Event
from .common import AwareDatetime, Frozen, Id, TimeWindow

MatchMode = Literal["direct", "auto_offer", "open_claim", "coordinator", "batch", "trip", "team"]


class ScorePart(Frozen):
    """One criterion's part in a match score: the explanation the API returns."""

    criterion: str
    value: float = Field(description="the criterion's own figure, 0..1")
    weight: float
    contribution: float


class VolunteerAssigned(Event):
    TYPE: ClassVar[str] = "zhumeng.volunteer.assigned.v1"
    TOPIC: ClassVar[str] = "matching.events.v1"

    request_id: Id
    assignment_id: Id
    volunteer_id: Id
    volunteer_display_name: str
    service_type_id: Id
    window: TimeWindow
    distance_km: float = Field(ge=0)
    score: float
    explanation: list[ScorePart]
    candidates_considered: int = Field(ge=1)
    assigned_at: AwareDatetime
    # additive (lifecycle): which of the request's slots, how it was filled, and the code the
    # requester shows at check-in
    slot: int = Field(default=1, ge=1)
    slots: int = Field(default=1, ge=1)
    mode: MatchMode = "direct"
    checkin_code: str | None = Field(default=None, pattern=r"^[0-9]{6}$")
    # additive: a slot a team claimed for this member; a slot filled on a volunteer's trip
    team_id: Id | None = None
    trip_id: Id | None = None
    # additive: the slot's role (service types with `slot_roles`)
    role: str | None = None

    def key(self) -> str:
        return self.request_id


class RequestUnmatched(Event):
    TYPE: ClassVar[str] = "zhumeng.request.unmatched.v1"
    TOPIC: ClassVar[str] = "matching.events.v1"

    request_id: Id
    service_type_id: Id
    reasons: dict[str, int] = Field(
        description="why candidates were not eligible: reason -> number of volunteers"
    )
    candidates_considered: int = Field(ge=0)
    decided_at: AwareDatetime

    def key(self) -> str:
        return self.request_id
