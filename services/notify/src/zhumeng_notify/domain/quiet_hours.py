"""Quiet hours: no non-urgent message at night, county time. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class QuietHours:
    """A nightly span [start, end) in a time zone; it may wrap past midnight (22:00-07:00)."""

    start: time = time(22, 0)
    end: time = time(7, 0)
    zone: ZoneInfo = SHANGHAI

    @classmethod
    def parse(cls, text: str, zone: ZoneInfo = SHANGHAI) -> QuietHours | None:
        """ "22:00-07:00" -> QuietHours; "" or "off" -> None (never quiet)."""
        text = text.strip().lower()
        if text in ("", "off", "none"):
            return None
        try:
            start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
        except ValueError as exc:
            raise ValueError(f"quiet hours must look like 22:00-07:00, not {text!r}") from exc
        if start == end:
            raise ValueError("quiet hours must not start and end at the same time")
        return cls(start, end, zone)

    def contains(self, moment: datetime) -> bool:
        t = moment.astimezone(self.zone).time()
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def ends_after(self, moment: datetime) -> datetime:
        """The first moment at or after `moment` outside quiet hours (itself if not quiet)."""
        if not self.contains(moment):
            return moment
        local = moment.astimezone(self.zone)
        end = datetime.combine(local.date(), self.end, tzinfo=self.zone)
        if end <= local:
            end = datetime.combine(local.date() + timedelta(days=1), self.end, tzinfo=self.zone)
        return end.astimezone(moment.tzinfo)


def send_at(
    now: datetime, quiet: QuietHours | None, urgent: bool, person_wants_quiet: bool
) -> datetime:
    """When a message due now may go out: now, or when the night is over."""
    if quiet is None or urgent or not person_wants_quiet:
        return now
    return quiet.ends_after(now)
