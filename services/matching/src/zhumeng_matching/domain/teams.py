"""Team claims (DESIGN §6, team requests with N slots): who may claim for a team, and which
named members may take a slot. Pure: no I/O.

A team (catalog `TeamRecord`) has one lead. Only the lead claims, naming members of the team;
each member must be eligible for the request exactly as an individual would be
(`policy.ineligibility`: skills, certifications, radius, capacity, language, availability).

Slot roles (ADR 0010, "slots with different roles"): a service type's `slot_roles` give each
slot a role (slots 1..c1 the first role, ...) whose requirements replace the service type's.
A person is eligible for a slot when eligible for the service type with the slot's role's
requirements (`role_service`); a slot beyond the roles (a request posted with more slots)
keeps the service type's own requirements (role None).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from zhumeng_contracts.events import (
    RequestPosted,
    ServiceTypeRecord,
    SlotRole,
    TeamRecord,
    VolunteerRecord,
)

from .geo import haversine_km
from .policy import Candidate, Load, ineligibility, score

MAX_MEMBERS_PER_CLAIM = 20  # a request has at most 20 slots


Role = str | None  # a slot's role slug; None: the service type's own requirements
Roles = frozenset[Role]


class TeamClaimError(ValueError):
    """`code`: not_lead (403), not_member / duplicate_member / no_members (422),
    ineligible (422, with the reason of each member in `reasons`), unknown_role (422),
    no_fit (422: the named members cannot fill distinct slots of roles they qualify for,
    even with every slot free)."""

    def __init__(self, code: str, detail: str, reasons: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.reasons = reasons or {}


@dataclass(frozen=True)
class TeamClaim:
    team_id: str
    lead_id: str
    members: list[Candidate]
    # per member, the roles of the slots it may take (empty: a request without roles)
    allowed: list[Roles] = field(default_factory=list)


# ---- slot roles ------------------------------------------------------------------------------


def roles_by_slot(service: ServiceTypeRecord) -> tuple[str, ...]:
    """The role of each slot in slot order: slots 1..c1 the first role, and so on."""
    return tuple(r.role for r in service.slot_roles for _ in range(r.count))


def role_service(service: ServiceTypeRecord, role: SlotRole) -> ServiceTypeRecord:
    """The service type as one role's slots need it: the role's requirements replace its own
    (so the index and the policy decide for a role exactly as for a service type)."""
    return service.model_copy(
        update={
            "required_skills": role.required_skills,
            "required_certifications": role.required_certifications,
            "slot_roles": [],
        }
    )


def services_by_role(service: ServiceTypeRecord, slots: int) -> dict[Role, ServiceTypeRecord]:
    """Each role of a request with `slots` slots and its requirements; None for slots beyond
    the roles (they keep the service type's own)."""
    out: dict[Role, ServiceTypeRecord] = {
        r.role: role_service(service, r) for r in service.slot_roles
    }
    if slots > len(roles_by_slot(service)):
        out[None] = service
    return out


def role_reasons(
    vol: VolunteerRecord,
    request: RequestPosted,
    services: Mapping[Role, ServiceTypeRecord],
    load: Load,
    distance_km: float,
) -> dict[Role, str | None]:
    """Per role, why the volunteer cannot take its slots (None: eligible)."""
    return {
        role: ineligibility(vol, request, svc, load, distance_km) for role, svc in services.items()
    }


def qualified_roles(vol: VolunteerRecord, services: Mapping[Role, ServiceTypeRecord]) -> Roles:
    """The roles whose skills and certifications the volunteer holds (a coordinator's choice:
    the other rules of `ineligibility` are theirs to weigh)."""
    skills, certs = set(vol.skills), set(vol.certifications)
    return frozenset(
        role
        for role, svc in services.items()
        if skills.issuperset(svc.required_skills) and certs.issuperset(svc.required_certifications)
    )


def eligible_roles(reasons: Mapping[Role, str | None]) -> Roles:
    return frozenset(role for role, why in reasons.items() if why is None)


def fit(options: Sequence[Sequence[int]]) -> list[int] | None:
    """A distinct slot for each person from its options, or None when no such choice exists
    (a bipartite matching by augmenting paths). Each person takes its lowest free option; an
    earlier person is moved to another of its options only when that is the only way."""
    owner: dict[int, int] = {}

    def place(person: int, seen: set[int]) -> bool:
        tried = [s for s in options[person] if s not in seen]
        for slot in tried:
            if slot not in owner:
                owner[slot] = person
                return True
        for slot in tried:
            seen.add(slot)
            if place(owner[slot], seen):
                owner[slot] = person
                return True
        return False

    for person in range(len(options)):
        if not place(person, set()):
            return None
    chosen = {person: slot for slot, person in owner.items()}
    return [chosen[p] for p in range(len(options))]


def slot_options(
    slots: Sequence[int], role_of: Mapping[int, Role], allowed: Sequence[Roles]
) -> list[list[int]]:
    """For each person, the slots among `slots` whose role it may take."""
    return [[s for s in slots if role_of.get(s) in roles] for roles in allowed]


def check_lead(team: TeamRecord, who: str) -> None:
    if team.lead_volunteer_id is None or team.lead_volunteer_id != who:
        raise TeamClaimError("not_lead", f"only the lead of team {team.id} claims for it")


def plan_claim(
    team: TeamRecord,
    lead_id: str,
    member_ids: list[str],
    request: RequestPosted,
    service: ServiceTypeRecord,
    volunteers: Mapping[str, VolunteerRecord],
    loads: Mapping[str, Load],
    wanted: Mapping[str, str] | None = None,
) -> TeamClaim:
    """The members' candidacies, in the order named, or why the claim cannot be made.
    `volunteers` holds the catalog records of the named members (missing: unknown).

    For a request with slot roles each member may take the slots of the roles it qualifies
    for, or only those of the role the lead names for it in `wanted` (member -> role); the
    slots themselves are chosen when the claim is written (`fit` over the free slots)."""
    check_lead(team, lead_id)
    if not member_ids:
        raise TeamClaimError("no_members", "name at least one member")
    if len(member_ids) > MAX_MEMBERS_PER_CLAIM:
        raise TeamClaimError("no_members", f"at most {MAX_MEMBERS_PER_CLAIM} members at once")
    if len(set(member_ids)) != len(member_ids):
        raise TeamClaimError("duplicate_member", "a member is named twice")
    roster = set(team.member_ids) | {team.lead_volunteer_id}
    outsiders = [m for m in member_ids if m not in roster]
    if outsiders:
        raise TeamClaimError("not_member", f"not members of team {team.id}: {outsiders}")
    services = services_by_role(service, request.slots) if service.slot_roles else {}
    unknown = {m: r for m, r in (wanted or {}).items() if m not in member_ids or r not in services}
    if unknown:
        raise TeamClaimError("unknown_role", f"not roles of members of this request: {unknown}")
    members: list[Candidate] = []
    allowed: list[Roles] = []
    reasons: dict[str, str] = {}
    for mid in member_ids:
        vol = volunteers.get(mid)
        if vol is None:
            reasons[mid] = "unknown_volunteer"
            continue
        d = haversine_km(request.location.lat, request.location.lon, vol.home.lat, vol.home.lon)
        load = loads.get(mid, Load())
        if services:
            named = (wanted or {}).get(mid)
            options: Mapping[Role, ServiceTypeRecord] = (
                {named: services[named]} if named else services
            )
            by_role = role_reasons(vol, request, options, load, d)
            roles = eligible_roles(by_role)
            if not roles:
                reasons[mid] = "; ".join(f"{r or service.id}: {why}" for r, why in by_role.items())
                continue
            allowed.append(roles)
        else:
            reason = ineligibility(vol, request, service, load, d)
            if reason:
                reasons[mid] = reason
                continue
        total, parts = score(vol, request, load, d)
        members.append(Candidate(vol, d, total, parts))
    if reasons:
        raise TeamClaimError("ineligible", f"members not eligible: {reasons}", reasons)
    if allowed:
        role_of = slot_role_map(roles_by_slot(service), request.slots)
        if fit(slot_options(range(1, request.slots + 1), role_of, allowed)) is None:
            raise TeamClaimError(
                "no_fit", "the members cannot fill distinct slots of roles they qualify for"
            )
    return TeamClaim(team.id, lead_id, members, allowed)


def slot_role_map(roles: Sequence[str], slots: int) -> dict[int, Role]:
    """Slot number -> role, for `slots` slots (None beyond the roles)."""
    return {s: roles[s - 1] if s <= len(roles) else None for s in range(1, slots + 1)}
