"""Does a volunteer's weekly schedule cover a requested window? (local time, Asia/Shanghai)"""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from zhumeng_contracts.events.common import TimeWindow, WeeklySlot

LOCAL = ZoneInfo("Asia/Shanghai")


def longest_overlap_min(slots: list[WeeklySlot], window: TimeWindow) -> float:
    """The longest stretch of the window, in minutes, inside one weekly slot."""
    start = window.start.astimezone(LOCAL)
    end = window.end.astimezone(LOCAL)
    best = 0.0
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        for slot in slots:
            if slot.weekday != day.weekday():
                continue
            s = day.replace(hour=slot.start.hour, minute=slot.start.minute)
            e = day.replace(hour=slot.end.hour, minute=slot.end.minute)
            best = max(best, (min(e, end) - max(s, start)).total_seconds() / 60)
        day += timedelta(days=1)  # no daylight saving in Asia/Shanghai
    return best


def covers(slots: list[WeeklySlot], window: TimeWindow, needed_min: float) -> bool:
    """True when one slot holds the service's duration inside the window (or, for a window
    shorter than that, the whole window)."""
    window_min = (window.end - window.start).total_seconds() / 60
    return longest_overlap_min(slots, window) >= min(needed_min, window_min) - 1e-9
