"""Message templates, zh-CN and en, for each (event, role) pair. Pure: values in, text out.

Times are shown in Asia/Shanghai local time (the county's clock), whatever zone the event
carried. Plain text; the subject line is used by email and dropped by short channels.

The check-in code is a secret between the requester and the arriving volunteer: only
`assigned_to_requester` ever renders it. No volunteer template takes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
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


def format_moment(t: datetime, locale: Locale) -> str:
    """A point in time in county-local time, e.g. "6月3日（周二）09:05"."""
    local = t.astimezone(LOCAL_TZ)
    if locale == "zh-CN":
        return f"{_day_zh(local, with_year=False)}{local:%H:%M}"
    return f"{local:%H:%M} on {_day_en(local)}"


def format_hours(hours: float, locale: Locale) -> str:
    """Credited hours (quarter hours): 2.0 -> "2 小时" / "2 hours", 1.25 -> "1.25 hours"."""
    figure = f"{hours:.2f}".rstrip("0").rstrip(".")
    if locale == "zh-CN":
        return f"{figure} 小时"
    return f"{figure} hour" if figure == "1" else f"{figure} hours"


@dataclass(frozen=True)
class AssignedFacts:
    request_id: str
    service: str
    window_start: datetime
    window_end: datetime
    volunteer_name: str  # the volunteer's display name (first name only)
    requester_first_name: str
    slot: int = 1
    slots: int = 1


@dataclass(frozen=True)
class UnmatchedFacts:
    request_id: str
    service: str


def _slot_zh(f: AssignedFacts) -> str:
    return f"（共需{f.slots}位志愿者，这是第{f.slot}位）" if f.slots > 1 else ""


def _slot_en(f: AssignedFacts) -> str:
    return f" (volunteer {f.slot} of {f.slots})" if f.slots > 1 else ""


def assigned_to_requester(
    locale: Locale, recipient_name: str, f: AssignedFacts, checkin_code: str | None = None
) -> Rendered:
    """The requester learns who comes, and the 6-digit code to show that volunteer on arrival
    (the volunteer enters it to check in: proof that they really came)."""
    window = format_window(f.window_start, f.window_end, locale)
    if locale == "zh-CN":
        code = (
            f"签到码：{checkin_code}\n"
            f"志愿者{f.volunteer_name}到达时，请把这个签到码出示给志愿者，由志愿者输入完成签到。"
            "请勿提前把签到码告诉他人。\n\n"
            if checkin_code
            else ""
        )
        return Rendered(
            subject=f"【筑梦】您的“{f.service}”请求已有志愿者接单",
            body=(
                f"{recipient_name}，您好：\n\n"
                f"志愿者{f.volunteer_name}已接下您的“{f.service}”请求{_slot_zh(f)}。\n"
                f"服务时间：{window}\n"
                f"请求编号：{f.request_id}\n\n"
                f"{code}"
                "如需变更或取消，请在筑梦中操作，或联系村里的协调员。\n\n"
                f"{SIGNATURE[locale]}\n"
            ),
        )
    code = (
        f"Check-in code: {checkin_code}\n"
        f"When {f.volunteer_name} arrives, show them this code; they enter it to check in."
        " Please do not give it to anyone before then.\n\n"
        if checkin_code
        else ""
    )
    return Rendered(
        subject=f"Zhumeng: a volunteer will help with your {f.service} request",
        body=(
            f"Hello {recipient_name},\n\n"
            f"{f.volunteer_name} has accepted your request for {f.service}{_slot_en(f)}.\n"
            f"When: {window}\n"
            f"Request: {f.request_id}\n\n"
            f"{code}"
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


# ---- the lifecycle after the assignment (DESIGN §5) --------------------------------------


@dataclass(frozen=True)
class CheckedInFacts:
    request_id: str
    volunteer_first_name: str | None  # None: the volunteer's contact is not known (yet)
    checked_in_at: datetime


def checked_in_to_requester(locale: Locale, recipient_name: str, f: CheckedInFacts) -> Rendered:
    at = format_moment(f.checked_in_at, locale)
    if locale == "zh-CN":
        who = f"志愿者{f.volunteer_first_name}" if f.volunteer_first_name else "您的志愿者"
        return Rendered(
            subject=f"【筑梦】{who}已到达并签到",
            body=(
                f"{recipient_name}，您好：\n\n"
                f"{who}已于{at}到达并完成签到，服务开始。\n"
                f"请求编号：{f.request_id}\n\n"
                "如果志愿者并未到达，请立即联系村里的协调员。\n\n"
                f"{SIGNATURE[locale]}\n"
            ),
        )
    who = f.volunteer_first_name or "Your volunteer"
    return Rendered(
        subject=f"Zhumeng: {who} has arrived",
        body=(
            f"Hello {recipient_name},\n\n"
            f"{who} has arrived and checked in at {at}; the service has begun.\n"
            f"Request: {f.request_id}\n\n"
            "If nobody has arrived, please call your village coordinator at once.\n\n"
            f"{SIGNATURE[locale]}\n"
        ),
    )


@dataclass(frozen=True)
class RequestCompletedFacts:
    request_id: str
    hours_total: float


def request_completed_to_requester(
    locale: Locale, recipient_name: str, f: RequestCompletedFacts
) -> Rendered:
    hours = format_hours(f.hours_total, locale)
    if locale == "zh-CN":
        return Rendered(
            subject="【筑梦】服务已完成，欢迎评价",
            body=(
                f"{recipient_name}，您好：\n\n"
                f"您的请求已服务完成，志愿者共服务{hours}。感谢您对志愿服务的信任！\n"
                f"请求编号：{f.request_id}\n\n"
                "欢迎在筑梦中为这次服务打分、留下评价，帮助我们把服务做得更好。\n\n"
                f"{SIGNATURE[locale]}\n"
            ),
        )
    return Rendered(
        subject="Zhumeng: your request is complete, please rate it",
        body=(
            f"Hello {recipient_name},\n\n"
            f"Your request is complete: volunteers gave {hours} in all."
            " Thank you for trusting our volunteers!\n"
            f"Request: {f.request_id}\n\n"
            "Please rate the service in Zhumeng; your feedback helps us do better.\n\n"
            f"{SIGNATURE[locale]}\n"
        ),
    )


@dataclass(frozen=True)
class AssignmentCompletedFacts:
    request_id: str
    service: str
    hours: float


def assignment_completed_to_volunteer(
    locale: Locale, recipient_name: str, f: AssignmentCompletedFacts
) -> Rendered:
    hours = format_hours(f.hours, locale)
    if locale == "zh-CN":
        return Rendered(
            subject=f"【筑梦】感谢您的服务：{f.service}，已记录{hours}",
            body=(
                f"{recipient_name}，您好：\n\n"
                f"您已完成“{f.service}”服务，本次记录志愿服务时长{hours}。谢谢您的付出！\n"
                f"任务编号：{f.request_id}\n\n"
                "累计时长可在筑梦志愿者端查看。\n\n"
                f"{SIGNATURE[locale]}\n"
            ),
        )
    return Rendered(
        subject=f"Zhumeng: thank you, {hours} credited for {f.service}",
        body=(
            f"Hello {recipient_name},\n\n"
            f"You have completed {f.service}; {hours} of volunteer service have been credited"
            " to you. Thank you!\n"
            f"Task: {f.request_id}\n\n"
            "Your total hours are in the Zhumeng volunteer app.\n\n"
            f"{SIGNATURE[locale]}\n"
        ),
    )


CancelReason = Literal["request_cancelled", "no_show", "withdrawn", "reassigned"]


@dataclass(frozen=True)
class CancelledFacts:
    request_id: str
    reason: CancelReason


# Reasons a volunteer is told of. "withdrawn" is the volunteer's own act: not echoed back.
VOLUNTEER_CANCEL_REASONS: frozenset[str] = frozenset({"request_cancelled", "no_show", "reassigned"})


def cancelled_to_volunteer(locale: Locale, recipient_name: str, f: CancelledFacts) -> Rendered:
    if f.reason not in VOLUNTEER_CANCEL_REASONS:
        raise ValueError(f"no volunteer message for cancellation reason {f.reason!r}")
    if locale == "zh-CN":
        subject, text = {
            "request_cancelled": (
                "【筑梦】任务已取消",
                "您参与的任务已被取消，您无需再前往，已为您释放这段时间。感谢您的支持！",
            ),
            "no_show": (
                "【筑梦】任务已改派：您被记录为未到场",
                "您在这次任务中被记录为未到场，该名额已改派给其他志愿者。"
                "如有误会，请联系村里的协调员。",
            ),
            "reassigned": (
                "【筑梦】任务已改派",
                "协调员已将这次任务改派给其他志愿者，您无需再前往，已为您释放这段时间。",
            ),
        }[f.reason]
        return Rendered(
            subject=subject,
            body=(
                f"{recipient_name}，您好：\n\n"
                f"{text}\n"
                f"任务编号：{f.request_id}\n\n"
                f"{SIGNATURE[locale]}\n"
            ),
        )
    subject, text = {
        "request_cancelled": (
            "Zhumeng: task cancelled",
            "The request you were assigned to has been cancelled. You need not go; you are"
            " released and your time is free again. Thank you for your help!",
        ),
        "no_show": (
            "Zhumeng: task reassigned, you were marked as not having come",
            "You were marked as not having come to this task, and the place has been given to"
            " another volunteer. If this is a mistake, please call your village coordinator.",
        ),
        "reassigned": (
            "Zhumeng: task reassigned",
            "A coordinator has given this task to another volunteer. You need not go; you are"
            " released and your time is free again.",
        ),
    }[f.reason]
    return Rendered(
        subject=subject,
        body=(f"Hello {recipient_name},\n\n{text}\nTask: {f.request_id}\n\n{SIGNATURE[locale]}\n"),
    )


UnfulfilledReason = Literal["window_passed", "escalation_exhausted", "no_candidates"]

_UNFULFILLED_REASON = {
    "zh-CN": {
        "window_passed": "服务时间已过，仍未安排到志愿者",
        "escalation_exhausted": "已多次扩大范围联系志愿者，仍无人能够接单",
        "no_candidates": "附近暂时没有符合条件的志愿者",
    },
    "en": {
        "window_passed": "the time you asked for has passed without a volunteer",
        "escalation_exhausted": "we widened the search several times, but nobody could take it",
        "no_candidates": "there is no suitable volunteer nearby at the moment",
    },
}


@dataclass(frozen=True)
class UnfulfilledFacts:
    request_id: str
    reason: UnfulfilledReason
    filled_slots: int
    slots: int


def unfulfilled_to_requester(locale: Locale, recipient_name: str, f: UnfulfilledFacts) -> Rendered:
    reason = _UNFULFILLED_REASON[locale][f.reason]
    partial = 0 < f.filled_slots < f.slots
    if locale == "zh-CN":
        part = (
            f"您需要{f.slots}位志愿者，目前只安排到{f.filled_slots}位，已安排的志愿者仍会按时前来。\n"
            if partial
            else ""
        )
        return Rendered(
            subject="【筑梦】很抱歉，您的请求未能按时安排志愿者",
            body=(
                f"{recipient_name}，您好：\n\n"
                f"很抱歉，未能及时为您的请求找到志愿者。原因：{reason}。\n"
                f"{part}"
                "协调员会尽快与您联系，商量后续安排。\n"
                f"请求编号：{f.request_id}\n\n"
                f"{SIGNATURE[locale]}\n"
            ),
        )
    part = (
        f"You asked for {f.slots} volunteers and {f.filled_slots} could be arranged;"
        " they will still come as planned.\n"
        if partial
        else ""
    )
    return Rendered(
        subject="Zhumeng: sorry, no volunteer could be found in time",
        body=(
            f"Hello {recipient_name},\n\n"
            f"We are sorry: nobody could be found in time for your request. Reason: {reason}.\n"
            f"{part}"
            "A coordinator will contact you soon about what to do next.\n"
            f"Request: {f.request_id}\n\n"
            f"{SIGNATURE[locale]}\n"
        ),
    )
