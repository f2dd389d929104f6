"""When a human can act on an escalated request: office hours as data (ADR 0009). Pure.

Hours are local (Asia/Shanghai) weekly sessions, written as a short spec so that operations
can change them in a setting without code::

    "mon-fri 08:00-12:00 14:30-17:30"              # a township office (the default)
    "mon-fri 08:00-12:00 14:30-17:30; sat 09:00-12:00"
    "mon-sun 00:00-24:00"                          # always open (a duty desk, tests)

Public holidays are not modelled (a holiday calendar would be one more list of dates).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

LOCAL = ZoneInfo("Asia/Shanghai")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TOWNSHIP_OFFICE_SPEC = "mon-fri 08:00-12:00 14:30-17:30"
ALWAYS_SPEC = "mon-sun 00:00-24:00"
_SESSION = re.compile(r"^([0-2][0-9]):([0-5][0-9])-([0-2][0-9]):([0-5][0-9])$")


@dataclass(frozen=True)
class Session:
    """One opening on one weekday (0 = Monday), minutes after local midnight."""

    weekday: int
    start_min: int
    end_min: int


@dataclass(frozen=True)
class OfficeHours:
    sessions: tuple[Session, ...]

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(LOCAL)
        minute = local.hour * 60 + local.minute
        return any(
            s.weekday == local.weekday() and s.start_min <= minute < s.end_min
            for s in self.sessions
        )

    def next_opening(self, at: datetime) -> datetime:
        """`at` itself when open, else the start of the next session (aware, local zone)."""
        if self.is_open(at):
            return at
        local = at.astimezone(LOCAL)
        midnight = datetime.combine(local.date(), time(0), tzinfo=LOCAL)
        for day in range(8):
            base = midnight + timedelta(days=day)
            starts = sorted(s.start_min for s in self.sessions if s.weekday == base.weekday())
            for start_min in starts:
                opening = _at_minute(base, start_min)
                if opening > at:
                    return opening
        raise ValueError("office hours without any session")


def _at_minute(midnight: datetime, minute: int) -> datetime:
    # by wall clock (Asia/Shanghai has no daylight saving time, so this is exact)
    return midnight.replace(hour=minute // 60, minute=minute % 60)


def parse(spec: str) -> OfficeHours:
    """`"mon-fri 08:00-12:00 14:30-17:30; sat 09:00-12:00"` -> OfficeHours (ValueError if not)."""
    sessions: list[Session] = []
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        days, *ranges = part.split()
        if not ranges:
            raise ValueError(f"no hours for {days!r}")
        for rng in ranges:
            m = _SESSION.match(rng)
            if m is None:
                raise ValueError(f"bad hours {rng!r} (want HH:MM-HH:MM)")
            h1, m1, h2, m2 = (int(g) for g in m.groups())
            start, end = h1 * 60 + m1, h2 * 60 + m2
            if not 0 <= start < end <= 24 * 60:
                raise ValueError(f"bad hours {rng!r}")
            sessions += [Session(d, start, end) for d in _days(days)]
    if not sessions:
        raise ValueError("office hours need at least one session")
    return OfficeHours(tuple(sessions))


def _days(spec: str) -> list[int]:
    first, _, last = spec.lower().partition("-")
    if first not in DAYS or (last and last not in DAYS):
        raise ValueError(f"bad days {spec!r} (want e.g. mon-fri or sat)")
    a, b = DAYS.index(first), DAYS.index(last or first)
    if b < a:
        raise ValueError(f"bad days {spec!r}")
    return list(range(a, b + 1))


TOWNSHIP_OFFICE = parse(TOWNSHIP_OFFICE_SPEC)
ALWAYS = parse(ALWAYS_SPEC)
