"""Who is told, by which channel, and under which name. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

from .model import Locale, Recipient

LOCAL_TZ = ZoneInfo("Asia/Shanghai")

# Two-character Chinese surnames (复姓) that keep their second character.
_COMPOUND_SURNAMES = frozenset(
    {
        "欧阳",
        "司马",
        "诸葛",
        "上官",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "令狐",
        "司徒",
        "夏侯",
        "宇文",
        "长孙",
        "澹台",
        "端木",
        "独孤",
        "南宫",
        "西门",
        "轩辕",
    }
)


def _is_cjk(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


def first_name(full_name: str) -> str:
    """The given name only: "Alice Smith" -> "Alice"; "王秀英" -> "秀英"; "欧阳娜娜" -> "娜娜".

    A volunteer learns no more of a requester than this while the request is being arranged
    (DESIGN §8: contact details only while the assignment is active, and not in this version).
    """
    name = " ".join(full_name.split())
    if not name:
        return full_name
    if all(_is_cjk(ch) for ch in name) and len(name) >= 2:
        surname = 2 if name[:2] in _COMPOUND_SURNAMES and len(name) > 2 else 1
        return name[surname:]
    return name.split(" ")[0]


# ---- coordinators (ADR 0012) --------------------------------------------------------------

Scope = Literal["township", "county"]


@dataclass(frozen=True)
class Coordinator:
    """A coordinator notify can reach: of one township, or of the county centre (no township).
    Kept in notify's own directory (the catalog's contacts are volunteers only)."""

    id: str
    name: str
    township_id: str | None = None  # None: the county centre
    locale: Locale = "zh-CN"
    phone: str | None = None
    email: str | None = None

    @property
    def scope(self) -> Scope:
        return "county" if self.township_id is None else "township"

    def recipient(self) -> Recipient:
        return Recipient(
            id=self.id,
            role="coordinator",
            name=self.name,
            locale=self.locale,
            email=self.email,
            phone=self.phone,
        )

    def __repr__(self) -> str:  # never print contact details by accident
        return f"Coordinator(id={self.id!r}, township_id={self.township_id!r})"


EscalationLevel = Literal["wider_radius", "township_liaison", "county_centre"]


def escalation_audience(level: EscalationLevel) -> Scope | None:
    """Which coordinators hear of an escalation: nobody while only the radius widens, the
    township's at the liaison rung, the county centre's at the last."""
    return {"wider_radius": None, "township_liaison": "township", "county_centre": "county"}[level]


# ---- quiet hours ---------------------------------------------------------------------------

# The county's night; the delivery side holds non-urgent messages through each recipient's
# own quiet hours. This default decides only whether an offer must be marked urgent.
QUIET_HOURS = (time(22, 0), time(7, 0))


def in_quiet_hours(t: datetime, quiet: tuple[time, time] = QUIET_HOURS) -> bool:
    local = t.astimezone(LOCAL_TZ).time()
    start, end = quiet
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def offer_is_urgent(expires_at: datetime, quiet: tuple[time, time] = QUIET_HOURS) -> bool:
    """An offer that expires within the quiet hours would be stale when they end: it must
    go out at once (the volunteer can still ignore it; it then simply moves on)."""
    return in_quiet_hours(expires_at, quiet)
