"""Team claims (DESIGN §6, team requests with N slots): who may claim for a team, and which
named members may take a slot. Pure: no I/O.

A team (catalog `TeamRecord`) has one lead. Only the lead claims, naming members of the team;
each member must be eligible for the request exactly as an individual would be
(`policy.ineligibility`: skills, certifications, radius, capacity, language, availability).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from zhumeng_contracts.events import RequestPosted, ServiceTypeRecord, TeamRecord, VolunteerRecord

from .geo import haversine_km
from .policy import Candidate, Load, ineligibility, score

MAX_MEMBERS_PER_CLAIM = 20  # a request has at most 20 slots


class TeamClaimError(ValueError):
    """`code`: not_lead (403), not_member / duplicate_member / no_members (422),
    ineligible (422, with the reason of each member in `reasons`)."""

    def __init__(self, code: str, detail: str, reasons: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.reasons = reasons or {}


@dataclass(frozen=True)
class TeamClaim:
    team_id: str
    lead_id: str
    members: list[Candidate]


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
) -> TeamClaim:
    """The members' candidacies, in the order named, or why the claim cannot be made.
    `volunteers` holds the catalog records of the named members (missing: unknown)."""
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
    members: list[Candidate] = []
    reasons: dict[str, str] = {}
    for mid in member_ids:
        vol = volunteers.get(mid)
        if vol is None:
            reasons[mid] = "unknown_volunteer"
            continue
        d = haversine_km(request.location.lat, request.location.lon, vol.home.lat, vol.home.lon)
        load = loads.get(mid, Load())
        reason = ineligibility(vol, request, service, load, d)
        if reason:
            reasons[mid] = reason
            continue
        total, parts = score(vol, request, load, d)
        members.append(Candidate(vol, d, total, parts))
    if reasons:
        raise TeamClaimError("ineligible", f"members not eligible: {reasons}", reasons)
    return TeamClaim(team.id, lead_id, members)
