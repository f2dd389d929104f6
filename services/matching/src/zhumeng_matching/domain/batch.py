"""Batch mode for routine requests (DESIGN §6): every window, one min-cost assignment over the
pending single-slot requests and their eligible volunteers, instead of first come, first served.
Pure: no I/O; the caller reserves the chosen capacity afterwards, as for single decisions.

Eligibility and score are exactly `policy.ineligibility` and `policy.score`; the cost of a
pair is `1 - score`.

How 2,000 requests x 20,000 volunteers stays fast:

* **Candidates come from `VolunteerIndex.nearby`.** Its answer depends only on the range of grid
  cells around the point and the required skills, so requests that share both share one call.
* **Sparse, pruned graph.** A request keeps at most `max_candidates` eligible volunteers, its
  best by score, plus the volunteer greedy gives it (see below). Cheap necessary conditions
  (radius by vectorised haversine, capacity, language, certifications, weekly availability
  cached per volunteer and window) are checked first, in numpy. Then candidates are taken in
  order of their score bound, and `ineligibility` and `score` confirm each one, until the best
  `max_candidates` are known. No dense requests x volunteers matrix is ever built.
* **Capacity as columns.** A volunteer with free capacity c gets c columns (units). Unit k
  costs `1 - score` with `Load(active + k, total + k)`, i.e. the score the volunteer would have
  after taking k requests of this batch. Unit costs only grow with k, and the growth does not
  depend on the request. So an optimal solution fills a volunteer's units in order, and its
  total cost is the cost of making those assignments one after another. A volunteer gets only
  as many units as it has requests listing it.
* **Everyone gets an answer.** Each request also has its own "unassigned" column with a penalty
  larger than any possible saving (`n + 3` against edge weights in [1, 2]). The solver then
  maximises the number of assigned requests first and minimises the cost second.
  `scipy.sparse.csgraph.min_weight_full_bipartite_matching` (LAPJVsp) needs a full matching
  of the rows, and these columns always make one possible. It works on the sparse edges
  only: about n x max_candidates x units, not n x m.
* **Never worse than greedy.** The greedy solution on the same inputs is part of the graph, so
  the optimum over the pruned graph assigns at least as many requests as greedy. When it
  assigns the same number, it costs at most as much. With `max_candidates=None` nothing is
  pruned and the result is the exact optimum.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter

import numpy as np
from scipy.sparse import csr_matrix  # type: ignore[import-untyped]
from scipy.sparse import diags as sparse_diags
from scipy.sparse import hstack as sparse_hstack
from scipy.sparse.csgraph import (  # type: ignore[import-untyped]
    min_weight_full_bipartite_matching,
)

from zhumeng_contracts.events import RequestPosted, ServiceTypeRecord, VolunteerRecord
from zhumeng_contracts.events.common import WeeklySlot
from zhumeng_contracts.events.matching import ScorePart

from .availability import covers
from .geo import EARTH_RADIUS_KM, cells_within, haversine_km
from .index import VolunteerIndex
from .policy import Load, ineligibility, score, score_total

DEFAULT_MAX_CANDIDATES = 24
_ID = attrgetter("id")
_SLACK_KM = 1e-6  # vectorised haversine vs. math.haversine: float noise only


@dataclass(frozen=True)
class Assignment:
    request_id: str
    volunteer_id: str
    cost: float
    score: float
    distance_km: float
    parts: tuple[ScorePart, ...]


@dataclass
class BatchResult:
    assignments: list[Assignment] = field(default_factory=list)  # in request order
    unassigned: list[str] = field(default_factory=list)  # request ids, in request order
    total_cost: float = 0.0

    @property
    def assigned(self) -> int:
        return len(self.assignments)

    def volunteer_of(self) -> dict[str, str]:
        return {a.request_id: a.volunteer_id for a in self.assignments}


@dataclass(frozen=True)
class _Option:
    """An eligible volunteer for one request, scored at its load before the batch."""

    vol: VolunteerRecord
    distance_km: float
    score: float


class _Candidates:
    """Per request, its eligible volunteers in score order, found lazily.

    The volunteers that `nearby` returned are kept as columns (numpy arrays) once per batch;
    each distinct `nearby` answer is gathered once (with the request-independent conditions:
    free capacity, certifications); each request then filters it by distance, language and
    weekly availability (evaluated once per distinct schedule and window)."""

    def __init__(
        self,
        requests: Sequence[RequestPosted],
        service_types: Mapping[str, ServiceTypeRecord],
        index: VolunteerIndex,
        loads: Mapping[str, Load],
    ) -> None:
        self.requests = requests
        self.services = [service_types.get(r.service_type_id) for r in requests]
        self.loads = loads
        # one column store of the read model per batch (O(volunteers), not requests x volunteers)
        self.vols = index.all()
        self._vpos = {v.id: k for k, v in enumerate(self.vols)}
        found_of: dict[tuple[object, ...], list[VolunteerRecord]] = {}
        self._key: list[tuple[object, ...] | None] = []
        for n, (r, svc) in enumerate(zip(requests, self.services, strict=True)):
            if svc is None or r.slots != 1:
                self._key.append(None)
                continue
            lat, lon = r.location.lat, r.location.lon
            cells = cells_within(lat, lon, index.max_radius_km)
            # nearby's answer depends only on the cell range and the skills
            key: tuple[object, ...] = (cells[0], cells[-1], svc.id) if cells else ("req", n)
            if key not in found_of:
                found_of[key] = index.nearby(lat, lon, svc.required_skills)
            self._key.append(key)
        vols = self.vols
        nv = len(vols)
        ls = [loads.get(v.id, Load()) for v in vols]
        self._lat = np.radians(np.fromiter((v.home.lat for v in vols), float, nv))
        self._lon = np.radians(np.fromiter((v.home.lon for v in vols), float, nv))
        self._radius = np.fromiter((v.radius_km for v in vols), float, nv)
        self._cap = np.fromiter((v.capacity for v in vols), float, nv)
        self._active = np.fromiter((x.active for x in ls), float, nv)
        self._total = np.fromiter((x.total for x in ls), float, nv)
        id_rank = np.empty(nv, dtype=np.int64)
        id_rank[sorted(range(nv), key=lambda k: vols[k].id)] = np.arange(nv)
        self._id_rank = id_rank
        scheds: dict[tuple[tuple[int, object, object], ...], int] = {}
        self._sched_slots: list[list[WeeklySlot]] = []
        sched = np.empty(nv, dtype=np.int64)
        for k, v in enumerate(vols):
            sk = tuple((x.weekday, x.start, x.end) for x in v.availability)
            if sk not in scheds:
                scheds[sk] = len(scheds)
                self._sched_slots.append(v.availability)
            sched[k] = scheds[sk]
        self._sched = sched
        self._speaks: dict[str, np.ndarray] = {}
        self._window_ok: dict[tuple[object, object, int], np.ndarray] = {}
        self._gathered: dict[tuple[object, ...], np.ndarray] = {}
        self._found_of = found_of
        self._order: list[np.ndarray | None] = [None] * len(requests)
        self._bound: list[np.ndarray | None] = [None] * len(requests)
        self._seen: list[int] = [0] * len(requests)
        self._found: list[list[_Option]] = [[] for _ in requests]

    def _positions(self, key: tuple[object, ...], svc: ServiceTypeRecord) -> np.ndarray:
        pos = self._gathered.get(key)
        if pos is None:
            found = self._found_of[key]
            ids = map(_ID, found)
            pos = np.fromiter(map(self._vpos.__getitem__, ids), np.int64, len(found))
            ok = self._active[pos] < self._cap[pos]
            if svc.required_certifications:
                need = set(svc.required_certifications)
                ok &= np.fromiter((need <= set(v.certifications) for v in found), bool, len(found))
            pos = pos[ok]
            self._gathered[key] = pos
        return pos

    def _prepare(self, i: int) -> None:
        """Necessary conditions in numpy, then order by the score bound (ties: nearer, id)."""
        r, svc, key = self.requests[i], self.services[i], self._key[i]
        assert svc is not None and key is not None
        pos = self._positions(key, svc)
        if r.language:
            speaks = self._speaks.get(r.language)
            if speaks is None:
                speaks = np.fromiter((r.language in v.languages for v in self.vols), bool)
                self._speaks[r.language] = speaks
            pos = pos[speaks[pos]]
        wkey = (r.window.start, r.window.end, svc.default_duration_min)
        window_ok = self._window_ok.get(wkey)
        if window_ok is None:
            window_ok = np.fromiter(
                (covers(s, r.window, svc.default_duration_min) for s in self._sched_slots), bool
            )
            self._window_ok[wkey] = window_ok
        pos = pos[window_ok[self._sched[pos]]]
        lat, lon = math.radians(r.location.lat), math.radians(r.location.lon)
        plat, plon = self._lat[pos], self._lon[pos]
        h = (
            np.sin((plat - lat) / 2) ** 2
            + math.cos(lat) * np.cos(plat) * np.sin((plon - lon) / 2) ** 2
        )
        d = 2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, np.sqrt(h)))
        radius = self._radius[pos]
        ok = d <= radius + _SLACK_KM
        keep, d, radius = pos[ok], d[ok], radius[ok]
        bound = (
            0.45 * np.maximum(0.0, 1.0 - d / radius)
            + 0.30 * (1.0 - self._active[keep] / self._cap[keep])
            + 0.10 * (self._total[keep] == 0)
            + 0.15
        )
        order = np.lexsort((self._id_rank[keep], d, -bound))
        self._order[i] = keep[order]
        self._bound[i] = bound[order]

    def _eligible(self, i: int, vol: VolunteerRecord) -> _Option | None:
        """The policy decides: the numpy filters above only skip certain rejections."""
        r, svc = self.requests[i], self.services[i]
        assert svc is not None
        d = haversine_km(r.location.lat, r.location.lon, vol.home.lat, vol.home.lon)
        load = self.loads.get(vol.id, Load())
        if ineligibility(vol, r, svc, load, d) is not None:
            return None
        return _Option(vol, d, score_total(vol, r, load, d))

    def options(self, i: int, want: int | None) -> list[_Option]:
        """Eligible options, best first, until `want` are certain (None: all of them)."""
        if self._key[i] is None:
            return []
        if self._order[i] is None:
            self._prepare(i)
        order, bound = self._order[i], self._bound[i]
        assert order is not None and bound is not None
        found = self._found[i]
        while self._seen[i] < len(order):
            k = self._seen[i]
            if want is not None and len(found) >= want:
                found.sort(key=_rank_key)
                if bound[k] + 1e-6 < found[want - 1].score:
                    break
            opt = self._eligible(i, self.vols[int(order[k])])
            if opt is not None:
                found.append(opt)
            self._seen[i] = k + 1
        found.sort(key=_rank_key)
        return found if want is None else found[:want]


def _rank_key(o: _Option) -> tuple[float, float, str]:
    return (-o.score, o.distance_km, o.vol.id)


def _unit_score(
    o: _Option, r: RequestPosted, base: Load, k: int
) -> tuple[float, tuple[ScorePart, ...]]:
    return score(o.vol, r, Load(base.active + k, base.total + k), o.distance_km)


def _unit_total(o: _Option, r: RequestPosted, base: Load, k: int) -> float:
    return score_total(o.vol, r, Load(base.active + k, base.total + k), o.distance_km)


def _greedy(cands: _Candidates) -> tuple[BatchResult, dict[int, _Option]]:
    """Requests in the given (arrival) order; each takes its best volunteer with capacity left,
    scored at its load so far."""
    loads = cands.loads
    taken: dict[str, int] = {}
    result = BatchResult()
    picks: dict[int, _Option] = {}
    for i, r in enumerate(cands.requests):
        best: tuple[tuple[float, float, str], _Option, int] | None = None
        want = 8
        while True:
            opts = cands.options(i, want)
            for o in opts:
                base = loads.get(o.vol.id, Load())
                k = taken.get(o.vol.id, 0)
                if base.active + k >= o.vol.capacity:
                    continue
                s = _unit_total(o, r, base, k)
                key = (-s, o.distance_km, o.vol.id)
                if best is None or key < best[0]:
                    best = (key, o, k)
            # a later option scores at most its base score: stop once none can beat the best
            if len(opts) < want or (best is not None and opts[-1].score < -best[0][0]):
                break
            want *= 4
        if best is None:
            result.unassigned.append(r.request_id)
            continue
        _, o, k = best
        s, parts = _unit_score(o, r, loads.get(o.vol.id, Load()), k)
        taken[o.vol.id] = taken.get(o.vol.id, 0) + 1
        picks[i] = o
        result.assignments.append(
            Assignment(r.request_id, o.vol.id, 1.0 - s, s, o.distance_km, parts)
        )
        result.total_cost += 1.0 - s
    result.total_cost = round(result.total_cost, 4)
    return result, picks


def assign_greedy(
    requests: Sequence[RequestPosted],
    service_types: Mapping[str, ServiceTypeRecord],
    index: VolunteerIndex,
    loads: Mapping[str, Load],
) -> BatchResult:
    """First come, first served on the same inputs as `assign_batch` (the baseline)."""
    return _greedy(_Candidates(requests, service_types, index, loads))[0]


def cost_matrix(
    requests: Sequence[RequestPosted],
    service_types: Mapping[str, ServiceTypeRecord],
    index: VolunteerIndex,
    loads: Mapping[str, Load],
    max_candidates: int | None = DEFAULT_MAX_CANDIDATES,
) -> tuple[csr_matrix, list[tuple[str, int]]]:
    """Sparse costs (rows: requests; columns: capacity units) and the (volunteer id, unit)
    pair of each column. A missing entry is an ineligible pair. Stored entries are
    `1 + cost`, so that an explicit 0 never means "no edge"."""
    cands = _Candidates(requests, service_types, index, loads)
    return _build(cands, max_candidates, {})[:2]


def _build(
    cands: _Candidates, max_candidates: int | None, extra: dict[int, _Option]
) -> tuple[csr_matrix, list[tuple[str, int]], list[list[_Option]]]:
    per_request: list[list[_Option]] = []
    listed: dict[str, int] = {}
    for i in range(len(cands.requests)):
        opts = list(cands.options(i, max_candidates))
        if i in extra and all(o.vol.id != extra[i].vol.id for o in opts):
            opts.append(extra[i])
        per_request.append(opts)
        for o in opts:
            listed[o.vol.id] = listed.get(o.vol.id, 0) + 1
    columns: list[tuple[str, int]] = []
    first: dict[str, int] = {}
    # units per volunteer: its free capacity, at most the number of requests listing it
    vol_of: dict[str, VolunteerRecord] = {o.vol.id: o.vol for opts in per_request for o in opts}
    for vid in sorted(listed):
        base = cands.loads.get(vid, Load())
        units = min(vol_of[vid].capacity - base.active, listed[vid])
        first[vid] = len(columns)
        columns.extend((vid, k) for k in range(units))
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for i, opts in enumerate(per_request):
        r = cands.requests[i]
        for o in opts:
            base = cands.loads.get(o.vol.id, Load())
            units = min(o.vol.capacity - base.active, listed[o.vol.id])
            for k in range(units):
                s = o.score if k == 0 else _unit_total(o, r, base, k)
                rows.append(i)
                cols.append(first[o.vol.id] + k)
                vals.append(2.0 - s)  # 1 + cost
    m = csr_matrix(
        (
            np.array(vals, dtype=float),
            (np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)),
        ),
        shape=(len(cands.requests), len(columns)),
    )
    return m, columns, per_request


def assign_batch(
    requests: Sequence[RequestPosted],
    service_types: Mapping[str, ServiceTypeRecord],
    index: VolunteerIndex,
    loads: Mapping[str, Load],
    max_candidates: int | None = DEFAULT_MAX_CANDIDATES,
) -> BatchResult:
    """The min-cost assignment of the batch: as many requests as possible, then the least
    total cost. Repeatable: same inputs, same result."""
    cands = _Candidates(requests, service_types, index, loads)
    _, greedy_picks = _greedy(cands)
    m, columns, per_request = _build(cands, max_candidates, greedy_picks)
    n = len(requests)
    result = BatchResult()
    if n == 0:
        return result
    # one "unassigned" column per request, dearer than any saving the real edges can give
    penalty = sparse_diags(np.full(n, n + 3.0), format="csr")
    full = sparse_hstack([m, penalty], format="csr")
    rows, cols = min_weight_full_bipartite_matching(full)
    chosen: dict[int, str] = {
        int(i): columns[int(c)][0] for i, c in zip(rows, cols, strict=True) if c < len(columns)
    }
    taken: dict[str, int] = {}
    for i, r in enumerate(requests):
        vid = chosen.get(i)
        if vid is None:
            result.unassigned.append(r.request_id)
            continue
        o = next(o for o in per_request[i] if o.vol.id == vid)
        base = loads.get(vid, Load())
        k = taken.get(vid, 0)  # units are interchangeable per volunteer: number them in order
        taken[vid] = k + 1
        s, parts = _unit_score(o, r, base, k)
        result.assignments.append(Assignment(r.request_id, vid, 1.0 - s, s, o.distance_km, parts))
        result.total_cost += 1.0 - s
    result.total_cost = round(result.total_cost, 4)
    return result
