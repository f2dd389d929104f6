"""Message templates, zh-CN and en, for each (event, role) pair. Pure: values in, text out.

Times are shown in Asia/Shanghai local time (the county's clock), whatever zone the event
carried. Plain text; the subject line is used by email and dropped by short channels, which send
`short` instead: one SMS segment (see `sms_text`), no recipient name, no request id.

The check-in code is a secret between the requester and the arriving volunteer: only
`assigned_to_requester` ever renders it. No volunteer template takes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from .model import Locale, Rendered
from .recipients import EscalationLevel
from .sms_text import compose, gsm7

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


def short_window(start: datetime, end: datetime, locale: Locale) -> str:
    """A window for an SMS: "6月3日09:00-11:00" / "3 Jun 09:00-11:00"."""
    s, e = start.astimezone(LOCAL_TZ), end.astimezone(LOCAL_TZ)
    if locale == "zh-CN":
        tail = f"{e:%H:%M}" if s.date() == e.date() else f"{e.month}月{e.day}日{e:%H:%M}"
        return f"{s.month}月{s.day}日{s:%H:%M}-{tail}"
    tail = f"{e:%H:%M}" if s.date() == e.date() else f"{e.day} {_MONTHS_EN[e.month - 1]} {e:%H:%M}"
    return f"{s.day} {_MONTHS_EN[s.month - 1]} {s:%H:%M}-{tail}"


def short_moment(t: datetime, locale: Locale) -> str:
    """A moment for an SMS: "6月3日09:05" / "09:05 3 Jun"."""
    local = t.astimezone(LOCAL_TZ)
    if locale == "zh-CN":
        return f"{local.month}月{local.day}日{local:%H:%M}"
    return f"{local:%H:%M} {local.day} {_MONTHS_EN[local.month - 1]}"


def _en_name(name: str | None, fallback: str) -> str:
    """A person's name in an English SMS: GSM-7 only, else the generic word."""
    return gsm7(name, fallback) if name else fallback


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
    # how the slot was filled: an open claim or a team claim is the answer to the volunteer's
    # (or their lead's) own claim, told as "you got it"
    mode: str = "direct"


@dataclass(frozen=True)
class UnmatchedFacts:
    request_id: str
    service: str


def _slot_zh(f: AssignedFacts) -> str:
    return f"（共需{f.slots}位志愿者，这是第{f.slot}位）" if f.slots > 1 else ""


def _slot_en(f: AssignedFacts) -> str:
    return f" (volunteer {f.slot} of {f.slots})" if f.slots > 1 else ""


def _assigned_short_requester(locale: Locale, f: AssignedFacts, code: str | None) -> str:
    when = short_window(f.window_start, f.window_end, locale)
    if locale == "zh-CN":
        tail = "签到码{code}，志愿者到达时请出示。" if code else "届时请准备好签到码。"
        return compose(
            locale,
            "您的“{service}”已由志愿者{volunteer}接单，{when}。" + tail,
            cut={"service": f.service, "volunteer": f.volunteer_name},
            keep={"when": when, "code": code or ""},
        )
    tail = " Check-in code {code}: show it when they arrive." if code else ""
    return compose(
        locale,
        "Zhumeng: {volunteer} will help with your {service} request, {when}." + tail,
        cut={"service": f.service, "volunteer": _en_name(f.volunteer_name, "a volunteer")},
        keep={"when": when, "code": code or ""},
    )


def assigned_to_requester(
    locale: Locale, recipient_name: str, f: AssignedFacts, checkin_code: str | None = None
) -> Rendered:
    """The requester learns who comes, and the 6-digit code to show that volunteer on arrival
    (the volunteer enters it to check in: proof that they really came)."""
    window = format_window(f.window_start, f.window_end, locale)
    short = _assigned_short_requester(locale, f, checkin_code)
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
            short=short,
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
        short=short,
    )


@dataclass(frozen=True)
class _How:
    """The volunteer's news by how the slot was filled."""

    zh_subject: str
    zh_lead: str  # the email's first words
    zh_short: str  # the SMS's first words
    en_subject: str
    en_lead: str
    en_short: str


_ASSIGNED_HOW = {
    "open_claim": _How(
        "抢单成功", "抢单成功！", "抢单成功！", "you got it", "You got it! ", "You got it! Help"
    ),
    "team": _How(
        "团队认领成功",
        "您的团队已为您认领了这次任务。",
        "团队认领成功！",
        "your team took it",
        "Your team took this task for you. ",
        "Your team took it for you. Help",
    ),
}
_ASSIGNED_DIRECT = _How("新任务", "", "新任务：", "new task", "", "New task: help")


def assigned_to_volunteer(locale: Locale, recipient_name: str, f: AssignedFacts) -> Rendered:
    # No requester phone or address here (DESIGN §8): the first name only; the place and
    # contact are shown in the volunteer app while the assignment is active.
    window = format_window(f.window_start, f.window_end, locale)
    when = short_window(f.window_start, f.window_end, locale)
    how = _ASSIGNED_HOW.get(f.mode, _ASSIGNED_DIRECT)
    if locale == "zh-CN":
        requester = f.requester_first_name or "居民"
        return Rendered(
            subject=f"【筑梦】{how.zh_subject}：{f.service}",
            body=(
                f"{recipient_name}，您好：\n\n"
                f"{how.zh_lead}您已被安排为{requester}提供“{f.service}”服务。\n"
                f"服务时间：{window}\n"
                f"任务编号：{f.request_id}\n\n"
                "服务地点和联系方式请在筑梦志愿者端的任务详情中查看。感谢您的付出！\n\n"
                f"{SIGNATURE[locale]}\n"
            ),
            short=compose(
                locale,
                how.zh_short + "为{requester}提供“{service}”，{when}。地点见筑梦志愿者端。",
                cut={"service": f.service, "requester": requester},
                keep={"when": when},
            ),
        )
    requester = f.requester_first_name or "a resident"
    return Rendered(
        subject=f"Zhumeng: {how.en_subject}, {f.service}",
        body=(
            f"Hello {recipient_name},\n\n"
            f"{how.en_lead}You have been assigned to help {requester} with {f.service}.\n"
            f"When: {window}\n"
            f"Task: {f.request_id}\n\n"
            "The place and contact details are in the task view of the Zhumeng volunteer app."
            " Thank you!\n\n"
            f"{SIGNATURE[locale]}\n"
        ),
        short=compose(
            locale,
            "Zhumeng: " + how.en_short + " {requester} with {service}, {when}."
            " Place in the volunteer app.",
            cut={"service": f.service, "requester": _en_name(requester, "a resident")},
            keep={"when": when},
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
            short=compose(
                locale,
                "很抱歉，您的“{service}”请求暂未找到志愿者，协调员会尽快联系您。",
                cut={"service": f.service},
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
        short=compose(
            locale,
            "Zhumeng: sorry, no volunteer found yet for your {service} request."
            " A coordinator will contact you soon.",
            cut={"service": f.service},
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
            short=compose(
                locale,
                "{who}已于{at}到达并签到，服务开始。如未见到志愿者，请立即联系协调员。",
                cut={"who": who},
                keep={"at": short_moment(f.checked_in_at, locale)},
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
        short=compose(
            locale,
            "Zhumeng: {who} checked in at {at}; the service has begun."
            " If nobody came, call your coordinator at once.",
            cut={"who": _en_name(f.volunteer_first_name, "Your volunteer")},
            keep={"at": short_moment(f.checked_in_at, locale)},
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
            short=compose(
                locale,
                "您的请求已服务完成，共{hours}。欢迎在筑梦中评价，谢谢！",
                keep={"hours": hours},
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
        short=compose(
            locale,
            "Zhumeng: your request is complete ({hours} in all). Please rate it in Zhumeng."
            " Thank you!",
            keep={"hours": hours},
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
            short=compose(
                locale,
                "感谢您完成“{service}”，已记录志愿时长{hours}。",
                cut={"service": f.service},
                keep={"hours": hours},
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
        short=compose(
            locale,
            "Zhumeng: thank you! {hours} credited for {service}.",
            cut={"service": f.service},
            keep={"hours": hours},
        ),
    )


CancelReason = Literal["request_cancelled", "no_show", "withdrawn", "reassigned"]


@dataclass(frozen=True)
class CancelledFacts:
    request_id: str
    reason: CancelReason


# Reasons a volunteer is told of. "withdrawn" is the volunteer's own act: not echoed back.
VOLUNTEER_CANCEL_REASONS: frozenset[str] = frozenset({"request_cancelled", "no_show", "reassigned"})

_CANCELLED_SHORT = {
    "zh-CN": {
        "request_cancelled": "您参与的任务已取消，无需前往，这段时间已为您释放。谢谢您的支持！",
        "no_show": "您在任务中被记录为未到场，名额已改派。如有误会，请联系协调员。",
        "reassigned": "协调员已将任务改派给其他志愿者，您无需前往，这段时间已为您释放。",
    },
    "en": {
        "request_cancelled": "Zhumeng: your task was cancelled. You need not go; your time is"
        " free again. Thank you!",
        "no_show": "Zhumeng: you were marked as not having come, and the place went to another"
        " volunteer. If this is a mistake, call your coordinator.",
        "reassigned": "Zhumeng: a coordinator gave your task to another volunteer. You need not"
        " go; your time is free again.",
    },
}


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
            short=compose(locale, _CANCELLED_SHORT[locale][f.reason]),
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
        short=compose(locale, _CANCELLED_SHORT[locale][f.reason]),
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
            short=compose(
                locale,
                "很抱歉，未能按时为您的请求安排到"
                + ("全部志愿者，已安排的{filled}位仍会按时前来" if partial else "志愿者")
                + "。协调员会尽快联系您。",
                keep={"filled": str(f.filled_slots)},
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
        short=compose(
            locale,
            "Zhumeng: sorry, "
            + (
                "only {filled} of {slots} volunteers could be found in time; they still come."
                if partial
                else "no volunteer could be found in time for your request."
            )
            + " A coordinator will contact you soon.",
            keep={"filled": str(f.filled_slots), "slots": str(f.slots)},
        ),
    )


# ---- who hears what beyond the match (ADR 0012) ----------------------------------------


def _zh(recipient_name: str, text: str, request_line: str) -> str:
    return f"{recipient_name}，您好：\n\n{text}\n{request_line}\n\n{SIGNATURE['zh-CN']}\n"


def _en(recipient_name: str, text: str, request_line: str) -> str:
    return f"Hello {recipient_name},\n\n{text}\n{request_line}\n\n{SIGNATURE['en']}\n"


@dataclass(frozen=True)
class PostedFacts:
    request_id: str
    service: str
    window_start: datetime
    window_end: datetime
    slots: int = 1


def posted_to_requester(locale: Locale, recipient_name: str, f: PostedFacts) -> Rendered:
    window = format_window(f.window_start, f.window_end, locale)
    when = short_window(f.window_start, f.window_end, locale)
    if locale == "zh-CN":
        slots = f"（需要{f.slots}位志愿者）" if f.slots > 1 else ""
        return Rendered(
            subject=f"【筑梦】已收到您的“{f.service}”请求",
            body=_zh(
                recipient_name,
                f"我们已收到您的“{f.service}”请求{slots}。\n服务时间：{window}\n"
                "正在为您寻找志愿者，有进展会第一时间通知您。",
                f"请求编号：{f.request_id}",
            ),
            short=compose(
                locale,
                "已收到您的“{service}”请求，{when}。正在为您寻找志愿者，有进展会通知您。",
                cut={"service": f.service},
                keep={"when": when},
            ),
        )
    slots = f" ({f.slots} volunteers)" if f.slots > 1 else ""
    return Rendered(
        subject=f"Zhumeng: we received your {f.service} request",
        body=_en(
            recipient_name,
            f"We have received your request for {f.service}{slots}.\nWhen: {window}\n"
            "We are looking for a volunteer and will tell you as soon as there is news.",
            f"Request: {f.request_id}",
        ),
        short=compose(
            locale,
            "Zhumeng: we received your {service} request for {when} and are looking for a"
            " volunteer. We will keep you posted.",
            cut={"service": f.service},
            keep={"when": when},
        ),
    )


ReviewDecision = Literal["approved", "rejected"]


@dataclass(frozen=True)
class ReviewedFacts:
    request_id: str
    decision: ReviewDecision
    note: str | None = None  # the coordinator's words to the requester: email only


def reviewed_to_requester(locale: Locale, recipient_name: str, f: ReviewedFacts) -> Rendered:
    approved = f.decision == "approved"
    if locale == "zh-CN":
        note = f"\n协调员留言：{f.note}" if f.note else ""
        text = (
            "您的请求已通过审核，正在为您寻找志愿者。"
            if approved
            else "很抱歉，您的请求未通过审核。协调员会与您联系说明原因。"
        )
        return Rendered(
            subject="【筑梦】您的请求已通过审核" if approved else "【筑梦】您的请求未通过审核",
            body=_zh(recipient_name, text + note, f"请求编号：{f.request_id}"),
            short=compose(locale, text),
        )
    note = f"\nThe coordinator's note: {f.note}" if f.note else ""
    text = (
        "Your request has been approved; we are now looking for a volunteer."
        if approved
        else "Sorry, your request was not approved. A coordinator will contact you to explain."
    )
    return Rendered(
        subject="Zhumeng: your request is approved"
        if approved
        else "Zhumeng: your request was not approved",
        body=_en(recipient_name, text + note, f"Request: {f.request_id}"),
        short=compose(locale, "Zhumeng: " + text),
    )


_LEVEL = {
    "zh-CN": {
        "wider_radius": "扩大范围",
        "township_liaison": "乡镇联络员",
        "county_centre": "县志愿服务中心",
    },
    "en": {
        "wider_radius": "wider search",
        "township_liaison": "township liaison",
        "county_centre": "county centre",
    },
}


@dataclass(frozen=True)
class EscalatedFacts:
    request_id: str
    level: EscalationLevel
    step: int
    open_slots: int


def still_looking_to_requester(locale: Locale, recipient_name: str, f: EscalatedFacts) -> Rendered:
    helped = f.level != "wider_radius"
    if locale == "zh-CN":
        extra = "，并请协调员协助安排" if helped else ""
        text = f"我们仍在为您的请求寻找志愿者，已扩大寻找范围{extra}。请耐心等待，有进展会通知您。"
        return Rendered(
            subject="【筑梦】仍在为您寻找志愿者",
            body=_zh(recipient_name, text, f"请求编号：{f.request_id}"),
            short=compose(locale, text),
        )
    extra = " and asked a coordinator to help" if helped else ""
    text = (
        f"We are still looking for a volunteer for your request and have widened the"
        f" search{extra}. Thank you for your patience."
    )
    return Rendered(
        subject="Zhumeng: still looking for a volunteer",
        body=_en(recipient_name, text, f"Request: {f.request_id}"),
        short=compose(locale, "Zhumeng: " + text),
    )


REMINDER_CAUSE = "zhumeng.notify.appointment-reminder"


@dataclass(frozen=True)
class Reminder:
    """A reminder timer's content: which assignment, whom, when (no contact details)."""

    id: str  # the timer's id: the deliveries' idempotency key
    request_id: str
    assignment_id: str
    volunteer_id: str
    service_type_id: str
    window_start: datetime
    window_end: datetime


@dataclass(frozen=True)
class ReminderFacts:
    request_id: str
    service: str
    window_start: datetime
    window_end: datetime
    volunteer_first_name: str | None  # for the requester
    requester_first_name: str | None  # for the volunteer


def reminder_to_requester(locale: Locale, recipient_name: str, f: ReminderFacts) -> Rendered:
    window = format_window(f.window_start, f.window_end, locale)
    when = short_window(f.window_start, f.window_end, locale)
    if locale == "zh-CN":
        who = f"志愿者{f.volunteer_first_name}" if f.volunteer_first_name else "您的志愿者"
        return Rendered(
            subject=f"【筑梦】服务提醒：{f.service}",
            body=_zh(
                recipient_name,
                f"提醒您：{who}将为您提供“{f.service}”服务。\n服务时间：{window}\n"
                "请准备好签到码，志愿者到达时出示给志愿者。",
                f"请求编号：{f.request_id}",
            ),
            short=compose(
                locale,
                "提醒：{who}将于{when}为您提供“{service}”，请准备好签到码。",
                cut={"service": f.service, "who": who},
                keep={"when": when},
            ),
        )
    who = f.volunteer_first_name or "Your volunteer"
    return Rendered(
        subject=f"Zhumeng: reminder, {f.service}",
        body=_en(
            recipient_name,
            f"A reminder: {who} comes to help you with {f.service}.\nWhen: {window}\n"
            "Please have your check-in code ready to show them on arrival.",
            f"Request: {f.request_id}",
        ),
        short=compose(
            locale,
            "Zhumeng reminder: {who} comes for {service}, {when}. Have your check-in code ready.",
            cut={"service": f.service, "who": _en_name(f.volunteer_first_name, "your volunteer")},
            keep={"when": when},
        ),
    )


def reminder_to_volunteer(locale: Locale, recipient_name: str, f: ReminderFacts) -> Rendered:
    window = format_window(f.window_start, f.window_end, locale)
    when = short_window(f.window_start, f.window_end, locale)
    if locale == "zh-CN":
        requester = f.requester_first_name or "居民"
        return Rendered(
            subject=f"【筑梦】任务提醒：{f.service}",
            body=_zh(
                recipient_name,
                f"提醒您：您将为{requester}提供“{f.service}”服务。\n服务时间：{window}\n"
                "服务地点和联系方式请在筑梦志愿者端的任务详情中查看。请准时到达，谢谢！",
                f"任务编号：{f.request_id}",
            ),
            short=compose(
                locale,
                "提醒：您将于{when}为{requester}提供“{service}”，地点见筑梦志愿者端。",
                cut={"service": f.service, "requester": requester},
                keep={"when": when},
            ),
        )
    requester = f.requester_first_name or "a resident"
    return Rendered(
        subject=f"Zhumeng: reminder, {f.service}",
        body=_en(
            recipient_name,
            f"A reminder: you help {requester} with {f.service}.\nWhen: {window}\n"
            "The place and contact details are in the task view of the Zhumeng volunteer app."
            " Please be on time. Thank you!",
            f"Task: {f.request_id}",
        ),
        short=compose(
            locale,
            "Zhumeng reminder: you help {requester} with {service}, {when}."
            " Place in the volunteer app.",
            cut={"service": f.service, "requester": _en_name(requester, "a resident")},
            keep={"when": when},
        ),
    )


@dataclass(frozen=True)
class OfferFacts:
    request_id: str
    service: str
    window_start: datetime
    window_end: datetime
    expires_at: datetime
    distance_km: float
    urgent: bool = False  # it expires within quiet hours: held back, it would come too late


def offer_to_volunteer(locale: Locale, recipient_name: str, f: OfferFacts) -> Rendered:
    window = format_window(f.window_start, f.window_end, locale)
    when = short_window(f.window_start, f.window_end, locale)
    km = f"{f.distance_km:.1f}".removesuffix(".0")
    if locale == "zh-CN":
        expires = short_moment(f.expires_at, locale)
        return Rendered(
            subject=f"【筑梦】服务邀请：{f.service}（{format_moment(f.expires_at, locale)}前回复）",
            body=_zh(
                recipient_name,
                f"邀请您提供“{f.service}”服务，地点距您约{km}公里。\n服务时间：{window}\n"
                f"请在{format_moment(f.expires_at, locale)}前在筑梦志愿者端接受或拒绝；"
                "逾期将转给其他志愿者。",
                f"任务编号：{f.request_id}",
            ),
            short=compose(
                locale,
                "服务邀请：“{service}”，{when}，距您约{km}公里。请在{expires}前接受或拒绝。",
                cut={"service": f.service},
                keep={"when": when, "km": km, "expires": expires},
            ),
            urgent=f.urgent,
        )
    expires = short_moment(f.expires_at, locale)
    return Rendered(
        subject=f"Zhumeng: can you help with {f.service}? Reply by {expires}",
        body=_en(
            recipient_name,
            f"You are offered a task: {f.service}, about {km} km from you.\nWhen: {window}\n"
            f"Please accept or decline in the Zhumeng volunteer app by"
            f" {format_moment(f.expires_at, locale)}; after that it goes to another volunteer.",
            f"Task: {f.request_id}",
        ),
        short=compose(
            locale,
            "Zhumeng: offer for {service}, {when}, about {km} km away. Accept or decline in the"
            " volunteer app by {expires}.",
            cut={"service": f.service},
            keep={"when": when, "km": km, "expires": expires},
        ),
        urgent=f.urgent,
    )


@dataclass(frozen=True)
class OfferExpiredFacts:
    request_id: str


def offer_expired_to_volunteer(
    locale: Locale, recipient_name: str, f: OfferExpiredFacts
) -> Rendered:
    if locale == "zh-CN":
        text = "您收到的服务邀请已过期，已转给其他志愿者。感谢您的关注！"
        return Rendered(
            subject="【筑梦】服务邀请已过期",
            body=_zh(recipient_name, text, f"任务编号：{f.request_id}"),
            short=compose(locale, text),
        )
    text = "The offer you received has lapsed and moved on to another volunteer. Thank you!"
    return Rendered(
        subject="Zhumeng: the offer lapsed",
        body=_en(recipient_name, text, f"Task: {f.request_id}"),
        short=compose(locale, "Zhumeng: " + text),
    )


@dataclass(frozen=True)
class ClaimFacts:
    request_id: str
    service: str
    window_start: datetime
    window_end: datetime
    open_slots: int


def claim_invitation_to_volunteer(locale: Locale, recipient_name: str, f: ClaimFacts) -> Rendered:
    window = format_window(f.window_start, f.window_end, locale)
    when = short_window(f.window_start, f.window_end, locale)
    n = str(f.open_slots)
    if locale == "zh-CN":
        return Rendered(
            subject=f"【筑梦】抢单邀请：{f.service}",
            body=_zh(
                recipient_name,
                f"“{f.service}”开放抢单，共{n}个名额，先到先得。\n服务时间：{window}\n"
                "请在筑梦志愿者端的抢单列表中认领。",
                f"任务编号：{f.request_id}",
            ),
            short=compose(
                locale,
                "抢单邀请：“{service}”，{when}，{n}个名额，先到先得。请在筑梦志愿者端抢单。",
                cut={"service": f.service},
                keep={"when": when, "n": n},
            ),
        )
    places = "1 place" if f.open_slots == 1 else f"{n} places"
    return Rendered(
        subject=f"Zhumeng: open to claim, {f.service}",
        body=_en(
            recipient_name,
            f"{f.service} is open to claim: {places}, first come, first served.\nWhen: {window}\n"
            "Claim it in the claims list of the Zhumeng volunteer app.",
            f"Task: {f.request_id}",
        ),
        short=compose(
            locale,
            "Zhumeng: {service} is open to claim, {when}, {places}; first come, first served."
            " Claim it in the volunteer app.",
            cut={"service": f.service},
            keep={"when": when, "places": places},
        ),
    )


@dataclass(frozen=True)
class ReviewFacts:
    request_id: str
    service: str
    township_id: str
    held_at: datetime


def review_required_to_coordinator(locale: Locale, recipient_name: str, f: ReviewFacts) -> Rendered:
    held = format_moment(f.held_at, locale)
    if locale == "zh-CN":
        return Rendered(
            subject=f"【筑梦】待审核：{f.service}",
            body=_zh(
                recipient_name,
                f"一条“{f.service}”请求需要您审核后才能开始匹配志愿者（{held}提交）。\n"
                f"乡镇：{f.township_id}\n请在筑梦协调端批准或驳回。",
                f"请求编号：{f.request_id}",
            ),
            short=compose(
                locale,
                "待审核：一条“{service}”请求需您审核后才能开始匹配志愿者，请在筑梦协调端处理。",
                cut={"service": f.service},
            ),
        )
    return Rendered(
        subject=f"Zhumeng: review needed, {f.service}",
        body=_en(
            recipient_name,
            f"A request for {f.service} needs your review before matching starts (held at"
            f" {held}).\nTownship: {f.township_id}\nPlease approve or reject it in Zhumeng.",
            f"Request: {f.request_id}",
        ),
        short=compose(
            locale,
            "Zhumeng: a {service} request needs your review before matching starts."
            " Please review it in Zhumeng.",
            cut={"service": f.service},
        ),
    )


def escalated_to_coordinator(locale: Locale, recipient_name: str, f: EscalatedFacts) -> Rendered:
    level = _LEVEL[locale][f.level]
    n = str(f.open_slots)
    if locale == "zh-CN":
        text = f"一条请求仍有{n}个名额无人认领，已升级至{level}（第{f.step}步），请协助安排志愿者。"
        return Rendered(
            subject=f"【筑梦】请求升级：{level}",
            body=_zh(recipient_name, text, f"请求编号：{f.request_id}"),
            short=compose(locale, text + "请在筑梦协调端处理。"),
        )
    places = "1 open place" if f.open_slots == 1 else f"{n} open places"
    text = (
        f"A request still has {places} nobody has taken; it is escalated to the {level}"
        f" (step {f.step}). Please help find a volunteer."
    )
    return Rendered(
        subject=f"Zhumeng: request escalated to the {level}",
        body=_en(recipient_name, text, f"Request: {f.request_id}"),
        short=compose(locale, "Zhumeng: " + text + " See Zhumeng."),
    )
