"""Catalog records. Each compacted catalog topic carries the whole current state of one entity
per key; `active: false` marks a deactivated entity (consumers drop it from their views)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import EmailStr, Field

from .base import Event
from .common import Frozen, GeoPoint, Id, Language, Locale, TimeWindow, WeeklySlot
from .matching import MatchMode


def _mandarin() -> list[Language]:
    return ["mandarin"]


class SlotRole(Frozen):
    """A kind of person a multi-slot request needs (a clinic's barbers, its dentist): `count`
    slots whose requirements replace the service type's."""

    role: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="slug, e.g. barber")
    name_zh: str = Field(min_length=1, max_length=80)
    name_en: str = Field(min_length=1, max_length=80)
    required_skills: list[str] = Field(default_factory=list, max_length=20)
    required_certifications: list[str] = Field(default_factory=list, max_length=10)
    count: int = Field(default=1, ge=1, le=20)


class ServiceTypeRecord(Event):
    TYPE: ClassVar[str] = "zhumeng.catalog.service-type.v1"
    TOPIC: ClassVar[str] = "catalog.service-types.v1"

    id: Id
    name_zh: str = Field(min_length=1, max_length=80)
    name_en: str = Field(min_length=1, max_length=80)
    category: str = Field(min_length=1, max_length=40)
    required_skills: list[str] = Field(default_factory=list, max_length=20)
    required_certifications: list[str] = Field(default_factory=list, max_length=10)
    default_duration_min: int = Field(ge=5, le=24 * 60)
    target_claim_min: int = Field(ge=1, le=7 * 24 * 60, description="target time to claim")
    active: bool = True
    version: int = Field(ge=1)
    # additive (lifecycle): how matching fills this service's requests
    matching_mode: MatchMode = "direct"
    offer_ttl_min: int = Field(default=30, ge=1, le=24 * 60, description="auto-offer time to live")
    claim_invites: int = Field(default=20, ge=1, le=200, description="open claim: best N invited")
    # additive: a coordinator reviews each request before matching; batch mode's window
    needs_review: bool = False
    batch_window_min: int = Field(default=10, ge=1, le=24 * 60, description="batch mode window")
    # additive: slots with different roles; a request has sum(count) slots, numbered by role in
    # this order (slots 1..c1 the first role, ...), each role's requirements replacing the above
    slot_roles: list[SlotRole] = Field(default_factory=list, max_length=20)

    def key(self) -> str:
        return self.id


class PlaceRecord(Event):
    TYPE: ClassVar[str] = "zhumeng.catalog.place.v1"
    TOPIC: ClassVar[str] = "catalog.places.v1"

    id: Id
    kind: Literal["county", "township", "village"]
    name_zh: str = Field(min_length=1, max_length=80)
    name_en: str = Field(min_length=1, max_length=80)
    parent_id: Id | None = None
    township_id: Id | None = Field(default=None, description="the township a place belongs to")
    location: GeoPoint
    active: bool = True
    version: int = Field(ge=1)

    def key(self) -> str:
        return self.id


class VolunteerRecord(Event):
    """What matching needs to know about a volunteer. Contact details are not here: they travel
    only on `catalog.contacts.v1`."""

    TYPE: ClassVar[str] = "zhumeng.catalog.volunteer.v1"
    TOPIC: ClassVar[str] = "catalog.volunteers.v1"

    id: Id
    display_name: str = Field(min_length=1, max_length=40, description="first name only")
    skills: list[str] = Field(default_factory=list, max_length=30)
    certifications: list[str] = Field(default_factory=list, max_length=10)
    home_place_id: Id
    township_id: Id
    home: GeoPoint
    radius_km: float = Field(gt=0, le=200)
    availability: list[WeeklySlot] = Field(default_factory=list, max_length=50)
    capacity: int = Field(ge=1, le=20, description="concurrent assignments at most")
    languages: list[Language] = Field(default_factory=_mandarin, max_length=5)
    team_ids: list[Id] = Field(default_factory=list, max_length=10)
    active: bool = True
    version: int = Field(ge=1)
    # additive: exceptions to the weekly schedule (leave, illness), absolute times
    unavailable: list[TimeWindow] = Field(default_factory=list, max_length=50)

    def key(self) -> str:
        return self.id


class TeamRecord(Event):
    TYPE: ClassVar[str] = "zhumeng.catalog.team.v1"
    TOPIC: ClassVar[str] = "catalog.teams.v1"

    id: Id
    name: str = Field(min_length=1, max_length=80)
    township_id: Id | None = None
    lead_volunteer_id: Id | None = None
    member_ids: list[Id] = Field(default_factory=list, max_length=200)
    skills: list[str] = Field(default_factory=list, max_length=30)
    active: bool = True
    version: int = Field(ge=1)

    def key(self) -> str:
        return self.id


class ContactRecord(Event):
    """Personal contact details of a volunteer. PII: consumed by notify only, never public."""

    TYPE: ClassVar[str] = "zhumeng.catalog.contact.v1"
    TOPIC: ClassVar[str] = "catalog.contacts.v1"

    id: Id = Field(description="the volunteer id")
    name: str = Field(min_length=1, max_length=80)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9]{6,15}$")
    email: EmailStr | None = None
    locale: Locale = "zh-CN"
    active: bool = True
    version: int = Field(ge=1)

    def key(self) -> str:
        return self.id
