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

    def check_window(self, now: datetime) -> None:
        if self.window.end <= now:
            raise ValueError("the window has already passed")
        if self.window.end - self.window.start > MAX_WINDOW:
            raise ValueError("a window may span at most 7 days")
        if self.window.start - now > MAX_LEAD:
            raise ValueError("a request may be posted at most 90 days ahead")

    def fingerprint(self) -> str:
        """Same key + same body = same request; the body is compared by this hash."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()
