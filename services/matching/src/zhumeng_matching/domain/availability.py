"""Does a volunteer's weekly schedule cover a requested window? (local time, Asia/Shanghai)"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from zhumeng_contracts.events.common import TimeWindow, WeeklySlot

LOCAL = ZoneInfo("Asia/Shanghai")


def _pieces(slots: list[WeeklySlot], window: TimeWindow) -> list[tuple[datetime, datetime]]:
    """The window cut by the weekly slots: (start, end) of each overlap, local time."""
    start = window.start.astimezone(LOCAL)
    end = window.end.astimezone(LOCAL)
    out = []
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        for slot in slots:
            if slot.weekday != day.weekday():
                continue
            s = max(start, day.replace(hour=slot.start.hour, minute=slot.start.minute))
            e = min(end, day.replace(hour=slot.end.hour, minute=slot.end.minute))
            if e > s:
                out.append((s, e))
        day += timedelta(days=1)  # no daylight saving in Asia/Shanghai
    return out


def longest_overlap_min(slots: list[WeeklySlot], window: TimeWindow) -> float:
    """The longest stretch of the window, in minutes, inside one weekly slot."""
    return max(((e - s).total_seconds() / 60 for s, e in _pieces(slots, window)), default=0.0)


def longest_free_min(
    slots: list[WeeklySlot], unavailable: Sequence[TimeWindow], window: TimeWindow
) -> float:
    """The longest stretch of the window inside one weekly slot and outside every exception
    (leave, illness: absolute times)."""
    best = 0.0
    gaps = sorted((x.start, x.end) for x in unavailable)
    for s, e in _pieces(slots, window):
        for gs, ge in gaps:
            if ge <= s or gs >= e:
                continue
            best = max(best, (min(gs, e) - s).total_seconds() / 60)
            s = max(s, ge)
            if s >= e:
                break
        if s < e:
            best = max(best, (e - s).total_seconds() / 60)
    return best


def covers(slots: list[WeeklySlot], window: TimeWindow, needed_min: float) -> bool:
    """True when one slot holds the service's duration inside the window (or, for a window
    shorter than that, the whole window)."""
    window_min = (window.end - window.start).total_seconds() / 60
    return longest_overlap_min(slots, window) >= min(needed_min, window_min) - 1e-9


def covers_despite(
    slots: list[WeeklySlot],
    unavailable: Sequence[TimeWindow],
    window: TimeWindow,
    needed_min: float,
) -> bool:
    """`covers`, with the service interval also outside every schedule exception."""
    window_min = (window.end - window.start).total_seconds() / 60
    need = min(needed_min, window_min) - 1e-9
    return longest_free_min(slots, unavailable, window) >= need


ScheduleKey = tuple[tuple[int, object, object], ...]


def schedule_key(slots: list[WeeklySlot]) -> ScheduleKey:
    """A hashable key of a weekly schedule: volunteers share a few schedules."""
    return tuple((s.weekday, s.start, s.end) for s in slots)


class CoversCache:
    """`covers` memoised per (window, duration) and schedule id, as a numpy array of states
    (0 unknown, 1 covers, 2 does not), so that a search filters by availability in numpy.
    Schedule ids and their slots come from the caller (the index interns schedules).
    `covers` (datetime arithmetic, ~6 µs) is the slowest eligibility check; a county shares
    a few schedules and a few windows."""

    MAX_WINDOWS = 4096  # distinct (window, duration) kept before the cache starts afresh

    def __init__(self, schedules: list[list[WeeklySlot]]) -> None:
        self._schedules = schedules  # by schedule id, shared with (and grown by) the caller
        self._by_window: dict[tuple[object, object, float], np.ndarray] = {}

    def ok(self, sched_ids: np.ndarray, window: TimeWindow, needed_min: float) -> np.ndarray:
        """Per schedule id in `sched_ids`: does that schedule cover the window?"""
        key = (window.start, window.end, needed_min)
        state = self._by_window.get(key)
        n = len(self._schedules)
        if state is None or len(state) < n:
            if state is None and len(self._by_window) >= self.MAX_WINDOWS:
                self._by_window.clear()
            grown = np.zeros(max(16, 2 * n), dtype=np.int8)
            if state is not None:
                grown[: len(state)] = state
            state = self._by_window[key] = grown
        st = state[sched_ids]
        if not st.all():
            for sid in np.unique(sched_ids[st == 0]).tolist():
                state[sid] = 1 if covers(self._schedules[sid], window, needed_min) else 2
            st = state[sched_ids]
        ok: np.ndarray = st == 1
        return ok
