"""The matching policy: who may take a request, and who should (DESIGN §6). Pure."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from zhumeng_contracts.events import RequestPosted, ServiceTypeRecord, VolunteerRecord
from zhumeng_contracts.events.matching import ScorePart

from .availability import covers
from .geo import haversine_km

WEIGHTS: dict[str, float] = {
    "distance": 0.45,  # nearer volunteers arrive sooner and travel less
    "fairness": 0.30,  # spread the work: prefer volunteers with free capacity
    "newcomer": 0.10,  # give volunteers without an assignment yet a first chance
    "language": 0.15,  # a requested dialect (e.g. Minnan) spoken
}


@dataclass(frozen=True)
class Load:
    """A volunteer's current work, as matching records it."""

    active: int = 0
    total: int = 0


@dataclass(frozen=True)
class Candidate:
    volunteer: VolunteerRecord
    distance_km: float
    score: float
    parts: tuple[ScorePart, ...]


@dataclass
class Ranking:
    candidates: list[Candidate]
    rejected: Counter[str] = field(default_factory=Counter)
    considered: int = 0


def ineligibility(
    vol: VolunteerRecord,
    request: RequestPosted,
    service: ServiceTypeRecord,
    load: Load,
    distance_km: float,
) -> str | None:
    """The first reason this volunteer cannot take the request, or None."""
    if not set(service.required_skills) <= set(vol.skills):
        return "missing_skill"
    if not set(service.required_certifications) <= set(vol.certifications):
        return "missing_certification"
    if distance_km > vol.radius_km:
        return "out_of_radius"
    if load.active >= vol.capacity:
        return "no_capacity"
    if request.language and request.language not in vol.languages:
        return "language"
    if not covers(vol.availability, request.window, service.default_duration_min):
        return "not_available"
    return None


def _figures(
    vol: VolunteerRecord, request: RequestPosted, load: Load, distance_km: float
) -> dict[str, float]:
    return {
        "distance": max(0.0, 1.0 - distance_km / vol.radius_km),
        "fairness": 1.0 - load.active / vol.capacity,
        "newcomer": 1.0 if load.total == 0 else 0.0,
        "language": 1.0 if request.language is None or request.language in vol.languages else 0.0,
    }


_W_DIST, _W_FAIR, _W_NEW, _W_LANG = (
    WEIGHTS[k] for k in ("distance", "fairness", "newcomer", "language")
)


def score_total(
    vol: VolunteerRecord, request: RequestPosted, load: Load, distance_km: float
) -> float:
    """`score(...)[0]` without building the explanation: the same arithmetic in the same
    order (the parts in `WEIGHTS` order, each rounded, then the sum), so the same float."""
    lang = 1.0 if request.language is None or request.language in vol.languages else 0.0
    return round(
        round(max(0.0, 1.0 - distance_km / vol.radius_km) * _W_DIST, 4)
        + round((1.0 - load.active / vol.capacity) * _W_FAIR, 4)
        + round((1.0 if load.total == 0 else 0.0) * _W_NEW, 4)
        + round(lang * _W_LANG, 4),
        4,
    )


def score(
    vol: VolunteerRecord, request: RequestPosted, load: Load, distance_km: float
) -> tuple[float, tuple[ScorePart, ...]]:
    figures = _figures(vol, request, load, distance_km)
    parts = tuple(
        ScorePart(
            criterion=k, value=round(v, 4), weight=WEIGHTS[k], contribution=round(v * WEIGHTS[k], 4)
        )
        for k, v in figures.items()
    )
    return round(sum(p.contribution for p in parts), 4), parts


def rank(
    request: RequestPosted,
    service: ServiceTypeRecord,
    nearby: list[VolunteerRecord],
    loads: dict[str, Load],
) -> Ranking:
    """Eligible candidates, best first (ties: nearer, then id, so decisions are repeatable)."""
    ranking = Ranking(candidates=[], considered=len(nearby))
    for vol in nearby:
        d = haversine_km(request.location.lat, request.location.lon, vol.home.lat, vol.home.lon)
        load = loads.get(vol.id, Load())
        reason = ineligibility(vol, request, service, load, d)
        if reason:
            ranking.rejected[reason] += 1
            continue
        total, parts = score(vol, request, load, d)
        ranking.candidates.append(Candidate(vol, d, total, parts))
    ranking.candidates.sort(key=lambda c: (-c.score, c.distance_km, c.volunteer.id))
    return ranking
