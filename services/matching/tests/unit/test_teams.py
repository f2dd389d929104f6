"""Team claims, pure: only the lead claims, for eligible members of the team, all slots or
none; trip assignments carry the trip; a withdrawn assignment re-opens its slot."""

from datetime import timedelta

import pytest

from zhumeng_contracts.events import AssignmentCancelled, TeamClaimed, TeamRecord, VolunteerAssigned
from zhumeng_matching.adapters.match_codec import decode, encode
from zhumeng_matching.domain import lifecycle as lc
from zhumeng_matching.domain.policy import Candidate, Load, score
from zhumeng_matching.domain.teams import TeamClaimError, check_lead, plan_claim
from zhumeng_matching.examples import WINDOW, request, service, volunteer

pytestmark = pytest.mark.unit
NOW = WINDOW.start - timedelta(days=1)
TEAM = TeamRecord(
    id="team_barbers",
    name="理发队",
    lead_volunteer_id="lead",
    member_ids=["m1", "m2", "m3"],
    version=1,
)
VOLS = {v: volunteer(v) for v in ("lead", "m1", "m2", "m3", "x")}


def cand(vid: str) -> Candidate:
    total, parts = score(VOLS[vid], request(), Load(), 1.0)
    return Candidate(VOLS[vid], 1.0, total, parts)


def plan(lead: str, members: list[str], **loads: Load) -> list[str]:
    claim = plan_claim(TEAM, lead, members, request(), service(), VOLS, loads)
    return [c.volunteer.id for c in claim.members]


def test_the_lead_claims_for_eligible_members_in_the_order_named() -> None:
    assert plan("lead", ["m2", "lead"]) == ["m2", "lead"]


@pytest.mark.parametrize(
    ("lead", "members", "code"),
    [
        ("m1", ["m2"], "not_lead"),
        ("lead", [], "no_members"),
        ("lead", ["m1", "m1"], "duplicate_member"),
        ("lead", ["m1", "x"], "not_member"),
    ],
)
def test_bad_claims_are_refused(lead: str, members: list[str], code: str) -> None:
    with pytest.raises(TeamClaimError) as err:
        plan(lead, members)
    assert err.value.code == code


def test_a_member_without_capacity_or_skill_is_named_with_the_reason() -> None:
    VOLS["m3"] = volunteer("m3", skills=["dentist"])
    try:
        with pytest.raises(TeamClaimError) as err:
            plan("lead", ["m1", "m2", "m3"], m1=Load(active=2, total=2))
    finally:
        VOLS["m3"] = volunteer("m3")
    assert err.value.reasons == {"m1": "no_capacity", "m3": "missing_skill"}


def test_a_team_without_lead_has_nobody_to_claim() -> None:
    with pytest.raises(TeamClaimError):
        check_lead(TEAM.model_copy(update={"lead_volunteer_id": None}), "lead")


def test_team_claim_takes_all_slots_or_none() -> None:
    m = lc.new_match("req_1", "haircut", WINDOW, 3, "team")
    m, _ = lc.assign(m, cand("x"), NOW)  # an individual got in first
    with pytest.raises(lc.LifecycleError) as err:
        lc.claim_for_team(m, "team_barbers", "lead", [cand("m1"), cand("m2"), cand("m3")], NOW)
    assert err.value.code == "no_slot"
    m, events = lc.claim_for_team(m, "team_barbers", "lead", [cand("m1"), cand("m2")], NOW)
    assert m.state is lc.State.ASSIGNED
    claimed, *assigned = events
    assert isinstance(claimed, TeamClaimed) and claimed.slots == [2, 3]
    assert all(isinstance(e, VolunteerAssigned) for e in assigned)
    assert [(e.volunteer_id, e.team_id, e.mode) for e in assigned] == [  # type: ignore[union-attr]
        ("m1", "team_barbers", "team"),
        ("m2", "team_barbers", "team"),
    ]
    assert decode(encode(m)) == m  # the team survives the stored form


def test_team_claims_only_where_claims_are_open() -> None:
    m = lc.new_match("req_1", "haircut", WINDOW, 2, "direct")
    with pytest.raises(lc.LifecycleError) as err:
        lc.claim_for_team(m, "team_barbers", "lead", [cand("m1")], NOW)
    assert err.value.code == "not_claimable"
    open_claim = lc.new_match("req_1", "haircut", WINDOW, 2, "open_claim")
    with pytest.raises(lc.LifecycleError) as err:
        lc.claim_for_team(open_claim, "team_barbers", "lead", [cand("m1"), cand("m1")], NOW)
    assert err.value.code == "already_assigned"


def test_a_trip_assignment_names_its_trip_and_withdrawing_reopens_the_slot() -> None:
    m = lc.new_match("req_1", "parcel", WINDOW, 1, "trip")
    m, (event,) = lc.assign_on_trip(m, cand("m1"), "trip_1", NOW)
    assert isinstance(event, VolunteerAssigned)
    assert (event.trip_id, event.mode, event.team_id) == ("trip_1", "trip", None)
    assert decode(encode(m)).assignments[0].trip_id == "trip_1"
    with pytest.raises(lc.LifecycleError):
        lc.assign_on_trip(m, cand("m2"), "trip_2", NOW)
    a = m.assignments[0]
    with pytest.raises(lc.LifecycleError):
        lc.withdraw(m, a.assignment_id, "m2", NOW)  # not theirs
    m, (cancelled,) = lc.withdraw(m, a.assignment_id, "m1", NOW)
    assert isinstance(cancelled, AssignmentCancelled) and cancelled.reason == "withdrawn"
    assert m.state is lc.State.MATCHING and m.free_slots == [1]
