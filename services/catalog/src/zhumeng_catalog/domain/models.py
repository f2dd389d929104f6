"""The catalog's entities, their inputs, their rules, and their conversion to contract records.

Pure: no I/O. An entity is the whole validated state of one service type, place, volunteer or
team; every accepted change produces a new entity with `version + 1` and the records that
announce it. Entities are at least as strict as the contract records, so building a record
from a valid entity never fails.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from zhumeng_contracts.events import (
    ContactRecord,
    Event,
    PlaceRecord,
    ServiceTypeRecord,
    TeamRecord,
    VolunteerRecord,
)
from zhumeng_contracts.events.common import GeoPoint, Language, Locale, TimeWindow, WeeklySlot
from zhumeng_kit.pii import mask_email, mask_phone
from zhumeng_kit.problems import Unprocessable

from .rules import Slug, Tag, Tags, UniqueIds

Name80 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
Name40 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
PlaceKind = Literal["county", "township", "village"]


def _clean_phone(value: Any) -> Any:
    if isinstance(value, str):
        value = re.sub(r"[\s()-]", "", value)
        return value or None
    return value


Phone = Annotated[str, BeforeValidator(_clean_phone), Field(pattern=r"^\+?[0-9]{6,15}$")]


def _unique_languages(values: list[Language]) -> list[Language]:
    out: list[Language] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


Languages = Annotated[
    list[Language], Field(min_length=1, max_length=5), AfterValidator(_unique_languages)
]


def _in_order(windows: list[TimeWindow]) -> list[TimeWindow]:
    return sorted(windows, key=lambda w: w.start)


# exceptions to the weekly schedule (leave, illness): absolute times, earliest first
Unavailable = Annotated[list[TimeWindow], Field(max_length=50), AfterValidator(_in_order)]


class Entity(BaseModel):
    """A validated entity state. Stored documents may carry extra fields: they are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: Slug
    active: bool = True
    version: int = Field(default=1, ge=1)


class Input(BaseModel):
    """A client's body: unknown fields are an error (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


E = TypeVar("E", bound=Entity)


def validated(model: type[E], data: dict[str, Any]) -> E:
    """Validate a state, turning pydantic errors into a 422 problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors(include_url=False)
        ]
        raise Unprocessable(f"invalid {model.__name__.lower()}", errors=errors) from exc


def state_of(entity: Entity) -> dict[str, Any]:
    """The JSON-compatible state (what is stored and what is compared)."""
    return entity.model_dump(mode="json")


def changed(old: Entity, new: Entity) -> bool:
    a, b = state_of(old), state_of(new)
    a.pop("version")
    b.pop("version")
    return a != b


def next_version(old: E, data: dict[str, Any]) -> E:
    """The entity after a change: merged, re-validated, version bumped."""
    return validated(type(old), {**state_of(old), **data, "version": old.version + 1})


# ---------------------------------------------------------------------------- service types


# the matching modes a service type may choose ("coordinator" assignment works in every mode)
WiredMode = Literal["direct", "auto_offer", "open_claim", "team", "batch", "trip"]
# review holds a request before its first search; the pooled modes open their pool at posting
REVIEWABLE_MODES = frozenset({"direct", "auto_offer", "open_claim"})
MAX_SLOTS = 20  # a request has at most 20 slots (requests' and matching's limit)
RoleSlug = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class SlotRoleSpec(Input):
    """A role of a team request's slots (barber, dentist); its requirements replace the
    service type's for its `count` slots."""

    role: RoleSlug
    name_zh: Name80
    name_en: Name80
    required_skills: Annotated[Tags, Field(max_length=20)] = []
    required_certifications: Annotated[Tags, Field(max_length=10)] = []
    count: int = Field(default=1, ge=1, le=MAX_SLOTS)


SlotRoles = Annotated[list[SlotRoleSpec], Field(max_length=MAX_SLOTS)]


# the modes whose matching fits people to roles (team claims; batch windows, one row per slot)
ROLE_MODES = frozenset({"team", "batch"})


def check_slot_roles(mode: str, roles: list[SlotRoleSpec]) -> None:
    """Roles are for team and batch requests (the other modes fill one kind of slot); slugs
    are unique and a request never has more than MAX_SLOTS slots."""
    if not roles:
        return
    if mode not in ROLE_MODES:
        modes = " and ".join(sorted(ROLE_MODES))
        raise ValueError(f"slot roles are available for {modes} service types, not {mode}")
    slugs = [r.role for r in roles]
    if len(set(slugs)) != len(slugs):
        raise ValueError("slot role slugs must be unique")
    total = sum(r.count for r in roles)
    if total > MAX_SLOTS:
        raise ValueError(f"slot roles count {total} slots, at most {MAX_SLOTS}")


class ServiceType(Entity):
    name_zh: Name80
    name_en: Name80
    category: Tag
    required_skills: Annotated[Tags, Field(max_length=20)] = []
    required_certifications: Annotated[Tags, Field(max_length=10)] = []
    default_duration_min: int = Field(ge=5, le=24 * 60)
    target_claim_min: int = Field(ge=1, le=7 * 24 * 60, description="target time to claim")
    matching_mode: WiredMode = "direct"
    offer_ttl_min: int = Field(default=30, ge=1, le=24 * 60)
    claim_invites: int = Field(default=20, ge=1, le=200)
    # a coordinator reviews each request before matching; batch mode's window
    needs_review: bool = False
    batch_window_min: int = Field(default=10, ge=1, le=24 * 60)
    slot_roles: SlotRoles = []

    @model_validator(mode="after")
    def _reviewable(self) -> ServiceType:
        if self.needs_review and self.matching_mode not in REVIEWABLE_MODES:
            raise ValueError(
                f"review is available for {', '.join(sorted(REVIEWABLE_MODES))} service types, "
                f"not {self.matching_mode}"
            )
        check_slot_roles(self.matching_mode, self.slot_roles)
        return self

    def to_record(self) -> ServiceTypeRecord:
        return ServiceTypeRecord(**state_of(self))


class ServiceTypeCreate(Input):
    id: Slug | None = Field(
        default=None, description="a slug such as `haircut`; generated if absent"
    )
    name_zh: Name80
    name_en: Name80
    category: Tag
    required_skills: Annotated[Tags, Field(max_length=20)] = []
    required_certifications: Annotated[Tags, Field(max_length=10)] = []
    default_duration_min: int = Field(ge=5, le=24 * 60)
    target_claim_min: int = Field(ge=1, le=7 * 24 * 60)
    matching_mode: WiredMode = "direct"
    offer_ttl_min: int = Field(default=30, ge=1, le=24 * 60)
    claim_invites: int = Field(default=20, ge=1, le=200)
    # a coordinator reviews each request before matching; batch mode's window
    needs_review: bool = False
    batch_window_min: int = Field(default=10, ge=1, le=24 * 60)
    slot_roles: SlotRoles = Field(
        default=[],
        description="team and batch modes: slots with different roles (barber, dentist...)",
    )


class ServiceTypePatch(Input):
    name_zh: Name80 | None = None
    name_en: Name80 | None = None
    category: Tag | None = None
    required_skills: Annotated[Tags, Field(max_length=20)] | None = None
    required_certifications: Annotated[Tags, Field(max_length=10)] | None = None
    default_duration_min: int | None = Field(default=None, ge=5, le=24 * 60)
    target_claim_min: int | None = Field(default=None, ge=1, le=7 * 24 * 60)
    matching_mode: WiredMode | None = None
    offer_ttl_min: int | None = Field(default=None, ge=1, le=24 * 60)
    claim_invites: int | None = Field(default=None, ge=1, le=200)
    needs_review: bool | None = None
    batch_window_min: int | None = Field(default=None, ge=1, le=24 * 60)
    slot_roles: SlotRoles | None = None
    active: bool | None = None


# ---------------------------------------------------------------------------- places


class Place(Entity):
    kind: PlaceKind
    name_zh: Name80
    name_en: Name80
    parent_id: Slug | None = None
    township_id: Slug | None = None
    location: GeoPoint

    def to_record(self) -> PlaceRecord:
        return PlaceRecord(**state_of(self))


class PlaceCreate(Input):
    id: Slug | None = None
    kind: PlaceKind
    name_zh: Name80
    name_en: Name80
    parent_id: Slug | None = Field(default=None, description="a village's township (required)")
    location: GeoPoint


class PlacePatch(Input):
    name_zh: Name80 | None = None
    name_en: Name80 | None = None
    parent_id: Slug | None = None
    location: GeoPoint | None = None
    active: bool | None = None


def place_lineage(place_id: str, kind: str, parent: Place | None) -> dict[str, str | None]:
    """`parent_id` and `township_id` of a place, from its kind and its parent.

    A village belongs to an active township; a township may hang under the county; the county
    has no parent. Raises a 422 problem otherwise.
    """
    if kind == "county":
        if parent is not None:
            raise Unprocessable("a county has no parent place")
        return {"parent_id": None, "township_id": None}
    if kind == "township":
        if parent is not None and parent.kind != "county":
            raise Unprocessable(f"a township's parent must be the county, not a {parent.kind}")
        return {"parent_id": parent.id if parent else None, "township_id": place_id}
    if parent is None:
        raise Unprocessable("a village needs parent_id: an existing township")
    if parent.kind != "township" or not parent.active:
        raise Unprocessable(f"a village's parent must be an active township ({parent.id} is not)")
    return {"parent_id": parent.id, "township_id": parent.id}


# ---------------------------------------------------------------------------- volunteers


class Volunteer(Entity):
    name: Name80 = Field(description="full name (personal data)")
    display_name: Name40 = Field(description="first name: what others see")
    phone: Phone | None = None
    email: EmailStr | None = None
    locale: Locale = "zh-CN"
    skills: Annotated[Tags, Field(max_length=30)] = []
    certifications: Annotated[Tags, Field(max_length=10)] = []
    home_place_id: Slug
    township_id: Slug
    home: GeoPoint
    home_from_place: bool = True
    radius_km: float = Field(gt=0, le=200)
    availability: list[WeeklySlot] = Field(default_factory=list, max_length=50)
    capacity: int = Field(ge=1, le=20)
    languages: Languages = ["mandarin"]
    team_ids: Annotated[UniqueIds, Field(max_length=10)] = []
    unavailable: Unavailable = []

    def to_record(self) -> VolunteerRecord:
        """What matching sees: no name, phone or email."""
        state = state_of(self)
        for pii in ("name", "phone", "email", "locale", "home_from_place"):
            state.pop(pii)
        return VolunteerRecord(**state)

    def to_contact(self) -> ContactRecord:
        return ContactRecord(
            id=self.id,
            name=self.name,
            phone=self.phone,
            email=self.email,
            locale=self.locale,
            active=self.active,
            version=self.version,
        )

    def contact_changed(self, old: Volunteer) -> bool:
        keys = ("name", "phone", "email", "locale", "active")
        return any(getattr(self, k) != getattr(old, k) for k in keys)


class VolunteerCreate(Input):
    id: Slug | None = None
    name: Name80
    display_name: Name40
    phone: Phone | None = None
    email: EmailStr | None = None
    locale: Locale = "zh-CN"
    skills: Annotated[Tags, Field(max_length=30)] = []
    certifications: Annotated[Tags, Field(max_length=10)] = []
    home_place_id: Slug
    home: GeoPoint | None = Field(default=None, description="defaults to the home place's location")
    radius_km: float = Field(default=10.0, gt=0, le=200)
    availability: list[WeeklySlot] = Field(default_factory=list, max_length=50)
    capacity: int = Field(default=1, ge=1, le=20)
    languages: Languages = ["mandarin"]
    team_ids: Annotated[UniqueIds, Field(max_length=10)] = []
    unavailable: Unavailable = []


class VolunteerPatch(Input):
    name: Name80 | None = None
    display_name: Name40 | None = None
    phone: Phone | None = None
    email: EmailStr | None = None
    locale: Locale | None = None
    skills: Annotated[Tags, Field(max_length=30)] | None = None
    certifications: Annotated[Tags, Field(max_length=10)] | None = None
    home_place_id: Slug | None = None
    home: GeoPoint | None = None
    radius_km: float | None = Field(default=None, gt=0, le=200)
    availability: list[WeeklySlot] | None = Field(default=None, max_length=50)
    capacity: int | None = Field(default=None, ge=1, le=20)
    languages: Languages | None = None
    team_ids: Annotated[UniqueIds, Field(max_length=10)] | None = None
    unavailable: Unavailable | None = None
    active: bool | None = None


def home_from(place: Place) -> dict[str, Any]:
    """A volunteer's home township (and default coordinates) from their home place."""
    if place.kind == "county" or place.township_id is None:
        raise Unprocessable("a volunteer's home place must be a township or a village")
    if not place.active:
        raise Unprocessable(f"home place {place.id} is deactivated")
    return {
        "home_place_id": place.id,
        "township_id": place.township_id,
        "home": place.location.model_dump(),
    }


def may_see_contact(subject: str, roles: frozenset[str], volunteer_id: str) -> bool:
    """Phone and email in clear: admins and the volunteer themself only."""
    return "admin" in roles or subject == volunteer_id


def may_see_name(subject: str, roles: frozenset[str], volunteer_id: str) -> bool:
    """The full name: staff and the volunteer themself; others see the display name only."""
    return bool(roles.intersection({"admin", "coordinator"})) or subject == volunteer_id


def present_volunteer(
    v: Volunteer, subject: str, roles: frozenset[str], distance_km: float | None = None
) -> dict[str, Any]:
    """The API view of a volunteer for one caller, with personal data masked as needed."""
    out = state_of(v)
    out.pop("home_from_place")
    if not may_see_contact(subject, roles, v.id):
        out["phone"] = mask_phone(v.phone)
        out["email"] = mask_email(str(v.email) if v.email else None)
    if not may_see_name(subject, roles, v.id):
        out["name"] = None
    if distance_km is not None:
        out["distance_km"] = round(distance_km, 2)
    return out


# ---------------------------------------------------------------------------- teams


class Team(Entity):
    name: Name80
    township_id: Slug | None = None
    lead_volunteer_id: Slug | None = None
    member_ids: Annotated[UniqueIds, Field(max_length=200)] = []
    skills: Annotated[Tags, Field(max_length=30)] = []

    @model_validator(mode="after")
    def _lead_is_member(self) -> Team:
        lead = self.lead_volunteer_id
        if lead is not None and lead not in self.member_ids:
            object.__setattr__(self, "member_ids", [lead, *self.member_ids])
        return self

    def to_record(self) -> TeamRecord:
        return TeamRecord(**state_of(self))


class TeamCreate(Input):
    id: Slug | None = None
    name: Name80
    township_id: Slug | None = None
    lead_volunteer_id: Slug | None = Field(default=None, description="added to the members")
    member_ids: Annotated[UniqueIds, Field(max_length=200)] = []
    skills: Annotated[Tags, Field(max_length=30)] = []


class TeamPatch(Input):
    name: Name80 | None = None
    township_id: Slug | None = None
    lead_volunteer_id: Slug | None = None
    member_ids: Annotated[UniqueIds, Field(max_length=200)] | None = None
    skills: Annotated[Tags, Field(max_length=30)] | None = None
    active: bool | None = None


def records_of(entity: Entity, before: Entity | None = None) -> list[Event]:
    """The records announcing an entity's new state (a volunteer's contact only if it changed)."""
    if isinstance(entity, Volunteer):
        events: list[Event] = [entity.to_record()]
        if before is None or not isinstance(before, Volunteer) or entity.contact_changed(before):
            events.append(entity.to_contact())
        return events
    if isinstance(entity, ServiceType | Place | Team):
        return [entity.to_record()]
    raise TypeError(f"no record for {type(entity).__name__}")
