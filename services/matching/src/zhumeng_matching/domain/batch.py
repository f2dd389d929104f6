"""Batch mode for routine requests (DESIGN §6): every window, one min-cost assignment over the
open slots of the pending requests and their eligible volunteers, instead of first come, first
served. Pure: no I/O; the caller reserves the chosen capacity afterwards, as for single
decisions.

Eligibility and score are exactly `policy.ineligibility` and `policy.score` (with the index's
history of each volunteer); the cost of a pair is `1 - score`.

**Rows are open slots.** A pending request gives one row per slot still open (`Opening`: slots
filled by an earlier window are not rows, and who serves the request already is not eligible
for it again). A slot with a role (`ServiceTypeRecord.slot_roles`, ADR 0010) is eligible only
to volunteers eligible for the service type with the role's requirements (`teams.role_service`),
so the rows of one request with the same role form one *demand*, searched once.

How 2,000 requests x 20,000 volunteers stays fast:

* **Candidates come from the index's pools.** Demands sharing service type, role, window and
  language share a `VolunteerIndex.pool`: the volunteers meeting every condition but
  distance and leave (skills, certifications, language, capacity under the batch's loads as
  numpy columns, weekly availability), checked once per group instead of once per request.
  `search_pool` then takes one chord-distance pass over the pool per demand and returns what
  `VolunteerIndex.search` would: hits eligible and scored exactly as `policy.ineligibility`
  and `policy.score_total` would.
* **Sparse, pruned graph.** A demand keeps at most `max_candidates` (+ its rows - 1) eligible
  volunteers, its best by score, plus the volunteers greedy gives its rows (see below). No
  dense rows x volunteers matrix is ever built.
* **Capacity as columns.** A volunteer with free capacity c (under the newcomer rule,
  `policy.effective_capacity`) gets c columns (units). Unit k costs `1 - score` with the
  workload of `active + k`, i.e. the score the volunteer would have after taking k requests of
  this batch (the history changes at completion, not at assignment). Unit costs only grow
  with k, and the growth does not depend on the request. So an optimal solution fills a
  volunteer's units in order, and its total cost is the cost of making those assignments one
  after another. A volunteer gets only as many units as there are requests listing it.
* **One volunteer, one slot of a request.** Units alone would let a volunteer with capacity 2
  take two slots of one request. A request with several open rows therefore reaches a
  volunteer's units through a *gate* per (request, volunteer): a column `in` that the
  request's rows may take, and a row `out` that must take either `in` (the gate is unused) or
  one of the volunteer's units (the gate is used, by exactly one row). This is the min-cost
  flow with unit capacities on (request, volunteer), written as an assignment (each gate
  node is matched once), so it stays exact: no post-check and no re-solve. Weights: row->in
  `1.5 - s0`, out->in `0.5`, out->unit k `1 + s0 - sk`; a used gate then costs `2 - sk` more
  than an unused one, exactly the `1 + cost` of a direct edge, and a unit taken by an unused
  gate (`>= 1` instead of `0.5`) never pays. Single-slot requests keep their direct edges,
  and so do volunteers with one unit (they cannot take two slots of anything): gates only
  where they are needed keep the solver's graph small.
* **Everyone gets an answer.** Each row also has its own "unassigned" column with a penalty
  larger than any possible saving (`rows + 3` against effective edge weights in [1, 2]). The
  solver then maximises the number of filled slots first and minimises the cost second.
  `scipy.sparse.csgraph.min_weight_full_bipartite_matching` (LAPJVsp) needs a full matching
  of the rows, and these columns (and each gate's `out`->`in`) always make one possible. It
  works on the sparse edges only: about rows x max_candidates x units, not rows x volunteers.
* **Never worse than greedy.** The greedy solution on the same inputs is part of the graph, so
  the optimum over the pruned graph fills at least as many slots as greedy. When it fills the
  same number, it costs at most as much. With `max_candidates=None` nothing is pruned and the
  result is the exact optimum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix  # type: ignore[import-untyped]
from scipy.sparse.csgraph import (  # type: ignore[import-untyped]
    min_weight_full_bipartite_matching,
)

from zhumeng_contracts.events import RequestPosted, ServiceTypeRecord
from zhumeng_contracts.events.matching import ScorePart

from .index import Hit, Hits, Pool, VolunteerIndex
from .policy import Load, explain, total_of, workload_figure
from .teams import Role, role_service, roles_by_slot

DEFAULT_MAX_CANDIDATES = 12


@dataclass(frozen=True)
class Assignment:
    request_id: str
    volunteer_id: str
    cost: float
    score: float
    distance_km: float
    parts: tuple[ScorePart, ...]
    slot: int = 1
    role: str | None = None  # the slot's role (service types with slot roles)


@dataclass
class BatchResult:
    assignments: list[Assignment] = field(default_factory=list)  # in request, then slot order
    # the request of every open slot left unfilled (a request once per such slot), in order
    unassigned: list[str] = field(default_factory=list)
    total_cost: float = 0.0

    @property
    def assigned(self) -> int:
        """Slots filled."""
        return len(self.assignments)

    def volunteer_of(self) -> dict[str, str]:
        """Request -> its volunteer (single-slot requests)."""
        return {a.request_id: a.volunteer_id for a in self.assignments}

    def volunteers_of(self) -> dict[str, list[str]]:
        """Request -> its volunteers, in slot order."""
        out: dict[str, list[str]] = {}
        for a in self.assignments:
            out.setdefault(a.request_id, []).append(a.volunteer_id)
        return out


@dataclass(frozen=True)
class Opening:
    """What is still open of a pending request: its free slots with their roles, and the
    volunteers who may not take one (they serve, or served, the request already)."""

    slots: tuple[tuple[int, Role], ...]
    excluded: frozenset[str] = frozenset()


def fresh_opening(request: RequestPosted, service: ServiceTypeRecord | None) -> Opening:
    """Every slot of a request nobody serves yet, with the service type's roles."""
    roles = roles_by_slot(service) if service is not None else ()
    return Opening(
        tuple((s, roles[s - 1] if s <= len(roles) else None) for s in range(1, request.slots + 1))
    )


_Option = Hit  # an eligible volunteer for one demand, scored at its load before the batch


@dataclass(frozen=True, slots=True)
class _Row:
    request: int  # index into the requests
    slot: int
    role: Role
    demand: int


class _Candidates:
    """The rows (open slots) and demands (rows of one request and role) of the batch and, per
    demand, its eligible volunteers in score order, from the index's best-first search
    (`VolunteerIndex.search`), which also prunes by capacity, fairness and newcomer in numpy
    (`load_columns`, once per batch). A demand's answer is kept and searched again only when
    more options are wanted than were searched for."""

    def __init__(
        self,
        requests: Sequence[RequestPosted],
        service_types: Mapping[str, ServiceTypeRecord],
        index: VolunteerIndex,
        loads: Mapping[str, Load],
        first_want: int | None,
        openings: Mapping[str, Opening] | None = None,
    ) -> None:
        self.requests = requests
        self.loads = loads
        self._index = index
        self._first_want = first_want
        self._columns = index.load_columns(loads)
        self.rows: list[_Row] = []
        self.rows_of: list[list[int]] = []  # per request, its rows
        self.demand_rows: list[int] = []  # rows per demand
        self.demand_request: list[int] = []  # the request of each demand
        self._services: list[ServiceTypeRecord | None] = []
        self._roles: list[Role] = []
        self._excluded: list[frozenset[str]] = []
        by_role: dict[str, Mapping[Role, ServiceTypeRecord]] = {}
        for i, r in enumerate(requests):
            svc = service_types.get(r.service_type_id)
            opening = (openings or {}).get(r.request_id) or fresh_opening(r, svc)
            if svc is not None and svc.slot_roles and svc.id not in by_role:
                # a role's requirements replace the type's; slots beyond the roles keep its own
                by_role[svc.id] = {None: svc} | {
                    x.role: role_service(svc, x) for x in svc.slot_roles
                }
            mine: list[int] = []
            demand_of: dict[Role, int] = {}
            for slot, role in opening.slots:
                j = demand_of.get(role)
                if j is None:
                    j = demand_of[role] = len(self._services)
                    roles = by_role.get(svc.id) if svc is not None else None
                    self._services.append(svc if roles is None else roles.get(role))
                    self._roles.append(role)
                    self.demand_request.append(i)
                    self._excluded.append(opening.excluded)
                    self.demand_rows.append(0)
                self.demand_rows[j] += 1
                mine.append(len(self.rows))
                self.rows.append(_Row(i, slot, role, j))
            self.rows_of.append(mine)
        n = len(self._services)
        self._found: list[Hits | None] = [None] * n
        self._want: list[int | None] = [None] * n
        self._pools: dict[tuple[object, ...], Pool | None] = {}

    @property
    def demands(self) -> int:
        return len(self._services)

    def _search(self, j: int, k: int | None) -> Hits:
        """`VolunteerIndex.search`, through the pool the demand shares with the others of its
        service type, role, window and language: the conditions but distance are checked once
        per group, not once per request."""
        r, svc = self.requests[self.demand_request[j]], self._services[j]
        assert svc is not None
        key = (r.service_type_id, self._roles[j], r.window.start, r.window.end, r.language)
        if key not in self._pools:
            self._pools[key] = self._index.pool(r, svc, self.loads, self._columns)
        pool = self._pools[key]
        return Hits([], 0, True) if pool is None else self._index.search_pool(pool, r, k)

    def options(self, j: int, want: int | None) -> list[_Option]:
        """Eligible options of demand j, best first: the best `want` (None: all of them),
        without the volunteers its request excludes."""
        if self._services[j] is None:
            return []
        excluded = self._excluded[j]
        asked = None if want is None else want + len(excluded)
        hits, searched = self._found[j], self._want[j]
        if hits is None or not (
            hits.complete or (asked is not None and searched is not None and asked <= searched)
        ):
            first = self._first_want  # and a candidate more per extra row of the demand
            k = (
                None
                if asked is None or first is None
                else max(asked, first + self.demand_rows[j] - 1)
            )
            hits = self._found[j] = self._search(j, k)
            self._want[j] = k
        found = hits.found
        if excluded:
            found = [o for o in found if o.vol.id not in excluded]
        return found if want is None else found[:want]


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
    """Requests in the given (arrival) order, their open slots in slot order; each slot takes
    the best volunteer of its role with capacity left and not on this request yet, scored at
    its load so far. Without `explained`, only the picks count (no parts)."""
    taken: dict[str, int] = {}
    result = BatchResult()
    picks: dict[int, _Option] = {}  # row -> its volunteer
    for i, r in enumerate(cands.requests):
        here: set[str] = set()
        for row in cands.rows_of[i]:
            slot = cands.rows[row]
            best: tuple[tuple[float, float, str], _Option, int] | None = None
            want = 8
            while True:
                opts = cands.options(slot.demand, want)
                for o in opts:
                    k = taken.get(o.vol.id, 0)
                    if o.active + k >= o.capacity or o.vol.id in here:
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
            here.add(o.vol.id)
            picks[row] = o
            result.assignments.append(
                Assignment(
                    r.request_id, o.vol.id, 1.0 - s, s, o.distance_km, parts, slot.slot, slot.role
                )
            )
            result.total_cost += 1.0 - s
    result.total_cost = round(result.total_cost, 4)
    return result, picks


def assign_greedy(
    requests: Sequence[RequestPosted],
    service_types: Mapping[str, ServiceTypeRecord],
    index: VolunteerIndex,
    loads: Mapping[str, Load],
    openings: Mapping[str, Opening] | None = None,
) -> BatchResult:
    """First come, first served on the same inputs as `assign_batch` (the baseline)."""
    return _greedy(_Candidates(requests, service_types, index, loads, 8, openings))[0]


@dataclass
class _Graph:
    per_demand: list[list[_Option]]  # each demand's options
    columns: list[tuple[str, int]]  # (volunteer id, unit) of each unit column
    first: dict[str, int]  # a volunteer's first unit column
    units: dict[str, int]  # its number of units


def _build(cands: _Candidates, max_candidates: int | None, extra: dict[int, _Option]) -> _Graph:
    per_demand: list[list[_Option]] = []
    for j in range(cands.demands):
        want = None if max_candidates is None else max_candidates + cands.demand_rows[j] - 1
        per_demand.append(list(cands.options(j, want)))
    for row, pick in extra.items():
        opts = per_demand[cands.rows[row].demand]
        if all(o.vol.id != pick.vol.id for o in opts):
            opts.append(pick)
    # units per volunteer: its free capacity, at most the number of requests listing it
    listed: dict[str, int] = {}
    opt_of: dict[str, _Option] = {}
    last_request: dict[str, int] = {}
    for j, opts in enumerate(per_demand):
        i = cands.demand_request[j]  # a request's demands come one after another
        for o in opts:
            vid = o.vol.id
            if last_request.get(vid) != i:  # count a request once, whatever its roles
                last_request[vid] = i
                listed[vid] = listed.get(vid, 0) + 1
                opt_of[vid] = o
    columns: list[tuple[str, int]] = []
    first: dict[str, int] = {}
    units: dict[str, int] = {}
    for vid in sorted(listed):
        units[vid] = min(opt_of[vid].capacity - opt_of[vid].active, listed[vid])
        first[vid] = len(columns)
        columns.extend((vid, k) for k in range(units[vid]))
    return _Graph(per_demand, columns, first, units)


def _direct_edges(
    cands: _Candidates, g: _Graph, rows: Sequence[int]
) -> tuple[list[int], list[int], list[float]]:
    """Row -> unit k of each option: `1 + cost` at unit k (stored +1 so that an explicit 0
    never means "no edge")."""
    r_idx: list[int] = []
    c_idx: list[int] = []
    vals: list[float] = []
    for row in rows:
        for o in g.per_demand[cands.rows[row].demand]:
            base = g.first[o.vol.id]
            for k in range(g.units[o.vol.id]):
                r_idx.append(row)
                c_idx.append(base + k)
                vals.append(2.0 - _unit_total(o, k))
    return r_idx, c_idx, vals


def cost_matrix(
    requests: Sequence[RequestPosted],
    service_types: Mapping[str, ServiceTypeRecord],
    index: VolunteerIndex,
    loads: Mapping[str, Load],
    max_candidates: int | None = DEFAULT_MAX_CANDIDATES,
    openings: Mapping[str, Opening] | None = None,
) -> tuple[csr_matrix, list[tuple[str, int]]]:
    """Sparse costs (rows: open slots, in request then slot order; columns: capacity units)
    and the (volunteer id, unit) pair of each column. A missing entry is an ineligible pair.
    Stored entries are `1 + cost`, so that an explicit 0 never means "no edge". (The solver
    routes the rows of a request with several open slots through its gates.)"""
    cands = _Candidates(requests, service_types, index, loads, max_candidates, openings)
    g = _build(cands, max_candidates, {})
    r, c, v = _direct_edges(cands, g, range(len(cands.rows)))
    m = csr_matrix(
        (np.array(v, dtype=float), (np.array(r, dtype=np.int64), np.array(c, dtype=np.int64))),
        shape=(len(cands.rows), len(g.columns)),
    )
    return m, g.columns


def _gate_edges(
    cands: _Candidates, g: _Graph, r_idx: list[int], c_idx: list[int], vals: list[float]
) -> list[str]:
    """Append the edges of every request with several open rows: through a gate (see the
    module's doc; gate q is column `units + q`, in, and row `rows + q`, out) to a volunteer
    with two units or more; directly to a volunteer with one unit, who cannot take two slots
    anyway (most volunteers: newcomers, or listed by one request). Returns each gate's
    volunteer."""
    n_rows, n_units = len(cands.rows), len(g.columns)
    gates: list[str] = []
    for mine in cands.rows_of:
        if len(mine) < 2:
            continue
        gate_of: dict[str, int] = {}
        for row in mine:
            for o in g.per_demand[cands.rows[row].demand]:
                vid = o.vol.id
                if g.units[vid] == 1:
                    r_idx.append(row)
                    c_idx.append(g.first[vid])
                    vals.append(2.0 - o.score)
                    continue
                q = gate_of.get(vid)
                if q is None:
                    q = gate_of[vid] = len(gates)
                    gates.append(vid)
                    out = n_rows + q
                    r_idx.append(out)
                    c_idx.append(n_units + q)
                    vals.append(0.5)
                    base = g.first[vid]
                    for k in range(g.units[vid]):
                        r_idx.append(out)
                        c_idx.append(base + k)
                        vals.append(1.0 + o.score - _unit_total(o, k))
                r_idx.append(row)
                c_idx.append(n_units + q)
                vals.append(1.5 - o.score)
    return gates


def assign_batch(
    requests: Sequence[RequestPosted],
    service_types: Mapping[str, ServiceTypeRecord],
    index: VolunteerIndex,
    loads: Mapping[str, Load],
    max_candidates: int | None = DEFAULT_MAX_CANDIDATES,
    openings: Mapping[str, Opening] | None = None,
) -> BatchResult:
    """The min-cost assignment of the batch: as many open slots filled as possible, then the
    least total cost; never one volunteer on two slots of a request. `openings`: per request
    id, what is still open (default: every slot, `fresh_opening`). Repeatable: same inputs,
    same result."""
    cands = _Candidates(requests, service_types, index, loads, max_candidates, openings)
    result = BatchResult()
    n = len(cands.rows)
    if n == 0:
        return result
    _, greedy_picks = _greedy(cands, explained=False)
    g = _build(cands, max_candidates, greedy_picks)
    single = [mine[0] for mine in cands.rows_of if len(mine) == 1]
    r_idx, c_idx, vals = _direct_edges(cands, g, single)
    gates = _gate_edges(cands, g, r_idx, c_idx, vals)
    n_units, n_gates = len(g.columns), len(gates)
    # one "unassigned" column per row, dearer than any saving the real edges can give
    penalty_at = n_units + n_gates
    r_idx.extend(range(n))
    c_idx.extend(range(penalty_at, penalty_at + n))
    vals.extend([n + 3.0] * n)
    full = csr_matrix(
        (
            np.array(vals, dtype=float),
            (np.array(r_idx, dtype=np.int64), np.array(c_idx, dtype=np.int64)),
        ),
        shape=(n + n_gates, penalty_at + n),
    )
    rows, cols = min_weight_full_bipartite_matching(full)
    chosen: dict[int, str] = {}
    for i, c in zip(rows.tolist(), cols.tolist(), strict=True):
        if i < n and c < n_units:
            chosen[i] = g.columns[c][0]
        elif i < n and c < penalty_at:
            chosen[i] = gates[c - n_units]
    taken: dict[str, int] = {}
    for row, slot in enumerate(cands.rows):
        r = requests[slot.request]
        vid = chosen.get(row)
        if vid is None:
            result.unassigned.append(r.request_id)
            continue
        o = next(o for o in g.per_demand[slot.demand] if o.vol.id == vid)
        k = taken.get(vid, 0)  # units are interchangeable per volunteer: number them in order
        taken[vid] = k + 1
        s, parts = _unit_score(o, k)
        result.assignments.append(
            Assignment(r.request_id, vid, 1.0 - s, s, o.distance_km, parts, slot.slot, slot.role)
        )
        result.total_cost += 1.0 - s
    result.total_cost = round(result.total_cost, 4)
    return result
