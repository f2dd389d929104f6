"""The matching policy: who may take a request, and who should (DESIGN §6, ADR 0008). Pure.

Every criterion is a figure in 0..1 (higher is better) with a weight; the weights sum to 1 and
the score is the sum of the rounded contributions, each reported in the explanation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from zhumeng_contracts.events import RequestPosted, ServiceTypeRecord, VolunteerRecord
from zhumeng_contracts.events.matching import ScorePart

from .availability import covers, covers_despite
from .geo import haversine_km

WEIGHTS: dict[str, float] = {
    "distance": 0.45,  # nearer volunteers arrive sooner and travel less
    "fairness": 0.12,  # workload spread: prefer volunteers with free (effective) capacity
    "recent_hours": 0.12,  # fairness over time: fewer hours in the last 30 days first
    "experience": 0.10,  # has done this service type before
    "rating": 0.08,  # requesters' stars, shrunk towards a prior
    "newcomer": 0.08,  # a first chance for volunteers with few completed assignments
    "language": 0.05,  # a requested dialect (e.g. Minnan) spoken
}
CRITERIA = tuple(WEIGHTS)

RECENT_DAYS = 30  # "recent hours" are the hours credited in this many days
RECENT_HOURS_FULL = 20.0  # at or above this many recent hours the figure is 0
EXPERIENCE_FULL = 5  # completed assignments of the type at which experience is 1
RATING_PRIOR_MEAN = 4.0  # stars assumed before any rating ...
RATING_PRIOR_WEIGHT = 5.0  # ... as if this many ratings of the prior mean
NEWCOMER_COMPLETIONS = 3  # fewer completed assignments than this: a newcomer
NEWCOMER_CAPACITY = 1  # a newcomer's concurrent assignments at most


@dataclass(frozen=True, slots=True)
class Load:
    """A volunteer's current work, as matching records it."""

    active: int = 0
    total: int = 0


@dataclass(frozen=True, slots=True)
class VolunteerStats:
    """A volunteer's history, as matching's own events record it (`app.volunteer_stats`)."""

    completed: int = 0  # assignments completed (checked out), all types
    recent_hours: float = 0.0  # hours credited in the last RECENT_DAYS days
    by_type: Mapping[str, int] = field(default_factory=dict)  # completed per service type
    stars_sum: float = 0.0  # stars of the rated requests this volunteer completed
    stars_n: int = 0

    def experience(self, service_type_id: str) -> int:
        return self.by_type.get(service_type_id, 0)


NO_STATS = VolunteerStats()


@dataclass(frozen=True)
class Candidate:
    volunteer: VolunteerRecord  # capacity already the effective one (`effective_capacity`)
    distance_km: float
    score: float
    parts: tuple[ScorePart, ...]


@dataclass
class Ranking:
    candidates: list[Candidate]
    rejected: Counter[str] = field(default_factory=Counter)
    considered: int = 0


# ---------------------------------------------------------------- the figures, one per criterion


def distance_figure(distance_km: float, radius_km: float) -> float:
    return max(0.0, 1.0 - distance_km / radius_km)


def workload_figure(active: int | float, capacity: int | float) -> float:
    return 1.0 - active / capacity


def recent_hours_figure(hours: float) -> float:
    """1 without recent hours, falling linearly to 0 at RECENT_HOURS_FULL (saturating)."""
    return 1.0 - min(hours, RECENT_HOURS_FULL) / RECENT_HOURS_FULL


def experience_figure(completed_of_type: int | float) -> float:
    return min(completed_of_type, EXPERIENCE_FULL) / EXPERIENCE_FULL


def shrunk_stars(stars_sum: float, stars_n: int | float) -> float:
    """The mean of the stars, shrunk towards the prior: few ratings say little."""
    return (RATING_PRIOR_MEAN * RATING_PRIOR_WEIGHT + stars_sum) / (RATING_PRIOR_WEIGHT + stars_n)


def rating_figure(stars_sum: float, stars_n: int | float) -> float:
    """The shrunk mean of 1..5 stars, mapped onto 0..1."""
    return (shrunk_stars(stars_sum, stars_n) - 1.0) / 4.0


def newcomer_figure(completed: int | float) -> float:
    """1 before the first completion, then down by a third per completion, 0 from the third."""
    return 1.0 - min(completed, NEWCOMER_COMPLETIONS) / NEWCOMER_COMPLETIONS


def effective_capacity(capacity: int, completed: int) -> int:
    """Newcomers are protected from overload: one assignment at a time until their
    NEWCOMER_COMPLETIONS-th completion, then their own capacity."""
    if completed < NEWCOMER_COMPLETIONS:
        return min(capacity, NEWCOMER_CAPACITY)
    return capacity


def language_figure(vol: VolunteerRecord, request: RequestPosted) -> float:
    return 1.0 if request.language is None or request.language in vol.languages else 0.0


def figures(
    vol: VolunteerRecord,
    request: RequestPosted,
    load: Load,
    distance_km: float,
    stats: VolunteerStats = NO_STATS,
) -> tuple[float, ...]:
    """The figure of every criterion, in `WEIGHTS` order."""
    return (
        distance_figure(distance_km, vol.radius_km),
        workload_figure(load.active, effective_capacity(vol.capacity, stats.completed)),
        recent_hours_figure(stats.recent_hours),
        experience_figure(stats.experience(request.service_type_id)),
        rating_figure(stats.stars_sum, stats.stars_n),
        newcomer_figure(stats.completed),
        language_figure(vol, request),
    )


_W = tuple(WEIGHTS.values())


def round4(x: float) -> float:
    """Rounded to 4 decimals as numpy rounds in bulk (`np.rint(x * 1e4) / 1e4`: half to even
    on the same double), so that the index computes exactly the same scores in numpy."""
    return round(x * 10000.0) / 10000.0


def total_of(values: tuple[float, ...] | list[float]) -> float:
    """The score of the figures: the rounded contributions summed in order, rounded (exactly
    the sum of the explanation's contributions)."""
    total = 0.0
    for v, w in zip(values, _W, strict=True):
        total += round4(v * w)
    return round4(total)


# ScorePart is frozen: equal parts are shared, since building one (even unvalidated) costs
# more than the rest of explaining a candidate. Bounded: 4-decimal figures repeat a lot.
_PARTS: dict[tuple[int, float, float], ScorePart] = {}
_PARTS_MAX = 1 << 16
_CRITERION_I = range(len(_W))


def _part(i: int, value: float, contribution: float) -> ScorePart:
    key = (i, value, contribution)
    part = _PARTS.get(key)
    if part is None:
        if len(_PARTS) >= _PARTS_MAX:
            _PARTS.clear()
        # computed floats need no validation
        part = _PARTS[key] = ScorePart.model_construct(
            criterion=CRITERIA[i], value=value, weight=_W[i], contribution=contribution
        )
    return part


def explain(values: tuple[float, ...] | list[float]) -> tuple[float, tuple[ScorePart, ...]]:
    """(`total_of(values)`, the parts). `round4` inlined and one pass for both: this runs for
    every candidate a decision returns."""
    parts: list[ScorePart] = []
    total = 0.0
    get = _PARTS.get
    for i, v, w in zip(_CRITERION_I, values, _W, strict=True):
        contribution = round(v * w * 10000.0) / 10000.0  # round4(v * w)
        total += contribution
        value = round(v * 10000.0) / 10000.0
        part = get((i, value, contribution))
        parts.append(_part(i, value, contribution) if part is None else part)
    return round(total * 10000.0) / 10000.0, tuple(parts)


# ---------------------------------------------------------------- eligibility and score


def ineligibility(
    vol: VolunteerRecord,
    request: RequestPosted,
    service: ServiceTypeRecord,
    load: Load,
    distance_km: float,
    stats: VolunteerStats = NO_STATS,
) -> str | None:
    """The first reason this volunteer cannot take the request, or None."""
    if not set(service.required_skills) <= set(vol.skills):
        return "missing_skill"
    if not set(service.required_certifications) <= set(vol.certifications):
        return "missing_certification"
    if distance_km > vol.radius_km:
        return "out_of_radius"
    if load.active >= effective_capacity(vol.capacity, stats.completed):
        return "no_capacity"
    if request.language and request.language not in vol.languages:
        return "language"
    if not covers(vol.availability, request.window, service.default_duration_min):
        return "not_available"
    if vol.unavailable and not covers_despite(
        vol.availability, vol.unavailable, request.window, service.default_duration_min
    ):
        return "unavailable"  # an exception to the weekly schedule (leave, illness)
    return None


def score_total(
    vol: VolunteerRecord,
    request: RequestPosted,
    load: Load,
    distance_km: float,
    stats: VolunteerStats = NO_STATS,
) -> float:
    """`score(...)[0]` without building the explanation (the same float)."""
    return total_of(figures(vol, request, load, distance_km, stats))


def score(
    vol: VolunteerRecord,
    request: RequestPosted,
    load: Load,
    distance_km: float,
    stats: VolunteerStats = NO_STATS,
) -> tuple[float, tuple[ScorePart, ...]]:
    return explain(figures(vol, request, load, distance_km, stats))


def candidate(
    vol: VolunteerRecord,
    distance_km: float,
    total: float,
    parts: tuple[ScorePart, ...],
    stats: VolunteerStats = NO_STATS,
) -> Candidate:
    """A candidate whose record carries the effective capacity, so that the caller's atomic
    reservation (`reserve(id, request, candidate.volunteer.capacity)`) enforces the newcomer
    rule too."""
    cap = effective_capacity(vol.capacity, stats.completed)
    if cap != vol.capacity:
        vol = vol.model_copy(update={"capacity": cap})
    return Candidate(vol, distance_km, total, parts)


def rank(
    request: RequestPosted,
    service: ServiceTypeRecord,
    nearby: list[VolunteerRecord],
    loads: Mapping[str, Load],
    stats: Mapping[str, VolunteerStats] | None = None,
) -> Ranking:
    """Eligible candidates, best first (ties: nearer, then id, so decisions are repeatable)."""
    ranking = Ranking(candidates=[], considered=len(nearby))
    stats = stats or {}
    for vol in nearby:
        d = haversine_km(request.location.lat, request.location.lon, vol.home.lat, vol.home.lon)
        load = loads.get(vol.id, Load())
        st = stats.get(vol.id, NO_STATS)
        reason = ineligibility(vol, request, service, load, d, st)
        if reason:
            ranking.rejected[reason] += 1
            continue
        total, parts = score(vol, request, load, d, st)
        ranking.candidates.append(candidate(vol, d, total, parts, st))
    ranking.candidates.sort(key=lambda c: (-c.score, c.distance_km, c.volunteer.id))
    return ranking
