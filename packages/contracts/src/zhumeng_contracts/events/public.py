"""Public feeds for other agencies (DESIGN §7): no personal data at all — no names, phones,
addresses, volunteer ids or coordinates finer than a village. Published as CloudEvents
structured JSON on `public.requests.v1` and `public.assignments.v1`, key = request id.

Each public event is derived from one internal event; its id is derived from that event's id,
so a re-derived copy has the same id and subscribers can drop it.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .base import Event
from .common import AwareDatetime, Id, TimeWindow
from .matching import MatchMode

PublicStatus = Literal[
    "posted",
    "in_review",
    "matching",
    "escalated",
    "partially_assigned",
    "assigned",
    "in_progress",
    "completed",
    "rated",
    "unmatched",
    "unfulfilled",
    "cancelled",
    "rejected",
]


class _PublicRequestEvent(Event):
    TOPIC: ClassVar[str] = "public.requests.v1"

    request_id: Id
    service_type_id: Id
    township_id: Id

    def key(self) -> str:
        return self.request_id


class PublicRequestPosted(_PublicRequestEvent):
    TYPE: ClassVar[str] = "zhumeng.public.request.posted.v1"

    place_id: Id = Field(description="the village or township; never an address")
    window: TimeWindow
    slots: int = Field(ge=1)
    posted_at: AwareDatetime


class PublicRequestStatusChanged(_PublicRequestEvent):
    TYPE: ClassVar[str] = "zhumeng.public.request.status-changed.v1"

    status: PublicStatus
    filled_slots: int = Field(ge=0)
    slots: int = Field(ge=1)
    changed_at: AwareDatetime


class _PublicAssignmentEvent(Event):
    TOPIC: ClassVar[str] = "public.assignments.v1"

    request_id: Id
    assignment_id: Id
    service_type_id: Id
    township_id: Id

    def key(self) -> str:
        return self.request_id


class PublicAssignmentMade(_PublicAssignmentEvent):
    TYPE: ClassVar[str] = "zhumeng.public.assignment.made.v1"

    mode: MatchMode
    slot: int = Field(ge=1)
    team_id: Id | None = None
    minutes_to_claim: float | None = Field(default=None, ge=0)
    assigned_at: AwareDatetime


class PublicAssignmentCompleted(_PublicAssignmentEvent):
    TYPE: ClassVar[str] = "zhumeng.public.assignment.completed.v1"

    hours: float = Field(ge=0, le=24)
    completed_at: AwareDatetime


class PublicAssignmentCancelled(_PublicAssignmentEvent):
    TYPE: ClassVar[str] = "zhumeng.public.assignment.cancelled.v1"

    reason: Literal["request_cancelled", "withdrawn", "no_show", "reassigned"]
    cancelled_at: AwareDatetime
