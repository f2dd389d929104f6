"""Slots with different roles, pure: each slot's role, eligibility per role, the bipartite fit
of a team's members to free slots, an individual's claim of a slot of their role, and the
role reported on each assignment."""

from datetime import timedelta

import pytest

from zhumeng_contracts.events import SlotRole, TeamClaimed, TeamRecord, VolunteerAssigned
from zhumeng_matching.adapters.match_codec import decode, encode
from zhumeng_matching.app.lifecycle_service import decode as decode_full
from zhumeng_matching.app.lifecycle_service import encode as encode_full
from zhumeng_matching.domain import lifecycle as lc
from zhumeng_matching.domain.policy import Candidate, Load, score
from zhumeng_matching.domain.teams import (
    TeamClaimError,
    eligible_roles,
    fit,
    plan_claim,
    role_reasons,
    roles_by_slot,
    services_by_role,
)
from zhumeng_matching.examples import WINDOW, request, service, volunteer

pytestmark = pytest.mark.unit
NOW = WINDOW.start - timedelta(days=1)
ROLES = [
    SlotRole(
        role="barber", name_zh="理发师", name_en="Barber", required_skills=["haircut"], count=2
    ),
    SlotRole(
        role="audiologist",
        name_zh="听力师",
        name_en="Audiologist",
        required_certifications=["audiology"],
    ),
    SlotRole(
        role="dentist",
        name_zh="牙医",
        name_en="Dentist",
        required_certifications=["dentist_license"],
    ),
]
CLINIC = service(id="village_clinic", required_skills=[], matching_mode="team", slot_roles=ROLES)
REQ = request(service_type_id="village_clinic", slots=4)
VOLS = {
    "barb1": volunteer("barb1"),
    "barb2": volunteer("barb2"),
    "dent": volunteer("dent", skills=[], certifications=["dentist_license"]),
    "audi": volunteer("audi", skills=[], certifications=["audiology"]),
    "both": volunteer("both", skills=["haircut"], certifications=["dentist_license"]),
    "none": volunteer("none", skills=["cooking"]),
    "lead": volunteer("lead", skills=["cooking"]),
}
TEAM = TeamRecord(
    id="team_clinic", name="义诊队", lead_volunteer_id="lead", member_ids=list(VOLS), version=1
)


def cand(vid: str) -> Candidate:
    total, parts = score(VOLS[vid], REQ, Load(), 1.0)
    return Candidate(VOLS[vid], 1.0, total, parts)


def clinic_match() -> lc.Match:
    m = lc.new_match("req_1", "village_clinic", WINDOW, 4, "team")
    return lc.with_roles(m, roles_by_slot(CLINIC))


def test_slots_take_their_roles_in_order_and_the_roles_replace_the_requirements() -> None:
    assert roles_by_slot(CLINIC) == ("barber", "barber", "audiologist", "dentist")
    services = services_by_role(CLINIC, 4)
    assert services["dentist"].required_certifications == ["dentist_license"]
    assert services["barber"].required_skills == ["haircut"] and None not in services
    assert None in services_by_role(CLINIC, 5)  # a fifth slot keeps the type's own needs
    reasons = role_reasons(VOLS["dent"], REQ, services, Load(), 1.0)
    assert reasons == {
        "barber": "missing_skill",
        "audiologist": "missing_certification",
        "dentist": None,
    }
    assert eligible_roles(role_reasons(VOLS["both"], REQ, services, Load(), 1.0)) == {
        "barber",
        "dentist",
    }
    m = clinic_match()
    assert [m.role_of(s) for s in range(1, 6)] == [
        "barber",
        "barber",
        "audiologist",
        "dentist",
        None,
    ]
    assert lc.with_roles(m, ("x",) * 4) == m  # pinned once


def test_fit_finds_distinct_slots_moving_earlier_choices() -> None:
    assert fit([[1, 4], [1]]) == [4, 1]  # the first person yields slot 1 to the second
    assert fit([[1, 2], [1, 2]]) == [1, 2]  # nobody is moved without need
    assert fit([[1], [1]]) is None
    options = [[1, 2], [2, 3], [1, 2]]
    chosen = fit(options)
    assert chosen is not None and len(set(chosen)) == 3
    assert all(slot in opts for slot, opts in zip(chosen, options, strict=True))
    assert fit([]) == []


def test_the_lead_claims_members_for_the_roles_they_qualify_for() -> None:
    plan = plan_claim(TEAM, "lead", ["both", "barb1"], REQ, CLINIC, VOLS, {})
    assert plan.allowed == [frozenset({"barber", "dentist"}), frozenset({"barber"})]
    m, events = lc.claim_for_team(
        clinic_match(), "team_clinic", "lead", plan.members, NOW, plan.allowed
    )
    claimed, *assigned = events
    assert isinstance(claimed, TeamClaimed) and claimed.slots == [1, 2]
    assert {e.role for e in assigned if isinstance(e, VolunteerAssigned)} == {"barber"}
    # with one barber slot left "both" becomes the dentist
    m = lc.with_roles(
        lc.new_match("req_2", "village_clinic", WINDOW, 4, "team"), roles_by_slot(CLINIC)
    )
    m, _ = lc.assign(m, cand("barb2"), NOW)  # an individual barber took slot 1
    m, events = lc.claim_for_team(m, "team_clinic", "lead", plan.members, NOW, plan.allowed)
    by_member = {e.volunteer_id: e for e in events if isinstance(e, VolunteerAssigned)}
    assert (by_member["both"].slot, by_member["both"].role) == (4, "dentist")
    assert (by_member["barb1"].slot, by_member["barb1"].role) == (2, "barber")
    parts = [p.criterion for p in by_member["both"].explanation]
    assert parts[-1] == "role:dentist"
    assert sum(p.contribution for p in by_member["both"].explanation) == pytest.approx(
        by_member["both"].score, abs=1e-3
    )


def test_members_without_a_role_or_without_distinct_slots_are_refused() -> None:
    with pytest.raises(TeamClaimError) as err:
        plan_claim(TEAM, "lead", ["barb1", "none"], REQ, CLINIC, VOLS, {})
    assert err.value.code == "ineligible" and set(err.value.reasons) == {"none"}
    assert "dentist: missing_certification" in err.value.reasons["none"]
    with pytest.raises(TeamClaimError) as err:  # asked for a role they do not qualify for
        plan_claim(TEAM, "lead", ["barb1"], REQ, CLINIC, VOLS, {}, {"barb1": "dentist"})
    assert err.value.code == "ineligible"
    with pytest.raises(TeamClaimError) as err:
        plan_claim(TEAM, "lead", ["barb1"], REQ, CLINIC, VOLS, {}, {"barb1": "pilot"})
    assert err.value.code == "unknown_role"
    with pytest.raises(TeamClaimError) as err:  # three barbers for two barber slots
        plan_claim(
            TEAM,
            "lead",
            ["barb1", "barb2", "lead"],
            REQ,
            CLINIC,
            {**VOLS, "lead": VOLS["barb1"]},
            {},
        )
    assert err.value.code == "no_fit"


def test_a_named_role_pins_the_member() -> None:
    plan = plan_claim(TEAM, "lead", ["both"], REQ, CLINIC, VOLS, {}, {"both": "dentist"})
    _, events = lc.claim_for_team(
        clinic_match(), "team_clinic", "lead", plan.members, NOW, plan.allowed
    )
    assert [e.role for e in events if isinstance(e, VolunteerAssigned)] == ["dentist"]


def test_free_slots_of_other_roles_do_not_let_a_team_in() -> None:
    m = clinic_match()
    m, _ = lc.assign(m, cand("dent"), NOW)  # lowest free slot (a coordinator's choice)
    m, _ = lc.claim_for_team(m, "t", "lead", [cand("barb1")], NOW, [frozenset({"barber"})])
    with pytest.raises(lc.LifecycleError) as err:  # slots 3 and 4 free, but no barber slot
        lc.claim_for_team(m, "t", "lead", [cand("barb2")], NOW, [frozenset({"barber"})])
    assert err.value.code == "no_slot"


def test_an_individual_claims_a_slot_of_a_role_they_qualify_for() -> None:
    m, _ = lc.open_claim(clinic_match(), ["audi", "barb1", "none"], NOW)
    m, events = lc.claim(m, cand("audi"), NOW, frozenset({"audiologist"}))
    (assigned,) = events
    assert isinstance(assigned, VolunteerAssigned)
    assert (assigned.slot, assigned.role) == (3, "audiologist")
    with pytest.raises(lc.LifecycleError) as err:
        lc.claim(m, cand("none"), NOW, frozenset())
    assert err.value.code == "no_slot"
    m, _ = lc.claim(m, cand("barb1"), NOW, frozenset({"barber"}))
    assert {a.slot: a.role for a in m.live_assignments} == {3: "audiologist", 1: "barber"}


def test_roles_survive_the_stored_match() -> None:
    m, _ = lc.claim_for_team(
        clinic_match(), "t", "lead", [cand("dent")], NOW, [frozenset({"dentist"})]
    )
    again = decode_full(encode_full(m))
    assert again.slot_roles == m.slot_roles and again.assignments[0].role == "dentist"
    assert decode(encode(m)).assignments == m.assignments  # the base codec keeps the role
