"""The request lifecycle as pure transitions: offers, claims, check-in/out, cancel, no-show."""

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from zhumeng_contracts.events import (
    AssignmentCancelled,
    AssignmentCompleted,
    CheckedIn,
    OfferDeclined,
    OfferExpired,
    OfferMade,
    RequestCompleted,
    RequestUnfulfilled,
    VolunteerAssigned,
)
from zhumeng_matching.domain import lifecycle as lc
from zhumeng_matching.domain.policy import Candidate, Load, score
from zhumeng_matching.examples import WINDOW, request, volunteer

pytestmark = pytest.mark.unit
NOW = WINDOW.start - timedelta(days=1)
TTL = timedelta(minutes=30)


def cand(vid: str) -> Candidate:
    vol = volunteer(vid)
    total, parts = score(vol, request(), Load(), 1.0)
    return Candidate(vol, 1.0, total, parts)


def fresh(slots: int = 1, mode: str = "auto_offer") -> lc.Match:
    return lc.new_match("req_1", "haircut", WINDOW, slots, mode)  # type: ignore[arg-type]


def test_offer_accept_assigns_with_a_checkin_code() -> None:
    m, events = lc.make_offer(fresh(), cand("v1"), NOW, TTL)
    assert m.state is lc.State.OFFERED and isinstance(events[0], OfferMade)
    offer = m.open_offers[0]
    assert offer.expires_at == NOW + TTL and offer.slot == 1
    m, events = lc.accept_offer(m, offer.offer_id, "v1", cand("v1"), NOW + timedelta(minutes=5))
    assert m.state is lc.State.ASSIGNED
    (assigned,) = events
    assert isinstance(assigned, VolunteerAssigned)
    assert assigned.mode == "auto_offer" and len(assigned.checkin_code or "") == 6


def test_decline_frees_the_slot_and_cools_the_decliner_off() -> None:
    m, _ = lc.make_offer(fresh(), cand("v1"), NOW, TTL)
    offer_id = m.open_offers[0].offer_id
    m, events = lc.decline_offer(m, offer_id, "v1", NOW, timedelta(hours=6))
    assert isinstance(events[0], OfferDeclined) and m.state is lc.State.MATCHING
    assert m.free_slots == [1]
    with pytest.raises(lc.LifecycleError) as err:
        lc.make_offer(m, cand("v1"), NOW + timedelta(hours=1), TTL)
    assert err.value.code == "not_offerable"
    m, _ = lc.make_offer(m, cand("v1"), NOW + timedelta(hours=7), TTL)  # cool-off over
    m, _ = lc.make_offer(replace(m, slots=2), cand("v2"), NOW + timedelta(hours=7), TTL)
    assert {o.volunteer_id for o in m.open_offers} == {"v1", "v2"}


def test_expiry_is_a_no_op_once_answered_and_refused_before_due() -> None:
    m, _ = lc.make_offer(fresh(), cand("v1"), NOW, TTL)
    offer_id = m.open_offers[0].offer_id
    with pytest.raises(lc.LifecycleError):
        lc.expire_offer(m, offer_id, NOW + timedelta(minutes=1))
    expired, events = lc.expire_offer(m, offer_id, NOW + TTL)
    assert isinstance(events[0], OfferExpired) and expired.state is lc.State.MATCHING
    accepted, _ = lc.accept_offer(m, offer_id, "v1", cand("v1"), NOW + timedelta(minutes=1))
    again, events = lc.expire_offer(accepted, offer_id, NOW + TTL)  # a late timer
    assert events == [] and again == accepted
    with pytest.raises(lc.LifecycleError) as err:
        lc.accept_offer(m, offer_id, "v1", cand("v1"), NOW + TTL)
    assert err.value.code == "offer_expired"


def test_only_the_offered_volunteer_may_answer() -> None:
    m, _ = lc.make_offer(fresh(), cand("v1"), NOW, TTL)
    offer_id = m.open_offers[0].offer_id
    for act in (
        lambda: lc.accept_offer(m, offer_id, "v2", cand("v2"), NOW),
        lambda: lc.decline_offer(m, offer_id, "v2", NOW, TTL),
    ):
        with pytest.raises(lc.LifecycleError) as err:
            act()
        assert err.value.code == "not_found"


def test_open_claim_gives_exactly_as_many_winners_as_slots() -> None:
    m, _ = lc.open_claim(fresh(slots=3, mode="open_claim"), [f"v{i}" for i in range(10)], NOW)
    winners = []
    for i in range(10):
        try:
            m, _ = lc.claim(m, cand(f"v{i}"), NOW)
            winners.append(i)
        except lc.LifecycleError as err:
            assert err.code == "no_slot"
    assert winners == [0, 1, 2] and m.state is lc.State.ASSIGNED
    assert sorted(a.slot for a in m.live_assignments) == [1, 2, 3]
    with pytest.raises(lc.LifecycleError) as err:
        lc.claim(m, cand("outsider"), NOW)
    assert err.value.code in {"not_invited", "no_slot"}


async def test_fifty_concurrent_claims_on_a_versioned_document_give_three_winners() -> None:
    """The persistence pattern: read, apply the pure command, compare-and-set on the version;
    a lost race re-reads. Fifty claimers, three slots, three winners."""
    invited = [f"v{i}" for i in range(50)]
    m0, _ = lc.open_claim(fresh(slots=3, mode="open_claim"), invited, NOW)
    store = {"version": 0, "match": m0}

    async def claim_as(vid: str) -> bool:
        while True:
            version, current = store["version"], store["match"]
            await asyncio.sleep(0)  # let the others interleave between read and write
            try:
                nxt, _ = lc.claim(current, cand(vid), NOW)  # type: ignore[arg-type]
            except lc.LifecycleError:
                return False
            if store["version"] == version:  # compare-and-set
                store["version"], store["match"] = version + 1, nxt
                return True

    results = await asyncio.gather(*(claim_as(v) for v in invited))
    assert sum(results) == 3
    assert len(store["match"].live_assignments) == 3  # type: ignore[union-attr]


def test_check_in_needs_the_code_then_check_out_credits_hours_and_completes() -> None:
    m, _ = lc.assign(fresh(slots=2, mode="coordinator"), cand("v1"), NOW)
    m, _ = lc.assign(m, cand("v2"), NOW)
    a1, a2 = m.live_assignments
    start = WINDOW.start
    wrong = "000000" if a1.checkin_code != "000000" else "111111"
    with pytest.raises(lc.LifecycleError) as err:
        lc.check_in(m, a1.assignment_id, "v1", wrong, start)
    assert err.value.code == "wrong_code"
    with pytest.raises(lc.LifecycleError) as err:
        lc.check_in(m, a1.assignment_id, "v1", a1.checkin_code, start - timedelta(hours=3))
    assert err.value.code == "too_early"
    m, events = lc.check_in(m, a1.assignment_id, "v1", a1.checkin_code, start)
    assert isinstance(events[0], CheckedIn) and m.state is lc.State.IN_PROGRESS
    with pytest.raises(lc.LifecycleError):
        lc.check_out(m, a2.assignment_id, "v2", start)  # v2 never checked in
    m, events = lc.check_out(m, a1.assignment_id, "v1", start + timedelta(hours=2, minutes=7))
    assert isinstance(events[0], AssignmentCompleted) and events[0].hours == 2.0
    assert m.state is lc.State.IN_PROGRESS  # v2 still to serve
    m, _ = lc.check_in(m, a2.assignment_id, "v2", a2.checkin_code, start)
    m, events = lc.check_out(m, a2.assignment_id, "v2", start + timedelta(hours=1))
    assert [type(e) for e in events] == [AssignmentCompleted, RequestCompleted]
    assert events[1].hours_total == 3.0 and m.state is lc.State.COMPLETED  # type: ignore[attr-defined]
    with pytest.raises(lc.LifecycleError) as err:
        lc.cancel(m, "requester", start + timedelta(hours=2))
    assert err.value.code == "closed"


def test_hours_are_quarter_hours_and_capped() -> None:
    t = WINDOW.start
    assert lc.credited_hours(t, t + timedelta(minutes=52)) == 0.75
    assert lc.credited_hours(t, t + timedelta(hours=30)) == lc.MAX_HOURS
    assert lc.credited_hours(t, t - timedelta(minutes=5)) == 0.0


def test_no_show_reopens_the_slot() -> None:
    m, _ = lc.assign(fresh(), cand("v1"), NOW)
    (a,) = m.live_assignments
    m, events = lc.report_no_show(m, a.assignment_id, WINDOW.start + timedelta(minutes=40))
    assert isinstance(events[0], AssignmentCancelled) and events[0].reason == "no_show"
    assert m.state is lc.State.MATCHING and m.free_slots == [1]
    assert lc.released_by(events).volunteer_ids == ["v1"]
    m, _ = lc.make_offer(m, cand("v2"), WINDOW.start + timedelta(minutes=41), TTL)
    assert m.open_offers[0].slot == 1


def test_cancel_releases_everyone_and_withdraws_offers() -> None:
    m, _ = lc.assign(fresh(slots=3), cand("v1"), NOW)
    m, _ = lc.make_offer(m, cand("v2"), NOW, TTL)
    m, events = lc.cancel(m, "requester", NOW + timedelta(minutes=1))
    assert m.state is lc.State.CANCELLED
    assert [e.volunteer_id for e in events] == ["v1"]  # type: ignore[attr-defined]
    assert all(o.status == "withdrawn" for o in m.offers if o.volunteer_id == "v2")
    with pytest.raises(lc.LifecycleError):
        lc.make_offer(m, cand("v3"), NOW, TTL)


def test_give_up_keeps_partial_assignments_on_record() -> None:
    m, _ = lc.assign(fresh(slots=3), cand("v1"), NOW)
    m, _ = lc.make_offer(m, cand("v2"), NOW, TTL)
    m, events = lc.give_up(m, "window_passed", WINDOW.end)
    (ev,) = events
    assert isinstance(ev, RequestUnfulfilled) and (ev.filled_slots, ev.slots) == (1, 3)
    assert m.state is lc.State.UNFULFILLED and not m.open_offers
    with pytest.raises(lc.LifecycleError):
        lc.give_up(m, "window_passed", WINDOW.end)


def test_a_volunteer_is_never_assigned_twice_to_one_request() -> None:
    m, _ = lc.assign(fresh(slots=2), cand("v1"), NOW)
    with pytest.raises(lc.LifecycleError) as err:
        lc.assign(m, cand("v1"), NOW)
    assert err.value.code == "already_assigned"
    with pytest.raises(lc.LifecycleError) as err:
        lc.make_offer(m, cand("v1"), NOW, TTL)
    assert err.value.code == "not_offerable"
