"""Matching benchmark: decision latency (index vs. linear scan), batch vs. greedy assignment,
and the memory of the volunteer read model. Prints figures; asserts nothing.

    uv run python bench/matching_bench.py            # full run (a few minutes)
    uv run python bench/matching_bench.py --help
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import subprocess
import sys
import time as _time
from collections.abc import Iterable, Sequence
from datetime import time, timedelta
from typing import TypeVar

from zhumeng_contracts.events import RequestPosted, ServiceTypeRecord, VolunteerRecord
from zhumeng_contracts.events.common import TimeWindow, WeeklySlot
from zhumeng_kit.views import View
from zhumeng_matching import examples
from zhumeng_matching.domain.batch import BatchResult, assign_batch, assign_greedy
from zhumeng_matching.domain.index import VolunteerIndex
from zhumeng_matching.domain.policy import Load, VolunteerStats, rank

T = TypeVar("T")

# ---------------------------------------------------------------- data (seeded, realistic)

# Dehua county, Quanzhou: roughly 25.38-25.95 N, 118.00-118.55 E. Volunteers live around the
# township seats and villages; requests come from the same places.
TOWNSHIPS: list[tuple[str, float, float, float]] = [
    # id, lat, lon, weight (bigger towns have more volunteers)
    ("longxun", 25.492, 118.243, 8.0),  # county seat (龙浔)
    ("xunzhong", 25.470, 118.290, 4.0),
    ("gaide", 25.523, 118.180, 2.0),
    ("leifeng", 25.560, 118.300, 2.0),
    ("sancui", 25.440, 118.200, 2.0),
    ("longmentan", 25.640, 118.250, 1.5),
    ("shangyong", 25.700, 118.180, 1.5),
    ("guyang", 25.600, 118.100, 1.0),
    ("chunmei", 25.420, 118.330, 1.0),
    ("nanbu", 25.450, 118.420, 1.0),
    ("chishui", 25.760, 118.110, 1.0),
    ("guishan", 25.820, 118.200, 1.0),
    ("tangtou", 25.880, 118.060, 0.8),
    ("dacheng", 25.900, 118.300, 0.8),
    ("yangmei", 25.700, 118.380, 0.8),
    ("meihu", 25.560, 118.450, 0.8),
    ("shuikou", 25.620, 118.520, 0.8),
    ("yanghou", 25.780, 118.440, 0.8),
]

SKILLS: list[tuple[str, float]] = [
    ("neighbour_help", 0.45),
    ("care_visit", 0.25),
    ("haircut", 0.12),
    ("driving", 0.20),
    ("cooking", 0.18),
    ("repair", 0.10),
    ("tutoring", 0.12),
    ("tech_help", 0.10),
    ("culture_event", 0.08),
    ("gardening", 0.10),
    ("nursing", 0.04),
    ("dental", 0.005),
]

SERVICES: dict[str, ServiceTypeRecord] = {
    s.id: s
    for s in [
        examples.service(id="haircut", required_skills=["haircut"], default_duration_min=60),
        examples.service(id="neighbour_help", required_skills=["neighbour_help"]),
        examples.service(id="care_visit", required_skills=["care_visit"], default_duration_min=90),
        examples.service(
            id="ride", required_skills=["driving"], required_certifications=["driver_license"]
        ),
        examples.service(id="repair", required_skills=["repair"], default_duration_min=120),
        examples.service(id="tutoring", required_skills=["tutoring"], default_duration_min=90),
        examples.service(
            id="dental_clinic",
            required_skills=["dental"],
            required_certifications=["dentist_license"],
            default_duration_min=180,
        ),
    ]
}
# how often each service type is requested
SERVICE_MIX: list[tuple[str, float]] = [
    ("neighbour_help", 0.30),
    ("care_visit", 0.25),
    ("haircut", 0.15),
    ("ride", 0.12),
    ("repair", 0.08),
    ("tutoring", 0.08),
    ("dental_clinic", 0.02),
]

RADII: list[tuple[float, float]] = [
    (3, 0.10),
    (5, 0.25),
    (8, 0.25),
    (10, 0.2),
    (15, 0.12),
    (20, 0.06),
    (30, 0.02),
]


def _slots(days: Iterable[int], start: int, end: int) -> list[WeeklySlot]:
    return [WeeklySlot(weekday=d, start=time(start), end=time(end)) for d in days]


SCHEDULES: list[tuple[list[WeeklySlot], float]] = [
    (examples.EVERY_DAY, 0.15),  # retired, flexible
    (_slots(range(5), 18, 21), 0.20),  # after work
    (_slots([5, 6], 8, 18), 0.20),  # weekends
    (_slots(range(5), 18, 21) + _slots([5, 6], 9, 17), 0.15),
    (_slots(range(7), 8, 12), 0.15),  # mornings
    (_slots([0, 2, 4], 13, 18), 0.10),
    ([], 0.05),  # schedule not filled in yet
]


def _pick(rng: random.Random, table: list[tuple[T, float]]) -> T:
    return rng.choices([x for x, _ in table], weights=[w for _, w in table])[0]


def _around(rng: random.Random) -> tuple[float, float]:
    if rng.random() < 0.15:  # scattered hamlets all over the county
        return rng.uniform(25.38, 25.95), rng.uniform(118.00, 118.55)
    _, lat, lon, _ = rng.choices(TOWNSHIPS, weights=[t[3] for t in TOWNSHIPS])[0]
    return lat + rng.gauss(0, 0.03), lon + rng.gauss(0, 0.03)  # ~3 km spread


def make_volunteers(n: int, seed: int) -> list[VolunteerRecord]:
    rng = random.Random(seed)
    vols = []
    for i in range(n):
        # some are away for a few days this week (leave, illness)
        away = rng.choice(WINDOWS).start - timedelta(hours=rng.choice([0, 12, 36]))
        leave = [TimeWindow(start=away, end=away + timedelta(hours=rng.choice([4, 24, 72])))]
        lat, lon = _around(rng)
        skills = [s for s, p in SKILLS if rng.random() < p] or ["neighbour_help"]
        certs = []
        if "driving" in skills and rng.random() < 0.9:
            certs.append("driver_license")
        if "dental" in skills:
            certs.append("dentist_license")
        if "nursing" in skills or rng.random() < 0.1:
            certs.append("first_aid")
        vols.append(
            examples.volunteer(
                f"vol_{i:06d}",
                lat=lat,
                lon=lon,
                skills=skills,
                certifications=certs,
                radius_km=_pick(rng, RADII),
                availability=_pick(rng, SCHEDULES),
                capacity=rng.choice([1, 1, 2, 2, 2, 3]),
                languages=["mandarin", "minnan"] if rng.random() < 0.6 else ["mandarin"],
                township_id="twp_x",
                unavailable=leave if rng.random() < 0.05 else [],
            )
        )
    return vols


# windows: the week of Monday 2026-11-30, mornings, afternoons and evenings (local time)
WINDOWS: list[TimeWindow] = [
    TimeWindow(
        start=examples.MONDAY_9 + timedelta(days=d, hours=h),
        end=examples.MONDAY_9 + timedelta(days=d, hours=h + 3),
    )
    for d in range(7)
    for h in (0, 5, 10)  # 09:00, 14:00, 19:00 local
]


def make_requests(n: int, seed: int) -> list[RequestPosted]:
    rng = random.Random(seed)
    reqs = []
    for i in range(n):
        lat, lon = _around(rng)
        reqs.append(
            examples.request(
                lat=lat,
                lon=lon,
                request_id=f"req_{i:06d}",
                service_type_id=_pick(rng, SERVICE_MIX),
                window=rng.choice(WINDOWS),
                language="minnan" if rng.random() < 0.15 else None,
                posted_at=examples.MONDAY_9 - timedelta(days=1, seconds=n - i),
            )
        )
    return reqs


# ---------------------------------------------------------------- measuring


def machine(when: str) -> None:
    la = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine ({when}): nproc={os.cpu_count()} load average {la}", flush=True)


def pct(xs: Sequence[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))]


def make_stats(vols: list[VolunteerRecord], seed: int) -> dict[str, VolunteerStats]:
    """Histories: a third newcomers, the others from a few to many completions."""
    rng = random.Random(seed)
    out = {}
    for v in vols:
        if rng.random() < 0.33:
            continue
        done = rng.choice([1, 2, 3, 5, 8, 15, 40])
        rated = rng.randint(0, done)
        out[v.id] = VolunteerStats(
            completed=done,
            recent_hours=rng.choice([0.0, 2.0, 4.5, 9.0, 16.0, 30.0]),
            by_type={t: rng.randint(0, done) for t in rng.sample(list(SERVICES), 2)},
            stars_sum=sum(rng.choice([3, 4, 5, 5, 5]) for _ in range(rated)),
            stars_n=rated,
        )
    return out


def load_index(vols: list[VolunteerRecord], loads: dict[str, Load], seed: int) -> VolunteerIndex:
    """The read model as the service holds it: records, histories and the load cache."""
    index = VolunteerIndex()
    for v in vols:
        index.put(v)
    for vid, st in make_stats(vols, seed).items():
        index.set_stats(vid, st)
    index.loads.update(loads)
    return index


def make_loads(vols: list[VolunteerRecord], seed: int) -> dict[str, Load]:
    """Some volunteers already busy, as the load cache would hold them."""
    rng = random.Random(seed)
    loads = {}
    for v in vols:
        if rng.random() < 0.3:
            loads[v.id] = Load(active=rng.randint(0, v.capacity), total=rng.randint(1, 20))
    return loads


def bench_decisions(
    n_vols: int, n_decisions: int, n_scan: int, reps: int, freeze: bool = True
) -> None:
    n_scan = min(n_scan, n_decisions)
    print(
        f"\n## decision latency: {n_vols:,} volunteers, {n_decisions} requests x {reps} reps "
        f"(the linear scan on the first {n_scan} of them)"
        + (" (gc.freeze() after loading, as the service)" if freeze else " (no gc.freeze())")
    )
    vols = make_volunteers(n_vols, seed=1)
    index = load_index(vols, make_loads(vols, seed=5), seed=7)
    if freeze:  # what the service does once its views are loaded (bootstrap): no full
        gc.collect()  # collection walks the 100k records again (~0.65 s each)
        gc.freeze()
    everyone = index.all()
    loads = index.loads
    stats = index.stats()
    reqs = make_requests(n_decisions, seed=2)
    print(f"index max radius {index.max_radius_km:.0f} km", flush=True)
    per_rep: list[tuple[float, ...]] = []
    looked: list[int] = []
    eligible: list[int] = []
    reasons: list[float] = []
    for rep in range(reps):
        t_index: list[float] = []
        t_matched: list[float] = []  # decisions with a candidate (no full pass)
        t_scan: list[float] = []
        c_index: list[float] = []  # CPU time: the wall clock of a shared machine is noisy
        for i, r in enumerate(reqs):
            svc = SERVICES[r.service_type_id]
            kinds = ("index", "scan") if (i + rep) % 2 == 0 else ("scan", "index")
            for kind in kinds if i < n_scan else ("index",):
                t0, c0 = _time.perf_counter(), _time.process_time()
                if kind == "index":
                    # what the matcher does: the 5 best; the full pass only for the reasons
                    a = index.best(r, svc, loads, 5)
                    if not a.candidates:
                        index.full_rank(r, svc, loads)
                    t_index.append(_time.perf_counter() - t0)
                    c_index.append(_time.process_time() - c0)
                    if a.candidates:
                        t_matched.append(t_index[-1])
                else:
                    b = rank(r, svc, everyone, loads, stats)
                    t_scan.append(_time.perf_counter() - t0)
            if rep == 0:
                looked.append(a.considered)
                if not a.candidates:
                    reasons.append(t_index[-1])
            if rep == 0 and i < n_scan:
                eligible.append(len(b.candidates))
                assert [(c.volunteer.id, c.score, c.parts) for c in a.candidates] == [
                    (c.volunteer.id, c.score, c.parts) for c in b.candidates[:5]
                ], "index and scan must decide the same"
        sub = t_index[:n_scan]
        row = tuple(
            pct(t, p) * 1e3 for t in (t_index, sub, t_scan, t_matched, c_index) for p in (50, 99)
        )
        per_rep.append(row)
        print(
            f"rep {rep + 1}: index p50 {row[0]:6.3f} ms  p99 {row[1]:6.3f} ms   "
            f"(first {n_scan}: p50 {row[2]:6.3f} p99 {row[3]:6.3f})   "
            f"scan p50 {row[4]:8.2f} ms  p99 {row[5]:8.2f} ms   "
            f"(matched only: index p99 {row[7]:6.3f})",
            flush=True,
        )
    med = [statistics.median(r[k] for r in per_rep) for k in range(10)]
    looked.sort()
    eligible.sort()
    print(
        f"per decision: checked exactly p50 {pct(looked, 50):,} / max {looked[-1]:,} "
        f"volunteers; eligible (scan) p50 {pct(eligible, 50):,} / max {eligible[-1]:,}; "
        f"{len(reasons)} of {n_decisions} without a candidate took the full pass for the "
        f"reasons (rep 1: p50 {pct(reasons, 50) * 1e3 if reasons else 0:.2f} ms)"
    )
    print(
        f"median of {reps} reps: index p50 {med[0]:.3f} ms, p99 {med[1]:.3f} ms "
        "(target p99 <= 2 ms)"
    )
    print(f"  CPU time of the same: p50 {med[8]:.3f} ms, p99 {med[9]:.3f} ms")
    print(f"  with a candidate only: index p50 {med[6]:.3f} ms, p99 {med[7]:.3f} ms")
    print(f"  same {n_scan} requests: index p50 {med[2]:.3f} ms, p99 {med[3]:.3f} ms")
    print(f"                  scan  p50 {med[4]:.2f} ms, p99 {med[5]:.2f} ms")
    print(
        f"ratio scan/index (same requests): p50 {med[4] / med[2]:.0f}x, "
        f"p99 {med[5] / med[3]:.0f}x (target >= 20x)",
        flush=True,
    )


def with_multi_slots(reqs: list[RequestPosted], share: float, seed: int) -> list[RequestPosted]:
    """The same requests, a seeded `share` of them needing 2-4 people."""
    rng = random.Random(seed)
    return [
        r.model_copy(update={"slots": rng.randint(2, 4)}) if rng.random() < share else r
        for r in reqs
    ]


def _time_batch(
    reqs: list[RequestPosted], index: VolunteerIndex, loads: dict[str, Load], reps: int
) -> tuple[float, float, float, BatchResult, BatchResult]:
    """Batch and greedy on the same data, alternating which goes first; the medians of wall
    and CPU time of batch, the median of greedy, and the last results."""
    tb: list[float] = []
    tg: list[float] = []
    cb: list[float] = []
    for rep in range(reps):
        for kind in ("batch", "greedy") if rep % 2 == 0 else ("greedy", "batch"):
            t0, c0 = _time.perf_counter(), _time.process_time()
            if kind == "batch":
                b = assign_batch(reqs, SERVICES, index, loads)
                tb.append(_time.perf_counter() - t0)
                cb.append(_time.process_time() - c0)
            else:
                g = assign_greedy(reqs, SERVICES, index, loads)
                tg.append(_time.perf_counter() - t0)
        print(
            f"rep {rep + 1}: batch {tb[-1]:.3f} s (CPU {cb[-1]:.3f} s), greedy {tg[-1]:.3f} s",
            flush=True,
        )
    med = statistics.median
    return med(tb), med(cb), med(tg), b, g


def _report_batch(
    slots: int, tb: float, cb: float, tg: float, b: BatchResult, g: BatchResult
) -> None:
    print(
        f"batch : median {tb:.3f} s, CPU {cb:.3f} s (target <= 1 s); assigned "
        f"{b.assigned}/{slots}, total cost {b.total_cost:.4f}, "
        f"mean cost {b.total_cost / max(1, b.assigned):.4f}"
    )
    print(
        f"greedy: median {tg:.3f} s; assigned {g.assigned}/{slots}, "
        f"total cost {g.total_cost:.4f}, mean cost {g.total_cost / max(1, g.assigned):.4f}"
    )
    same = sum(1 for r, v in b.volunteer_of().items() if g.volunteer_of().get(r) == v)
    print(
        f"batch vs greedy: {b.assigned - g.assigned:+d} assigned, total cost "
        f"{b.total_cost - g.total_cost:+.4f} ({(b.total_cost / g.total_cost - 1) * 100:+.1f}%); "
        f"{same} requests got the same volunteer",
        flush=True,
    )


def bench_batch(
    n_vols: int, n_requests: int, reps: int, multi_share: float = 0.0, freeze: bool = True
) -> None:
    print(
        f"\n## batch assignment: {n_requests:,} pending requests x {n_vols:,} volunteers"
        + (" (gc.freeze() after loading, as the service)" if freeze else " (no gc.freeze())")
    )
    vols = make_volunteers(n_vols, seed=3)
    index = load_index(vols, make_loads(vols, seed=6), seed=8)
    loads = index.loads
    reqs = make_requests(n_requests, seed=4)
    if freeze:  # the service's heap is frozen once loaded (bootstrap), so is this one
        gc.collect()
        gc.freeze()
    single = _time_batch(reqs, index, loads, reps)
    _report_batch(n_requests, *single)
    if multi_share <= 0:
        return
    multi = with_multi_slots(reqs, multi_share, seed=9)
    n_multi = sum(1 for r in multi if r.slots > 1)
    slots = sum(r.slots for r in multi)
    print(
        f"\n## batch assignment with multi-slot requests: the same {n_requests:,} requests, "
        f"{n_multi:,} ({multi_share:.0%}) of them needing 2-4 people ({slots:,} slots)"
    )
    tb, cb, tg, b, g = _time_batch(multi, index, loads, reps)
    _report_batch(slots, tb, cb, tg, b, g)
    twice = sum(len(v) - len(set(v)) for v in b.volunteers_of().values())
    print(f"volunteers on two slots of one request: {twice}")
    print(
        f"batch median: single-slot {single[0]:.3f} s (CPU {single[1]:.3f} s), with "
        f"{multi_share:.0%} multi-slot {tb:.3f} s (CPU {cb:.3f} s) (target <= 1 s)",
        flush=True,
    )


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def rss_child(n_vols: int) -> None:
    """Runs in a fresh interpreter: RSS before and after loading the read model."""
    gc.collect()
    base = _rss_kb()
    view: View[VolunteerRecord] = View(VolunteerRecord)
    index = VolunteerIndex()
    view.listeners.append(index.on_change)
    vols = make_volunteers(n_vols, seed=1)
    for v in vols:
        view.apply(v.id, v)
    for vid, st in make_stats(vols, seed=7).items():
        index.set_stats(vid, st)
    index.loads.update(make_loads(vols, seed=5))
    del vols
    for r in make_requests(300, seed=2):  # a searched index holds its grids as arrays
        svc = SERVICES[r.service_type_id]
        if not index.best(r, svc, index.loads, 5).candidates:
            index.full_rank(r, svc, index.loads)
    gc.collect()
    after = _rss_kb()
    print(f"{base} {after} {len(view)} {len(index)}")


def bench_rss(n_vols: int) -> None:
    print(
        f"\n## memory: {n_vols:,} volunteers in the View + VolunteerIndex, with histories and "
        "loads, after 300 decisions (fresh process)"
    )
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(n_vols)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    base, after, n_view, n_index = (int(x) for x in out)
    print(
        f"RSS empty interpreter with the same imports {base / 1024:.1f} MB; "
        f"after loading {after / 1024:.1f} MB; delta {(after - base) / 1024:.1f} MB "
        f"({(after - base) * 1024 / n_vols:.0f} bytes/volunteer; view {n_view:,}, index "
        f"{n_index:,}) (target <= 400 MB)",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--volunteers", type=int, default=100_000, help="read model size")
    ap.add_argument("--decisions", type=int, default=2000, help="requests timed per rep")
    ap.add_argument(
        "--scan-decisions", type=int, default=100, help="of those, also timed with a linear scan"
    )
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch-requests", type=int, default=2000)
    ap.add_argument("--batch-volunteers", type=int, default=20_000)
    ap.add_argument(
        "--batch-multi-share",
        type=float,
        default=0.2,
        help="batch: also time the same requests with this share needing 2-4 people (0: off)",
    )
    ap.add_argument("--only", choices=["decisions", "batch", "rss"], default=None)
    ap.add_argument("--rss-child", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument(  # the service freezes once loaded (bootstrap): so does the bench, by default
        "--no-gc-freeze",
        dest="gc_freeze",
        action="store_false",
        help="no gc.freeze() after loading",
    )
    ap.set_defaults(gc_freeze=True)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return
    machine("start")
    if args.only in (None, "rss"):
        bench_rss(args.volunteers)
    if args.only in (None, "batch"):
        bench_batch(
            args.batch_volunteers,
            args.batch_requests,
            args.reps,
            args.batch_multi_share,
            args.gc_freeze,
        )
        gc.unfreeze()  # the decisions part loads (and freezes) its own heap
    if args.only in (None, "decisions"):
        bench_decisions(
            args.volunteers, args.decisions, args.scan_decisions, args.reps, args.gc_freeze
        )
    machine("end")


if __name__ == "__main__":
    main()
