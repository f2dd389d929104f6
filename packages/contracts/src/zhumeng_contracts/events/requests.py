"""Events of the Request aggregate (key = request id)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import EmailStr, Field

from .base import Event
from .common import AwareDatetime, GeoPoint, Id, Language, Locale, TimeWindow


class RequestPosted(Event):
    """A resident (or an official on their behalf) asked for help. No personal data: the
    requester's contact goes to `requests.contacts.v1` only."""

    TYPE: ClassVar[str] = "zhumeng.request.posted.v1"
    TOPIC: ClassVar[str] = "requests.events.v1"

    request_id: Id
    service_type_id: Id
    place_id: Id
    township_id: Id
    location: GeoPoint
    window: TimeWindow
    slots: int = Field(default=1, ge=1, le=20)
    language: Language | None = None
    posted_at: AwareDatetime
    # additive (trip pooling): where a ride, parcel or produce goes, and what it needs. The
    # drop-off is a place (a village or township), never a street address.
    dropoff_place_id: Id | None = None
    dropoff: GeoPoint | None = None
    seats: int = Field(default=0, ge=0, le=12, description="passengers to carry")
    cargo_kg: float = Field(default=0, ge=0, le=5000, description="parcel or produce weight")

    def key(self) -> str:
        return self.request_id


class RequesterContact(Event):
    """How to reach the requester of one request. PII: consumed by notify only."""

    TYPE: ClassVar[str] = "zhumeng.request.contact.v1"
    TOPIC: ClassVar[str] = "requests.contacts.v1"

    request_id: Id
    requester_id: Id
    name: str = Field(min_length=1, max_length=80)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9]{6,15}$")
    email: EmailStr | None = None
    locale: Locale = "zh-CN"

    def key(self) -> str:
        return self.request_id


class RequestCancelled(Event):
    """The requester (or a coordinator) withdrew the request before it was completed."""

    TYPE: ClassVar[str] = "zhumeng.request.cancelled.v1"
    TOPIC: ClassVar[str] = "requests.events.v1"

    request_id: Id
    by: Literal["requester", "coordinator"]
    cancelled_at: AwareDatetime

    def key(self) -> str:
        return self.request_id


class RequestRated(Event):
    """The requester rated a completed request (the comment stays in the requests service)."""

    TYPE: ClassVar[str] = "zhumeng.request.rated.v1"
    TOPIC: ClassVar[str] = "requests.events.v1"

    request_id: Id
    stars: int = Field(ge=1, le=5)
    rated_at: AwareDatetime

    def key(self) -> str:
        return self.request_id
