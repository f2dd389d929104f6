"""The SLA escalation ladder (DESIGN §6, ADR 0009). Pure: given the rungs already climbed, the
time and the appointment window, what happens next.

    posted (or approved) + target_claim -> wider radius x1.5 -> wider radius x2.0
        -> township liaison -> county centre -> unfulfilled (escalation_exhausted)

Every rung is given `gap` (the service type's target time to claim) before the next. A human
rung (liaison, county centre) due outside office hours waits for the next opening, unless the
appointment starts before that opening: then it goes at once to the county centre's duty
desk (staffed around the clock). When the appointment starts with no volunteer at all, the
request ends unfulfilled (window_passed); with some slots filled the ladder just stops and the
volunteers who are assigned serve.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from zhumeng_contracts.events import RequestPosted, ServiceTypeRecord, VolunteerRecord
from zhumeng_contracts.events.lifecycle import EscalationLevel

from .geo import haversine_km
from .office_hours import TOWNSHIP_OFFICE, OfficeHours
from .policy import Candidate, Load, rank

HUMAN: frozenset[EscalationLevel] = frozenset({"township_liaison", "county_centre"})
DEFAULT_RADIUS_FACTORS = (1.5, 2.0)


@dataclass(frozen=True)
class Rung:
    level: EscalationLevel
    radius_factor: float


@dataclass(frozen=True)
class Ladder:
    gap: timedelta  # the target time to claim: first rung after it, then one rung per gap
    radius_factors: tuple[float, ...] = DEFAULT_RADIUS_FACTORS
    office: OfficeHours = TOWNSHIP_OFFICE

    @property
    def rungs(self) -> tuple[Rung, ...]:
        widest = max(self.radius_factors, default=1.0)
        return (
            *(Rung("wider_radius", f) for f in self.radius_factors),
            Rung("township_liaison", widest),
            Rung("county_centre", widest),
        )

    def first_due(self, since: datetime, window_start: datetime) -> datetime:
        """When the first rung is due for a request posted (or approved) at `since`."""
        return min(since + self.gap, window_start)


@dataclass(frozen=True)
class Climb:
    """Climb to rung `step` (1-based) now; the next decision is due at `next_at`."""

    step: int
    level: EscalationLevel
    radius_factor: float
    next_at: datetime
    duty_desk: bool = False  # the county centre's duty desk, out of office hours


@dataclass(frozen=True)
class Wait:
    """A human rung out of office hours: decide again at the opening."""

    until: datetime


@dataclass(frozen=True)
class Stop:
    """The ladder ends: unfulfilled for `reason`, or quietly (None: some slots are filled)."""

    reason: Literal["window_passed", "escalation_exhausted"] | None


Decision = Climb | Wait | Stop


def decide(
    ladder: Ladder, climbed: int, now: datetime, window_start: datetime, anyone_assigned: bool
) -> Decision:
    """What to do when the timer for rung `climbed + 1` fires at `now` (slots still open)."""
    if now >= window_start:
        return Stop(None if anyone_assigned else "window_passed")
    rungs = ladder.rungs
    if climbed >= len(rungs):
        return Stop(None if anyone_assigned else "escalation_exhausted")
    index, duty_desk = climbed, False
    if rungs[index].level in HUMAN and not ladder.office.is_open(now):
        opening = ladder.office.next_opening(now)
        if opening < window_start:
            return Wait(opening)
        index, duty_desk = len(rungs) - 1, True  # nobody at the office in time: duty desk
    rung = rungs[index]
    next_at = min(now + ladder.gap, window_start)
    return Climb(index + 1, rung.level, rung.radius_factor, next_at, duty_desk)


def widened_candidates(
    volunteers: Iterable[VolunteerRecord],
    request: RequestPosted,
    service: ServiceTypeRecord,
    loads: dict[str, Load],
    factor: float,
) -> list[Candidate]:
    """Eligible candidates, best first, when every volunteer's radius is `factor` times their
    own (the same policy, scored against the widened radius). A pass over the given
    volunteers: escalation is rare, so it does not need the index's best-first search."""
    lat, lon = request.location.lat, request.location.lon
    scaled = [
        v.model_copy(update={"radius_km": v.radius_km * factor})
        for v in volunteers
        if haversine_km(lat, lon, v.home.lat, v.home.lon) <= v.radius_km * factor
    ]
    return rank(request, service, scaled, loads).candidates
