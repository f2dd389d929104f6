"""The match of one request through its lifecycle (DESIGN §5): offers, claims, assignments,
check-in and check-out, cancellation, no-shows. Pure: every command takes the current `Match`
and returns the next one with the events it produced, or raises `LifecycleError`.

Persistence (not here) stores a `Match` as one document and writes a command's result with a
compare-and-set on its version, so concurrent commands on one request (fifty volunteers
claiming three slots) serialise on that document: exactly as many winners as slots. A
volunteer's capacity is a separate guarded update (ADR 0006) taken before the claim is written
and released if the write loses.

    matching -> offered <-> (declined | expired -> next candidate)
             -> partially_assigned -> assigned -> in_progress -> completed
    any state before completed -> cancelled; matching/offered -> unfulfilled;
    a no-show re-opens its slot.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from zhumeng_contracts.events import (
    AssignmentCancelled,
    AssignmentCompleted,
    CheckedIn,
    ClaimOpened,
    Event,
    OfferDeclined,
    OfferExpired,
    OfferMade,
    RequestCompleted,
    RequestEscalated,
    RequestReviewed,
    RequestUnfulfilled,
    ReviewRequired,
    TeamClaimed,
    VolunteerAssigned,
)
from zhumeng_contracts.events.common import TimeWindow
from zhumeng_contracts.events.lifecycle import EscalationLevel
from zhumeng_contracts.events.matching import MatchMode, ScorePart

from .policy import Candidate
from .teams import Roles, fit, slot_options

UnfulfilledReason = Literal["window_passed", "escalation_exhausted", "no_candidates"]
MAX_HOURS = 12.0  # one assignment credits at most this much, whatever the clock says
EARLIEST_CHECKIN = timedelta(hours=2)  # before the window opens


class LifecycleError(ValueError):
    """A command that does not apply to the match as it is (maps to 409 or 403)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class State(StrEnum):
    MATCHING = "matching"
    OFFERED = "offered"
    PARTIALLY_ASSIGNED = "partially_assigned"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    UNFULFILLED = "unfulfilled"
    IN_REVIEW = "in_review"  # held for a coordinator (service types that need review)
    REJECTED = "rejected"  # the coordinator said no


FINAL = frozenset({State.COMPLETED, State.CANCELLED, State.UNFULFILLED, State.REJECTED})
#: No offers, claims or assignments: closed, or still waiting for the review.
NOT_MATCHING = FINAL | {State.IN_REVIEW}


@dataclass(frozen=True)
class Offer:
    offer_id: str
    volunteer_id: str
    slot: int
    expires_at: datetime
    status: str = "open"  # open | accepted | declined | expired | withdrawn


@dataclass(frozen=True)
class Assignment:
    assignment_id: str
    volunteer_id: str
    slot: int
    checkin_code: str
    status: str = "active"  # active | in_progress | completed | cancelled
    checked_in_at: datetime | None = None
    checked_out_at: datetime | None = None
    hours: float = 0.0
    team_id: str | None = None  # a slot a team claimed for this member
    trip_id: str | None = None  # a slot filled on the volunteer's planned trip
    role: str | None = None  # the slot's role (service types with slot roles)


@dataclass(frozen=True)
class Match:
    request_id: str
    service_type_id: str
    window: TimeWindow
    slots: int
    mode: MatchMode
    offers: tuple[Offer, ...] = ()
    assignments: tuple[Assignment, ...] = ()
    invited: frozenset[str] = frozenset()
    declined_until: tuple[tuple[str, datetime], ...] = ()
    cancelled: bool = False
    unfulfilled: bool = False
    # review and the escalation ladder (ADR 0009)
    review: str = ""  # "" (not needed) | pending | approved | rejected
    escalation_step: int = 0  # rungs climbed
    escalation_level: EscalationLevel | None = None
    radius_factor: float = 1.0  # volunteers' radius multiplied (wider_radius rungs)
    # the role of each slot in order, pinned by the first team-mode decision (`with_roles`)
    slot_roles: tuple[str, ...] = ()

    # ---- derived state -------------------------------------------------------------------

    @property
    def live_assignments(self) -> tuple[Assignment, ...]:
        return tuple(a for a in self.assignments if a.status != "cancelled")

    @property
    def open_offers(self) -> tuple[Offer, ...]:
        return tuple(o for o in self.offers if o.status == "open")

    @property
    def free_slots(self) -> list[int]:
        """Slots neither filled nor held by an open offer, lowest first."""
        taken = {a.slot for a in self.live_assignments} | {o.slot for o in self.open_offers}
        return [s for s in range(1, self.slots + 1) if s not in taken]

    @property
    def state(self) -> State:
        live = self.live_assignments
        if self.cancelled:
            return State.CANCELLED
        if self.review == "rejected":
            return State.REJECTED
        if self.review == "pending" and not self.unfulfilled:
            return State.IN_REVIEW
        if live and len(live) == self.slots and all(a.status == "completed" for a in live):
            return State.COMPLETED
        if self.unfulfilled:
            return State.UNFULFILLED
        if any(a.status in ("in_progress", "completed") for a in live):
            return State.IN_PROGRESS
        if len(live) == self.slots:
            return State.ASSIGNED
        if live:
            return State.PARTIALLY_ASSIGNED
        if self.open_offers:
            return State.OFFERED
        return State.MATCHING

    def role_of(self, slot: int) -> str | None:
        """The slot's role; None for a request without roles and slots beyond them."""
        return self.slot_roles[slot - 1] if 0 < slot <= len(self.slot_roles) else None

    def free_slots_for(self, allowed: Roles | None) -> list[int]:
        """Free slots of the roles in `allowed` (every free slot when None)."""
        if allowed is None:
            return self.free_slots
        return [s for s in self.free_slots if self.role_of(s) in allowed]

    def cooling_off(self, now: datetime) -> frozenset[str]:
        """Volunteers who declined recently: not offered this request again for a while."""
        return frozenset(v for v, until in self.declined_until if until > now)

    def involved(self) -> frozenset[str]:
        """Volunteers holding an open offer or a live assignment: never offered twice."""
        return frozenset(o.volunteer_id for o in self.open_offers) | frozenset(
            a.volunteer_id for a in self.live_assignments
        )


Result = tuple[Match, list[Event]]


def new_match(
    request_id: str, service_type_id: str, window: TimeWindow, slots: int, mode: MatchMode
) -> Match:
    return Match(request_id, service_type_id, window, slots, mode)


def _require_open(match: Match) -> None:
    if match.state in NOT_MATCHING:
        raise LifecycleError("closed", f"request {match.request_id} is {match.state.value}")


def _new_id(prefix: str, now: datetime) -> str:
    return f"{prefix}_{int(now.timestamp() * 1000):012x}{secrets.token_hex(5)}"


def _code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def with_roles(match: Match, roles: tuple[str, ...]) -> Match:
    """Pin the role of each slot once (a later change of the service type's roles does not
    move people already on this request's slots)."""
    if match.slot_roles or not roles:
        return match
    return replace(match, slot_roles=roles[: match.slots])


def _explanation(c: Candidate, role: str | None) -> list[ScorePart]:
    """The score's parts, and the role the slot was filled for (weight 0: not scored)."""
    parts = list(c.parts)
    if role:
        parts.append(ScorePart(criterion=f"role:{role}", value=1.0, weight=0.0, contribution=0.0))
    return parts


def _assigned_event(
    match: Match, a: Assignment, c: Candidate, considered: int, now: datetime
) -> VolunteerAssigned:
    return VolunteerAssigned(
        request_id=match.request_id,
        assignment_id=a.assignment_id,
        volunteer_id=a.volunteer_id,
        volunteer_display_name=c.volunteer.display_name,
        service_type_id=match.service_type_id,
        window=match.window,
        distance_km=round(c.distance_km, 3),
        score=c.score,
        explanation=_explanation(c, a.role),
        candidates_considered=max(1, considered),
        assigned_at=now,
        slot=a.slot,
        slots=match.slots,
        mode=match.mode,
        checkin_code=a.checkin_code,
        team_id=a.team_id,
        trip_id=a.trip_id,
        role=a.role,
    )


def _assign(
    match: Match,
    c: Candidate,
    slot: int,
    considered: int,
    now: datetime,
    team_id: str | None = None,
    trip_id: str | None = None,
) -> Result:
    if c.volunteer.id in {a.volunteer_id for a in match.live_assignments}:
        raise LifecycleError("already_assigned", f"{c.volunteer.id} already serves this request")
    a = Assignment(
        _new_id("asg", now),
        c.volunteer.id,
        slot,
        _code(),
        team_id=team_id,
        trip_id=trip_id,
        role=match.role_of(slot),
    )
    match = replace(match, assignments=(*match.assignments, a))
    return match, [_assigned_event(match, a, c, considered, now)]


# ---- auto-offer cascade ------------------------------------------------------------------


def make_offer(match: Match, c: Candidate, now: datetime, ttl: timedelta) -> Result:
    """Offer the lowest free slot to a candidate for `ttl`."""
    _require_open(match)
    if not match.free_slots:
        raise LifecycleError("no_slot", "every slot is filled or on offer")
    if c.volunteer.id in match.involved() or c.volunteer.id in match.cooling_off(now):
        raise LifecycleError("not_offerable", f"{c.volunteer.id} cannot be offered this now")
    offer = Offer(_new_id("off", now), c.volunteer.id, match.free_slots[0], now + ttl)
    match = replace(match, offers=(*match.offers, offer))
    return match, [
        OfferMade(
            request_id=match.request_id,
            offer_id=offer.offer_id,
            volunteer_id=c.volunteer.id,
            volunteer_display_name=c.volunteer.display_name,
            service_type_id=match.service_type_id,
            window=match.window,
            slot=offer.slot,
            expires_at=offer.expires_at,
            distance_km=round(c.distance_km, 3),
            score=c.score,
            explanation=list(c.parts),
            made_at=now,
        )
    ]


def _open_offer(match: Match, offer_id: str, volunteer_id: str | None) -> Offer:
    offer = next((o for o in match.offers if o.offer_id == offer_id), None)
    if offer is None or (volunteer_id is not None and offer.volunteer_id != volunteer_id):
        raise LifecycleError("not_found", f"no offer {offer_id} for this volunteer")
    if offer.status != "open":
        raise LifecycleError("offer_closed", f"offer {offer_id} is {offer.status}")
    return offer


def _set_offer(match: Match, offer: Offer, status: str) -> Match:
    offers = tuple(replace(o, status=status) if o == offer else o for o in match.offers)
    return replace(match, offers=offers)


def accept_offer(
    match: Match, offer_id: str, volunteer_id: str, c: Candidate, now: datetime
) -> Result:
    """The volunteer takes the offered slot (before it expires)."""
    _require_open(match)
    offer = _open_offer(match, offer_id, volunteer_id)
    if now >= offer.expires_at:
        raise LifecycleError("offer_expired", f"offer {offer_id} expired at {offer.expires_at}")
    match = _set_offer(match, offer, "accepted")
    return _assign(match, c, offer.slot, 1, now)


def decline_offer(
    match: Match, offer_id: str, volunteer_id: str, now: datetime, cool_off: timedelta
) -> Result:
    """The volunteer says no: the slot is free again and they are skipped for `cool_off`."""
    _require_open(match)
    offer = _open_offer(match, offer_id, volunteer_id)
    match = _set_offer(match, offer, "declined")
    match = replace(match, declined_until=(*match.declined_until, (volunteer_id, now + cool_off)))
    event = OfferDeclined(
        request_id=match.request_id, offer_id=offer_id, volunteer_id=volunteer_id, declined_at=now
    )
    return match, [event]


def expire_offer(match: Match, offer_id: str, now: datetime) -> Result:
    """The offer's timer fired. A no-op if the offer was answered meanwhile (timers may fire
    after the volunteer acted), so a late timer never undoes an acceptance."""
    offer = next((o for o in match.offers if o.offer_id == offer_id), None)
    if offer is None or offer.status != "open" or match.state in FINAL:
        return match, []
    if now < offer.expires_at:
        raise LifecycleError("not_due", f"offer {offer_id} expires at {offer.expires_at}")
    match = _set_offer(match, offer, "expired")
    event = OfferExpired(
        request_id=match.request_id,
        offer_id=offer_id,
        volunteer_id=offer.volunteer_id,
        expired_at=now,
    )
    return match, [event]


# ---- open claim (抢单) and coordinator assignment ------------------------------------------


def open_claim(match: Match, invited: list[str], now: datetime) -> Result:
    _require_open(match)
    if not invited:
        raise LifecycleError("no_candidates", "nobody to invite")
    match = replace(match, invited=match.invited | frozenset(invited))
    event = ClaimOpened(
        request_id=match.request_id,
        service_type_id=match.service_type_id,
        window=match.window,
        open_slots=len(match.free_slots),
        invited_volunteer_ids=invited,
        opened_at=now,
    )
    return match, [event]


def claim(match: Match, c: Candidate, now: datetime, allowed: Roles | None = None) -> Result:
    """An invited volunteer claims a free slot — with slot roles, the lowest free slot of a
    role in `allowed` (the roles they qualify for); the first claims win."""
    _require_open(match)
    if c.volunteer.id not in match.invited:
        raise LifecycleError("not_invited", f"{c.volunteer.id} was not invited to claim")
    if not match.free_slots:
        raise LifecycleError("no_slot", "every slot is already taken")
    free = match.free_slots_for(allowed)
    if not free:
        raise LifecycleError("no_slot", "no free slot of a role you qualify for")
    return _assign(match, c, free[0], len(match.invited), now)


def assign(
    match: Match, c: Candidate, now: datetime, considered: int = 1, allowed: Roles | None = None
) -> Result:
    """Direct, batch or coordinator assignment of the lowest free slot — with slot roles, the
    lowest free slot of a role in `allowed` (None: any)."""
    _require_open(match)
    if not match.free_slots:
        raise LifecycleError("no_slot", "every slot is already taken")
    free = match.free_slots_for(allowed)
    if not free:
        raise LifecycleError("no_slot", "no free slot of a role they qualify for")
    return _assign(match, c, free[0], considered, now)


# ---- team claims and trip pooling --------------------------------------------------------

TEAM_CLAIMABLE: frozenset[MatchMode] = frozenset({"team", "open_claim"})


def claim_for_team(
    match: Match,
    team_id: str,
    lead_id: str,
    members: list[Candidate],
    now: datetime,
    allowed: list[Roles] | None = None,
) -> Result:
    """A team's lead takes one free slot per named member, all or none: never more slots than
    are free, whatever individual claims got in first. With slot roles (`allowed`: per member
    the roles it may take) each member gets a distinct free slot of such a role (`fit`)."""
    _require_open(match)
    if match.mode not in TEAM_CLAIMABLE:
        raise LifecycleError("not_claimable", f"a {match.mode} request is not open to teams")
    if not members:
        raise LifecycleError("no_members", "name at least one member")
    if len(members) > len(match.free_slots):
        free = len(match.free_slots)
        raise LifecycleError("no_slot", f"{free} slot(s) free, {len(members)} asked for")
    if allowed:
        role_of = {s: match.role_of(s) for s in match.free_slots}
        chosen = fit(slot_options(match.free_slots, role_of, allowed))
        if chosen is None:
            raise LifecycleError("no_slot", "not enough free slots of the members' roles")
    else:
        chosen = match.free_slots[: len(members)]
    events: list[Event] = []
    slots: list[int] = []
    for c, slot in zip(members, chosen, strict=True):
        match, produced = _assign(match, c, slot, len(members), now, team_id=team_id)
        slots.append(slot)
        events += produced
    claimed = TeamClaimed(
        request_id=match.request_id,
        team_id=team_id,
        lead_volunteer_id=lead_id,
        member_ids=[c.volunteer.id for c in members],
        slots=slots,
        claimed_at=now,
    )
    return match, [claimed, *events]


def assign_on_trip(
    match: Match, c: Candidate, trip_id: str, now: datetime, considered: int = 1
) -> Result:
    """The request rides along on the volunteer's planned trip (the trip's room was taken
    before, with a compare-and-set on the trip)."""
    _require_open(match)
    if not match.free_slots:
        raise LifecycleError("no_slot", "every slot is already taken")
    return _assign(match, c, match.free_slots[0], considered, now, trip_id=trip_id)


def withdraw(match: Match, assignment_id: str, volunteer_id: str, now: datetime) -> Result:
    """The volunteer can no longer serve (e.g. cancelled the trip): the slot opens again,
    as after a no-show, but the volunteer said so."""
    _live(match, assignment_id, volunteer_id)  # their own assignment only
    match, events = report_no_show(match, assignment_id, now)
    return match, [e.model_copy(update={"by": "volunteer", "reason": "withdrawn"}) for e in events]


# ---- service -----------------------------------------------------------------------------


def _live(match: Match, assignment_id: str, volunteer_id: str | None) -> Assignment:
    a = next((x for x in match.live_assignments if x.assignment_id == assignment_id), None)
    if a is None or (volunteer_id is not None and a.volunteer_id != volunteer_id):
        raise LifecycleError("not_found", f"no assignment {assignment_id} for this volunteer")
    return a


def _set_assignment(match: Match, a: Assignment, **changes: object) -> Match:
    updated = replace(a, **changes)  # type: ignore[arg-type]
    return replace(match, assignments=tuple(updated if x == a else x for x in match.assignments))


def check_in(
    match: Match, assignment_id: str, volunteer_id: str, code: str, now: datetime
) -> Result:
    """The volunteer arrives and enters the code the requester shows them."""
    _require_open(match)
    a = _live(match, assignment_id, volunteer_id)
    if a.status != "active":
        raise LifecycleError("not_active", f"assignment {assignment_id} is {a.status}")
    if not secrets.compare_digest(code, a.checkin_code):
        raise LifecycleError("wrong_code", "the check-in code does not match")
    if now < match.window.start - EARLIEST_CHECKIN:
        raise LifecycleError("too_early", "check-in opens two hours before the window")
    match = _set_assignment(match, a, status="in_progress", checked_in_at=now)
    event = CheckedIn(
        request_id=match.request_id,
        assignment_id=assignment_id,
        volunteer_id=volunteer_id,
        checked_in_at=now,
    )
    return match, [event]


def credited_hours(checked_in_at: datetime, checked_out_at: datetime) -> float:
    """Hours credited: the time on site, in quarter hours, at most MAX_HOURS."""
    hours = max(0.0, (checked_out_at - checked_in_at).total_seconds() / 3600)
    return min(MAX_HOURS, round(hours * 4) / 4)


def check_out(match: Match, assignment_id: str, volunteer_id: str, now: datetime) -> Result:
    """The service is done: hours are credited; the last check-out completes the request."""
    _require_open(match)
    a = _live(match, assignment_id, volunteer_id)
    if a.status != "in_progress" or a.checked_in_at is None:
        raise LifecycleError("not_checked_in", f"assignment {assignment_id} is {a.status}")
    hours = credited_hours(a.checked_in_at, now)
    match = _set_assignment(match, a, status="completed", checked_out_at=now, hours=hours)
    events: list[Event] = [
        AssignmentCompleted(
            request_id=match.request_id,
            assignment_id=assignment_id,
            volunteer_id=volunteer_id,
            service_type_id=match.service_type_id,
            checked_in_at=a.checked_in_at,
            checked_out_at=now,
            hours=hours,
        )
    ]
    if match.state is State.COMPLETED:
        total = sum(x.hours for x in match.live_assignments)
        events.append(
            RequestCompleted(request_id=match.request_id, hours_total=total, completed_at=now)
        )
    return match, events


def report_no_show(
    match: Match, assignment_id: str, now: datetime, by: str = "requester"
) -> Result:
    """The volunteer did not come: the assignment ends and its slot is open again."""
    _require_open(match)
    a = _live(match, assignment_id, None)
    if a.status != "active":
        raise LifecycleError("not_active", f"assignment {assignment_id} is {a.status}")
    match = _set_assignment(match, a, status="cancelled")
    event = AssignmentCancelled(
        request_id=match.request_id,
        assignment_id=assignment_id,
        volunteer_id=a.volunteer_id,
        by="coordinator" if by == "coordinator" else "requester",
        reason="no_show",
        cancelled_at=now,
    )
    return match, [event]


def cancel(match: Match, by: str, now: datetime) -> Result:
    """Cancelled before completion: open offers are withdrawn, every volunteer released."""
    if match.state in FINAL:
        raise LifecycleError("closed", f"request {match.request_id} is {match.state.value}")
    events: list[Event] = []
    for a in match.live_assignments:
        if a.status == "completed":
            continue
        events.append(
            AssignmentCancelled(
                request_id=match.request_id,
                assignment_id=a.assignment_id,
                volunteer_id=a.volunteer_id,
                by="coordinator" if by == "coordinator" else "requester",
                reason="request_cancelled",
                cancelled_at=now,
            )
        )
    assignments = tuple(
        replace(a, status="cancelled") if a.status in ("active", "in_progress") else a
        for a in match.assignments
    )
    offers = tuple(
        replace(o, status="withdrawn") if o.status == "open" else o for o in match.offers
    )
    return replace(match, assignments=assignments, offers=offers, cancelled=True), events


def _withdraw_open(offers: tuple[Offer, ...]) -> tuple[Offer, ...]:
    return tuple(replace(o, status="withdrawn") if o.status == "open" else o for o in offers)


def give_up(match: Match, reason: UnfulfilledReason, now: datetime) -> Result:
    """Nobody (more) can be found in time: the request ends unfulfilled, open offers are
    withdrawn; volunteers already assigned keep their part."""
    if match.state not in (
        State.MATCHING,
        State.OFFERED,
        State.PARTIALLY_ASSIGNED,
        State.IN_REVIEW,
    ):
        raise LifecycleError("not_matching", f"request {match.request_id} is {match.state.value}")
    offers = tuple(
        replace(o, status="withdrawn") if o.status == "open" else o for o in match.offers
    )
    match = replace(match, offers=offers, unfulfilled=True)
    event = RequestUnfulfilled(
        request_id=match.request_id,
        reason=reason,
        filled_slots=len(match.live_assignments),
        slots=match.slots,
        decided_at=now,
    )
    return match, [event]


@dataclass
class Released:
    """Volunteers whose capacity a result frees (cancelled, no-show or completed)."""

    volunteer_ids: list[str] = field(default_factory=list)


def released_by(events: list[Event]) -> Released:
    return Released(
        [e.volunteer_id for e in events if isinstance(e, AssignmentCancelled | AssignmentCompleted)]
    )


# ---- review, escalation and reassignment (ADR 0009) ---------------------------------------


def hold_for_review(match: Match, township_id: str, now: datetime) -> Result:
    """A service type that needs review: nothing is offered until a coordinator approves."""
    if match.review:
        return match, []  # held already
    match = replace(match, review="pending")
    event = ReviewRequired(
        request_id=match.request_id,
        service_type_id=match.service_type_id,
        township_id=township_id,
        held_at=now,
    )
    return match, [event]


def review(
    match: Match,
    decision: Literal["approved", "rejected"],
    coordinator_id: str,
    note: str | None,
    now: datetime,
) -> Result:
    """The coordinator's decision: approved (matching starts) or rejected (terminal)."""
    if match.state is not State.IN_REVIEW:
        raise LifecycleError("not_in_review", f"request {match.request_id} is {match.state.value}")
    match = replace(match, review=decision)
    event = RequestReviewed(
        request_id=match.request_id,
        decision=decision,
        coordinator_id=coordinator_id,
        note=note,
        reviewed_at=now,
    )
    return match, [event]


def escalate(
    match: Match,
    step: int,
    level: EscalationLevel,
    radius_factor: float,
    township_id: str,
    next_step_at: datetime | None,
    now: datetime,
) -> Result:
    """Climb to rung `step` of the ladder. A no-op unless it is the next rung and slots are
    still open (a timer may fire late, twice, or after the request was filled)."""
    filled = len(match.live_assignments) >= match.slots
    if match.state in NOT_MATCHING or filled or step <= match.escalation_step:
        return match, []
    factor = max(radius_factor, match.radius_factor)
    match = replace(match, escalation_step=step, escalation_level=level, radius_factor=factor)
    event = RequestEscalated(
        request_id=match.request_id,
        step=step,
        level=level,
        township_id=township_id,
        radius_factor=factor,
        open_slots=match.slots - len(match.live_assignments),
        escalated_at=now,
        next_step_at=next_step_at,
    )
    return match, [event]


def reassign(match: Match, assignment_id: str, c: Candidate, now: datetime) -> Result:
    """A coordinator moves an assignment not yet started to another volunteer, same slot."""
    _require_open(match)
    a = _live(match, assignment_id, None)
    if a.status != "active":
        raise LifecycleError("not_active", f"assignment {assignment_id} is {a.status}")
    if c.volunteer.id in {x.volunteer_id for x in match.live_assignments}:
        raise LifecycleError("already_assigned", f"{c.volunteer.id} already serves this request")
    match = _set_assignment(match, a, status="cancelled")
    cancelled = AssignmentCancelled(
        request_id=match.request_id,
        assignment_id=assignment_id,
        volunteer_id=a.volunteer_id,
        by="coordinator",
        reason="reassigned",
        cancelled_at=now,
    )
    new = Assignment(_new_id("asg", now), c.volunteer.id, a.slot, _code(), role=a.role)
    match = replace(match, assignments=(*match.assignments, new))
    assigned = _assigned_event(match, new, c, 1, now).model_copy(update={"mode": "coordinator"})
    return match, [cancelled, assigned]
