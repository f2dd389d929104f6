"""Batch mode for routine requests (DESIGN §6): every window, one min-cost assignment over the
pending single-slot requests and their eligible volunteers, instead of first come, first served.
Pure: no I/O; the caller reserves the chosen capacity afterwards, as for single decisions.

Eligibility and score are exactly `policy.ineligibility` and `policy.score` (with the index's
history of each volunteer); the cost of a pair is `1 - score`.

How 2,000 requests x 20,000 volunteers stays fast:

* **Candidates come from the index's pools.** Requests sharing service type, window and
  language share a `VolunteerIndex.pool`: the volunteers meeting every condition but
  distance and leave (skills, certifications, language, capacity under the batch's loads as
  numpy columns, weekly availability), checked once per group instead of once per request.
  `search_pool` then takes one chord-distance pass over the pool per request and returns what
  `VolunteerIndex.search` would: hits eligible and scored exactly as `policy.ineligibility`
  and `policy.score_total` would.
* **Sparse, pruned graph.** A request keeps at most `max_candidates` eligible volunteers, its
  best by score, plus the volunteer greedy gives it (see below). No dense requests x volunteers
  matrix is ever built.
* **Capacity as columns.** A volunteer with free capacity c (under the newcomer rule,
  `policy.effective_capacity`) gets c columns (units). Unit k costs `1 - score` with the
  workload of `active + k`, i.e. the score the volunteer would have after taking k requests of
  this batch (the history changes at completion, not at assignment). Unit costs only grow
  with k, and the growth does not depend on the request. So an optimal solution fills a
  volunteer's units in order, and its total cost is the cost of making those assignments one
  after another. A volunteer gets only as many units as it has requests listing it.
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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix  # type: ignore[import-untyped]
from scipy.sparse import diags as sparse_diags
from scipy.sparse import hstack as sparse_hstack
from scipy.sparse.csgraph import (  # type: ignore[import-untyped]
    min_weight_full_bipartite_matching,
)

from zhumeng_contracts.events import RequestPosted, ServiceTypeRecord
from zhumeng_contracts.events.matching import ScorePart

from .index import Hit, Hits, Pool, VolunteerIndex
from .policy import Load, explain, total_of, workload_figure

DEFAULT_MAX_CANDIDATES = 12


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


_Option = Hit  # an eligible volunteer for one request, scored at its load before the batch


class _Candidates:
    """Per request, its eligible volunteers in score order, from the index's best-first
    search (`VolunteerIndex.search`), which also prunes by capacity, fairness and newcomer in
    numpy (`load_columns`, once per batch). A request's answer is kept and searched again
    only when more options are wanted than were searched for."""

    def __init__(
        self,
        requests: Sequence[RequestPosted],
        service_types: Mapping[str, ServiceTypeRecord],
        index: VolunteerIndex,
        loads: Mapping[str, Load],
        first_want: int | None,
    ) -> None:
        self.requests = requests
        self.services = [service_types.get(r.service_type_id) for r in requests]
        self.loads = loads
        self._index = index
        self._first_want = first_want
        self._columns = index.load_columns(loads)
        self._found: list[Hits | None] = [None] * len(requests)
        self._want: list[int | None] = [None] * len(requests)
        self._pools: dict[tuple[object, ...], Pool | None] = {}

    def _search(self, i: int, k: int | None) -> Hits:
        """`VolunteerIndex.search`, through the pool the request shares with the others of
        its service type, window and language: the conditions but distance are checked once
        per group, not once per request."""
        r, svc = self.requests[i], self.services[i]
        assert svc is not None
        key = (r.service_type_id, r.window.start, r.window.end, r.language)
        if key not in self._pools:
            self._pools[key] = self._index.pool(r, svc, self.loads, self._columns)
        pool = self._pools[key]
        return Hits([], 0, True) if pool is None else self._index.search_pool(pool, r, k)

    def options(self, i: int, want: int | None) -> list[_Option]:
        """Eligible options, best first: the best `want` (None: all of them)."""
        r, svc = self.requests[i], self.services[i]
        if svc is None or r.slots != 1:
            return []
        hits, searched = self._found[i], self._want[i]
        if hits is None or not (
            hits.complete or (want is not None and searched is not None and want <= searched)
        ):
            first = self._first_want
            k = None if want is None or first is None else max(want, first)
            hits = self._found[i] = self._search(i, k)
            self._want[i] = k
        return hits.found if want is None else hits.found[:want]


def _rank_key(o: _Option) -> tuple[float, float, str]:
    return (-o.score, o.distance_km, o.vol.id)


def _unit_values(o: _Option, k: int) -> list[float]:
    """The option's figures after this batch gave the volunteer k other requests: only the
    workload changes (history changes at completion, not at assignment)."""
    values = list(o.values)
    values[1] = workload_figure(o.active + k, o.capacity)
    return values


def _unit_score(o: _Option, k: int) -> tuple[float, tuple[ScorePart, ...]]:
    return explain(_unit_values(o, k))


def _unit_total(o: _Option, k: int) -> float:
    return o.score if k == 0 else total_of(_unit_values(o, k))


def _greedy(cands: _Candidates, explained: bool = True) -> tuple[BatchResult, dict[int, _Option]]:
    """Requests in the given (arrival) order; each takes its best volunteer with capacity left,
    scored at its load so far. Without `explained`, only the picks count (no parts)."""
    taken: dict[str, int] = {}
    result = BatchResult()
    picks: dict[int, _Option] = {}
    for i, r in enumerate(cands.requests):
        best: tuple[tuple[float, float, str], _Option, int] | None = None
        want = 8
        while True:
            opts = cands.options(i, want)
            for o in opts:
                k = taken.get(o.vol.id, 0)
                if o.active + k >= o.capacity:
                    continue
                s = _unit_total(o, k)
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
        s, parts = _unit_score(o, k) if explained else (-best[0][0], ())
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
    return _greedy(_Candidates(requests, service_types, index, loads, 8))[0]


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
    cands = _Candidates(requests, service_types, index, loads, max_candidates)
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
    opt_of: dict[str, _Option] = {o.vol.id: o for opts in per_request for o in opts}
    for vid in sorted(listed):
        units = min(opt_of[vid].capacity - opt_of[vid].active, listed[vid])
        first[vid] = len(columns)
        columns.extend((vid, k) for k in range(units))
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for i, opts in enumerate(per_request):
        for o in opts:
            units = min(o.capacity - o.active, listed[o.vol.id])
            for k in range(units):
                s = _unit_total(o, k)
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
    cands = _Candidates(requests, service_types, index, loads, max_candidates)
    _, greedy_picks = _greedy(cands, explained=False)
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
        k = taken.get(vid, 0)  # units are interchangeable per volunteer: number them in order
        taken[vid] = k + 1
        s, parts = _unit_score(o, k)
        result.assignments.append(Assignment(r.request_id, vid, 1.0 - s, s, o.distance_km, parts))
        result.total_cost += 1.0 - s
    result.total_cost = round(result.total_cost, 4)
    return result
