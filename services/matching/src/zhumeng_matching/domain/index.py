"""The in-memory read model of volunteers: per-skill spatial grids banded by radius, so that a
decision looks only at the few volunteers that could be its best candidates (DESIGN §6).

Layout (all incremental: `put`, `remove`, `on_change` keep it current):

* Every volunteer has a *slot*: a row in numpy columns (home as a unit vector, radius and
  its squared chord, bit masks of skills/certifications/languages, schedule id, 0.1° cell,
  the span of its schedule exceptions, its load — mirrored from `loads`, the `LoadTable`
  the service uses as its load cache — and its history from `set_stats`: effective
  capacity, completions, recent hours, stars, completions per service type, and the
  rounded contributions that depend on neither request nor load). Removed slots are
  reused. Scoring reads only these columns: no per-candidate dict lookup.
* Grids: one per skill, plus one of everyone (for services that require no skill). A grid is
  split into radius *bands* (≤2, ≤3, ≤4, ≤5, ≤6, ≤8, ≤10 km, ...), and a band into square
  cells of a quarter of its radius (at least 1.5 km). Once searched, a grid is one sorted
  array of (band, cell) keys with the slots beside it (`_Grid`; kept sorted by `put` and
  `remove` from then on), so that a box of cells is one key range per row of cells: two
  `searchsorted` calls per search round, whatever the number of cells.

`search` (and `best`, which adds the explanation) is best-first by an upper bound on the
score. For an eligible volunteer at distance d with radius r the score is at most
0.45 (1 - d/r) + the largest possible rest (full fairness and language, plus the largest
recent-hours + rating + newcomer + experience-of-the-type contributions anyone has, kept
per service type: a veteran is no newcomer, so this is well below the sum of each
criterion's largest). It works in rounds of growing ρ = d/r (0.15 first, then x4, or
straight to the ρ below which nothing can beat the k-th best): a round gathers, from the
grid of the request's rarest required skill, the cells not gathered yet whose band radius
R can hold a volunteer with d ≤ ρ R, and filters them in numpy (weekly availability,
language and certifications at once by a lookup per (schedule, languages, certifications)
class, memoised per window and masks; then capacity under the newcomer rule, other
skills, then squared chords against the radius'). Reachable volunteers beyond this
round's ρ wait for the next round.
The bound adds the unrounded fairness and experience figures at their weights and the
volunteer's precomputed recent-hours + rating + newcomer + language contributions, within
`_EPS` of the rounded sum. In order of the bound (a partition first: most searches check
fewer than ten), the exact haversine distance (and, for the few with schedule exceptions
near the window, the exceptions) is checked in Python and the contributions are rounded
with the policy's rounding (`policy.round4`) and added in `WEIGHTS` order: the same float as
`policy.score_total`. The search stops when the k-th best exact score beats the bound of
everything not yet checked (with a 1e-3 margin for rounding), so its answer is what
`policy.rank` would put first, with the same score and tie-break (-score, distance, id).
With few distinct weekly schedules, a search first asks whether any of them covers the
window at all (memoised): nobody can serve a weekend-evening care visit, no search needed.

Batch mode shares work between requests: `pool` applies every condition but distance and
leave once per (service type, window, language), and `search_pool` finds a request's hits
with one chord pass over the pool: the same hits as `search`.

The search does not look at every nearby volunteer, so it gives no rejection reasons:
`full_rank` is the full pass (`policy.rank` over `nearby`), for the reasons of a request
nobody can take: the nearby are counted by cell ranges of the required skills' holders
(sorted by 0.1° cell and cached between changes), and only those the grid can bring within
their radius (a gather at d/r = 1) are checked further, in numpy.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import chain

import numpy as np

from zhumeng_contracts.events import RequestPosted, ServiceTypeRecord, VolunteerRecord
from zhumeng_contracts.events.common import TimeWindow, WeeklySlot
from zhumeng_contracts.events.matching import ScorePart

from . import policy as pol
from .availability import CoversCache, covers_despite, schedule_key
from .geo import EARTH_RADIUS_KM, cell_of, cells_within, haversine_km
from .policy import (
    NO_STATS,
    WEIGHTS,
    Candidate,
    Load,
    Ranking,
    VolunteerStats,
    explain,
    round4,
)

BAND_EDGES_KM: tuple[float, ...] = (
    *(2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0),
    *(25.0, 30.0, 40.0, 50.0, 70.0, 100.0, 140.0, 200.0),
)
MIN_CELL_KM = 1.5
CELL_PER_RADIUS = 4.0
_KM_PER_DEG = 111.0  # only sizes cells; the search boxes are exact spherical bounds
_OFF = 1 << 20  # cell keys: ((row + _OFF) << 21) | (col + _OFF)
_NO_CELL = -(2**31)  # the 0.1° cell of a free slot: in no range

# the parts of the score other than distance, at most (language is 1 for anyone eligible)
_DIST_W = WEIGHTS["distance"]
_REST_MAX = sum(w for k, w in WEIGHTS.items() if k != "distance")
_W_FAIR, _W_EXP = WEIGHTS["fairness"], WEIGHTS["experience"]
W_RECENT, W_RATING, W_NEW = WEIGHTS["recent_hours"], WEIGHTS["rating"], WEIGHTS["newcomer"]
_P_LANG = round4(WEIGHTS["language"])  # 1 for anyone eligible
_W_EXP_UNIT = _W_EXP / pol.EXPERIENCE_FULL  # per completion of the type, for bounds
_REST_ORDER = ("fairness", "recent_hours", "experience", "rating", "newcomer", "language")
assert tuple(WEIGHTS) == ("distance", *_REST_ORDER)  # the order `_parts` adds them in
_CHUNK = 32  # candidates converted to Python at a time in the exact pass
_EPS = 1e-3  # > the rounding of score_total (4 parts and the sum, 0.5e-4 each)
# with at most this many distinct weekly schedules, a search first asks whether any covers
# the window (memoised per window): a request nobody can serve then costs no search
_FEW_SCHEDULES = 256
_IDS = np.arange(_FEW_SCHEDULES)
_FIRST_RHO = 0.15  # d/r of the first round; rounds then widen (x4) or jump to what is needed


@dataclass(frozen=True, slots=True)
class Hit:
    """An eligible volunteer, scored exactly as `policy.score_total` scores it."""

    vol: VolunteerRecord
    distance_km: float
    score: float
    values: tuple[float, ...] = ()  # the figures, in `policy.WEIGHTS` order
    capacity: int = 0  # effective capacity (`policy.effective_capacity`)
    active: int = 0  # current load

    def explain(self) -> tuple[float, tuple[ScorePart, ...]]:
        return explain(self.values)


@dataclass
class Hits:
    found: list[Hit]  # best first: (-score, distance, id)
    considered: int  # volunteers checked exactly by the policy's rules
    complete: bool  # True when `found` holds every eligible volunteer (fewer than k exist)


_BAND_SHIFT = 44  # grid keys: (band << 44) | cell key (cell keys take 42 bits)


class _Grid:
    """One skill's volunteers (or everyone's) by radius band and cell, and per band the
    occupied extent of rows and columns (only grows). While loading, per band a dict cell
    key -> slots; from the first search on, instead, every member's grid key, sorted, with
    its slot beside it (kept current by inserting and deleting): a box of cells is a range
    of keys per row, found by `searchsorted`, instead of one dict lookup per cell."""

    __slots__ = ("cells", "extent", "keys", "slots")

    def __init__(self) -> None:
        self.cells: list[dict[int, list[int]]] = [{} for _ in BAND_EDGES_KM]
        self.extent: list[tuple[int, int, int, int] | None] = [None] * len(BAND_EDGES_KM)
        self.keys: np.ndarray | None = None
        self.slots: np.ndarray | None = None

    def add(self, b: int, row: int, col: int, slot: int) -> None:
        key = ((row + _OFF) << 21) | (col + _OFF)
        e = self.extent[b]
        self.extent[b] = (
            (row, row, col, col)
            if e is None
            else (min(e[0], row), max(e[1], row), min(e[2], col), max(e[3], col))
        )
        if self.keys is None or self.slots is None:
            self.cells[b].setdefault(key, []).append(slot)
        else:
            k = (b << _BAND_SHIFT) | key
            i = int(np.searchsorted(self.keys, k, "right"))
            self.keys = np.insert(self.keys, i, k)
            self.slots = np.insert(self.slots, i, slot)

    def discard(self, b: int, row: int, col: int, slot: int) -> None:
        key = ((row + _OFF) << 21) | (col + _OFF)
        if self.keys is None or self.slots is None:
            cells = self.cells[b]
            bucket = cells[key]
            bucket.remove(slot)
            if not bucket:
                del cells[key]
        else:
            k = (b << _BAND_SHIFT) | key
            lo = int(np.searchsorted(self.keys, k, "left"))
            hi = int(np.searchsorted(self.keys, k, "right"))
            j = lo + int(np.flatnonzero(self.slots[lo:hi] == slot)[0])
            self.keys = np.delete(self.keys, j)
            self.slots = np.delete(self.slots, j)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted grid keys, slots), built at the first search (not during loading)."""
        if self.keys is None or self.slots is None:
            keys: list[np.ndarray] = []
            lens: list[np.ndarray] = []
            buckets: list[list[int]] = []
            for b, cells in enumerate(self.cells):
                if cells:
                    n = len(cells)
                    keys.append(np.fromiter(cells, np.int64, n) | (b << _BAND_SHIFT))
                    lens.append(np.fromiter(map(len, cells.values()), np.int64, n))
                    buckets.extend(cells.values())
            if keys:
                k = np.repeat(np.concatenate(keys), np.concatenate(lens))
                s = np.fromiter(chain.from_iterable(buckets), np.intp, len(k))
            else:
                k, s = np.zeros(0, np.int64), np.zeros(0, np.intp)
            order = np.argsort(k, kind="stable")
            self.keys, self.slots = k[order], s[order]
            self.cells = []  # the arrays hold them now (memory)
        return self.keys, self.slots


@dataclass(slots=True)
class _Query:
    """A search's request-independent part: the grid and the conditions as bit masks (the
    strings without a bit, to check in Python: None when every one has a bit)."""

    grid: _Grid
    smask: int
    cmask: int
    lmask: int
    need_s: set[str] | None
    need_c: set[str] | None
    lang: str | None
    window: TimeWindow
    dur: float
    active: np.ndarray
    exp: np.ndarray | None
    classes: np.ndarray  # per class id (`VolunteerIndex._cls`): schedule, language, certs ok


@dataclass(slots=True)
class Pool:
    """The slots meeting a search's conditions but distance and leave (`VolunteerIndex.pool`)
    and the upper bound of their score beyond distance."""

    query: _Query
    pos: np.ndarray
    rest: np.ndarray


def _by_bound(bound: np.ndarray) -> Iterator[np.ndarray]:
    """Positions in decreasing order of bound, `_CHUNK` at a time. Most searches check only
    the first few: a large round sorts its best chunk first (a partition), the rest only if
    asked."""
    neg = -bound
    if len(neg) <= 4 * _CHUNK:
        order = np.argsort(neg, kind="stable")
    else:
        part = np.argpartition(neg, _CHUNK - 1)
        head = part[:_CHUNK]
        yield head[np.argsort(neg[head], kind="stable")]
        order = part[_CHUNK:]
        order = order[np.argsort(neg[order], kind="stable")]
    for at in range(0, len(order), _CHUNK):
        yield order[at : at + _CHUNK]


def _unit(lat: float, lon: float) -> tuple[float, float, float]:
    p, q = math.radians(lat), math.radians(lon)
    return math.cos(p) * math.cos(q), math.cos(p) * math.sin(q), math.sin(p)


class _Tokens:
    """Bit masks of strings (skills, certifications, languages): the first 63 distinct
    strings get a bit; any further string is checked in Python (`exact` is False)."""

    def __init__(self) -> None:
        self.bits: dict[str, int] = {}
        self.no_bit: set[str] = set()

    def mask_of(self, tokens: Iterable[str]) -> int:
        m = 0
        for t in tokens:
            bit = self.bits.get(t)
            if bit is None and t not in self.no_bit:
                if len(self.bits) < 63:
                    bit = self.bits[t] = 1 << len(self.bits)
                else:
                    self.no_bit.add(t)
            m |= bit or 0
        return m

    def need(self, tokens: Iterable[str]) -> tuple[int, bool, bool]:
        """(mask of the required strings, exact, anyone may have them)."""
        m, exact = 0, True
        for t in tokens:
            bit = self.bits.get(t)
            if bit is not None:
                m |= bit
            elif t in self.no_bit:
                exact = False
            else:
                return 0, True, False  # nobody ever had it
        return m, exact, True


_COLUMNS: tuple[tuple[str, type, float], ...] = (
    ("_x", np.float64, 0.0),  # home as a unit vector, for chord distances
    ("_y", np.float64, 0.0),
    ("_z", np.float64, 0.0),
    ("_chord2", np.float64, 0.0),  # squared chord of the radius: inside iff chord^2 <= this
    ("_radius", np.float64, 1.0),
    ("_skills", np.int64, 0),  # bit masks (`_Tokens`)
    ("_certs", np.int64, 0),
    ("_langs", np.int64, 0),
    ("_sched", np.int64, 0),  # schedule id
    # (schedule id, languages, certifications) interned: one lookup filters by all three
    ("_cls", np.int32, 0),
    ("_row", np.int32, _NO_CELL),  # 0.1° cell (geo.cell_of), for `nearby`
    ("_col", np.int32, _NO_CELL),
    # schedule exceptions: the span from the first start to the last end (epoch seconds)
    ("_exc_lo", np.float64, math.inf),
    ("_exc_hi", np.float64, -math.inf),
    # the load (`loads`, mirrored) and the history (`set_stats`): scoring reads only columns
    ("_active", np.int32, 0),
    ("_total", np.int32, 0),
    ("_effcap", np.int32, 1),  # effective capacity (newcomer rule)
    ("_done", np.int32, 0),  # completed assignments
    ("_recent_h", np.float64, 0.0),
    ("_stars_sum", np.float64, 0.0),
    ("_stars_n", np.int32, 0),
    # rounded contributions that depend on neither the request nor the load
    ("_p_recent", np.float64, 0.0),
    ("_p_rating", np.float64, 0.0),
    ("_p_new", np.float64, 0.0),
    ("_p_static", np.float64, 0.0),  # their sum plus language: for bounds only
)


class LoadTable(dict[str, Load]):
    """The load cache as a dict (what `LoadStore.cached()` returns) whose every change is
    mirrored into the index's load columns, so that a search reads loads in numpy."""

    def __init__(self, index: VolunteerIndex) -> None:
        super().__init__()
        self._index = index

    def __setitem__(self, key: str, value: Load) -> None:
        super().__setitem__(key, value)
        self._index._load_changed(key, value)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._index._load_changed(key, None)

    def pop(self, key: str, *default: Load | None) -> Load | None:  # type: ignore[override]
        had = key in self
        value = super().pop(key, *default)
        if had:
            self._index._load_changed(key, None)
        return value

    def update(self, *args: Mapping[str, Load], **kw: Load) -> None:  # type: ignore[override]
        for k, v in dict(*args, **kw).items():
            self[k] = v

    def setdefault(self, key: str, default: Load | None = None) -> Load:
        if key not in self:
            self[key] = default or Load()
        return self[key]

    def clear(self) -> None:
        for key in list(self):
            del self[key]


class VolunteerIndex:
    _x: np.ndarray
    _y: np.ndarray
    _z: np.ndarray
    _chord2: np.ndarray
    _radius: np.ndarray
    _skills: np.ndarray
    _certs: np.ndarray
    _langs: np.ndarray
    _sched: np.ndarray
    _cls: np.ndarray
    _row: np.ndarray
    _col: np.ndarray
    _exc_lo: np.ndarray
    _exc_hi: np.ndarray
    _active: np.ndarray
    _total: np.ndarray
    _effcap: np.ndarray
    _done: np.ndarray
    _recent_h: np.ndarray
    _stars_sum: np.ndarray
    _stars_n: np.ndarray
    _p_recent: np.ndarray
    _p_rating: np.ndarray
    _p_new: np.ndarray
    _p_static: np.ndarray

    def __init__(self) -> None:
        self._slot_of: dict[str, int] = {}
        self._recs: list[VolunteerRecord | None] = []
        self._free: list[int] = []
        self._skills_t, self._certs_t, self._langs_t = _Tokens(), _Tokens(), _Tokens()
        self._skill_n: dict[str, int] = {}
        self._sched_id: dict[object, int] = {}
        self._sched_slots: list[list[WeeklySlot]] = []
        self._covers = CoversCache(self._sched_slots)
        self._cls_id: dict[tuple[int, int, int], int] = {}  # (schedule, langs, certs) -> id
        self._cls_cols: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # by id
        # (window, duration, certs mask, language mask) -> eligible per class id
        self._cls_ok: dict[tuple[object, ...], np.ndarray] = {}
        self._grids: dict[str | None, _Grid] = {}  # by skill; None: everyone
        self._band_rmax = [0.0] * len(BAND_EDGES_KM)
        self._cell_deg = [
            max(MIN_CELL_KM, e / CELL_PER_RADIUS) / _KM_PER_DEG for e in BAND_EDGES_KM
        ]
        # histories of volunteers not in the index (yet, or any more); the others' live only
        # in the columns (no object per volunteer: memory)
        self._unplaced: dict[str, VolunteerStats] = {}
        self._static_max = 0.0
        # per service type, the largest recent-hours + rating + newcomer + experience (bound)
        # of anyone with completions of it (only ever raised): tighter than adding the
        # largest of each, since veterans are no newcomers
        self._exp_max: dict[str, float] = {}
        self._holders_of: dict[int, np.ndarray] = {}  # skill mask -> slots (`_holders`)
        self._cells_of: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # `_by_cell`
        self._exp: dict[str, np.ndarray] = {}  # service type -> completed of it, per slot
        self.loads = LoadTable(self)  # pass this as `loads`: no per-call conversion
        self._alloc(0)
        self.max_radius_km = 0.0

    # ------------------------------------------------------------------ columns

    def _alloc(self, n: int) -> None:
        """(Re)allocate the per-slot columns for n slots, keeping their contents."""
        for name, dtype, fill in _COLUMNS:
            new: np.ndarray = np.full(n, fill, dtype=dtype)
            old: np.ndarray | None = getattr(self, name, None)
            if old is not None:
                new[: len(old)] = old
            setattr(self, name, new)
        for t, old in self._exp.items():
            self._exp[t] = np.zeros(n, dtype=np.int32)
            self._exp[t][: len(old)] = old

    def _new_slot(self) -> int:
        if self._free:
            return self._free.pop()
        slot = len(self._recs)
        if slot >= len(self._x):
            self._alloc(max(1024, 2 * len(self._x)))
        self._recs.append(None)
        return slot

    def _place(self, vol: VolunteerRecord) -> tuple[int, int, int]:
        """(band, row, column) of a volunteer in the grids."""
        b = min(bisect_left(BAND_EDGES_KM, vol.radius_km), len(BAND_EDGES_KM) - 1)
        c = self._cell_deg[b]
        return b, math.floor(vol.home.lat / c), math.floor(vol.home.lon / c)

    # ------------------------------------------------------------------ changes

    def __len__(self) -> int:
        return len(self._slot_of)

    def get(self, volunteer_id: str) -> VolunteerRecord | None:
        slot = self._slot_of.get(volunteer_id)
        return None if slot is None else self._recs[slot]

    def put(self, vol: VolunteerRecord) -> None:
        self.remove(vol.id)
        self._holders_of.clear()
        self._cells_of.clear()
        slot = self._new_slot()
        self._slot_of[vol.id] = slot
        self._recs[slot] = vol
        self._x[slot], self._y[slot], self._z[slot] = _unit(vol.home.lat, vol.home.lon)
        self._chord2[slot] = (2 * math.sin(min(math.pi, vol.radius_km / EARTH_RADIUS_KM) / 2)) ** 2
        self._radius[slot] = vol.radius_km
        self._skills[slot] = self._skills_t.mask_of(vol.skills)
        self._certs[slot] = self._certs_t.mask_of(vol.certifications)
        self._langs[slot] = self._langs_t.mask_of(vol.languages)
        skey = schedule_key(vol.availability)
        sid = self._sched_id.get(skey)
        if sid is None:
            sid = self._sched_id[skey] = len(self._sched_slots)
            self._sched_slots.append(vol.availability)
        self._sched[slot] = sid
        self._cls[slot] = self._class_of(sid, int(self._langs[slot]), int(self._certs[slot]))
        self._row[slot], self._col[slot] = cell_of(vol.home.lat, vol.home.lon)
        if vol.unavailable:
            self._exc_lo[slot] = min(x.start.timestamp() for x in vol.unavailable)
            self._exc_hi[slot] = max(x.end.timestamp() for x in vol.unavailable)
        else:
            self._exc_lo[slot], self._exc_hi[slot] = math.inf, -math.inf
        load = self.loads.get(vol.id)
        self._active[slot], self._total[slot] = (load.active, load.total) if load else (0, 0)
        self._stats_columns(slot, vol, self._unplaced.pop(vol.id, NO_STATS))
        b, row, col = self._place(vol)
        self._band_rmax[b] = max(self._band_rmax[b], vol.radius_km)
        for g in (None, *set(vol.skills)):
            if g is not None:
                self._skill_n[g] = self._skill_n.get(g, 0) + 1
            grid = self._grids.get(g)
            if grid is None:
                grid = self._grids[g] = _Grid()
            grid.add(b, row, col, slot)
        # radii only grow here; a stale larger maximum just widens `nearby` slightly
        self.max_radius_km = max(self.max_radius_km, vol.radius_km)

    def remove(self, volunteer_id: str) -> None:
        slot = self._slot_of.pop(volunteer_id, None)
        if slot is None:
            return
        old = self._rec(slot)
        self._holders_of.clear()
        self._cells_of.clear()
        b, row, col = self._place(old)
        for g in (None, *set(old.skills)):
            if g is not None:
                self._skill_n[g] -= 1
            self._grids[g].discard(b, row, col, slot)
        history = self._stats_at(slot)
        if history != NO_STATS:  # kept for a return (or the `put` of a new version)
            self._unplaced[volunteer_id] = history
        self._recs[slot] = None
        self._row[slot] = self._col[slot] = _NO_CELL
        for by_type in self._exp.values():
            by_type[slot] = 0
        self._free.append(slot)

    def on_change(self, key: str, record: VolunteerRecord | None) -> None:
        """Listener for the catalog view."""
        if record is None:
            self.remove(key)
        else:
            self.put(record)

    def all(self) -> list[VolunteerRecord]:
        return [v for v in self._recs if v is not None]

    # ------------------------------------------------------------------ loads and history

    def _load_changed(self, volunteer_id: str, load: Load | None) -> None:
        slot = self._slot_of.get(volunteer_id)
        if slot is not None:
            load = load or Load()
            self._active[slot], self._total[slot] = load.active, load.total

    def set_stats(self, volunteer_id: str, stats: VolunteerStats) -> None:
        """A volunteer's history changed (or was loaded at start-up)."""
        slot = self._slot_of.get(volunteer_id)
        if slot is None:
            self._unplaced[volunteer_id] = stats
            return
        for col in self._exp.values():
            col[slot] = 0
        self._stats_columns(slot, self._rec(slot), stats)

    def _stats_at(self, slot: int) -> VolunteerStats:
        by_type = {t: int(col[slot]) for t, col in self._exp.items() if col[slot]}
        return VolunteerStats(
            completed=int(self._done[slot]),
            recent_hours=float(self._recent_h[slot]),
            by_type=by_type,
            stars_sum=float(self._stars_sum[slot]),
            stars_n=int(self._stars_n[slot]),
        )

    def _stats_columns(self, slot: int, vol: VolunteerRecord, stats: VolunteerStats) -> None:
        self._done[slot] = stats.completed
        self._effcap[slot] = pol.effective_capacity(vol.capacity, stats.completed)
        self._recent_h[slot] = stats.recent_hours
        self._stars_sum[slot], self._stars_n[slot] = stats.stars_sum, stats.stars_n
        self._p_recent[slot] = p1 = round4(W_RECENT * pol.recent_hours_figure(stats.recent_hours))
        self._p_rating[slot] = p2 = round4(
            W_RATING * pol.rating_figure(stats.stars_sum, stats.stars_n)
        )
        self._p_new[slot] = p3 = round4(W_NEW * pol.newcomer_figure(stats.completed))
        self._p_static[slot] = p1 + p2 + p3 + _P_LANG
        # a bound, only ever raised: a lower one elsewhere just bounds less tightly
        self._static_max = max(self._static_max, p1 + p2 + p3)
        for t, n in stats.by_type.items():
            col = self._exp.get(t)
            if col is None:
                col = self._exp[t] = np.zeros(len(self._x), dtype=np.int32)
            col[slot] = n
            rest = p1 + p2 + p3 + min(n, pol.EXPERIENCE_FULL) * _W_EXP_UNIT  # as `_rest_bound`
            self._exp_max[t] = max(self._exp_max.get(t, 0.0), rest)

    def stats_of(self, volunteer_id: str) -> VolunteerStats:
        slot = self._slot_of.get(volunteer_id)
        if slot is None:
            return self._unplaced.get(volunteer_id, NO_STATS)
        return self._stats_at(slot)

    def stats(self) -> dict[str, VolunteerStats]:
        """Every volunteer's history known, built from the columns (for `policy.rank(...,
        stats=...)` in tests and benchmarks)."""
        out = dict(self._unplaced)
        out.update((vid, self._stats_at(slot)) for vid, slot in self._slot_of.items())
        return out

    def score(
        self, vol: VolunteerRecord, request: RequestPosted, load: Load, distance_km: float
    ) -> tuple[float, tuple[ScorePart, ...]]:
        """`policy.score` with the volunteer's history as the index knows it."""
        return pol.score(vol, request, load, distance_km, self.stats_of(vol.id))

    def candidate(
        self, vol: VolunteerRecord, request: RequestPosted, load: Load, distance_km: float
    ) -> Candidate:
        """A scored candidate with the index's history (effective capacity on its record)."""
        st = self.stats_of(vol.id)
        total, parts = pol.score(vol, request, load, distance_km, st)
        return pol.candidate(vol, distance_km, total, parts, st)

    def _slot_figures(
        self, slot: int, exp: np.ndarray | None, distance: float, active: int
    ) -> list[float]:
        """The figures of an eligible volunteer, from the columns (as `policy.figures`)."""
        return [
            pol.distance_figure(distance, float(self._radius[slot])),
            pol.workload_figure(active, int(self._effcap[slot])),
            pol.recent_hours_figure(float(self._recent_h[slot])),
            pol.experience_figure(0 if exp is None else int(exp[slot])),
            pol.rating_figure(float(self._stars_sum[slot]), int(self._stars_n[slot])),
            pol.newcomer_figure(int(self._done[slot])),
            1.0,
        ]

    def _away(self, pos: np.ndarray, window: TimeWindow, needed_min: float) -> np.ndarray:
        """Per slot: does a schedule exception leave no room for the service in the window?
        Only volunteers whose exceptions span the window are checked in Python."""
        lo, hi = window.start.timestamp(), window.end.timestamp()
        maybe = np.flatnonzero((self._exc_lo[pos] < hi) & (self._exc_hi[pos] > lo))
        away = np.zeros(len(pos), dtype=bool)
        for j in maybe.tolist():
            v = self._rec(int(pos[j]))
            away[j] = not covers_despite(v.availability, v.unavailable, window, needed_min)
        return away

    def _figures(
        self, pos: np.ndarray, dist: np.ndarray, active: np.ndarray, exp: np.ndarray | None
    ) -> np.ndarray:
        """`_slot_figures` of many eligible slots at once (rows: criteria in `WEIGHTS` order;
        the same IEEE operations, so the same floats)."""
        out = np.empty((len(WEIGHTS), len(pos)))
        out[0] = np.maximum(0.0, 1.0 - dist / self._radius[pos])
        out[1] = 1.0 - active[pos] / self._effcap[pos]
        out[2] = (
            1.0 - np.minimum(self._recent_h[pos], pol.RECENT_HOURS_FULL) / pol.RECENT_HOURS_FULL
        )
        if exp is None:
            out[3] = 0.0
        else:
            out[3] = np.minimum(exp[pos], pol.EXPERIENCE_FULL) / pol.EXPERIENCE_FULL
        prior = pol.RATING_PRIOR_MEAN * pol.RATING_PRIOR_WEIGHT
        shrunk = (prior + self._stars_sum[pos]) / (pol.RATING_PRIOR_WEIGHT + self._stars_n[pos])
        out[4] = (shrunk - 1.0) / 4.0
        done = np.minimum(self._done[pos], pol.NEWCOMER_COMPLETIONS)
        out[5] = 1.0 - done / pol.NEWCOMER_COMPLETIONS
        out[6] = 1.0
        return out

    def _parts(self, pos: np.ndarray, active: np.ndarray, exp: np.ndarray | None) -> np.ndarray:
        """Per slot (columns), the rounded contributions of every criterion but distance, in
        `WEIGHTS` order: the same floats as `policy.total_of` adds (`policy.round4`)."""
        out = np.empty((len(_REST_ORDER), len(pos)))
        out[0] = np.rint((1.0 - active[pos] / self._effcap[pos]) * _W_FAIR * 1e4) / 1e4
        out[1] = self._p_recent[pos]
        if exp is None:
            out[2] = 0.0
        else:
            fig = np.minimum(exp[pos], pol.EXPERIENCE_FULL) / pol.EXPERIENCE_FULL
            out[2] = np.rint(fig * _W_EXP * 1e4) / 1e4
        out[3] = self._p_rating[pos]
        out[4] = self._p_new[pos]
        out[5] = _P_LANG
        return out

    def _exact_total(
        self, s: int, d: float, radius: float, active: np.ndarray, exp: np.ndarray | None
    ) -> float:
        """`policy.total_of` of an eligible slot at distance d: the contributions rounded
        and added in `WEIGHTS` order, so the same float as `policy.score_total`."""
        total = round4(max(0.0, 1.0 - d / radius) * _DIST_W)
        total += round4((1.0 - active.item(s) / self._effcap.item(s)) * _W_FAIR)
        total += self._p_recent.item(s)
        if exp is not None:
            full = pol.EXPERIENCE_FULL
            total += round4(min(exp.item(s), full) / full * _W_EXP)
        else:
            total += 0.0
        total += self._p_rating.item(s)
        total += self._p_new.item(s)
        total += _P_LANG
        return round4(total)

    def _nearby_slots(self, lat: float, lon: float, required_skills: Iterable[str]) -> np.ndarray:
        need = list(dict.fromkeys(required_skills))
        mask, exact, possible = self._skills_t.need(need)
        if not possible or not self._slot_of:
            return np.zeros(0, dtype=np.intp)
        cells = cells_within(lat, lon, self.max_radius_km)
        (lo_r, lo_c), (hi_r, hi_c) = cells[0], cells[-1]
        held = self._holders(mask)
        row, col = self._row[held], self._col[held]
        pos: np.ndarray = held[(row >= lo_r) & (row <= hi_r) & (col >= lo_c) & (col <= hi_c)]
        if not exact:
            want = set(need)
            keep = [want <= set(self._rec(s).skills) for s in pos.tolist()]
            pos = pos[np.array(keep, dtype=bool)]
        return pos

    def _holders(self, mask: int) -> np.ndarray:
        """The slots of everyone holding the skills of `mask`, cached until the next change
        of the read model (rare after start-up): the reasons pass then looks at a skill's
        holders only, not at every slot."""
        pos: np.ndarray | None = self._holders_of.get(mask)
        if pos is None:
            n = len(self._recs)
            m = self._row[:n] != _NO_CELL
            if mask:
                m &= (self._skills[:n] & mask) == mask
            pos = self._holders_of[mask] = np.flatnonzero(m)
        return pos

    def _rec(self, slot: int) -> VolunteerRecord:
        vol = self._recs[slot]
        assert vol is not None
        return vol

    def nearby(
        self, lat: float, lon: float, required_skills: Iterable[str]
    ) -> list[VolunteerRecord]:
        """Volunteers in the 0.1° cells within the largest radius of the point, holding every
        required skill (exact distance and the volunteer's own radius are checked later).
        This is the full pass that `policy.rank` counts rejection reasons over; decisions use
        `best`/`search`, which look at far fewer volunteers."""
        return [self._rec(s) for s in self._nearby_slots(lat, lon, required_skills).tolist()]

    def full_rank(
        self, request: RequestPosted, service: ServiceTypeRecord, loads: Mapping[str, Load]
    ) -> Ranking:
        """Exactly `policy.rank(request, service, self.nearby(...), loads, self.stats())`
        (candidates, `rejected` and `considered`), with the rejections counted in numpy: the
        reasons of an unmatched request without a Python pass over thousands of volunteers."""
        lat, lon = request.location.lat, request.location.lon
        near = self._reachable(lat, lon, service) or self._reachable_scan(lat, lon, service)
        considered, no_cert, out, pos = near
        ranking = Ranking(candidates=[], considered=considered)
        # nearby holds only volunteers with every required skill: no "missing_skill"; the
        # later checks only on who is still in the running
        counts: list[tuple[str, int]] = [("missing_certification", no_cert)]
        counts.append(("out_of_radius", out))
        active, _ = self.load_columns(loads)
        full = active[pos] >= self._effcap[pos]  # the newcomer rule's capacity
        counts.append(("no_capacity", int(np.count_nonzero(full))))
        pos = pos[~full]
        lang = request.language
        if lang:
            lmask, l_exact, l_possible = self._langs_t.need([lang])
            if not l_possible:
                speaks = np.zeros(len(pos), dtype=bool)
            elif l_exact:
                speaks = (self._langs[pos] & lmask) != 0
            else:
                speaks = np.array([lang in self._rec(s).languages for s in pos.tolist()], bool)
            counts.append(("language", len(pos) - int(np.count_nonzero(speaks))))
            pos = pos[speaks]
        avail = self._covers.ok(self._sched[pos], request.window, service.default_duration_min)
        counts.append(("not_available", len(pos) - int(np.count_nonzero(avail))))
        pos = pos[avail]
        away = self._away(pos, request.window, service.default_duration_min)
        counts.append(("unavailable", int(np.count_nonzero(away))))
        pos = pos[~away]
        for reason, n in counts:
            if n:
                ranking.rejected[reason] = n
        exp = self._exp.get(request.service_type_id)
        for s in pos.tolist():
            vol = self._rec(s)
            dist = haversine_km(lat, lon, vol.home.lat, vol.home.lon)
            total, parts = explain(self._slot_figures(s, exp, dist, int(active[s])))
            ranking.candidates.append(
                self._candidate(vol, dist, total, parts, int(self._effcap[s]))
            )
        ranking.candidates.sort(key=lambda c: (-c.score, c.distance_km, c.volunteer.id))
        return ranking

    def _in_radius(self, lat: float, lon: float, pos: np.ndarray) -> np.ndarray:
        """The slots whose radius holds the point. Chords in numpy (no trigonometry), then
        the exact haversine where numpy is within float noise of the radius."""
        c2 = self._squared_chords(pos, _unit(lat, lon))
        limit = self._chord2[pos]
        near = np.flatnonzero(c2 <= limit * (1 + 1e-9) + 1e-15)  # inside, or a tie
        c2, limit = c2[near], limit[near]
        inside = c2 <= limit
        for j in np.flatnonzero(limit - c2 <= 1e-9 * limit + 1e-15).tolist():
            v = self._rec(int(pos[near[j]]))
            inside[j] = haversine_km(lat, lon, v.home.lat, v.home.lon) <= v.radius_km
        within: np.ndarray = pos[near[inside]]
        return within

    def _reachable_scan(
        self, lat: float, lon: float, service: ServiceTypeRecord
    ) -> tuple[int, int, int, np.ndarray]:
        """(nearby, of them without the certifications, of the rest out of their radius,
        the slots left), over every nearby volunteer."""
        pos = self._nearby_slots(lat, lon, service.required_skills)
        need_c = set(service.required_certifications)
        cmask, c_exact, c_possible = self._certs_t.need(need_c)
        if not c_possible:
            ok = np.zeros(len(pos), dtype=bool)
        elif c_exact:
            ok = (self._certs[pos] & cmask) == cmask
        else:
            ok = np.array([need_c <= set(self._rec(s).certifications) for s in pos.tolist()])
        pos_ok = pos[ok]
        inside = self._in_radius(lat, lon, pos_ok)
        return len(pos), len(pos) - len(pos_ok), len(pos_ok) - len(inside), inside

    def _reachable(
        self, lat: float, lon: float, service: ServiceTypeRecord
    ) -> tuple[int, int, int, np.ndarray] | None:
        """`_reachable_scan` without looking at every nearby volunteer: the nearby are
        counted by cell ranges of the required skills' holders, and only those the grid can
        bring within their radius (a search at d/r = 1) are checked for it. None when a
        string has no bit (then the scan decides)."""
        need = list(dict.fromkeys(service.required_skills))
        smask, s_exact, s_possible = self._skills_t.need(need)
        cmask, c_exact, c_possible = self._certs_t.need(service.required_certifications)
        if not (s_exact and c_exact and s_possible and c_possible and self._slot_of):
            return None
        cells = cells_within(lat, lon, self.max_radius_km)
        (lo_r, lo_c), (hi_r, hi_c) = cells[0], cells[-1]
        keys, slots = self._by_cell(smask)
        rows = range(lo_r + _OFF, hi_r + _OFF + 1)
        lo = np.searchsorted(keys, [(r << 21) | (lo_c + _OFF) for r in rows], "left")
        n = np.searchsorted(keys, [(r << 21) | (hi_c + _OFF) for r in rows], "right")
        n -= lo
        considered = int(n.sum())
        no_cert = 0
        if cmask and considered:
            lo -= np.cumsum(n) - n
            near = slots[np.repeat(lo, n) + np.arange(considered)]
            no_cert = int(np.count_nonzero((self._certs[near] & cmask) != cmask))
        rarest = min(need, key=lambda s: self._skill_n.get(s, 0)) if need else None
        grid = self._grids.get(rarest)
        pos = None
        if grid is not None and considered > no_cert:
            pos = self._gather(grid, lat, lon, 1.0, [None] * len(BAND_EDGES_KM))
        if pos is None:
            return considered, no_cert, considered - no_cert, np.zeros(0, dtype=np.intp)
        if len(need) > 1:  # the grid's holders have its skill
            pos = pos[(self._skills[pos] & smask) == smask]
        if cmask:
            pos = pos[(self._certs[pos] & cmask) == cmask]
        pos = self._in_radius(lat, lon, pos)
        # nearby is cut by 0.1° cells: keep it exact (removes nobody in practice)
        row, col = self._row[pos], self._col[pos]
        pos = pos[(row >= lo_r) & (row <= hi_r) & (col >= lo_c) & (col <= hi_c)]
        return considered, no_cert, considered - no_cert - len(pos), pos

    def _by_cell(self, mask: int) -> tuple[np.ndarray, np.ndarray]:
        """The holders of the skills of `mask` sorted by 0.1° cell key, with the keys (cached
        as `_holders`)."""
        got = self._cells_of.get(mask)
        if got is None:
            held = self._holders(mask)
            keys = (self._row[held].astype(np.int64) + _OFF) << 21
            keys |= self._col[held].astype(np.int64) + _OFF
            order = np.argsort(keys, kind="stable")
            got = self._cells_of[mask] = (keys[order], held[order])
        return got

    @staticmethod
    def _candidate(
        vol: VolunteerRecord,
        distance_km: float,
        total: float,
        parts: tuple[ScorePart, ...],
        capacity: int,
    ) -> Candidate:
        if capacity != vol.capacity:  # as `policy.candidate`: the newcomer rule
            vol = vol.model_copy(update={"capacity": capacity})
        return Candidate(vol, distance_km, total, parts)

    # ------------------------------------------------------------------ the fast path

    def load_columns(self, loads: Mapping[str, Load]) -> tuple[np.ndarray, np.ndarray]:
        """(active, total) per slot: the index's own columns for its `loads`; otherwise one
        pass over `loads` (then pass them as `search(..., columns=...)`)."""
        if loads is self.loads:
            return self._active, self._total
        active = np.zeros(len(self._x), dtype=np.int32)
        total = np.zeros(len(self._x), dtype=np.int32)
        for vid, load in loads.items():
            slot = self._slot_of.get(vid)
            if slot is not None:
                active[slot], total[slot] = load.active, load.total
        return active, total

    def _gather(
        self,
        grid: _Grid,
        lat: float,
        lon: float,
        rho: float,
        seen: list[tuple[int, int, int, int] | None],
    ) -> np.ndarray | None:
        """Slots of the cells that may hold a volunteer within ρ x (its band's radius) of the
        point, except those of the boxes in `seen` (gathered by earlier rounds; updated)."""
        lo_k: list[int] = []
        hi_k: list[int] = []
        phi = math.radians(lat)
        for b, ext in enumerate(grid.extent):
            if ext is None:
                continue
            delta = rho * self._band_rmax[b] / EARTH_RADIUS_KM * (1 + 1e-9) + 1e-12
            dlat = math.degrees(delta)
            x = math.sin(delta) / max(1e-12, math.cos(phi))
            everything = delta >= math.pi / 2 - abs(phi) or x >= 1
            dlon = 360.0 if everything else math.degrees(math.asin(x)) * (1 + 1e-9) + 1e-12
            if everything or lon - dlon < -180 or lon + dlon > 180:
                box = ext  # a pole or the antimeridian: the whole band
            else:  # the box, cut to the rows and columns the band occupies
                c = self._cell_deg[b]
                box = (
                    max(ext[0], math.floor((lat - dlat) / c)),
                    min(ext[1], math.floor((lat + dlat) / c)),
                    max(ext[2], math.floor((lon - dlon) / c)),
                    min(ext[3], math.floor((lon + dlon) / c)),
                )
                if box[0] > box[1] or box[2] > box[3]:
                    continue
            old = seen[b]
            if old == box:
                continue
            seen[b] = box
            r0, r1, c0, c1 = box
            base = b << _BAND_SHIFT
            for r in range(r0, r1 + 1):
                rk = base | ((r + _OFF) << 21)
                if old is not None and old[0] <= r <= old[1]:  # the box minus the old one
                    if c0 < old[2]:
                        lo_k.append(rk | (c0 + _OFF))
                        hi_k.append(rk | (min(c1, old[2] - 1) + _OFF))
                    if c1 > old[3]:
                        lo_k.append(rk | (max(c0, old[3] + 1) + _OFF))
                        hi_k.append(rk | (c1 + _OFF))
                else:
                    lo_k.append(rk | (c0 + _OFF))
                    hi_k.append(rk | (c1 + _OFF))
        if not lo_k:
            return None
        keys, slots = grid.arrays()
        lo = np.searchsorted(keys, lo_k, "left")
        n = np.searchsorted(keys, hi_k, "right")
        n -= lo
        total = int(n.sum())
        if not total:
            return None
        # the ranges' positions, concatenated: lo + 0, 1, ... per range
        lo -= np.cumsum(n) - n
        gathered: np.ndarray = slots[np.repeat(lo, n) + np.arange(total)]
        return gathered

    def _query(
        self,
        request: RequestPosted,
        service: ServiceTypeRecord,
        loads: Mapping[str, Load],
        columns: tuple[np.ndarray, np.ndarray] | None,
    ) -> _Query | None:
        """What a search for the request needs, or None when nobody can be eligible."""
        need_skills = list(dict.fromkeys(service.required_skills))
        if need_skills:
            if any(self._skill_n.get(s, 0) <= 0 for s in need_skills):
                return None
            rarest: str | None = min(need_skills, key=lambda s: self._skill_n[s])
        else:
            rarest = None
        grid = self._grids.get(rarest)
        if grid is None:
            return None
        smask, s_exact, ok1 = self._skills_t.need(need_skills)
        cmask, c_exact, ok2 = self._certs_t.need(service.required_certifications)
        lang = request.language
        lmask, l_exact, ok3 = self._langs_t.need([lang] if lang else [])
        if not (ok1 and ok2 and ok3):
            return None
        window, dur = request.window, service.default_duration_min
        n_sched = len(self._sched_slots)
        if n_sched <= _FEW_SCHEDULES and not self._covers.ok(_IDS[:n_sched], window, dur).any():
            return None  # no schedule holds the service in the window (e.g. weekend evenings)
        active = columns[0] if columns is not None else self.load_columns(loads)[0]
        return _Query(
            grid=grid,
            # the grid is the rarest skill's: its holders need no check of that skill alone
            smask=smask if len(need_skills) > 1 or not s_exact else 0,
            cmask=cmask,
            lmask=lmask,
            need_s=None if s_exact else set(need_skills),
            need_c=None if c_exact else set(service.required_certifications),
            lang=None if l_exact else lang,
            window=window,
            dur=dur,
            active=active,
            exp=self._exp.get(request.service_type_id),
            classes=self._classes_ok(window, dur, cmask, lmask),
        )

    def _eligible_but_distance(self, q: _Query, pos: np.ndarray) -> np.ndarray:
        """The slots meeting the necessary conditions in numpy: weekly availability,
        language and certifications at once (one lookup by class, which removes the most),
        then capacity (newcomer rule) and other skills on who is left."""
        pos = pos[q.classes[self._cls[pos]]]
        m = q.active[pos] < self._effcap[pos]
        if q.smask:
            m &= (self._skills[pos] & q.smask) == q.smask
        eligible: np.ndarray = pos[m]
        return eligible

    def _class_of(self, sched: int, langs: int, certs: int) -> int:
        key = (sched, langs, certs)
        cid = self._cls_id.get(key)
        if cid is None:
            cid = self._cls_id[key] = len(self._cls_id)
            self._cls_cols = None
        return cid

    def _classes_ok(self, window: TimeWindow, dur: float, cmask: int, lmask: int) -> np.ndarray:
        """Per class id: does its schedule hold the service in the window, and do its
        languages and certifications meet the masks? Memoised per (window, duration, masks);
        recomputed when classes were added."""
        key = (window.start, window.end, dur, cmask, lmask)
        ok = self._cls_ok.get(key)
        if ok is None or len(ok) < len(self._cls_id):
            if self._cls_cols is None:
                n = len(self._cls_id)
                cols = np.array(list(self._cls_id), dtype=np.int64).reshape(n, 3).T
                self._cls_cols = (cols[0], cols[1], cols[2])
            sched, langs, certs = self._cls_cols
            ok = self._covers.ok(sched, window, dur)
            if cmask:
                ok &= (certs & cmask) == cmask
            if lmask:
                ok &= (langs & lmask) != 0
            if len(self._cls_ok) >= CoversCache.MAX_WINDOWS:
                self._cls_ok.clear()
            self._cls_ok[key] = ok
        return ok

    def _rest_max(self, service_type_id: str) -> float:
        """Above what anyone scores beyond the distance part: full fairness and language,
        and the largest recent-hours + rating + newcomer (+ experience of the type) anyone
        has (those without experience of it have at most `_static_max`)."""
        most = max(self._static_max, self._exp_max.get(service_type_id, 0.0))
        return most + _W_FAIR + _P_LANG

    def _rest_bound(self, q: _Query, pos: np.ndarray) -> np.ndarray:
        """Per slot, an upper bound of every contribution but distance's (unrounded: within
        `_EPS` of the rounded ones)."""
        rest = self._active_share(q, pos)
        rest *= -_W_FAIR
        rest += _W_FAIR
        rest += self._p_static[pos]
        if q.exp is not None:
            rest += np.minimum(q.exp[pos], pol.EXPERIENCE_FULL) * _W_EXP_UNIT
        return rest

    def _active_share(self, q: _Query, pos: np.ndarray) -> np.ndarray:
        share: np.ndarray = q.active[pos] / self._effcap[pos]
        return share

    def _exact_pass(
        self,
        q: _Query,
        lat: float,
        lon: float,
        pos: np.ndarray,
        bound: np.ndarray,
        top: list[tuple[float, float, str, int]],
        k: int | None,
        kth: float,
    ) -> tuple[float, int]:
        """Checks the slots in the order of their bound, exactly (haversine, the strings
        without a bit, leave) and scores them as `policy.score_total`, into `top` (the best
        k); stops once no bound can reach the k-th best. (k-th best score, slots checked)."""
        recs = self._recs
        considered = 0
        for chunk in _by_bound(bound):
            for s, b in zip(pos[chunk].tolist(), bound[chunk].tolist(), strict=True):
                if b + _EPS < kth:
                    return kth, considered  # the rest is sorted below the k-th best
                considered += 1
                vol = recs[s]
                assert vol is not None
                d = haversine_km(lat, lon, vol.home.lat, vol.home.lon)
                if d > vol.radius_km:
                    continue
                if q.need_s is not None and not q.need_s <= set(vol.skills):
                    continue
                if q.need_c is not None and not q.need_c <= set(vol.certifications):
                    continue
                if q.lang is not None and q.lang not in vol.languages:
                    continue
                if vol.unavailable and self._away(np.array([s]), q.window, q.dur)[0]:
                    continue  # on leave (checked only for the few checked exactly)
                total = self._exact_total(s, d, vol.radius_km, q.active, q.exp)
                insort(top, (-total, d, vol.id, s))
                if k is not None and len(top) >= k:
                    del top[k:]
                    kth = -top[-1][0]
        return kth, considered

    def _hits(
        self, q: _Query, top: list[tuple[float, float, str, int]], considered: int, k: int | None
    ) -> Hits:
        slots = np.array([t[3] for t in top], dtype=np.intp)
        dists = [t[1] for t in top]
        values = self._figures(slots, np.array(dists), q.active, q.exp).T.tolist()
        found = [
            Hit(self._rec(s), d, -ns, tuple(v), c, a)
            for (ns, d, _, s), v, c, a in zip(
                top,
                values,
                self._effcap[slots].tolist(),
                q.active[slots].tolist(),
                strict=True,
            )
        ]
        return Hits(found, considered, k is None or len(found) < k)

    def search(
        self,
        request: RequestPosted,
        service: ServiceTypeRecord,
        loads: Mapping[str, Load],
        k: int | None,
        columns: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Hits:
        """The k best eligible volunteers (all of them for k=None), best first, scored and
        ordered exactly as `policy.rank` does (with the index's history of each volunteer).
        `columns` (from `load_columns(loads)`, same loads) saves converting a foreign
        `loads` mapping; the index's own `loads` need none."""
        q = self._query(request, service, loads, columns)
        if q is None:
            return Hits([], 0, True)
        # everything not gathered yet scores at most this beyond the distance part
        rest_max = self._rest_max(request.service_type_id)
        rlat, rlon = request.location.lat, request.location.lon
        top: list[tuple[float, float, str, int]] = []
        kth = -math.inf  # the k-th best exact score once k are known
        considered = 0
        hi = 1.0 if k is None else min(1.0, _FIRST_RHO * max(1.0, math.sqrt(k / 5)))
        seen: list[tuple[int, int, int, int] | None] = [None] * len(BAND_EDGES_KM)
        # reachable volunteers gathered by earlier rounds but beyond their ratio: slot, d/r
        carry_pos = np.zeros(0, dtype=np.intp)
        carry_ratio = np.zeros(0)
        unit = _unit(rlat, rlon)
        while True:
            gathered = self._gather(q.grid, rlat, rlon, hi, seen)
            if gathered is not None:
                pos = self._eligible_but_distance(q, gathered)
                at, ratio = self._within_radius(pos, unit)
                pos = pos[at]
                if len(carry_pos):
                    pos = np.concatenate((carry_pos, pos))
                    ratio = np.concatenate((carry_ratio, ratio))
            else:
                pos, ratio = carry_pos, carry_ratio
            if hi < 1.0:
                now = ratio <= hi
                carry_pos, carry_ratio = pos[~now], ratio[~now]
                pos, ratio = pos[now], ratio[now]
            if len(pos):
                bound = np.maximum(0.0, 1.0 - ratio)
                bound *= _DIST_W
                bound += self._rest_bound(q, pos)
                kth, n = self._exact_pass(q, rlat, rlon, pos, bound, top, k, kth)
                considered += n
            if hi >= 1.0:
                break
            # everything not gathered yet has d/r > hi: its bound is below this
            if _DIST_W * (1.0 - hi) + rest_max + _EPS < kth:
                break
            if kth > -math.inf:  # the ratio beyond which nothing can reach the k-th best
                hi = 1.0 - (kth - _EPS - rest_max) / _DIST_W + 1e-9
            else:
                hi *= 4
            hi = 1.0 if hi > 0.7 else hi
        return self._hits(q, top, considered, k)

    def _squared_chords(self, pos: np.ndarray, unit: tuple[float, float, float]) -> np.ndarray:
        """Squared chords from the point (as a unit vector) to the slots' homes."""
        x0, y0, z0 = unit
        c = self._x[pos] - x0
        c2: np.ndarray = c * c
        c = self._y[pos] - y0
        c2 += c * c
        c = self._z[pos] - z0
        c2 += c * c
        return c2

    def _within_radius(
        self, pos: np.ndarray, unit: tuple[float, float, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Where in `pos` the slots are whose radius may reach the point, and their d/r.
        Squared chords against the radius' (no trigonometry) with a margin: the exact
        haversine decides later."""
        c2 = self._squared_chords(pos, unit)
        at = np.flatnonzero(c2 <= self._chord2[pos] * (1 + 1e-8) + 1e-18)
        ratio = np.sqrt(c2[at])
        ratio *= 0.5
        np.arcsin(np.minimum(1.0, ratio, out=ratio), out=ratio)
        ratio *= 2 * EARTH_RADIUS_KM
        ratio /= self._radius[pos[at]]
        return at, ratio

    def pool(
        self,
        request: RequestPosted,
        service: ServiceTypeRecord,
        loads: Mapping[str, Load],
        columns: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Pool | None:
        """Everyone meeting the request's conditions but distance and leave, for many
        requests sharing its service type, window and language (a batch): `search_pool`
        then looks only at distances. None when nobody can be eligible."""
        q = self._query(request, service, loads, columns)
        if q is None:
            return None
        _, slots = q.grid.arrays()
        pos = self._eligible_but_distance(q, slots)
        return Pool(q, pos, self._rest_bound(q, pos))

    def search_pool(self, pool: Pool, request: RequestPosted, k: int | None) -> Hits:
        """`search` of a request sharing the pool's service type, window and language: the
        same hits, found in one pass over the pool."""
        rlat, rlon = request.location.lat, request.location.lon
        at, ratio = self._within_radius(pool.pos, _unit(rlat, rlon))
        top: list[tuple[float, float, str, int]] = []
        considered = 0
        if len(at):
            pos = pool.pos[at]
            bound = np.maximum(0.0, 1.0 - ratio)
            bound *= _DIST_W
            bound += pool.rest[at]
            _, considered = self._exact_pass(pool.query, rlat, rlon, pos, bound, top, k, -math.inf)
        return self._hits(pool.query, top, considered, k)

    def best(
        self,
        request: RequestPosted,
        service: ServiceTypeRecord,
        loads: Mapping[str, Load],
        k: int = 5,
    ) -> Ranking:
        """The k best eligible candidates, best first, with their explanation: the same
        candidates, scores, parts and order as the first k of `policy.rank` over `nearby`
        (given the index's history of each volunteer, `stats()`).

        `considered` counts the volunteers checked exactly, and `rejected` stays empty: the
        search does not look at every nearby volunteer, so it cannot say why the others do
        not qualify. When nothing eligible is found, the caller computes the reasons with
        the full pass, `full_rank`."""
        hits = self.search(request, service, loads, k)
        ranking = Ranking(candidates=[], considered=hits.considered)
        for h in hits.found:
            total, parts = explain(h.values)
            ranking.candidates.append(
                self._candidate(h.vol, h.distance_km, total, parts, h.capacity)
            )
        return ranking
