"""Message templates, zh-CN and en, for each (event, role) pair. Pure: values in, text out.

Times are shown in Asia/Shanghai local time (the county's clock), whatever zone the event
carried. Plain text; the subject line is used by email and dropped by short channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from .model import Locale, Rendered

LOCAL_TZ = ZoneInfo("Asia/Shanghai")

_WEEKDAYS_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
_WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

SIGNATURE = {"zh-CN": "—— 筑梦志愿服务平台", "en": "— Zhumeng volunteer service"}


def _day_zh(t: datetime, with_year: bool = True) -> str:
    year = f"{t.year}年" if with_year else ""
    return f"{year}{t.month}月{t.day}日（{_WEEKDAYS_ZH[t.weekday()]}）"


def _day_en(t: datetime) -> str:
    return f"{_WEEKDAYS_EN[t.weekday()]} {t.day} {_MONTHS_EN[t.month - 1]} {t.year}"


def format_window(start: datetime, end: datetime, locale: Locale) -> str:
    """A time window in county-local time, e.g. "2025年6月3日（周二）09:00–11:00"."""
    s, e = start.astimezone(LOCAL_TZ), end.astimezone(LOCAL_TZ)
    if locale == "zh-CN":
        if s.date() == e.date():
            return f"{_day_zh(s)}{s:%H:%M}–{e:%H:%M}（北京时间）"
        return f"{_day_zh(s)}{s:%H:%M} 至 {_day_zh(e, s.year != e.year)}{e:%H:%M}（北京时间）"
    if s.date() == e.date():
        return f"{_day_en(s)}, {s:%H:%M}–{e:%H:%M} (China Standard Time)"
    return f"{_day_en(s)} {s:%H:%M} – {_day_en(e)} {e:%H:%M} (China Standard Time)"


@dataclass(frozen=True)
class AssignedFacts:
    request_id: str
    service: str
    window_start: datetime
    window_end: datetime
    volunteer_name: str  # the volunteer's display name (first name only)
    requester_first_name: str


@dataclass(frozen=True)
class UnmatchedFacts:
    request_id: str
    service: str


def assigned_to_requester(locale: Locale, recipient_name: str, f: AssignedFacts) -> Rendered:
    window = format_window(f.window_start, f.window_end, locale)
    if locale == "zh-CN":
        return Rendered(
            subject=f"【筑梦】您的“{f.service}”请求已有志愿者接单",
            body=(
                f"{recipient_name}，您好：\n\n"
                f"志愿者{f.volunteer_name}已接下您的“{f.service}”请求。\n"
                f"服务时间：{window}\n"
                f"请求编号：{f.request_id}\n\n"
                "如需变更或取消，请在筑梦中操作，或联系村里的协调员。\n\n"
                f"{SIGNATURE[locale]}\n"
            ),
        )
    return Rendered(
        subject=f"Zhumeng: a volunteer will help with your {f.service} request",
        body=(
            f"Hello {recipient_name},\n\n"
            f"{f.volunteer_name} has accepted your request for {f.service}.\n"
            f"When: {window}\n"
            f"Request: {f.request_id}\n\n"
            "To change or cancel it, use Zhumeng or call your village coordinator.\n\n"
            f"{SIGNATURE[locale]}\n"
        ),
    )


def assigned_to_volunteer(locale: Locale, recipient_name: str, f: AssignedFacts) -> Rendered:
    # No requester phone or address here (DESIGN §8): the first name only; the place and
    # contact are shown in the volunteer app while the assignment is active.
    window = format_window(f.window_start, f.window_end, locale)
    if locale == "zh-CN":
        return Rendered(
            subject=f"【筑梦】新任务：{f.service}",
            body=(
                f"{recipient_name}，您好：\n\n"
                f"您已被安排为{f.requester_first_name}提供“{f.service}”服务。\n"
                f"服务时间：{window}\n"
                f"任务编号：{f.request_id}\n\n"
                "服务地点和联系方式请在筑梦志愿者端的任务详情中查看。感谢您的付出！\n\n"
                f"{SIGNATURE[locale]}\n"
            ),
        )
    return Rendered(
        subject=f"Zhumeng: new task, {f.service}",
        body=(
            f"Hello {recipient_name},\n\n"
            f"You have been assigned to help {f.requester_first_name} with {f.service}.\n"
            f"When: {window}\n"
            f"Task: {f.request_id}\n\n"
            "The place and contact details are in the task view of the Zhumeng volunteer app."
            " Thank you!\n\n"
            f"{SIGNATURE[locale]}\n"
        ),
    )


def unmatched_to_requester(locale: Locale, recipient_name: str, f: UnmatchedFacts) -> Rendered:
    if locale == "zh-CN":
        return Rendered(
            subject=f"【筑梦】您的“{f.service}”请求暂未找到志愿者",
            body=(
                f"{recipient_name}，您好：\n\n"
                f"很抱歉，目前还没有找到可以为您提供“{f.service}”服务的志愿者。\n"
                "协调员会尽快与您联系，继续为您安排。\n"
                f"请求编号：{f.request_id}\n\n"
                f"{SIGNATURE[locale]}\n"
            ),
        )
    return Rendered(
        subject=f"Zhumeng: no volunteer found yet for your {f.service} request",
        body=(
            f"Hello {recipient_name},\n\n"
            f"We are sorry: no volunteer could be found yet for your {f.service} request.\n"
            "A coordinator will contact you soon to arrange it.\n"
            f"Request: {f.request_id}\n\n"
            f"{SIGNATURE[locale]}\n"
        ),
    )
