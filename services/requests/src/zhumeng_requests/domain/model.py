"""The Request aggregate: what a resident asked for and where it stands. Pure: no I/O."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, EmailStr, Field, model_validator

from zhumeng_contracts.events.common import Id, Language, Locale, TimeWindow

MAX_WINDOW = timedelta(days=7)
MAX_LEAD = timedelta(days=90)


class Status(StrEnum):
    """Where a request stands (DESIGN §5). Matching's lifecycle events move it; the requester
    (or a coordinator) cancels it, and the requester rates it once it is completed."""

    POSTED = "posted"
    MATCHING = "matching"
    ASSIGNED = "assigned"
    PARTIALLY_ASSIGNED = "partially_assigned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    RATED = "rated"
    UNMATCHED = "unmatched"
    CANCELLED = "cancelled"
    UNFULFILLED = "unfulfilled"
    IN_REVIEW = "in_review"  # a coordinator reviews it before matching (some service types)
    REJECTED = "rejected"  # the coordinator declined it


#: A request may be cancelled in every status but these (409 otherwise).
NOT_CANCELLABLE = frozenset(
    {Status.COMPLETED, Status.RATED, Status.CANCELLED, Status.UNFULFILLED, Status.REJECTED}
)


def can_cancel(status: str) -> bool:
    return Status(status) not in NOT_CANCELLABLE


def cancellable_statuses() -> list[str]:
    return [s.value for s in Status if s not in NOT_CANCELLABLE]


class RatingIn(BaseModel):
    """The requester's rating of a completed request. The comment stays in this service."""

    model_config = ConfigDict(extra="forbid")

    stars: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=500)


class RequesterIn(BaseModel):
    """Who to tell. Minimal by design: a name to address them by and one way to reach them."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9]{6,15}$")
    email: EmailStr | None = None
    locale: Locale = "zh-CN"

    @model_validator(mode="after")
    def _reachable(self) -> RequesterIn:
        if not self.phone and not self.email:
            raise ValueError("give a phone number or an email address to reach the requester")
        return self


class NewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_type_id: Id
    place_id: Id
    window: TimeWindow
    slots: int = Field(default=1, ge=1, le=20)
    language: Language | None = None
    notes: str = Field(default="", max_length=500)
    requester: RequesterIn
    # trip pooling (rides, parcels, produce): where it goes — a village or township, never a
    # street address — and what it needs room for
    dropoff_place_id: Id | None = None
    seats: int = Field(default=0, ge=0, le=12)
    cargo_kg: float = Field(default=0, ge=0, le=5000)

    def check_window(self, now: datetime) -> None:
        if self.window.end <= now:
            raise ValueError("the window has already passed")
        if self.window.end - self.window.start > MAX_WINDOW:
            raise ValueError("a window may span at most 7 days")
        if self.window.start - now > MAX_LEAD:
            raise ValueError("a request may be posted at most 90 days ahead")

    def check_carry(self, trip_mode: bool) -> None:
        """A request carried on a volunteer's trip names its drop-off and what to carry."""
        if not trip_mode:
            return
        if self.dropoff_place_id is None:
            raise ValueError("this service carries people or goods: give a dropoff_place_id")
        if self.dropoff_place_id == self.place_id:
            raise ValueError("the drop-off must be another place than the pickup")
        if self.seats < 1 and self.cargo_kg <= 0:
            raise ValueError("give the seats needed, or the cargo weight in kg")

    def fingerprint(self) -> str:
        """Same key + same body = same request; the body is compared by this hash."""
        data = self.model_dump(mode="json")
        for key in ("dropoff_place_id", "seats", "cargo_kg"):  # added later: absent = as before
            if not data[key]:
                del data[key]
        canonical = json.dumps(data, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()
